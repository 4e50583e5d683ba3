use flate2::{Compress, Compression, FlushCompress};
use proptest::prelude::*;

use super::*;

/// The sending side of one direction: one compression context for every block.
struct Writer {
    z: Compress,
}

impl Writer {
    fn new() -> Self {
        let mut z = Compress::new(Compression::default(), true);
        z.set_dictionary(&DICTIONARY).expect("dictionary");
        Self { z }
    }

    fn block(&mut self, pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut plain = (pairs.len() as u32).to_be_bytes().to_vec();
        for (n, v) in pairs {
            plain.extend_from_slice(&(n.len() as u32).to_be_bytes());
            plain.extend_from_slice(n.as_bytes());
            plain.extend_from_slice(&(v.len() as u32).to_be_bytes());
            plain.extend_from_slice(v.as_bytes());
        }
        let mut out = Vec::with_capacity(plain.len() + 64);
        self.z
            .compress_vec(&plain, &mut out, FlushCompress::Sync)
            .expect("compress");
        out
    }
}

fn control(kind: u16, flags: u8, data: &[u8]) -> Vec<u8> {
    let mut f = vec![0x80, 0x03];
    f.extend_from_slice(&kind.to_be_bytes());
    f.push(flags);
    f.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
    f.extend_from_slice(data);
    f
}

fn data_frame(stream: u32, flags: u8, data: &[u8]) -> Vec<u8> {
    let mut f = stream.to_be_bytes().to_vec();
    f.push(flags);
    f.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
    f.extend_from_slice(data);
    f
}

fn syn_stream(w: &mut Writer, stream: u32, kind: &str) -> Vec<u8> {
    let mut d = stream.to_be_bytes().to_vec();
    d.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    d.extend_from_slice(&w.block(&[("streamtype", kind), ("port", "")]));
    control(SYN_STREAM, 0, &d)
}

#[test]
fn frames_split_whole_whatever_the_chunking_and_headers_read_across_blocks() {
    let mut w = Writer::new();
    let mut wire = Vec::new();
    for (id, kind) in [(1, "error"), (3, "stdin"), (5, "stdout"), (7, "stderr")] {
        wire.extend(syn_stream(&mut w, id, kind));
    }
    wire.extend(data_frame(3, FLAG_FIN, b"hello"));
    for chunk_size in [1, 3, 7, 64, wire.len()] {
        let mut reader = FrameReader::new();
        let mut headers = HeaderReader::new(64 * 1024);
        let mut seen = Vec::new();
        for chunk in wire.chunks(chunk_size) {
            reader.push(chunk);
            while let Some(frame) = reader.next_frame().expect("frame") {
                if let Some(block) = frame.header_block() {
                    let pairs = headers.read(block).expect("headers");
                    let kind = pairs
                        .iter()
                        .find(|(n, _)| n == "streamtype")
                        .map(|(_, v)| v.clone())
                        .expect("streamtype");
                    seen.push((frame.stream_id().expect("id"), kind));
                } else {
                    assert!(!frame.is_control());
                    assert_eq!(frame.stream_id(), Some(3));
                    assert_eq!(frame.flags(), FLAG_FIN);
                    assert_eq!(frame.data(), b"hello");
                    seen.push((3, "data".into()));
                }
            }
        }
        assert_eq!(reader.held(), 0);
        assert_eq!(
            seen,
            [
                (1, "error".to_owned()),
                (3, "stdin".into()),
                (5, "stdout".into()),
                (7, "stderr".into()),
                (3, "data".into())
            ],
            "chunks of {chunk_size}"
        );
    }
}

#[test]
fn bad_versions_bombs_and_garbage_are_errors() {
    let mut reader = FrameReader::new();
    let mut frame = control(SYN_STREAM, 0, &[0; 10]);
    frame[1] = 2;
    reader.push(&frame);
    assert!(reader.next_frame().is_err());
    // A block that inflates past the limit.
    let mut w = Writer::new();
    let big = "x".repeat(100_000);
    let block = w.block(&[("streamtype", &big)]);
    assert!(HeaderReader::new(64 * 1024).read(&block).is_err());
    assert!(
        HeaderReader::new(64 * 1024)
            .read(b"not zlib at all")
            .is_err()
    );
}

proptest! {
    #[test]
    fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut reader = FrameReader::new();
        let mut headers = HeaderReader::new(4096);
        reader.push(&bytes);
        while let Ok(Some(frame)) = reader.next_frame() {
            let _ = frame.stream_id();
            if let Some(block) = frame.header_block() {
                let _ = headers.read(block);
            }
        }
    }
}
