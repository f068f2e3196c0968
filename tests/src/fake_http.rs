//! A scriptable HTTP/1.1 server on loopback, plain or TLS, that records every request: the
//! other end of a component's `wasi:http` requests (an LLM API, Twilio's REST API, a CRM).
//!
//! ```no_run
//! # async fn example(ca: &switchboard_harness::TestCa) -> anyhow::Result<()> {
//! use std::time::Duration;
//! use switchboard_harness::{FakeHttpServer, Reply};
//! let server = FakeHttpServer::new()
//!     .route("/v1/chat/completions", Reply::sse(["Hel", "lo"], Duration::from_millis(50)))
//!     .route("/old", Reply::redirect("https://elsewhere.example/new"))
//!     .expect_header("authorization", "Bearer k")
//!     .tls(ca)
//!     .start()
//!     .await?;
//! // ... point a component at server.url("/v1/chat/completions") ...
//! let request = server.wait_for_requests(1).await?.remove(0);
//! assert_eq!(request.header("authorization"), Some("Bearer k"));
//! # Ok(()) }
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use switchboard_sim::tls::TestCa;

/// What the server answers on a path.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A whole response.
    Full {
        /// Status code.
        status: u16,
        /// Headers.
        headers: Vec<(String, String)>,
        /// Body.
        body: String,
    },
    /// `text/event-stream`: one `data:` event per entry, `every` apart (the first one too).
    Sse {
        /// Each event's data.
        events: Vec<String>,
        /// The pause before each event.
        every: Duration,
    },
    /// Reads the request, then never answers.
    StallHead,
    /// Sends the head and these body bytes, then nothing more (the connection stays open).
    StallBody(Vec<u8>),
    /// A body of `bytes` bytes, in 64 KiB chunks.
    Huge(u64),
    /// `200` with `received=<request body bytes>` as the body.
    CountBody,
}

impl Reply {
    /// `200` with a text body.
    pub fn text(body: &str) -> Self {
        Reply::Full { status: 200, headers: Vec::new(), body: body.to_owned() }
    }

    /// This status with a text body.
    pub fn status(status: u16, body: &str) -> Self {
        Reply::Full { status, headers: Vec::new(), body: body.to_owned() }
    }

    /// `302 Found` to `location`.
    pub fn redirect(location: &str) -> Self {
        Reply::Full { status: 302, headers: vec![("location".to_owned(), location.to_owned())], body: String::new() }
    }

    /// Server-sent events, `every` apart.
    pub fn sse<S: AsRef<str>>(events: impl IntoIterator<Item = S>, every: Duration) -> Self {
        Reply::Sse { events: events.into_iter().map(|e| e.as_ref().to_owned()).collect(), every }
    }
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// Method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Query string, if any.
    pub query: Option<String>,
    /// Headers, lower-case names.
    pub headers: Vec<(String, String)>,
    /// Request body bytes received.
    pub body_bytes: u64,
}

impl RecordedRequest {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// A server to be started.
#[derive(Debug, Clone, Default)]
pub struct FakeHttpServer {
    routes: Vec<(String, Reply)>,
    tls: Option<Arc<rustls::ServerConfig>>,
    expected_header: Option<(String, String)>,
    blackhole: bool,
}

#[derive(Debug, Default)]
struct Recorded {
    requests: Mutex<Vec<RecordedRequest>>,
    /// When each server-sent event was written.
    events_sent: Mutex<Vec<Instant>>,
    connections: Mutex<usize>,
    changed: Notify,
}

/// A started server. Dropping it stops it and closes its connections.
#[derive(Debug)]
pub struct RunningHttpServer {
    addr: SocketAddr,
    scheme: &'static str,
    recorded: Arc<Recorded>,
    task: tokio::task::JoinHandle<()>,
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Drop for RunningHttpServer {
    fn drop(&mut self) {
        self.task.abort();
        for connection in self.connections.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            connection.abort();
        }
    }
}

type ReplyBody = BoxBody<Bytes, Infallible>;

impl FakeHttpServer {
    /// A server answering `404` everywhere until routes are added.
    pub fn new() -> Self {
        Self::default()
    }

    /// A server that accepts TCP and then never says anything (not even TLS).
    pub fn blackhole() -> Self {
        FakeHttpServer { blackhole: true, ..Self::default() }
    }

    /// Answers requests for `path` (exact) with `reply`.
    pub fn route(mut self, path: &str, reply: Reply) -> Self {
        self.routes.push((path.to_owned(), reply));
        self
    }

    /// Answers `401` to any request without header `name: value`.
    pub fn expect_header(mut self, name: &str, value: &str) -> Self {
        self.expected_header = Some((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    /// Serves `https://` with a certificate from `ca` (for `localhost` and `127.0.0.1`).
    pub fn tls(mut self, ca: &TestCa) -> Self {
        self.tls = Some(ca.server_config().expect("test CA issues a server certificate"));
        self
    }

    /// Binds `127.0.0.1:0` and starts serving.
    pub async fn start(self) -> anyhow::Result<RunningHttpServer> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let recorded = Arc::new(Recorded::default());
        let connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (state, live) = (recorded.clone(), connections.clone());
        let task = tokio::spawn(async move {
            let server = Arc::new(self);
            while let Ok((tcp, _)) = listener.accept().await {
                let _ = tcp.set_nodelay(true);
                let (server, recorded) = (server.clone(), state.clone());
                let handle = tokio::spawn(async move { server.serve_tcp(tcp, recorded).await });
                live.lock().unwrap_or_else(|p| p.into_inner()).push(handle.abort_handle());
            }
        });
        Ok(RunningHttpServer { addr, scheme, recorded, task, connections })
    }

    async fn serve_tcp(self: Arc<Self>, tcp: TcpStream, recorded: Arc<Recorded>) {
        *recorded.connections.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        recorded.changed.notify_waiters();
        if self.blackhole {
            let _hold = tcp;
            std::future::pending::<()>().await;
            return;
        }
        match self.tls.clone() {
            None => self.serve_io(tcp, recorded).await,
            Some(config) => {
                if let Ok(stream) = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await {
                    self.serve_io(stream, recorded).await;
                }
            }
        }
    }

    async fn serve_io<S>(self: Arc<Self>, stream: S, recorded: Arc<Recorded>)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let (server, recorded) = (self.clone(), recorded.clone());
            async move { Ok::<_, Infallible>(server.answer(request, recorded).await) }
        });
        let _ = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), service).await;
    }

    async fn answer(&self, request: hyper::Request<hyper::body::Incoming>, recorded: Arc<Recorded>) -> hyper::Response<ReplyBody> {
        let (parts, body) = request.into_parts();
        let body_bytes = body.collect().await.map(|b| b.to_bytes().len() as u64).unwrap_or(0);
        let seen = RecordedRequest {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            headers: parts
                .headers
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                .collect(),
            body_bytes,
        };
        recorded.requests.lock().unwrap_or_else(|p| p.into_inner()).push(seen.clone());
        recorded.changed.notify_waiters();
        if let Some((name, value)) = &self.expected_header
            && seen.header(name) != Some(value.as_str())
        {
            return full(401, &[], "missing or wrong credentials");
        }
        let Some((_, reply)) = self.routes.iter().find(|(path, _)| *path == seen.path) else {
            return full(404, &[], "no such route");
        };
        match reply.clone() {
            Reply::Full { status, headers, body } => full(status, &headers, &body),
            Reply::CountBody => full(200, &[], &format!("received={body_bytes}")),
            Reply::Sse { events, every } => {
                let stream = futures_util::stream::unfold(events.into_iter(), move |mut events| {
                    let recorded = recorded.clone();
                    async move {
                        let event = events.next()?;
                        tokio::time::sleep(every).await;
                        recorded.events_sent.lock().unwrap_or_else(|p| p.into_inner()).push(Instant::now());
                        Some((Ok(Frame::data(Bytes::from(format!("data: {event}\n\n")))), events))
                    }
                });
                respond(200, &[("content-type", "text/event-stream")], StreamBody::new(stream).boxed())
            }
            Reply::StallHead => std::future::pending().await,
            Reply::StallBody(first) => {
                let stream = futures_util::stream::unfold(Some(first), |first| async move {
                    match first {
                        Some(bytes) => Some((Ok(Frame::data(Bytes::from(bytes))), None)),
                        None => std::future::pending().await,
                    }
                });
                respond(200, &[], StreamBody::new(stream).boxed())
            }
            Reply::Huge(total) => {
                const CHUNK: u64 = 64 * 1024;
                let stream = futures_util::stream::unfold(0u64, move |sent| async move {
                    (sent < total).then(|| {
                        let size = CHUNK.min(total - sent);
                        (Ok(Frame::data(Bytes::from(vec![b'z'; size as usize]))), sent + size)
                    })
                });
                respond(200, &[], StreamBody::new(stream).boxed())
            }
        }
    }
}

fn respond(status: u16, headers: &[(&str, &str)], body: ReplyBody) -> hyper::Response<ReplyBody> {
    let mut builder = hyper::Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(body).unwrap_or_else(|_| hyper::Response::new(http_body_util::Empty::new().boxed()))
}

fn full(status: u16, headers: &[(String, String)], body: &str) -> hyper::Response<ReplyBody> {
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    respond(status, &headers, http_body_util::Full::new(Bytes::from(body.to_owned())).boxed())
}

impl RunningHttpServer {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://localhost:<port><path>` (or `http://`).
    pub fn url(&self, path: &str) -> String {
        format!("{}://localhost:{}{path}", self.scheme, self.addr.port())
    }

    /// The same server under its IP address: another host name for policy and secrets.
    pub fn ip_url(&self, path: &str) -> String {
        format!("{}://127.0.0.1:{}{path}", self.scheme, self.addr.port())
    }

    /// The allowlist rule for [`Self::url`]: `https://localhost:<port>`.
    pub fn origin(&self) -> String {
        format!("{}://localhost:{}", self.scheme, self.addr.port())
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.recorded.requests.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// When each server-sent event was written, so far.
    pub fn events_sent(&self) -> Vec<Instant> {
        self.recorded.events_sent.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        *self.recorded.connections.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits (up to [`crate::PATIENCE`]) until `count` requests have come; returns them all.
    pub async fn wait_for_requests(&self, count: usize) -> anyhow::Result<Vec<RecordedRequest>> {
        let deadline = tokio::time::Instant::now() + crate::PATIENCE;
        loop {
            let changed = self.recorded.changed.notified();
            let requests = self.requests();
            if requests.len() >= count {
                return Ok(requests);
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                anyhow::bail!("expected {count} requests, got {}: {requests:?}", requests.len());
            }
        }
    }
}
