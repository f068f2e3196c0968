//! DNS, the address check, TCP and TLS for one outbound peer.
//!
//! Only addresses the egress policy accepts are dialled, and the address dialled is the one
//! that was checked: there is no second lookup for a rebinding DNS server to answer
//! differently. The caller bounds the whole thing with its own deadline.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::policy::egress::Target;

/// Any byte stream a connection runs over (plain TCP or TLS).
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Transport for T {}

/// Which resolved addresses a target may use: the egress policy's address check.
pub type AddressCheck = Arc<dyn Fn(IpAddr) -> bool + Send + Sync>;

/// An open transport to the peer.
pub struct Connected {
    /// The stream, TLS already negotiated when asked for.
    pub stream: Box<dyn Transport>,
    /// The address connected to.
    pub peer: SocketAddr,
}

impl std::fmt::Debug for Connected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connected").field("peer", &self.peer).finish_non_exhaustive()
    }
}

/// Why the peer could not be reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// Name resolution failed.
    #[error("DNS lookup failed: {0}")]
    Dns(String),
    /// Every address the name resolved to is one the policy refuses.
    #[error("{0}")]
    Denied(String),
    /// Every address refused the TCP connection.
    #[error("connection refused")]
    Refused,
    /// The certificate was refused (unknown issuer, wrong name, expired, ...).
    #[error("TLS handshake failed: {0}")]
    TlsCertificate(String),
    /// The peer sent a TLS alert.
    #[error("TLS handshake failed: {0}")]
    TlsAlert(String),
    /// Any other TLS failure.
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    /// Any other network failure.
    #[error("{0}")]
    Other(String),
}

/// Resolves `target`, connects to the first accepted address that answers, and runs TLS
/// (verifying `target.host`) when `tls` is given. Not bounded in time: callers put their
/// own deadline around it.
pub async fn connect(target: &Target, check: &AddressCheck, tls: Option<Arc<rustls::ClientConfig>>) -> Result<Connected, ConnectError> {
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(|e| ConnectError::Dns(format!("{}: {e}", target.host)))?
        .collect();
    if resolved.is_empty() {
        return Err(ConnectError::Dns(format!("{}: no addresses", target.host)));
    }
    let addresses: Vec<SocketAddr> = resolved.iter().copied().filter(|a| check(a.ip())).collect();
    if addresses.is_empty() {
        let refused: Vec<String> = resolved.iter().map(|a| a.ip().to_string()).collect();
        return Err(ConnectError::Denied(format!(
            "{} resolves only to addresses no rule names ({}): special addresses need an explicit rule",
            target.host,
            refused.join(", ")
        )));
    }
    let (tcp, peer) = connect_any(&addresses).await?;
    tcp.set_nodelay(true).map_err(|e| ConnectError::Other(format!("set_nodelay: {e}")))?;
    let stream: Box<dyn Transport> = match tls {
        None => Box::new(tcp),
        Some(config) => {
            let server_name = rustls::pki_types::ServerName::try_from(target.host.clone())
                .map_err(|e| ConnectError::Tls(format!("invalid server name {:?}: {e}", target.host)))?;
            let stream = tokio_rustls::TlsConnector::from(config).connect(server_name, tcp).await.map_err(|e| tls_error(&e))?;
            Box::new(stream)
        }
    };
    Ok(Connected { stream, peer })
}

/// Tries each address in turn; refused only if every address refused.
async fn connect_any(addresses: &[SocketAddr]) -> Result<(TcpStream, SocketAddr), ConnectError> {
    let mut last: Option<io::Error> = None;
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => return Ok((stream, *address)),
            Err(error) => last = Some(error),
        }
    }
    match last {
        Some(error) if error.kind() == io::ErrorKind::ConnectionRefused => Err(ConnectError::Refused),
        Some(error) => Err(ConnectError::Other(format!("TCP connect failed: {error}"))),
        None => Err(ConnectError::Dns("no addresses".to_owned())),
    }
}

/// The rustls reason behind a TLS I/O error, e.g. "invalid peer certificate: UnknownIssuer",
/// sorted into certificate, alert and other failures.
fn tls_error(error: &io::Error) -> ConnectError {
    match error.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        Some(certificate @ rustls::Error::InvalidCertificate(_)) => ConnectError::TlsCertificate(certificate.to_string()),
        Some(alert @ rustls::Error::AlertReceived(_)) => ConnectError::TlsAlert(alert.to_string()),
        Some(other) => ConnectError::Tls(other.to_string()),
        None => ConnectError::Tls(error.to_string()),
    }
}
