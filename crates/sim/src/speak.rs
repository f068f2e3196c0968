//! A server that speaks Deepgram's text-to-speech WebSocket protocol (`/v1/speak`), on
//! loopback.
//!
//! It does **no synthesis**: `Speak` text is buffered, and a `Flush` turns it into mu-law
//! audio whose length follows the text (`ms_per_char`, a tone whose pitch changes with
//! each flush), sent in chunks faster than real time like the real service, then
//! `Flushed`. `Clear` drops what was not sent yet and answers `Cleared`; `Close` closes.
//! It checks the `Authorization: Token` header when given a key, and misbehaves on
//! request: a rejected upgrade, a 1011 after some flushes, flushes never answered.
//!
//! It records every handshake and, per session, the text of each flush, the audio sent
//! for it and when each chunk left, the clears, and how the session ended.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

pub use crate::deepgram::Handshake;
use crate::deepgram::rejection;
use crate::mulaw;

/// A simulator to be started.
#[derive(Debug, Clone)]
pub struct SpeakSim {
    tls: Option<Arc<rustls::ServerConfig>>,
    token: Option<String>,
    reject: Option<(u16, String)>,
    ms_per_char: u64,
    speed: f64,
    chunk_ms: u64,
    first_audio_delay: Duration,
    close_after_flushes: Option<(usize, usize)>,
    silent_after_flushes: Option<usize>,
}

impl Default for SpeakSim {
    fn default() -> Self {
        SpeakSim {
            tls: None,
            token: None,
            reject: None,
            ms_per_char: 60,
            speed: 8.0,
            chunk_ms: 100,
            first_audio_delay: Duration::from_millis(40),
            close_after_flushes: None,
            silent_after_flushes: None,
        }
    }
}

/// One flush of one session.
#[derive(Debug, Clone, Default)]
pub struct Flush {
    /// The text spoken (the `Speak`s since the last flush, joined).
    pub text: String,
    /// The audio it became.
    pub audio: Vec<u8>,
    /// Bytes of it sent before a `Clear` or the end.
    pub sent: usize,
    /// When each chunk left, with its size.
    pub chunks: Vec<(Instant, usize)>,
    /// `Flushed` was sent for it.
    pub flushed: bool,
}

/// One accepted session.
#[derive(Debug, Clone, Default)]
pub struct SpeakSession {
    /// Every `Speak` text, in order.
    pub speaks: Vec<String>,
    /// Every flush, in order.
    pub flushes: Vec<Flush>,
    /// `Clear`s received.
    pub clears: usize,
    /// Audio dropped by `Clear`s, bytes.
    pub cleared_bytes: usize,
    /// Text messages of types the simulator does not know.
    pub unknown: Vec<String>,
    /// How the session ended: (code, reason, closed by the simulator).
    pub closed: Option<(u16, String, bool)>,
}

#[derive(Debug, Default)]
struct State {
    handshakes: Vec<Handshake>,
    sessions: Vec<SpeakSession>,
}

type Shared = crate::shared::Shared<State>;

/// A running simulator; stops accepting when dropped.
#[derive(Debug)]
pub struct RunningSpeak {
    addr: SocketAddr,
    scheme: &'static str,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RunningSpeak {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SpeakSim {
    /// A plain-`ws` simulator with the defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `wss://` with `config`.
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Requires `Authorization: Token <token>`; anything else is a 401.
    pub fn expect_token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    /// Answers every upgrade with `status` and a `dg-error` header.
    pub fn reject(mut self, status: u16, dg_error: &str) -> Self {
        self.reject = Some((status, dg_error.to_owned()));
        self
    }

    /// Audio per character of text, ms (default 60: about 16 characters a second).
    pub fn ms_per_char(mut self, ms: u64) -> Self {
        self.ms_per_char = ms.max(1);
        self
    }

    /// How much faster than real time audio is sent (default 8).
    pub fn speed(mut self, speed: f64) -> Self {
        self.speed = speed.max(0.1);
        self
    }

    /// Delay from a flush to its first audio (default 40 ms).
    pub fn first_audio_delay(mut self, delay: Duration) -> Self {
        self.first_audio_delay = delay;
        self
    }

    /// The first `sessions` sessions close with 1011 once `flushes` flushes were answered.
    pub fn close_after_flushes(mut self, flushes: usize, sessions: usize) -> Self {
        self.close_after_flushes = Some((flushes, sessions));
        self
    }

    /// After `flushes` flushes, further ones are never answered (the socket stays open).
    pub fn silent_after_flushes(mut self, flushes: usize) -> Self {
        self.silent_after_flushes = Some(flushes);
        self
    }

    /// Binds an ephemeral loopback port and serves.
    pub async fn start(self) -> anyhow::Result<RunningSpeak> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        let shared = Arc::new(Shared::default());
        let state = shared.clone();
        let task = tokio::spawn(async move {
            let sim = Arc::new(self);
            while let Ok((tcp, _)) = listener.accept().await {
                let _ = tcp.set_nodelay(true);
                let (sim, shared) = (sim.clone(), state.clone());
                tokio::spawn(async move { sim.serve_tcp(tcp, shared).await });
            }
        });
        Ok(RunningSpeak { addr, scheme, shared, task })
    }

    async fn serve_tcp(&self, tcp: TcpStream, shared: Arc<Shared>) {
        match &self.tls {
            None => self.serve(tcp, shared).await,
            Some(config) => {
                if let Ok(stream) = tokio_rustls::TlsAcceptor::from(config.clone()).accept(tcp).await {
                    self.serve(stream, shared).await;
                }
            }
        }
    }

    #[allow(clippy::result_large_err, reason = "tungstenite's handshake callback fixes the error type to a full HTTP response")]
    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(&self, stream: S, shared: Arc<Shared>) {
        let callback = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
            let seen = Handshake {
                path: request.uri().path().to_owned(),
                query: request.uri().query().unwrap_or_default().to_owned(),
                headers: request
                    .headers()
                    .iter()
                    .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                    .collect(),
            };
            shared.update(|state| state.handshakes.push(seen.clone()));
            if let Some((status, dg_error)) = &self.reject {
                return Err(rejection(*status, dg_error));
            }
            if let Some(token) = &self.token
                && seen.header("authorization") != Some(format!("Token {token}").as_str())
            {
                return Err(rejection(401, "Invalid credentials."));
            }
            Ok(response)
        };
        let Ok(socket) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
            return;
        };
        let index = {
            let mut state = shared.lock();
            state.sessions.push(SpeakSession::default());
            state.sessions.len() - 1
        };
        shared.notify();
        let close_after = self.close_after_flushes.filter(|(_, sessions)| index < *sessions).map(|(flushes, _)| flushes);
        let chunk_bytes = (self.chunk_ms * 8) as usize;
        let chunk_every = Duration::from_secs_f64(self.chunk_ms as f64 / 1e3 / self.speed);
        let (mut sink, mut stream) = socket.split();
        let mut text = String::new();
        // Flushes being voiced: (index in the session's flushes, bytes sent).
        let mut voicing: VecDeque<(usize, usize)> = VecDeque::new();
        let mut next_chunk = tokio::time::Instant::now();
        let mut answered = 0usize;
        let mut cleared = 0u64;
        let verdict: Option<(u16, &str)> = loop {
            let sending = !voicing.is_empty();
            let message = tokio::select! {
                message = stream.next() => message,
                () = tokio::time::sleep_until(next_chunk), if sending => {
                    let Some((flush, sent)) = voicing.front_mut() else { continue };
                    let (flush, offset) = (*flush, *sent);
                    let chunk = {
                        let state = shared.lock();
                        let audio = &state.sessions[index].flushes[flush].audio;
                        audio[offset..(offset + chunk_bytes).min(audio.len())].to_vec()
                    };
                    if !chunk.is_empty() {
                        if sink.send(Message::binary(chunk.clone())).await.is_err() {
                            break None;
                        }
                        *sent += chunk.len();
                        let sent_now = *sent;
                        shared.update(|state| {
                            let record = &mut state.sessions[index].flushes[flush];
                            record.sent = sent_now;
                            record.chunks.push((Instant::now(), chunk.len()));
                        });
                    }
                    let done = shared.lock().sessions[index].flushes[flush].audio.len() <= *sent;
                    if done {
                        voicing.pop_front();
                        let reply = serde_json::json!({"type": "Flushed", "sequence_id": answered});
                        answered += 1;
                        if sink.send(Message::text(reply.to_string())).await.is_err() {
                            break None;
                        }
                        shared.update(|state| state.sessions[index].flushes[flush].flushed = true);
                        if close_after.is_some_and(|limit| answered >= limit) {
                            break Some((1011, "NET-0000"));
                        }
                        next_chunk = tokio::time::Instant::now() + self.first_audio_delay;
                    } else {
                        next_chunk += chunk_every;
                    }
                    continue;
                }
            };
            let message = match message {
                None | Some(Err(_)) => break None,
                Some(Ok(message)) => message,
            };
            match message {
                Message::Text(body) => {
                    let value: serde_json::Value = serde_json::from_str(body.as_str()).unwrap_or_default();
                    match value["type"].as_str().unwrap_or_default() {
                        "Speak" => {
                            let spoken = value["text"].as_str().unwrap_or_default().to_owned();
                            if !text.is_empty() {
                                text.push(' ');
                            }
                            text.push_str(&spoken);
                            shared.update(|state| state.sessions[index].speaks.push(spoken));
                        }
                        "Flush" => {
                            let said = std::mem::take(&mut text);
                            let flush_number = shared.lock().sessions[index].flushes.len();
                            let millis = said.chars().count() as u64 * self.ms_per_char;
                            let audio = mulaw::tone(millis as u32, 180.0 + 30.0 * (flush_number % 8) as f64);
                            shared.update(|state| state.sessions[index].flushes.push(Flush { text: said, audio, ..Flush::default() }));
                            let silent = self.silent_after_flushes.is_some_and(|limit| flush_number >= limit);
                            if !silent {
                                if voicing.is_empty() {
                                    next_chunk = tokio::time::Instant::now() + self.first_audio_delay;
                                }
                                voicing.push_back((flush_number, 0));
                            }
                        }
                        "Clear" => {
                            text.clear();
                            let dropped: usize = {
                                let state = shared.lock();
                                voicing.iter().map(|(flush, sent)| state.sessions[index].flushes[*flush].audio.len() - sent).sum()
                            };
                            voicing.clear();
                            shared.update(|state| {
                                state.sessions[index].clears += 1;
                                state.sessions[index].cleared_bytes += dropped;
                            });
                            let reply = serde_json::json!({"type": "Cleared", "sequence_id": cleared});
                            cleared += 1;
                            if sink.send(Message::text(reply.to_string())).await.is_err() {
                                break None;
                            }
                        }
                        "Close" => break Some((1000, "")),
                        other => {
                            let other = other.to_owned();
                            shared.update(|state| state.sessions[index].unknown.push(other));
                        }
                    }
                }
                Message::Close(_) => break None,
                _ => {}
            }
        };
        let closed = match verdict {
            Some((code, reason)) => {
                let frame = CloseFrame { code: CloseCode::from(code), reason: reason.into() };
                let _ = sink.send(Message::Close(Some(frame))).await;
                let _ = tokio::time::timeout(Duration::from_secs(2), async { while stream.next().await.is_some() {} }).await;
                (code, reason.to_owned(), true)
            }
            None => (1005, "client closed".to_owned(), false),
        };
        shared.update(|state| state.sessions[index].closed = Some(closed));
    }
}

impl RunningSpeak {
    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://localhost:PORT` or `wss://localhost:PORT`, the form of an allowlist rule.
    pub fn origin(&self) -> String {
        format!("{}://localhost:{}", self.scheme, self.addr.port())
    }

    /// The speak endpoint, as the agent's `tts_url` setting.
    pub fn speak_url(&self) -> String {
        format!("{}/v1/speak", self.origin())
    }

    /// Every upgrade request.
    pub fn handshakes(&self) -> Vec<Handshake> {
        self.shared.lock().handshakes.clone()
    }

    /// Every session.
    pub fn sessions(&self) -> Vec<SpeakSession> {
        self.shared.lock().sessions.clone()
    }

    /// Waits until `check` holds (re-checked at every change), for up to `patience`.
    pub async fn wait_until(&self, patience: Duration, what: &str, check: impl Fn(&Self) -> bool) -> anyhow::Result<()> {
        self.shared.wait_until(patience, "speak simulator", what, || check(self)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_flush_becomes_audio_as_long_as_its_text_then_flushed_and_clear_drops_the_rest() -> anyhow::Result<()> {
        let sim = SpeakSim::new().ms_per_char(10).speed(50.0).start().await?;
        let (mut socket, _) =
            tokio_tungstenite::connect_async(format!("{}?model=aura&encoding=mulaw&sample_rate=8000", sim.speak_url())).await?;
        socket.send(Message::text(r#"{"type":"Speak","text":"Hello there."}"#)).await?;
        socket.send(Message::text(r#"{"type":"Flush"}"#)).await?;
        let mut audio = 0;
        loop {
            match socket.next().await.expect("a message")? {
                Message::Binary(data) => audio += data.len(),
                Message::Text(text) => {
                    let reply: serde_json::Value = serde_json::from_str(text.as_str())?;
                    assert_eq!(reply, serde_json::json!({"type": "Flushed", "sequence_id": 0}));
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(audio, 12 * 10 * 8, "12 characters at 10 ms each, 8 bytes a ms");
        // A long flush, cleared at once: Cleared comes and most of its audio never does.
        socket.send(Message::text(r#"{"type":"Speak","text":"A much longer sentence that takes a while to say out loud."}"#)).await?;
        socket.send(Message::text(r#"{"type":"Flush"}"#)).await?;
        socket.send(Message::text(r#"{"type":"Clear"}"#)).await?;
        loop {
            if let Message::Text(text) = socket.next().await.expect("a message")? {
                assert!(text.as_str().contains("Cleared"), "{text}");
                break;
            }
        }
        socket.send(Message::text(r#"{"type":"Close"}"#)).await?;
        sim.wait_until(Duration::from_secs(5), "the close", |sim| sim.sessions()[0].closed.is_some()).await?;
        let session = &sim.sessions()[0];
        assert_eq!(session.speaks.len(), 2);
        assert_eq!(session.clears, 1);
        assert!(session.cleared_bytes > 0 && session.flushes[1].sent < session.flushes[1].audio.len());
        assert_eq!(session.closed, Some((1000, String::new(), true)));
        assert_eq!(sim.handshakes()[0].param("encoding"), Some("mulaw"));
        Ok(())
    }

    #[tokio::test]
    async fn a_wrong_key_is_a_401() -> anyhow::Result<()> {
        let sim = SpeakSim::new().expect_token("k1").start().await?;
        let error = tokio_tungstenite::connect_async(sim.speak_url()).await.expect_err("refused");
        assert!(error.to_string().contains("401"), "{error}");
        Ok(())
    }
}
