//! A scriptable WebSocket server on loopback, plain or TLS, that records what it gets.
//!
//! ```no_run
//! # async fn example(ca: &switchboard_harness::TestCa) -> anyhow::Result<()> {
//! use switchboard_harness::FakeServer;
//! let server = FakeServer::echo().tls(ca).expect_token("k").start().await?;
//! // ... point a component at server.url("/v1/listen") ...
//! let handshake = server.wait_for_handshake().await?;
//! assert_eq!(handshake.header("authorization"), Some("Token k"));
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};

use switchboard_sim::tls::TestCa;

/// What the server does once a client connects.
#[derive(Debug, Clone)]
enum Behavior {
    /// Echo every data message.
    Echo,
    /// Send the handshake's request headers as the first (text) message, then echo.
    Reflect,
    /// Complete the handshake, then neither read nor write.
    Silent,
    /// Complete the handshake, then send `count` binary messages of `size` bytes every
    /// `every`, never reading.
    SendWithoutReading { every: Duration, count: usize, size: usize },
    /// Answer every data message with this text.
    Answer(String),
    /// Accept TCP, then never answer the handshake.
    Blackhole,
    /// Answer the upgrade with this status, headers and body.
    Reject { status: u16, headers: Vec<(String, String)>, body: String },
}

/// One upgrade request as the server saw it.
#[derive(Debug, Clone)]
pub struct Handshake {
    /// Request path.
    pub path: String,
    /// Query string, if any.
    pub query: Option<String>,
    /// Headers, lower-case names.
    pub headers: Vec<(String, String)>,
}

impl Handshake {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// A server to be started.
#[derive(Debug, Clone)]
pub struct FakeServer {
    behavior: Behavior,
    tls: Option<Arc<rustls::ServerConfig>>,
    expected_token: Option<String>,
    protocol: Option<String>,
}

#[derive(Debug, Default)]
struct Recorded {
    handshakes: Mutex<Vec<Handshake>>,
    messages: Mutex<Vec<Message>>,
    /// Close codes received from clients (1005 for a close frame without a code).
    closes: Mutex<Vec<u16>>,
    connections: Mutex<usize>,
    changed: Notify,
}

/// A started server. Dropping it stops accepting.
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    scheme: &'static str,
    recorded: Arc<Recorded>,
    task: tokio::task::JoinHandle<()>,
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.task.abort();
        self.vanish();
    }
}

impl FakeServer {
    fn with(behavior: Behavior) -> Self {
        FakeServer { behavior, tls: None, expected_token: None, protocol: None }
    }

    /// Echoes every data message back.
    pub fn echo() -> Self {
        Self::with(Behavior::Echo)
    }

    /// Sends the upgrade request's headers back as a JSON text message, then echoes: a
    /// server that would show a guest anything the host added to its request.
    pub fn reflect() -> Self {
        Self::with(Behavior::Reflect)
    }

    /// Completes the handshake, then neither reads nor writes.
    pub fn silent() -> Self {
        Self::with(Behavior::Silent)
    }

    /// Answers every data message with `text` (an API that always says the same thing).
    pub fn answer(text: &str) -> Self {
        Self::with(Behavior::Answer(text.to_owned()))
    }

    /// Accepts TCP and never answers the handshake.
    pub fn blackhole() -> Self {
        Self::with(Behavior::Blackhole)
    }

    /// Sends `count` binary messages of `size` bytes every `every` and never reads.
    pub fn send_without_reading(every: Duration, count: usize, size: usize) -> Self {
        Self::with(Behavior::SendWithoutReading { every, count, size })
    }

    /// Refuses every upgrade with `status`, `headers` and `body`.
    pub fn reject(status: u16, headers: &[(&str, &str)], body: &str) -> Self {
        Self::with(Behavior::Reject {
            status,
            headers: headers.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(),
            body: body.to_owned(),
        })
    }

    /// Serves `wss://` with a certificate from `ca`.
    pub fn tls(mut self, ca: &TestCa) -> Self {
        self.tls = Some(ca.server_config().expect("test CA issues a server certificate"));
        self
    }

    /// Requires `Authorization: Token <token>` (or the subprotocol form `token, <token>`),
    /// answering 401 with a `dg-error` header otherwise, as Deepgram does.
    pub fn expect_token(mut self, token: &str) -> Self {
        self.expected_token = Some(token.to_owned());
        self
    }

    /// Selects `protocol` when the client offers it.
    pub fn select_protocol(mut self, protocol: &str) -> Self {
        self.protocol = Some(protocol.to_owned());
        self
    }

    /// Binds `127.0.0.1:0` and starts serving.
    pub async fn start(self) -> anyhow::Result<RunningServer> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let recorded = Arc::new(Recorded::default());
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        let state = recorded.clone();
        let connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let live = connections.clone();
        let task = tokio::spawn(async move {
            let server = Arc::new(self);
            while let Ok((tcp, _)) = listener.accept().await {
                let _ = tcp.set_nodelay(true);
                let server = server.clone();
                let recorded = state.clone();
                let handle = tokio::spawn(async move { server.serve_tcp(tcp, recorded).await });
                live.lock().unwrap_or_else(|p| p.into_inner()).push(handle.abort_handle());
            }
        });
        Ok(RunningServer { addr, scheme, recorded, task, connections })
    }

    async fn serve_tcp(&self, tcp: TcpStream, recorded: Arc<Recorded>) {
        *recorded.connections.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        recorded.changed.notify_waiters();
        if matches!(self.behavior, Behavior::Blackhole) {
            let _hold = tcp;
            std::future::pending::<()>().await;
            return;
        }
        match &self.tls {
            None => self.serve_stream(tcp, recorded).await,
            Some(config) => {
                if let Ok(stream) = tokio_rustls::TlsAcceptor::from(config.clone()).accept(tcp).await {
                    self.serve_stream(stream, recorded).await;
                }
            }
        }
    }

    #[allow(clippy::result_large_err, reason = "tungstenite's handshake callback fixes the error type to a full HTTP response")]
    async fn serve_stream<S: AsyncRead + AsyncWrite + Unpin>(&self, stream: S, recorded: Arc<Recorded>) {
        let callback = |request: &Request, mut response: Response| -> Result<Response, ErrorResponse> {
            let handshake = Handshake {
                path: request.uri().path().to_owned(),
                query: request.uri().query().map(str::to_owned),
                headers: request
                    .headers()
                    .iter()
                    .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                    .collect(),
            };
            recorded.handshakes.lock().unwrap_or_else(|p| p.into_inner()).push(handshake.clone());
            recorded.changed.notify_waiters();
            if let Behavior::Reject { status, headers, body } = &self.behavior {
                return Err(error_response(*status, headers, body));
            }
            let offered: Vec<String> =
                handshake.header("sec-websocket-protocol").map(|v| v.split(',').map(|p| p.trim().to_owned()).collect()).unwrap_or_default();
            if let Some(token) = &self.expected_token {
                let by_header = handshake.header("authorization") == Some(format!("Token {token}").as_str());
                let by_protocol = offered.len() == 2 && offered[0] == "token" && offered[1] == *token;
                if !by_header && !by_protocol {
                    return Err(error_response(
                        401,
                        &[
                            ("dg-error".to_owned(), "Invalid credentials.".to_owned()),
                            ("dg-request-id".to_owned(), "test-request".to_owned()),
                        ],
                        r#"{"err_code":"INVALID_AUTH","err_msg":"Invalid credentials."}"#,
                    ));
                }
                if by_protocol {
                    response.headers_mut().insert("sec-websocket-protocol", http::HeaderValue::from_static("token"));
                }
            }
            if let Some(protocol) = &self.protocol
                && offered.iter().any(|p| p == protocol)
                && let Ok(value) = http::HeaderValue::from_str(protocol)
            {
                response.headers_mut().insert("sec-websocket-protocol", value);
            }
            Ok(response)
        };
        let Ok(socket) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
            return;
        };
        let (mut sink, mut stream) = socket.split();
        if matches!(self.behavior, Behavior::Reflect) {
            let headers =
                recorded.handshakes.lock().unwrap_or_else(|p| p.into_inner()).last().map(|h| h.headers.clone()).unwrap_or_default();
            let text = serde_json::to_string(&headers).unwrap_or_default();
            if sink.send(Message::text(text)).await.is_err() {
                return;
            }
        }
        match self.behavior.clone() {
            Behavior::Answer(text) => {
                while let Some(Ok(message)) = stream.next().await {
                    if message.is_text() || message.is_binary() {
                        recorded.messages.lock().unwrap_or_else(|p| p.into_inner()).push(message);
                        recorded.changed.notify_waiters();
                        if sink.send(Message::text(text.clone())).await.is_err() {
                            break;
                        }
                    }
                }
            }
            Behavior::Echo | Behavior::Reflect => {
                while let Some(Ok(message)) = stream.next().await {
                    if let Message::Close(frame) = &message {
                        let code = frame.as_ref().map_or(1005, |f| u16::from(f.code));
                        recorded.closes.lock().unwrap_or_else(|p| p.into_inner()).push(code);
                        recorded.changed.notify_waiters();
                    }
                    if message.is_text() || message.is_binary() {
                        recorded.messages.lock().unwrap_or_else(|p| p.into_inner()).push(message.clone());
                        recorded.changed.notify_waiters();
                        if sink.send(message).await.is_err() {
                            break;
                        }
                    }
                    // A close frame is answered by tungstenite on the next read; keep
                    // reading until the stream ends so the answer goes out.
                }
            }
            Behavior::Silent => {
                let _hold = (sink, stream);
                std::future::pending::<()>().await;
            }
            Behavior::SendWithoutReading { every, count, size } => {
                for index in 0..count {
                    let mut payload = vec![0u8; size.max(4)];
                    payload[..4].copy_from_slice(&(index as u32).to_be_bytes());
                    if sink.send(Message::binary(payload)).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(every).await;
                }
                let _hold = stream;
                std::future::pending::<()>().await;
            }
            Behavior::Blackhole | Behavior::Reject { .. } => {}
        }
    }
}

fn error_response(status: u16, headers: &[(String, String)], body: &str) -> ErrorResponse {
    let mut response = http::Response::new(Some(body.to_owned()));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST);
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (http::HeaderName::from_bytes(name.as_bytes()), http::HeaderValue::from_str(value)) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

impl RunningServer {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://localhost:PORT` or `wss://localhost:PORT`: the form an allowlist rule takes.
    pub fn origin(&self) -> String {
        format!("{}://localhost:{}", self.scheme, self.addr.port())
    }

    /// A URL on this server, e.g. `url("/v1/listen?model=nova-3")`.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.origin())
    }

    /// Drops every open connection without a close frame, as a crashed peer would; the
    /// server keeps accepting new ones.
    pub fn vanish(&self) {
        for handle in self.connections.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            handle.abort();
        }
    }

    /// Every upgrade request so far.
    pub fn handshakes(&self) -> Vec<Handshake> {
        self.recorded.handshakes.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Every data message received so far.
    pub fn messages(&self) -> Vec<Message> {
        self.recorded.messages.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Close codes clients sent so far.
    pub fn closes(&self) -> Vec<u16> {
        self.recorded.closes.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        *self.recorded.connections.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until `check` holds, re-evaluating whenever something is recorded.
    pub async fn wait_until(&self, what: &str, check: impl Fn(&Self) -> bool) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + crate::PATIENCE;
        loop {
            let changed = self.recorded.changed.notified();
            if check(self) {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                anyhow::bail!("fake server: timed out waiting for {what}");
            }
        }
    }

    /// Waits for the first upgrade request.
    pub async fn wait_for_handshake(&self) -> anyhow::Result<Handshake> {
        self.wait_until("a handshake", |s| !s.handshakes().is_empty()).await?;
        Ok(self.handshakes().remove(0))
    }
}
