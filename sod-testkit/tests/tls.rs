//! The test CA, exercised with a real rustls handshake over TCP.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use rustls::pki_types::ServerName;
use sod_testkit::TestCa;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_rustls::{TlsAcceptor, TlsConnector};

async fn handshake(
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
    name: &'static str,
) -> std::io::Result<Vec<u8>> {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    let server_task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        let mut tls = TlsAcceptor::from(server).accept(tcp).await?;
        tls.write_all(b"hello").await?;
        tls.shutdown().await?;
        std::io::Result::Ok(())
    });
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = ServerName::try_from(name).map_err(std::io::Error::other)?;
    let mut tls = TlsConnector::from(client).connect(name, tcp).await?;
    let mut got = Vec::new();
    tls.read_to_end(&mut got).await?;
    let _ = server_task.await;
    Ok(got)
}

#[tokio::test]
async fn leaf_is_trusted_by_its_ca_only() {
    let ca = TestCa::new("test CA");
    let leaf = ca.issue(&["localhost"], &[IpAddr::V4(Ipv4Addr::LOCALHOST)]);
    assert!(leaf.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(leaf.key_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_eq!(ca.root_store().len(), 1);

    for name in ["localhost", "127.0.0.1"] {
        let got = handshake(leaf.server_config(), ca.client_config(), name)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got, b"hello");
    }
    // A name the certificate does not carry is refused.
    assert!(
        handshake(leaf.server_config(), ca.client_config(), "example.com")
            .await
            .is_err()
    );
    // Another CA does not trust the leaf.
    let other = TestCa::new("other CA");
    assert!(
        handshake(leaf.server_config(), other.client_config(), "localhost")
            .await
            .is_err()
    );
}

#[test]
fn write_pem_round_trips() {
    let ca = TestCa::new("test CA");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ca.pem");
    ca.write_pem(&path).expect("write");
    assert_eq!(std::fs::read_to_string(&path).expect("read"), ca.cert_pem());
    assert!(!ca.cert_der().is_empty());
}
