//! A server that speaks Deepgram's live speech-to-text protocol, on loopback.
//!
//! It does **no recognition**. It splits the audio it receives into 20 ms frames, calls a
//! frame speech when it is loud enough, and reports each stretch of speech as a final
//! result whose transcript is `(speech 1.4 s)`, with `speech_final` once `endpointing`
//! of silence follows. During silence it sends empty final results about once a second,
//! as the real service does, so a client learns which audio is finalized. It sends
//! `SpeechStarted` and `UtteranceEnd` when asked for them in the query, answers
//! `Finalize` and `CloseStream`, and closes like the real service: 1011 `NET-0001` after
//! an idle spell, and an unexpected close on an empty binary frame.
//!
//! On `/v2/listen` it speaks **Flux** instead: `Connected` on open, then `TurnInfo`
//! messages (`StartOfTurn` at the onset of speech, an `Update` every 0.25 s of audio, and
//! `EndOfTurn` with the next scripted transcript once `endpointing` of silence follows;
//! 300 ms by default), audio confirmed up to each message's `audio_window_end`, and after
//! `CloseStream` a close without a status code, as the real service does.
//!
//! It records every handshake, every session's audio and control messages, and how much
//! of each session's audio it finalized: [`RunningSim::delivered_audio`] is the audio a
//! transcript covers, with nothing counted twice.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::mulaw;

/// Bytes per 20 ms frame of mu-law at 8 kHz.
const FRAME: usize = 160;

/// A simulator to be started.
#[derive(Debug, Clone)]
pub struct DeepgramSim {
    tls: Option<Arc<rustls::ServerConfig>>,
    token: Option<String>,
    idle_timeout: Duration,
    speech_threshold: f64,
    close_after_audio: Option<(Duration, usize)>,
    blackhole_sessions: usize,
    reject: Option<(u16, String)>,
    transcripts: Vec<String>,
    /// The script is the simulator's, not each session's: a reconnect continues it.
    script_across_sessions: Option<Arc<Mutex<std::collections::VecDeque<String>>>>,
}

impl Default for DeepgramSim {
    fn default() -> Self {
        DeepgramSim {
            tls: None,
            token: None,
            idle_timeout: Duration::from_secs(10),
            speech_threshold: 500.0,
            close_after_audio: None,
            blackhole_sessions: 0,
            reject: None,
            transcripts: Vec::new(),
            script_across_sessions: None,
        }
    }
}

/// One upgrade request.
#[derive(Debug, Clone)]
pub struct Handshake {
    /// Request path.
    pub path: String,
    /// Query string.
    pub query: String,
    /// Headers, lower-case names.
    pub headers: Vec<(String, String)>,
}

impl Handshake {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// A query parameter's value.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.split('&').filter_map(|pair| pair.split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v)
    }
}

/// One accepted WebSocket session.
#[derive(Debug, Clone, Default)]
pub struct Session {
    /// Audio received, in order.
    pub audio: Vec<u8>,
    /// Bytes of `audio` covered by final results.
    pub finalized: usize,
    /// Text messages received (KeepAlive, Finalize, CloseStream, ...).
    pub controls: Vec<String>,
    /// Binary frames received, with their sizes.
    pub frames: Vec<usize>,
    /// When each binary frame arrived, since the session opened (parallel to `frames`).
    pub frame_arrivals: Vec<Duration>,
    /// How the session ended: (code, reason, closed by the simulator).
    pub closed: Option<(u16, String, bool)>,
    /// Transcripts sent in final results.
    pub transcripts: Vec<String>,
}

#[derive(Debug, Default)]
struct State {
    handshakes: Vec<Handshake>,
    sessions: Vec<Session>,
    connections: usize,
}

type Shared = crate::shared::Shared<State>;

/// A running simulator; stops accepting when dropped.
#[derive(Debug)]
pub struct RunningSim {
    addr: SocketAddr,
    scheme: &'static str,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
    events: Option<mpsc::UnboundedReceiver<String>>,
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl DeepgramSim {
    /// A plain `ws://` simulator with the real service's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `wss://` with `config`.
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Requires `Authorization: Token <token>` (or subprotocols `token, <token>`); anything
    /// else is answered 401 with `dg-error`, as the real service does.
    pub fn expect_token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    /// Closes 1011 `NET-0001` after this long without audio or a (post-audio) KeepAlive
    /// (default 10 s, like the real service).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Closes each of the first `sessions` sessions with 1011 `NET-0000` once it has
    /// received `audio` worth of audio.
    pub fn close_after_audio(mut self, audio: Duration, sessions: usize) -> Self {
        self.close_after_audio = Some((audio, sessions));
        self
    }

    /// The first `sessions` connections get TCP but never a handshake answer.
    pub fn blackhole_first(mut self, sessions: usize) -> Self {
        self.blackhole_sessions = sessions;
        self
    }

    /// Refuses every upgrade with `status` and a `dg-error` header.
    pub fn reject(mut self, status: u16, dg_error: &str) -> Self {
        self.reject = Some((status, dg_error.to_owned()));
        self
    }

    /// Scripts the transcripts: the n-th stretch of speech in a session is reported with
    /// the n-th text (then `(speech 1.4 s)` again once the list runs out).
    pub fn transcripts<S: AsRef<str>>(mut self, texts: &[S]) -> Self {
        self.transcripts = texts.iter().map(|t| t.as_ref().to_owned()).collect();
        self
    }

    /// Like [`DeepgramSim::transcripts`], but one script for the whole simulator: after a
    /// reconnect the new session goes on where the dropped one stopped, as a caller's
    /// words do not start over.
    pub fn transcripts_across_sessions<S: AsRef<str>>(mut self, texts: &[S]) -> Self {
        self.script_across_sessions = Some(Arc::new(Mutex::new(texts.iter().map(|t| t.as_ref().to_owned()).collect())));
        self
    }

    /// Binds `127.0.0.1:0` and serves.
    pub async fn start(self) -> anyhow::Result<RunningSim> {
        self.start_on("127.0.0.1:0").await
    }

    /// Binds `address` and serves.
    pub async fn start_on(self, address: &str) -> anyhow::Result<RunningSim> {
        let listener = TcpListener::bind(address).await?;
        let addr = listener.local_addr()?;
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        let shared = Arc::new(Shared::default());
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let state = shared.clone();
        let task = tokio::spawn(async move {
            let sim = Arc::new(self);
            while let Ok((tcp, _)) = listener.accept().await {
                let _ = tcp.set_nodelay(true);
                let (sim, shared, events) = (sim.clone(), state.clone(), events_tx.clone());
                tokio::spawn(async move { sim.serve_tcp(tcp, shared, events).await });
            }
        });
        Ok(RunningSim { addr, scheme, shared, task, events: Some(events_rx) })
    }

    async fn serve_tcp(&self, tcp: TcpStream, shared: Arc<Shared>, events: mpsc::UnboundedSender<String>) {
        let mut index = 0;
        shared.update(|state| {
            state.connections += 1;
            index = state.connections;
        });
        if index <= self.blackhole_sessions {
            let _hold = tcp;
            std::future::pending::<()>().await;
            return;
        }
        match &self.tls {
            None => self.serve(tcp, shared, events).await,
            Some(config) => {
                if let Ok(stream) = tokio_rustls::TlsAcceptor::from(config.clone()).accept(tcp).await {
                    self.serve(stream, shared, events).await;
                }
            }
        }
    }

    #[allow(clippy::result_large_err, reason = "tungstenite's handshake callback fixes the error type to a full HTTP response")]
    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(&self, stream: S, shared: Arc<Shared>, events: mpsc::UnboundedSender<String>) {
        let mut handshake = None;
        let callback = |request: &Request, mut response: Response| -> Result<Response, ErrorResponse> {
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
            handshake = Some(seen.clone());
            if let Some((status, dg_error)) = &self.reject {
                return Err(rejection(*status, dg_error));
            }
            if let Some(token) = &self.token {
                let protocols: Vec<&str> =
                    seen.header("sec-websocket-protocol").map(|v| v.split(',').map(str::trim).collect()).unwrap_or_default();
                let by_header = seen.header("authorization") == Some(format!("Token {token}").as_str());
                let by_protocol = protocols.len() == 2 && protocols[0] == "token" && protocols[1] == token;
                if !by_header && !by_protocol {
                    return Err(rejection(401, "Invalid credentials."));
                }
                if by_protocol {
                    response.headers_mut().insert("sec-websocket-protocol", http::HeaderValue::from_static("token"));
                }
            }
            response.headers_mut().insert("dg-request-id", http::HeaderValue::from_static("00000000-sim"));
            Ok(response)
        };
        let Ok(socket) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
            return;
        };
        let handshake = handshake.unwrap_or(Handshake { path: String::new(), query: String::new(), headers: Vec::new() });
        let session_index = {
            let mut state = shared.lock();
            state.sessions.push(Session::default());
            state.sessions.len() - 1
        };
        let opened = std::time::Instant::now();
        shared.notify();
        let close_after =
            self.close_after_audio.filter(|(_, sessions)| session_index < *sessions).map(|(audio, _)| audio.as_millis() as usize * 8);
        let mut session = Transcriber::new(&handshake, self.speech_threshold, self.transcripts.clone());
        session.shared_script = self.script_across_sessions.clone();
        let (mut sink, mut stream) = socket.split();
        if session.flux {
            let connected = serde_json::json!({"type": "Connected", "request_id": "00000000-sim", "sequence_id": 0});
            let _ = sink.send(Message::text(connected.to_string())).await;
        }
        let mut has_audio = false;
        let verdict: Option<(u16, &str)> = loop {
            let next = tokio::time::timeout(self.idle_timeout, stream.next()).await;
            let message = match next {
                Err(_) => break Some((1011, "NET-0001")),
                Ok(None) | Ok(Some(Err(_))) => break None,
                Ok(Some(Ok(message))) => message,
            };
            let mut replies = Vec::new();
            match message {
                Message::Binary(data) => {
                    if data.is_empty() {
                        break Some((1011, "empty binary frame: NET-0001"));
                    }
                    has_audio = true;
                    replies = session.audio(&data);
                    shared.update(|state| {
                        let record = &mut state.sessions[session_index];
                        record.audio.extend_from_slice(&data);
                        record.frames.push(data.len());
                        record.frame_arrivals.push(opened.elapsed());
                    });
                }
                Message::Text(text) => {
                    let kind = serde_json::from_str::<serde_json::Value>(text.as_str())
                        .ok()
                        .and_then(|v| v["type"].as_str().map(str::to_owned))
                        .unwrap_or_default();
                    shared.update(|state| state.sessions[session_index].controls.push(kind.clone()));
                    let _ = events.send(kind.clone());
                    match kind.as_str() {
                        "KeepAlive" if !has_audio => {
                            // The real service only counts KeepAlive once audio has flowed.
                        }
                        // Flux has no Finalize (a client must not rely on one): ignored.
                        "Finalize" if session.flux => {}
                        "Finalize" => replies = session.flush(true),
                        "CloseStream" if session.flux => {
                            // Flux: the last Update, no metadata, a close without a status code.
                            if !session.carry.is_empty() {
                                session.carry.clear();
                                session.frames += 1;
                            }
                            let reply = session.turn_info("Update", "");
                            let _ = sink.send(Message::text(reply.text.clone())).await;
                            let received = session.received;
                            shared.update(|state| {
                                state.sessions[session_index].apply(&reply);
                                state.sessions[session_index].finalized = received;
                            });
                            break Some((1005, ""));
                        }
                        "CloseStream" => {
                            let mut last = session.flush(true);
                            last.push(session.metadata());
                            for reply in last {
                                let _ = sink.send(Message::text(reply.text.clone())).await;
                                shared.update(|state| state.sessions[session_index].apply(&reply));
                            }
                            break Some((1000, ""));
                        }
                        _ => {}
                    }
                }
                Message::Close(_) => break None,
                _ => {}
            }
            for reply in replies {
                if sink.send(Message::text(reply.text.clone())).await.is_err() {
                    break;
                }
                shared.update(|state| state.sessions[session_index].apply(&reply));
            }
            if let Some(limit) = close_after
                && session.received >= limit
            {
                break Some((1011, "NET-0000"));
            }
        };
        let closed = match verdict {
            Some((code, reason)) => {
                // 1005 means "no status": a close frame without a payload (Flux's way).
                let frame = (code != 1005).then(|| CloseFrame { code: CloseCode::from(code), reason: reason.into() });
                let _ = sink.send(Message::Close(frame)).await;
                // Let the client answer; keep reading briefly so the handshake completes.
                let _ = tokio::time::timeout(Duration::from_secs(2), async { while stream.next().await.is_some() {} }).await;
                (code, reason.to_owned(), true)
            }
            None => (1005, "client closed".to_owned(), false),
        };
        shared.update(|state| state.sessions[session_index].closed = Some(closed));
    }
}

/// An upgrade refused as Deepgram refuses it (`dg-error`, `dg-request-id`, a JSON body).
pub(crate) fn rejection(status: u16, dg_error: &str) -> ErrorResponse {
    let body = format!(r#"{{"err_code":"INVALID_AUTH","err_msg":"{dg_error}","request_id":"00000000-sim"}}"#);
    let mut response = http::Response::new(Some(body));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::UNAUTHORIZED);
    if let Ok(value) = http::HeaderValue::from_str(dg_error) {
        response.headers_mut().insert("dg-error", value);
    }
    response.headers_mut().insert("dg-request-id", http::HeaderValue::from_static("00000000-sim"));
    response
}

/// A message the simulator sends, with what it finalizes.
struct Reply {
    text: String,
    finalized_to: Option<usize>,
    transcript: Option<String>,
}

impl Session {
    fn apply(&mut self, reply: &Reply) {
        if let Some(to) = reply.finalized_to {
            self.finalized = self.finalized.max(to);
        }
        if let Some(transcript) = &reply.transcript {
            self.transcripts.push(transcript.clone());
        }
    }
}

/// The energy-based "recognizer" of one session.
struct Transcriber {
    threshold: f64,
    endpointing_frames: Option<usize>,
    utterance_end_frames: Option<usize>,
    vad_events: bool,
    interim: bool,
    /// Flux (`/v2/listen`): turns instead of results.
    flux: bool,
    /// Flux: turns ended so far.
    turn_index: u64,
    /// Bytes received.
    received: usize,
    /// Partial frame carried between messages.
    carry: Vec<u8>,
    /// Frames analysed.
    frames: usize,
    /// Frame index where finalized audio ends.
    final_end: usize,
    speech_start: Option<usize>,
    silence_run: usize,
    since_speech: Option<usize>,
    last_word_end: f64,
    /// Scripted texts for successive speech segments.
    script: std::collections::VecDeque<String>,
    /// The simulator-wide script, when there is one (it wins over `script`).
    shared_script: Option<Arc<Mutex<std::collections::VecDeque<String>>>>,
}

impl Transcriber {
    fn new(handshake: &Handshake, threshold: f64, script: Vec<String>) -> Self {
        let flag = |name: &str| handshake.param(name) == Some("true");
        let frames_of = |ms: &str| ms.parse::<usize>().ok().map(|ms| (ms / 20).max(1));
        Transcriber {
            threshold,
            endpointing_frames: match handshake.param("endpointing") {
                Some("false") => None,
                Some(ms) => frames_of(ms),
                None => Some(10),
            },
            utterance_end_frames: handshake.param("utterance_end_ms").and_then(frames_of),
            vad_events: flag("vad_events"),
            interim: flag("interim_results"),
            flux: handshake.path.trim_end_matches('/').ends_with("/v2/listen"),
            turn_index: 0,
            received: 0,
            carry: Vec::new(),
            frames: 0,
            final_end: 0,
            speech_start: None,
            silence_run: 0,
            since_speech: None,
            last_word_end: 0.0,
            script: script.into(),
            shared_script: None,
        }
    }

    /// The next scripted transcript, from the simulator's script or the session's.
    fn next_scripted(&mut self) -> Option<String> {
        match &self.shared_script {
            Some(script) => script.lock().unwrap_or_else(|p| p.into_inner()).pop_front(),
            None => self.script.pop_front(),
        }
    }

    fn seconds(frames: usize) -> f64 {
        frames as f64 * 0.02
    }

    fn results(&mut self, is_final: bool, speech_final: bool, from_finalize: bool, transcript: &str) -> Reply {
        let start = Self::seconds(self.final_end);
        let duration = Self::seconds(self.frames - self.final_end);
        let text = serde_json::json!({
            "type": "Results", "channel_index": [0, 1], "start": start, "duration": duration,
            "is_final": is_final, "speech_final": speech_final, "from_finalize": from_finalize,
            "channel": {"alternatives": [{"transcript": transcript, "confidence": if transcript.is_empty() { 0.0 } else { 0.99 }, "words": []}]},
            "metadata": {"request_id": "00000000-sim", "model_info": {"name": "switchboard-energy-sim", "version": "0", "arch": "none"}},
        })
        .to_string();
        let mut finalized_to = None;
        if is_final {
            self.final_end = self.frames;
            finalized_to = Some(self.frames * FRAME);
        }
        let transcript = (is_final && !transcript.is_empty()).then(|| transcript.to_owned());
        Reply { text, finalized_to, transcript }
    }

    fn speech_label(&self) -> String {
        let frames = self.speech_start.map_or(0, |start| self.frames.saturating_sub(start + self.silence_run));
        format!("(speech {:.1} s)", Self::seconds(frames))
    }

    /// Flux's `TurnInfo`, confirming the audio up to now.
    fn turn_info(&mut self, event: &str, transcript: &str) -> Reply {
        let start = Self::seconds(self.speech_start.unwrap_or(self.frames));
        let text = serde_json::json!({
            "type": "TurnInfo", "event": event, "turn_index": self.turn_index, "request_id": "00000000-sim",
            "audio_window_start": start, "audio_window_end": Self::seconds(self.frames),
            "transcript": transcript, "words": [], "end_of_turn_confidence": if event == "EndOfTurn" { 0.9 } else { 0.1 },
        })
        .to_string();
        self.final_end = self.frames;
        let transcript = (event == "EndOfTurn" && !transcript.is_empty()).then(|| transcript.to_owned());
        Reply { text, finalized_to: Some(self.frames * FRAME), transcript }
    }

    /// Takes in what arrived; then [`Transcriber::next_frame`] yields it frame by frame.
    fn receive(&mut self, data: &[u8]) {
        self.received += data.len();
        self.carry.extend_from_slice(data);
    }

    /// The next whole 20 ms frame received, counted: whether it is loud enough for speech.
    fn next_frame(&mut self) -> Option<bool> {
        if self.carry.len() < FRAME {
            return None;
        }
        let frame: Vec<u8> = self.carry.drain(..FRAME).collect();
        self.frames += 1;
        Some(mulaw::rms(&frame) > self.threshold)
    }

    fn flux_audio(&mut self, data: &[u8]) -> Vec<Reply> {
        self.receive(data);
        let mut replies = Vec::new();
        while let Some(loud) = self.next_frame() {
            match (loud, self.speech_start) {
                (true, None) => {
                    self.speech_start = Some(self.frames - 1);
                    self.silence_run = 0;
                    replies.push(self.turn_info("StartOfTurn", ""));
                }
                (true, Some(_)) => self.silence_run = 0,
                (false, Some(_)) => {
                    self.silence_run += 1;
                    if self.silence_run >= self.endpointing_frames.unwrap_or(15) {
                        let label = self.next_scripted().unwrap_or_else(|| self.speech_label());
                        replies.push(self.turn_info("EndOfTurn", &label));
                        self.speech_start = None;
                        self.turn_index += 1;
                    }
                }
                (false, None) => {}
            }
            if self.frames - self.final_end >= 12 {
                let label = if self.speech_start.is_some() { self.speech_label() } else { String::new() };
                replies.push(self.turn_info("Update", &label));
            }
        }
        replies
    }

    fn audio(&mut self, data: &[u8]) -> Vec<Reply> {
        if self.flux {
            return self.flux_audio(data);
        }
        self.receive(data);
        let mut replies = Vec::new();
        while let Some(loud) = self.next_frame() {
            match (loud, self.speech_start) {
                (true, None) => {
                    self.speech_start = Some(self.frames - 1);
                    self.silence_run = 0;
                    self.since_speech = None;
                    if self.vad_events {
                        let at = Self::seconds(self.frames - 1);
                        replies.push(Reply {
                            text: serde_json::json!({"type": "SpeechStarted", "channel": [0, 1], "timestamp": at}).to_string(),
                            finalized_to: None,
                            transcript: None,
                        });
                    }
                }
                (true, Some(_)) => self.silence_run = 0,
                (false, Some(_)) => {
                    self.silence_run += 1;
                    if self.endpointing_frames.is_some_and(|limit| self.silence_run >= limit) {
                        self.last_word_end = Self::seconds(self.frames - self.silence_run);
                        let label = self.next_scripted().unwrap_or_else(|| self.speech_label());
                        replies.push(self.results(true, true, false, &label));
                        self.speech_start = None;
                        self.since_speech = Some(0);
                    }
                }
                (false, None) => {
                    if let Some(count) = self.since_speech.as_mut() {
                        *count += 1;
                        if self.utterance_end_frames.is_some_and(|limit| *count >= limit) {
                            self.since_speech = None;
                            replies.push(Reply {
                                text: serde_json::json!({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": self.last_word_end})
                                    .to_string(),
                                finalized_to: None,
                                transcript: None,
                            });
                        }
                    }
                    // Silence is finalized about once a second, with an empty transcript.
                    if self.frames - self.final_end >= 50 {
                        replies.push(self.results(true, false, false, ""));
                    }
                }
            }
            if self.speech_start.is_some() && self.interim && (self.frames - self.final_end).is_multiple_of(25) {
                let label = self.speech_label();
                replies.push(self.results(false, false, false, &label));
            }
        }
        replies
    }

    /// Finalize: everything received becomes final (a partial frame counts too).
    fn flush(&mut self, from_finalize: bool) -> Vec<Reply> {
        if !self.carry.is_empty() {
            self.carry.clear();
            self.frames += 1;
        }
        if self.frames == self.final_end {
            return Vec::new();
        }
        let label = if self.speech_start.is_some() { self.speech_label() } else { String::new() };
        self.speech_start = None;
        let mut reply = self.results(true, !label.is_empty(), from_finalize, &label);
        reply.finalized_to = Some(self.received);
        vec![reply]
    }

    fn metadata(&self) -> Reply {
        let text = serde_json::json!({
            "type": "Metadata", "transaction_key": "deprecated", "request_id": "00000000-sim",
            "duration": self.received as f64 / 8000.0, "channels": 1,
        })
        .to_string();
        Reply { text, finalized_to: None, transcript: None }
    }
}

impl RunningSim {
    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://localhost:PORT` or `wss://localhost:PORT`, the form of an allowlist rule.
    pub fn origin(&self) -> String {
        format!("{}://localhost:{}", self.scheme, self.addr.port())
    }

    /// The listen endpoint, as a component's `deepgram_url` setting.
    pub fn listen_url(&self) -> String {
        format!("{}/v1/listen", self.origin())
    }

    /// Every upgrade request.
    pub fn handshakes(&self) -> Vec<Handshake> {
        self.shared.lock().handshakes.clone()
    }

    /// Every session.
    pub fn sessions(&self) -> Vec<Session> {
        self.shared.lock().sessions.clone()
    }

    /// TCP connections accepted.
    pub fn connections(&self) -> usize {
        self.shared.lock().connections
    }

    /// The audio final results covered, session after session: with nothing lost and
    /// nothing counted twice, this equals what the caller said.
    pub fn delivered_audio(&self) -> Vec<u8> {
        self.shared.lock().sessions.iter().flat_map(|s| s.audio[..s.finalized.min(s.audio.len())].to_vec()).collect()
    }

    /// Control messages as they arrive (`KeepAlive`, `Finalize`, ...), once.
    pub fn take_events(&mut self) -> Option<mpsc::UnboundedReceiver<String>> {
        self.events.take()
    }

    /// Waits until `check` holds (re-checked at every change), for up to `patience`.
    pub async fn wait_until(&self, patience: Duration, what: &str, check: impl Fn(&Self) -> bool) -> anyhow::Result<()> {
        self.shared.wait_until(patience, "Deepgram simulator", what, || check(self)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transcriber() -> Transcriber {
        let handshake = Handshake {
            path: "/v1/listen".into(),
            query: "endpointing=300&vad_events=true&interim_results=true&utterance_end_ms=1000".into(),
            headers: Vec::new(),
        };
        Transcriber::new(&handshake, 500.0, Vec::new())
    }

    fn texts(replies: &[Reply]) -> Vec<serde_json::Value> {
        replies.iter().map(|r| serde_json::from_str(&r.text).expect("valid JSON")).collect()
    }

    #[test]
    fn reports_speech_segments_by_energy() {
        let mut t = transcriber();
        let mut replies = t.audio(&mulaw::tone(200, 0.0));
        replies.extend(t.audio(&mulaw::tone(1_000, 440.0)));
        replies.extend(t.audio(&mulaw::tone(1_600, 0.0)));
        let values = texts(&replies);
        let kinds: Vec<&str> = values.iter().filter_map(|v| v["type"].as_str()).collect();
        assert!(kinds.contains(&"SpeechStarted"), "{kinds:?}");
        assert!(kinds.contains(&"UtteranceEnd"), "{kinds:?}");
        let speech = values.iter().find(|v| v["speech_final"] == true).expect("a speech_final result");
        assert_eq!(speech["channel"]["alternatives"][0]["transcript"], "(speech 1.0 s)");
        assert_eq!(speech["is_final"], true);
        // Finals tile the audio: each starts where the last ended.
        let finals: Vec<&serde_json::Value> = values.iter().filter(|v| v["is_final"] == true).collect();
        let mut end = 0.0;
        for result in finals {
            let start = result["start"].as_f64().expect("start");
            assert!((start - end).abs() < 1e-9, "gap or overlap at {start} (expected {end})");
            end = start + result["duration"].as_f64().expect("duration");
        }
    }

    #[test]
    fn finalize_covers_every_byte() {
        let mut t = transcriber();
        t.audio(&[0xffu8; 250]);
        let replies = t.flush(true);
        assert_eq!(replies.len(), 1);
        assert_eq!(replies[0].finalized_to, Some(250));
        let value: serde_json::Value = serde_json::from_str(&replies[0].text).expect("json");
        assert_eq!(value["from_finalize"], true);
    }
}
