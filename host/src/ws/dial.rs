//! Opening an outbound WebSocket: DNS, TCP, TLS and the upgrade, under one deadline, with
//! a typed error for each way it can fail.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderName, HeaderValue};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::net::{AddressCheck, ConnectError, Connected, Transport, connect};
use crate::policy::egress::Target;

/// A dialed socket.
pub type DialedSocket = WebSocketStream<Box<dyn Transport>>;

/// Everything needed to open one connection.
pub struct DialRequest {
    /// The full URL (path and query included).
    pub url: url::Url,
    /// Its scheme, host and port, already checked against policy.
    pub target: Target,
    /// Handshake headers: the guest's, then the host's secrets over them.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Subprotocols to offer.
    pub subprotocols: Vec<String>,
    /// Deadline for the whole handshake.
    pub timeout: Duration,
    /// TLS settings for `wss`.
    pub tls: Arc<rustls::ClientConfig>,
    /// Which resolved addresses the target may use (the egress policy's address check).
    pub address_check: AddressCheck,
    /// Socket settings.
    pub websocket: WebSocketConfig,
}

impl std::fmt::Debug for DialRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DialRequest").field("target", &self.target).field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

/// A successful handshake.
pub struct Dialed {
    /// The open socket.
    pub socket: DialedSocket,
    /// The subprotocol the server selected.
    pub protocol: Option<String>,
    /// The address connected to.
    pub peer: SocketAddr,
    /// How long the whole handshake took.
    pub handshake: Duration,
}

/// Why a connection could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialError {
    /// Name resolution failed.
    #[error("DNS lookup failed: {0}")]
    Dns(String),
    /// Every address the name resolved to is one the policy refuses.
    #[error("{0}")]
    Denied(String),
    /// Every address refused the TCP connection.
    #[error("connection refused")]
    Refused,
    /// The deadline passed.
    #[error("no complete handshake within {0:?}")]
    Timeout(Duration),
    /// TLS failed.
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    /// The server answered the upgrade with another status.
    #[error("upgrade rejected with HTTP {status}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// Response headers.
        headers: Vec<(String, String)>,
        /// Start of the body.
        body_excerpt: String,
    },
    /// Any other network or protocol failure.
    #[error("{0}")]
    Other(String),
}

impl From<ConnectError> for DialError {
    fn from(error: ConnectError) -> Self {
        match error {
            ConnectError::Dns(detail) => DialError::Dns(detail),
            ConnectError::Denied(detail) => DialError::Denied(detail),
            ConnectError::Refused => DialError::Refused,
            ConnectError::TlsCertificate(reason) | ConnectError::TlsAlert(reason) | ConnectError::Tls(reason) => DialError::Tls(reason),
            ConnectError::Other(detail) => DialError::Other(detail),
        }
    }
}

impl DialError {
    /// A short cause label for markers and metrics.
    pub fn cause(&self) -> &'static str {
        match self {
            DialError::Dns(_) => "dns-error",
            DialError::Denied(_) => "special-address",
            DialError::Refused => "connection-refused",
            DialError::Timeout(_) => "connect-timeout",
            DialError::Tls(_) => "tls-error",
            DialError::Rejected { .. } => "handshake-rejected",
            DialError::Other(_) => "internal-error",
        }
    }
}

/// Bytes of a rejection's body kept for the guest.
pub const BODY_EXCERPT_BYTES: usize = 512;

/// Opens the connection, or says why not, within `request.timeout`.
pub async fn dial(request: DialRequest) -> Result<Dialed, DialError> {
    let started = Instant::now();
    let deadline = request.timeout;
    match tokio::time::timeout(deadline, dial_inner(request)).await {
        Ok(Ok((socket, protocol, peer))) => Ok(Dialed { socket, protocol, peer, handshake: started.elapsed() }),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(DialError::Timeout(deadline)),
    }
}

async fn dial_inner(request: DialRequest) -> Result<(DialedSocket, Option<String>, SocketAddr), DialError> {
    let DialRequest { url, target, headers, subprotocols, tls, websocket, address_check, .. } = request;
    let tls = target.scheme.is_tls().then_some(tls);
    let Connected { stream: transport, peer } = connect(&target, &address_check, tls).await.map_err(DialError::from)?;

    let mut http_request =
        url.as_str().into_client_request().map_err(|e| DialError::Other(format!("cannot build the upgrade request: {e}")))?;
    let request_headers = http_request.headers_mut();
    for (name, value) in headers {
        request_headers.insert(name, value);
    }
    if !subprotocols.is_empty() {
        let offer = HeaderValue::from_str(&subprotocols.join(", "))
            .map_err(|_| DialError::Other("a subprotocol is not a valid header value".to_owned()))?;
        request_headers.insert(http::header::SEC_WEBSOCKET_PROTOCOL, offer);
    }

    match tokio_tungstenite::client_async_with_config(http_request, transport, Some(websocket)).await {
        Ok((socket, response)) => {
            let protocol = response.headers().get(http::header::SEC_WEBSOCKET_PROTOCOL).and_then(|v| v.to_str().ok()).map(str::to_owned);
            Ok((socket, protocol, peer))
        }
        Err(WsError::Http(response)) => {
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
                .collect();
            let body = response.body().as_deref().unwrap_or_default();
            let excerpt = &body[..body.len().min(BODY_EXCERPT_BYTES)];
            Err(DialError::Rejected { status, headers, body_excerpt: String::from_utf8_lossy(excerpt).into_owned() })
        }
        Err(WsError::Io(e)) => Err(DialError::Other(format!("connection failed during the upgrade: {e}"))),
        Err(other) => Err(DialError::Other(format!("upgrade failed: {other}"))),
    }
}
