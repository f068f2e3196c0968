//! An OpenAI-compatible chat-completions server (`POST /v1/chat/completions` with
//! `"stream": true`), on loopback, plain or TLS, for a voice agent's tests and the demo.
//!
//! It answers from a script, one [`Answer`] per request: text streamed as server-sent
//! `chat.completion.chunk` events a token at a time with a delay between tokens, the
//! `end_call` tool, an error status with OpenAI's error body, a head that never comes,
//! or a stream that stops halfway. With the script used up it answers "You said: …"
//! with the last user line. It checks `Authorization: Bearer <key>` when given one, and
//! records every request: its messages, what was streamed and whether the client went
//! away before the end (a barge-in cancelling the answer).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// One scripted answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// This text, streamed a word at a time.
    Text(String),
    /// This text, then a call of the `end_call` tool.
    EndCall(String),
    /// An error status with `{"error":{"message":…}}`.
    Status(u16, String),
    /// Reads the request and never answers.
    Stall,
    /// Streams this text's first `tokens` words, then nothing more (the connection stays).
    StallAfter(String, usize),
}

/// A simulator to be started.
#[derive(Debug, Clone)]
pub struct LlmSim {
    tls: Option<Arc<rustls::ServerConfig>>,
    key: Option<String>,
    script: Vec<Answer>,
    first_token_delay: Duration,
    token_delay: Duration,
}

impl Default for LlmSim {
    fn default() -> Self {
        LlmSim {
            tls: None,
            key: None,
            script: Vec::new(),
            first_token_delay: Duration::from_millis(150),
            token_delay: Duration::from_millis(25),
        }
    }
}

/// One request, as received and answered.
#[derive(Debug, Clone)]
pub struct LlmRequest {
    /// The `authorization` header.
    pub authorization: Option<String>,
    /// The JSON body.
    pub body: serde_json::Value,
    /// `messages` as (role, content).
    pub messages: Vec<(String, String)>,
    /// When it arrived.
    pub arrived: Instant,
    /// When each token left.
    pub token_times: Vec<Instant>,
    /// The whole answer was sent.
    pub completed: bool,
    /// The client went away before the end.
    pub cancelled: bool,
}

#[derive(Debug, Default)]
struct State {
    script: VecDeque<Answer>,
    requests: Vec<LlmRequest>,
}

type Shared = crate::shared::Shared<State>;

type Body = BoxBody<Bytes, Infallible>;

/// A running simulator; stops accepting when dropped.
#[derive(Debug)]
pub struct RunningLlm {
    addr: SocketAddr,
    scheme: &'static str,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RunningLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LlmSim {
    /// A plain-`http` simulator that echoes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `https://` with `config`.
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Requires `Authorization: Bearer <key>`; anything else is a 401.
    pub fn expect_key(mut self, key: &str) -> Self {
        self.key = Some(key.to_owned());
        self
    }

    /// Adds an answer to the script (answers are used in order).
    pub fn answer(mut self, answer: Answer) -> Self {
        self.script.push(answer);
        self
    }

    /// Delay before the first token (default 150 ms) and between tokens (default 25 ms).
    pub fn delays(mut self, first_token: Duration, between_tokens: Duration) -> Self {
        self.first_token_delay = first_token;
        self.token_delay = between_tokens;
        self
    }

    /// Binds an ephemeral loopback port and serves.
    pub async fn start(self) -> anyhow::Result<RunningLlm> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let shared = Arc::new(Shared::new(State { script: self.script.iter().cloned().collect(), requests: Vec::new() }));
        let state = shared.clone();
        let task = tokio::spawn(async move {
            let sim = Arc::new(self);
            while let Ok((tcp, _)) = listener.accept().await {
                let _ = tcp.set_nodelay(true);
                let (sim, shared) = (sim.clone(), state.clone());
                tokio::spawn(async move { sim.serve_tcp(tcp, shared).await });
            }
        });
        Ok(RunningLlm { addr, scheme, shared, task })
    }

    async fn serve_tcp(self: Arc<Self>, tcp: TcpStream, shared: Arc<Shared>) {
        match self.tls.clone() {
            None => self.serve(tcp, shared).await,
            Some(config) => {
                if let Ok(stream) = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await {
                    self.serve(stream, shared).await;
                }
            }
        }
    }

    async fn serve<S>(self: Arc<Self>, stream: S, shared: Arc<Shared>)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let service = hyper::service::service_fn(move |request| {
            let (sim, shared) = (self.clone(), shared.clone());
            async move { Ok::<_, Infallible>(sim.respond(request, shared).await) }
        });
        let _ = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), service).await;
    }

    async fn respond(&self, request: hyper::Request<hyper::body::Incoming>, shared: Arc<Shared>) -> hyper::Response<Body> {
        let authorization = request.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let path = request.uri().path().to_owned();
        let Ok(collected) = request.into_body().collect().await else {
            return error(400, "the request body could not be read");
        };
        if !path.ends_with("/chat/completions") {
            return error(404, "only /v1/chat/completions is simulated");
        }
        if let Some(key) = &self.key
            && authorization.as_deref() != Some(format!("Bearer {key}").as_str())
        {
            return error(401, "Incorrect API key provided.");
        }
        let Ok(body) = serde_json::from_slice::<serde_json::Value>(&collected.to_bytes()) else {
            return error(400, "the body is not JSON");
        };
        let messages: Vec<(String, String)> = body["messages"]
            .as_array()
            .map(|lines| {
                lines
                    .iter()
                    .map(|line| {
                        (line["role"].as_str().unwrap_or_default().to_owned(), line["content"].as_str().unwrap_or_default().to_owned())
                    })
                    .collect()
            })
            .unwrap_or_default();
        let last_user = messages.iter().rev().find(|(role, _)| role == "user").map(|(_, content)| content.clone()).unwrap_or_default();
        let model = body["model"].as_str().unwrap_or("sim").to_owned();
        let mut index = 0;
        let mut answer = None;
        shared.update(|state| {
            answer = state.script.pop_front();
            state.requests.push(LlmRequest {
                authorization,
                body: body.clone(),
                messages,
                arrived: Instant::now(),
                token_times: Vec::new(),
                completed: false,
                cancelled: false,
            });
            index = state.requests.len() - 1;
        });
        let answer = answer.unwrap_or_else(|| Answer::Text(format!("You said: {last_user}.")));
        let (text, tool, stop_after) = match answer {
            Answer::Status(status, message) => return error(status, &message),
            Answer::Stall => {
                std::future::pending::<()>().await;
                unreachable!("pending never resolves")
            }
            Answer::Text(text) => (text, false, None),
            Answer::EndCall(text) => (text, true, None),
            Answer::StallAfter(text, tokens) => (text, false, Some(tokens)),
        };
        let (tx, rx) = mpsc::channel::<Bytes>(4);
        let (first, every) = (self.first_token_delay, self.token_delay);
        tokio::spawn(async move {
            let chunk = |delta: serde_json::Value, finish: Option<&str>| {
                let value = serde_json::json!({
                    "id": "chatcmpl-sim", "object": "chat.completion.chunk", "created": 0, "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                });
                Bytes::from(format!("data: {value}\n\n"))
            };
            tokio::time::sleep(first).await;
            let mut sent_all = tx.send(chunk(serde_json::json!({"role": "assistant", "content": ""}), None)).await.is_ok();
            for (n, token) in tokens(&text).into_iter().enumerate() {
                if !sent_all {
                    break;
                }
                if stop_after.is_some_and(|limit| n >= limit) {
                    // Hold the connection open and silent until the client gives up.
                    tx.closed().await;
                    sent_all = false;
                    break;
                }
                if n > 0 {
                    tokio::time::sleep(every).await;
                }
                sent_all = tx.send(chunk(serde_json::json!({"content": token}), None)).await.is_ok();
                if sent_all {
                    shared.update(|state| state.requests[index].token_times.push(Instant::now()));
                }
            }
            if sent_all && tool {
                let call = serde_json::json!({"tool_calls": [{"index": 0, "id": "call_sim", "type": "function", "function": {"name": "end_call", "arguments": "{}"}}]});
                sent_all = tx.send(chunk(call, None)).await.is_ok();
            }
            if sent_all {
                let finish = if tool { "tool_calls" } else { "stop" };
                sent_all = tx.send(chunk(serde_json::json!({}), Some(finish))).await.is_ok()
                    && tx.send(Bytes::from_static(b"data: [DONE]\n\n")).await.is_ok();
            }
            // A send that failed means the client dropped the answer (a barge-in cancelling it).
            shared.update(|state| {
                let request = &mut state.requests[index];
                request.completed = sent_all;
                request.cancelled = !sent_all;
            });
        });
        let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|bytes| (Ok(Frame::data(bytes)), rx)) });
        let mut response = hyper::Response::new(StreamBody::new(stream).boxed());
        response.headers_mut().insert("content-type", http::HeaderValue::from_static("text/event-stream"));
        response
    }
}

/// The answer cut into tokens: words with their leading space, as models stream them.
fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (n, word) in text.split(' ').enumerate() {
        out.push(if n == 0 { word.to_owned() } else { format!(" {word}") });
    }
    out.retain(|token| !token.is_empty());
    out
}

fn error(status: u16, message: &str) -> hyper::Response<Body> {
    let body = serde_json::json!({"error": {"message": message, "type": "sim_error", "code": status}}).to_string();
    let mut response = hyper::Response::new(http_body_util::Full::new(Bytes::from(body)).boxed());
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert("content-type", http::HeaderValue::from_static("application/json"));
    if status == 429 {
        response.headers_mut().insert("retry-after", http::HeaderValue::from_static("1"));
    }
    response
}

impl RunningLlm {
    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http(s)://localhost:PORT`, the form of an allowlist rule.
    pub fn origin(&self) -> String {
        format!("{}://localhost:{}", self.scheme, self.addr.port())
    }

    /// The chat-completions URL, as the agent's `llm_url` setting.
    pub fn url(&self) -> String {
        format!("{}/v1/chat/completions", self.origin())
    }

    /// The chat-completions URL by address (`127.0.0.1`), for when `localhost` already has
    /// other secret headers; the TLS certificate names both.
    pub fn ip_url(&self) -> String {
        format!("{}://127.0.0.1:{}/v1/chat/completions", self.scheme, self.addr.port())
    }

    /// The allowlist rule for [`Self::ip_url`].
    pub fn ip_origin(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.addr.port())
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<LlmRequest> {
        self.shared.lock().requests.clone()
    }

    /// Waits until `check` holds (re-checked at every change), for up to `patience`.
    pub async fn wait_until(&self, patience: Duration, what: &str, check: impl Fn(&Self) -> bool) -> anyhow::Result<()> {
        self.shared.wait_until(patience, "LLM simulator", what, || check(self)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn post(sim: &RunningLlm, body: &str, key: &str) -> anyhow::Result<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = TcpStream::connect(sim.addr()).await?;
        let request = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        tcp.write_all(request.as_bytes()).await?;
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).await?;
        Ok(answer)
    }

    #[tokio::test]
    async fn scripted_answers_stream_then_the_simulator_echoes() -> anyhow::Result<()> {
        let sim = LlmSim::new()
            .expect_key("k")
            .delays(Duration::ZERO, Duration::ZERO)
            .answer(Answer::EndCall("Bye now.".into()))
            .answer(Answer::Status(429, "slow down".into()))
            .start()
            .await?;
        let body = r#"{"model":"m","stream":true,"messages":[{"role":"system","content":"s"},{"role":"user","content":"hi"}]}"#;
        let first = post(&sim, body, "k").await?;
        assert!(first.contains("text/event-stream"), "{first}");
        assert!(first.contains(r#""content":"Bye""#) && first.contains(r#""content":" now.""#), "{first}");
        assert!(first.contains(r#""name":"end_call""#) && first.contains("data: [DONE]"), "{first}");
        let second = post(&sim, body, "k").await?;
        assert!(second.starts_with("HTTP/1.1 429") && second.contains("slow down"), "{second}");
        let third = post(&sim, body, "k").await?;
        assert!(third.contains(r#""content":" said:""#) && third.contains(r#""content":" hi.""#), "{third}");
        assert!(post(&sim, body, "wrong").await?.starts_with("HTTP/1.1 401"));
        let requests = sim.requests();
        assert_eq!(requests.len(), 3, "the 401 is refused before it counts");
        assert_eq!(requests[0].messages[1], ("user".to_owned(), "hi".to_owned()));
        assert!(requests[0].completed && !requests[0].cancelled);
        Ok(())
    }

    #[test]
    fn answers_stream_as_words() {
        assert_eq!(tokens("We open at nine."), vec!["We", " open", " at", " nine."]);
        assert_eq!(tokens(""), Vec::<String>::new());
    }
}
