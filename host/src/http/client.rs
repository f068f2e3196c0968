//! The client of a host's operator listener, over `http://` or `https://`: the query API
//! behind `switchboard calls`, the deploy API behind `switchboard deploy`, and the same
//! for tests. It owns the operator paths, so the commands never spell them.
//!
//! ```no_run
//! # async fn example() -> Result<(), switchboard::http::client::ClientError> {
//! use switchboard::http::client::OperatorClient;
//! let client = OperatorClient::new("https://127.0.0.1:9090")?.token("an operator token").trust_pem_file("ca.pem".as_ref())?;
//! let failed = client.calls(&switchboard::http::client::CallQuery { outcome: Some("failed".into()), ..Default::default() }).await?;
//! # Ok(()) }
//! ```

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;

use crate::observe::calls::{CallSummary, StoredMarker};

/// Why a request to the operator listener failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL is not an `http://` or `https://` URL with a host.
    #[error("{0}")]
    Url(String),
    /// A CA file could not be used.
    #[error(transparent)]
    Tls(#[from] crate::net::tls::TlsSetupError),
    /// The TLS settings were refused.
    #[error("TLS configuration: {0}")]
    TlsConfig(#[from] rustls::Error),
    /// The listener could not be reached.
    #[error("connecting to the operator listener at {url}: {source}")]
    Connect {
        /// The base URL.
        url: String,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS handshake failed (an untrusted certificate, say).
    #[error("TLS with the operator listener at {url}: {source}")]
    Handshake {
        /// The base URL.
        url: String,
        /// Why.
        source: std::io::Error,
    },
    /// HTTP failed.
    #[error("talking to the operator listener: {0}")]
    Http(String),
    /// The host answered with an error status.
    #[error("the host answered {status}: {reason}")]
    Status {
        /// The status.
        status: http::StatusCode,
        /// The host's `error`, or its body.
        reason: String,
    },
    /// The answer is not the JSON expected.
    #[error("unexpected answer: {body} ({source})")]
    Answer {
        /// The body.
        body: String,
        /// The parser's complaint.
        source: serde_json::Error,
    },
}

type Result<T> = std::result::Result<T, ClientError>;

/// Filters for [`OperatorClient::calls`] (`GET /api/calls`).
#[derive(Debug, Clone, Default)]
pub struct CallQuery {
    /// Only calls with this outcome.
    pub outcome: Option<String>,
    /// Only calls whose failing leg is this.
    pub leg: Option<String>,
    /// At most this many.
    pub limit: Option<u32>,
}

/// One call with its timeline (`GET /api/calls/{key}`).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct CallDetail {
    /// The summary.
    pub call: CallSummary,
    /// Every marker, oldest first.
    pub timeline: Vec<StoredMarker>,
}

/// A client of one host's operator listener.
#[derive(Clone)]
pub struct OperatorClient {
    base: url::Url,
    token: Option<String>,
    tls: Arc<rustls::ClientConfig>,
    extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
}

impl std::fmt::Debug for OperatorClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorClient")
            .field("base", &self.base.as_str())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl OperatorClient {
    /// A client of the operator listener at `base` (`http://host:port` or `https://…`).
    pub fn new(base: &str) -> Result<Self> {
        let base: url::Url = base.parse().map_err(|_| ClientError::Url(format!("{base:?} is not a URL (e.g. http://127.0.0.1:9090)")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(ClientError::Url(format!("the operator listener speaks http:// or https://; got {}://", base.scheme())));
        }
        if base.host_str().is_none() {
            return Err(ClientError::Url(format!("the operator URL {base} has no host")));
        }
        Ok(OperatorClient { base, token: None, tls: tls_config(&[])?, extra_roots: Vec::new() })
    }

    /// Sends `token` as `Authorization: Bearer` with every request.
    pub fn token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    /// Trusts the CA certificates in a PEM file for `https://` (an operator listener with
    /// a certificate of the operator's own CA), besides the Mozilla roots.
    pub fn trust_pem_file(mut self, path: &Path) -> Result<Self> {
        let certs = crate::net::tls::read_certificates(path)?;
        self.extra_roots.extend(certs);
        self.tls = tls_config(&self.extra_roots)?;
        Ok(self)
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        self.base.as_str()
    }

    /// Recent calls, newest first.
    pub async fn calls(&self, query: &CallQuery) -> Result<Vec<CallSummary>> {
        let mut pairs = url::form_urlencoded::Serializer::new(String::new());
        if let Some(outcome) = &query.outcome {
            pairs.append_pair("outcome", outcome);
        }
        if let Some(leg) = &query.leg {
            pairs.append_pair("leg", leg);
        }
        if let Some(limit) = query.limit {
            pairs.append_pair("limit", &limit.to_string());
        }
        let query = pairs.finish();
        let path = if query.is_empty() { "/api/calls".to_owned() } else { format!("/api/calls?{query}") };
        self.get_json(&path).await
    }

    /// One call by call id, or any of its references (a Twilio call or stream SID);
    /// `None` when no call matches.
    pub async fn call(&self, key: &str) -> Result<Option<CallDetail>> {
        let (status, body) =
            self.send(http::Method::GET, &format!("/api/calls/{}", encode_segment(key)), Vec::new(), "application/json").await?;
        if status == http::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Ok(Some(parse_json(status, &body)?))
    }

    /// Every component version (`GET /admin/components`).
    pub async fn components(&self) -> Result<serde_json::Value> {
        self.get_json("/admin/components").await
    }

    /// Uploads `wasm` as the new version of `component`.
    /// The host checks the bytes it got against their SHA-256, sent in `Content-Digest`.
    pub async fn upload(&self, component: &str, wasm: Vec<u8>) -> Result<serde_json::Value> {
        use base64::Engine;
        use sha2::Digest;
        let digest = format!("sha-256=:{}:", base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&wasm)));
        let path = format!("/admin/components/{}", encode_segment(component));
        let (status, body) = self.send_with(http::Method::PUT, &path, wasm, "application/wasm", &[("content-digest", &digest)]).await?;
        parse_json(status, &body)
    }

    /// Deploys a file that is on the host.
    pub async fn deploy_file(&self, component: &str, path: &str) -> Result<serde_json::Value> {
        let body = serde_json::json!({ "path": path }).to_string().into_bytes();
        let (status, body) = self
            .send(http::Method::POST, &format!("/admin/components/{}/deploy-file", encode_segment(component)), body, "application/json")
            .await?;
        parse_json(status, &body)
    }

    /// Points a component at an OCI reference.
    pub async fn deploy_reference(&self, component: &str, reference: &str) -> Result<serde_json::Value> {
        let body = serde_json::json!({ "reference": reference }).to_string().into_bytes();
        let (status, body) = self
            .send(http::Method::POST, &format!("/admin/components/{}/deploy-ref", encode_segment(component)), body, "application/json")
            .await?;
        parse_json(status, &body)
    }

    /// Makes version `to` (default: the one before the current) current again.
    pub async fn rollback(&self, component: &str, to: Option<u32>) -> Result<serde_json::Value> {
        let body = to.map(|n| serde_json::json!({ "to": n }).to_string().into_bytes()).unwrap_or_default();
        let (status, body) = self
            .send(http::Method::POST, &format!("/admin/components/{}/rollback", encode_segment(component)), body, "application/json")
            .await?;
        parse_json(status, &body)
    }

    /// `GET path`, the body as text on a 2xx answer.
    pub async fn get_text(&self, path: &str) -> Result<String> {
        let (status, body) = self.send(http::Method::GET, path, Vec::new(), "application/json").await?;
        check(status, &body)?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// `GET path`, the body parsed as JSON on a 2xx answer.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let (status, body) = self.send(http::Method::GET, path, Vec::new(), "application/json").await?;
        parse_json(status, &body)
    }

    /// Sends one request; the status and body, whatever the status.
    pub async fn send(&self, method: http::Method, path: &str, body: Vec<u8>, content_type: &str) -> Result<(http::StatusCode, Bytes)> {
        self.send_with(method, path, body, content_type, &[]).await
    }

    /// [`OperatorClient::send`] with extra request headers.
    pub async fn send_with(
        &self,
        method: http::Method,
        path: &str,
        body: Vec<u8>,
        content_type: &str,
        headers: &[(&str, &str)],
    ) -> Result<(http::StatusCode, Bytes)> {
        let host = self.base.host_str().ok_or_else(|| ClientError::Url(format!("the operator URL {} has no host", self.base)))?.to_owned();
        let port = self.base.port_or_known_default().unwrap_or(80);
        let tcp = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
            .await
            .map_err(|source| ClientError::Connect { url: self.base.to_string(), source })?;
        let _ = tcp.set_nodelay(true);
        let mut request = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, format!("{host}:{port}"))
            .header(http::header::CONTENT_TYPE, content_type);
        if let Some(token) = &self.token {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(Bytes::from(body))).map_err(|e| ClientError::Http(e.to_string()))?;
        let response = if self.base.scheme() == "https" {
            let name = rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
                .map_err(|e| ClientError::Url(format!("{host} is not a TLS server name: {e}")))?;
            let stream = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|source| ClientError::Handshake { url: self.base.to_string(), source })?;
            exchange(TokioIo::new(stream), request).await?
        } else {
            exchange(TokioIo::new(tcp), request).await?
        };
        Ok(response)
    }
}

async fn exchange<I>(io: I, request: http::Request<Full<Bytes>>) -> Result<(http::StatusCode, Bytes)>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let http = |e: hyper::Error| ClientError::Http(e.to_string());
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await.map_err(http)?;
    tokio::spawn(connection);
    let response = sender.send_request(request).await.map_err(http)?;
    let status = response.status();
    let body = response.into_body().collect().await.map_err(http)?.to_bytes();
    Ok((status, body))
}

fn check(status: http::StatusCode, body: &[u8]) -> Result<()> {
    if status.is_success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(body);
    let reason = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| text.trim().to_owned());
    Err(ClientError::Status { status, reason })
}

fn parse_json<T: DeserializeOwned>(status: http::StatusCode, body: &[u8]) -> Result<T> {
    check(status, body)?;
    serde_json::from_slice(body).map_err(|source| ClientError::Answer { body: String::from_utf8_lossy(body).into_owned(), source })
}

/// A path segment with everything but unreserved characters percent-encoded.
fn encode_segment(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn tls_config(extra: &[rustls::pki_types::CertificateDer<'static>]) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    for cert in extra {
        roots.add(cert.clone())?;
    }
    let config = rustls::ClientConfig::builder_with_provider(crate::net::tls::crypto_provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
