//! One stream type for every transport the gateway speaks: TCP or Unix, plain or TLS.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

/// A connected byte stream.
pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    TlsClient(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    TlsServer(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Stream {
    /// Whether the stream is encrypted.
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self, Stream::TlsClient(_) | Stream::TlsServer(_))
    }
}

/// Calls `$e` with `$s` pinned, whichever of the listed variants `$self` is.
macro_rules! dispatch {
    ($self:ident, $($variant:path),+; $s:ident => $e:expr) => {
        match $self.get_mut() {
            $($variant($s) => {
                let $s = Pin::new($s);
                $e
            })+
        }
    };
}

/// Every variant of [`Stream`], for [`dispatch!`].
macro_rules! stream {
    ($self:ident, $s:ident => $e:expr) => {
        dispatch!($self, Stream::Tcp, Stream::Unix, Stream::TlsClient, Stream::TlsServer; $s => $e)
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        stream!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        stream!(self, s => s.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        stream!(self, s => s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        stream!(self, s => s.poll_shutdown(cx))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        stream!(self, s => s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(s) => s.is_write_vectored(),
            Stream::Unix(s) => s.is_write_vectored(),
            Stream::TlsClient(s) => s.is_write_vectored(),
            Stream::TlsServer(s) => s.is_write_vectored(),
        }
    }
}

/// The reading half of a [`Stream`].
pub(crate) enum ReadHalf {
    Tcp(tokio::net::tcp::OwnedReadHalf),
    Unix(tokio::net::unix::OwnedReadHalf),
    Tls(tokio::io::ReadHalf<Stream>),
}

/// The writing half of a [`Stream`]. Dropping it shuts the write direction down.
pub(crate) enum WriteHalf {
    Tcp(tokio::net::tcp::OwnedWriteHalf),
    Unix(tokio::net::unix::OwnedWriteHalf),
    Tls(tokio::io::WriteHalf<Stream>),
}

impl Stream {
    /// Splits the stream so one task can read while another writes. Plain sockets split for
    /// free; a TLS stream's halves share the session state behind a lock (`tokio::io::split`),
    /// which costs a lock per read and write and contends when both run at once.
    pub(crate) fn split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Stream::Tcp(s) => {
                let (r, w) = s.into_split();
                (ReadHalf::Tcp(r), WriteHalf::Tcp(w))
            }
            Stream::Unix(s) => {
                let (r, w) = s.into_split();
                (ReadHalf::Unix(r), WriteHalf::Unix(w))
            }
            tls => {
                let (r, w) = tokio::io::split(tls);
                (ReadHalf::Tls(r), WriteHalf::Tls(w))
            }
        }
    }
}

/// Puts the halves of one [`Stream`] back together; `None` if they are not two halves of the
/// same stream.
pub(crate) fn reunite(read: ReadHalf, write: WriteHalf) -> Option<Stream> {
    match (read, write) {
        (ReadHalf::Tcp(r), WriteHalf::Tcp(w)) => r.reunite(w).ok().map(Stream::Tcp),
        (ReadHalf::Unix(r), WriteHalf::Unix(w)) => r.reunite(w).ok().map(Stream::Unix),
        (ReadHalf::Tls(r), WriteHalf::Tls(w)) => r.is_pair_of(&w).then(|| r.unsplit(w)),
        _ => None,
    }
}

impl AsyncRead for ReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        dispatch!(self, ReadHalf::Tcp, ReadHalf::Unix, ReadHalf::Tls; s => s.poll_read(cx, buf))
    }
}

/// Every variant of [`WriteHalf`], for [`dispatch!`].
macro_rules! write_half {
    ($self:ident, $s:ident => $e:expr) => {
        dispatch!($self, WriteHalf::Tcp, WriteHalf::Unix, WriteHalf::Tls; $s => $e)
    };
}

impl AsyncWrite for WriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        write_half!(self, s => s.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        write_half!(self, s => s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        write_half!(self, s => s.poll_shutdown(cx))
    }
}
