//! A throw-away certificate authority for tests.
//!
//! [`TestCa`] is a self-signed ECDSA P-256 CA made with `rcgen`; [`TestCa::issue`] signs leaf
//! certificates (usable both as server and as client certificates) for the names and addresses
//! given. The rustls configurations built here always name the aws-lc-rs provider explicitly, so
//! they never depend on a process-wide default provider.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The aws-lc-rs crypto provider, as an `Arc` ready for the rustls config builders.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A self-signed certificate authority that lives as long as the test.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
}

impl fmt::Debug for TestCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

impl TestCa {
    /// Creates a new self-signed CA (ECDSA P-256) whose subject common name is `common_name`.
    ///
    /// # Panics
    /// If key generation or signing fails (never expected).
    pub fn new(common_name: &str) -> TestCa {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "sod-testkit");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("generate CA key");
        let cert = params.self_signed(&key).expect("self-sign CA certificate");
        TestCa {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA certificate, PEM encoded.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER encoded.
    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.cert_der.clone()
    }

    /// Issues a leaf certificate signed by this CA, valid for the given DNS names and IP
    /// addresses (as subject alternative names) and for both server and client authentication.
    /// The subject common name is the first DNS name (or the first address).
    ///
    /// # Panics
    /// If a DNS name is not a valid IA5 string, or key generation or signing fails.
    pub fn issue(&self, dns_names: &[&str], ips: &[IpAddr]) -> Leaf {
        let mut params = CertificateParams::default();
        let common_name = dns_names
            .first()
            .map(|name| (*name).to_owned())
            .or_else(|| ips.first().map(IpAddr::to_string))
            .unwrap_or_else(|| "sod-testkit leaf".to_owned());
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        for name in dns_names {
            let name = (*name).to_owned().try_into().expect("DNS name is IA5");
            params.subject_alt_names.push(SanType::DnsName(name));
        }
        for ip in ips {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().expect("generate leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign leaf certificate");
        Leaf {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
            ca_der: self.cert_der.clone(),
        }
    }

    /// A root store holding only this CA.
    ///
    /// # Panics
    /// If rustls rejects the CA certificate (never expected).
    pub fn root_store(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.cert_der())
            .expect("rustls accepts the test CA");
        roots
    }

    /// A rustls client configuration (aws-lc-rs provider, safe default protocol versions) that
    /// trusts only this CA and presents no client certificate.
    ///
    /// # Panics
    /// If rustls rejects the configuration (never expected).
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("aws-lc-rs supports the default protocol versions")
            .with_root_certificates(self.root_store())
            .with_no_client_auth();
        Arc::new(config)
    }

    /// Like [`TestCa::client_config`], but presenting `leaf` as the client certificate (mutual
    /// TLS).
    ///
    /// # Panics
    /// If rustls rejects the configuration (never expected).
    pub fn client_config_with_cert(&self, leaf: &Leaf) -> Arc<rustls::ClientConfig> {
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("aws-lc-rs supports the default protocol versions")
            .with_root_certificates(self.root_store())
            .with_client_auth_cert(leaf.chain(), leaf.key_der())
            .expect("rustls accepts the leaf certificate and key");
        Arc::new(config)
    }

    /// Writes the CA certificate (PEM) to `path`.
    pub fn write_pem(&self, path: &Path) -> io::Result<()> {
        std::fs::write(path, self.cert_pem.as_bytes())
    }
}

/// A leaf certificate and its private key (PKCS#8), issued by a [`TestCa`].
#[derive(Clone)]
pub struct Leaf {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    key_pem: String,
    key_der: Vec<u8>,
    ca_der: CertificateDer<'static>,
}

impl fmt::Debug for Leaf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Leaf").finish_non_exhaustive()
    }
}

impl Leaf {
    /// The certificate, PEM encoded.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The private key, PKCS#8 PEM encoded (`-----BEGIN PRIVATE KEY-----`).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The certificate, DER encoded.
    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.cert_der.clone()
    }

    /// The private key, PKCS#8 DER encoded.
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }

    /// The certificate chain to present: the leaf, then the issuing CA.
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.cert_der.clone(), self.ca_der.clone()]
    }

    /// A rustls server configuration (aws-lc-rs provider, safe default protocol versions, no
    /// client authentication, no ALPN) presenting this certificate.
    ///
    /// # Panics
    /// If rustls rejects the certificate or key (never expected).
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        Arc::new(self.server_config_owned())
    }

    /// The same configuration as [`Leaf::server_config`], not yet shared, so that fields such as
    /// `alpn_protocols` can be adjusted.
    ///
    /// # Panics
    /// If rustls rejects the certificate or key (never expected).
    pub fn server_config_owned(&self) -> rustls::ServerConfig {
        rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("aws-lc-rs supports the default protocol versions")
            .with_no_client_auth()
            .with_single_cert(self.chain(), self.key_der())
            .expect("rustls accepts the leaf certificate and key")
    }
}
