//! One exchange: a connection (kept alive from an earlier exchange of the call, or new
//! under the connect deadline), the request, the response head under the first-byte
//! deadline. The body then streams as the guest reads it ([`ResponseBody`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::Body;
use http_body_util::BodyExt;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use super::body::{RequestBody, ResponseBody};
use super::error::FetchError;
use super::pool::{KeepAlive, OutBody, Pool};
use crate::net::{AddressCheck, connect};
use crate::policy::egress::Target;

/// Deadlines and caps of one exchange (already the lower of the guest's and the host's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchLimits {
    /// DNS, TCP and TLS of a new connection.
    pub connect_timeout: Duration,
    /// From sending the request to the response head.
    pub first_byte_timeout: Duration,
    /// Longest silence inside the response body.
    pub between_bytes_timeout: Duration,
    /// Largest request body, bytes.
    pub max_request_body: u64,
    /// Largest response body, bytes.
    pub max_response_body: u64,
}

/// Where an exchange goes, checked by policy, and how it is bounded.
pub struct Plan {
    /// The checked target.
    pub target: Target,
    /// The policy's check of each resolved address.
    pub address_check: AddressCheck,
    /// TLS trust for `https`.
    pub tls: Arc<rustls::ClientConfig>,
    /// Deadlines and caps.
    pub limits: FetchLimits,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan").field("target", &self.target).field("limits", &self.limits).finish_non_exhaustive()
    }
}

/// A response head, its body to stream, and how it was reached.
#[derive(Debug)]
pub struct Exchange {
    /// The response; its body streams as it is read.
    pub response: http::Response<ResponseBody>,
    /// The address of the server.
    pub peer: SocketAddr,
    /// Whether a kept-alive connection carried it.
    pub reused: bool,
    /// From the start to the response head.
    pub first_byte: Duration,
    /// Request body bytes sent (grows while a streamed request body is still being sent).
    pub sent: Arc<AtomicU64>,
}

/// How long a kept-alive connection may take to be ready for the next request before a
/// new one is opened instead.
const REUSE_READY: Duration = Duration::from_millis(50);

/// Sends `request` (absolute URI) as `plan` says, over `pool`'s connection to the target
/// when one is idle.
pub async fn send<B>(request: http::Request<B>, plan: Plan, pool: Arc<Pool>) -> Result<Exchange, FetchError>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::fmt::Display,
{
    let started = Instant::now();
    let limits = plan.limits;
    if content_length(request.headers()).is_some_and(|length| length > limits.max_request_body) {
        return Err(FetchError::RequestBodyTooLarge(limits.max_request_body));
    }
    let sent = Arc::new(AtomicU64::new(0));
    let (mut parts, body) = request.into_parts();
    parts.uri = origin_form(&parts.uri)?;
    let body: OutBody = RequestBody::new(body, limits.max_request_body, sent.clone()).boxed_unsync();
    let mut request = Some(http::Request::from_parts(parts, body));

    let mut exchange = None;
    if let Some((mut sender, peer)) = pool.take(&plan.target) {
        if tokio::time::timeout(REUSE_READY, sender.ready()).await.is_ok_and(|ready| ready.is_ok())
            && let Some(unsent) = request.take()
        {
            match head(&mut sender, unsent, limits.first_byte_timeout).await {
                Ok(response) => exchange = Some((response, sender, peer)),
                // Never written: the server had closed the kept connection. A new one
                // carries the request instead.
                Err(Retry::Unsent(returned)) => request = Some(*returned),
                Err(Retry::Failed(error)) => return Err(error),
            }
        }
        if exchange.is_none() {
            tracing::debug!(target = %plan.target, "kept-alive connection was closed; opening a new one");
        }
    }
    let reused = exchange.is_some();
    let (response, sender, peer) = match (exchange, request) {
        (Some(exchange), _) => exchange,
        (None, Some(request)) => {
            let (mut sender, peer) = open(&plan).await?;
            match head(&mut sender, request, limits.first_byte_timeout).await {
                Ok(response) => (response, sender, peer),
                Err(Retry::Unsent(_)) => return Err(FetchError::Incomplete),
                Err(Retry::Failed(error)) => return Err(error),
            }
        }
        (None, None) => return Err(FetchError::Other("the request was lost on a kept-alive connection".to_owned())),
    };
    let first_byte = started.elapsed();
    let keep_alive = KeepAlive { pool, target: plan.target, sender, peer };
    let response = response.map(|incoming| ResponseBody::new(incoming, limits.between_bytes_timeout, limits.max_response_body, keep_alive));
    Ok(Exchange { response, peer, reused, first_byte, sent })
}

/// A new connection to the plan's target: DNS, the address check, TCP, TLS and the
/// HTTP/1.1 handshake, under the connect deadline.
async fn open(plan: &Plan) -> Result<(SendRequest<OutBody>, SocketAddr), FetchError> {
    let tls = plan.target.scheme.is_tls().then(|| plan.tls.clone());
    let opening = async {
        let connected = connect(&plan.target, &plan.address_check, tls).await?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(connected.stream)).await.map_err(|e| FetchError::from_hyper(&e))?;
        // The connection's I/O runs on its own task until its last sender is dropped.
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "outbound HTTP connection ended with an error");
            }
        });
        Ok::<_, FetchError>((sender, connected.peer))
    };
    tokio::time::timeout(plan.limits.connect_timeout, opening).await.map_err(|_| FetchError::ConnectTimeout(plan.limits.connect_timeout))?
}

enum Retry {
    /// The request was never written; here it is back.
    Unsent(Box<http::Request<OutBody>>),
    Failed(FetchError),
}

/// Sends the request and waits for the response head.
async fn head(
    sender: &mut SendRequest<OutBody>,
    request: http::Request<OutBody>,
    first_byte: Duration,
) -> Result<http::Response<hyper::body::Incoming>, Retry> {
    match tokio::time::timeout(first_byte, sender.try_send_request(request)).await {
        Err(_) => Err(Retry::Failed(FetchError::FirstByteTimeout(first_byte))),
        Ok(Ok(response)) => Ok(response),
        Ok(Err(mut error)) => match error.take_message() {
            Some(request) => Err(Retry::Unsent(Box::new(request))),
            None => Err(Retry::Failed(request_error(error.error()))),
        },
    }
}

/// The error of a failed exchange: the body's own when the guest's body failed.
fn request_error(error: &hyper::Error) -> FetchError {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(fetch) = cause.downcast_ref::<FetchError>() {
            return fetch.clone();
        }
        source = cause.source();
    }
    FetchError::from_hyper(error)
}

fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers.get(http::header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// The request line's form: path and query only (the `Host` header names the server).
fn origin_form(uri: &http::Uri) -> Result<http::Uri, FetchError> {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    http::Uri::builder().path_and_query(path).build().map_err(|e| FetchError::Other(format!("request URI: {e}")))
}
