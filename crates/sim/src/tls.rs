//! A certificate authority made at run time, and server certificates it signs, so the
//! simulators (and tests) speak real TLS on loopback without any certificate on disk.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A CA whose certificate is written to a temporary PEM file (for `extra_ca_certs`).
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    dir: tempfile::TempDir,
    pem_path: PathBuf,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").field("pem_path", &self.pem_path).finish()
    }
}

/// A server certificate chain and key, ready for rustls.
#[derive(Debug)]
pub struct ServerIdentity {
    /// Leaf then CA.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's key.
    pub key: PrivateKeyDer<'static>,
    /// The leaf certificate as PEM.
    pub cert_pem: String,
    /// The key as PEM.
    pub key_pem: String,
}

impl TestCa {
    /// A fresh CA named "Switchboard Test CA".
    pub fn new() -> anyhow::Result<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "Switchboard Test CA");
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        let dir = tempfile::tempdir()?;
        let pem_path = dir.path().join("test-ca.pem");
        std::fs::write(&pem_path, issuer.pem()).context("writing the CA PEM")?;
        Ok(TestCa { issuer, dir, pem_path })
    }

    /// The CA certificate's PEM file.
    pub fn pem_path(&self) -> &Path {
        &self.pem_path
    }

    /// The CA certificate.
    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// A certificate for `localhost` and `127.0.0.1` signed by this CA.
    pub fn server_identity(&self) -> anyhow::Result<ServerIdentity> {
        let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
        params.distinguished_name.push(DnType::CommonName, "localhost");
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(ServerIdentity {
            chain: vec![cert.der().clone(), self.cert_der()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Writes a server identity's PEM files into the CA's temp folder; returns (cert, key).
    pub fn write_server_files(&self) -> anyhow::Result<(PathBuf, PathBuf)> {
        let identity = self.server_identity()?;
        let cert = self.dir.path().join("server.pem");
        let key = self.dir.path().join("server.key");
        std::fs::write(&cert, identity.cert_pem + &self.issuer.pem())?;
        std::fs::write(&key, identity.key_pem)?;
        Ok((cert, key))
    }

    /// A rustls server config presenting a fresh certificate from this CA.
    pub fn server_config(&self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let identity = self.server_identity()?;
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(identity.chain, identity.key)?;
        Ok(Arc::new(config))
    }

    /// A rustls client config trusting only this CA.
    pub fn client_config(&self) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert_der())?;
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
