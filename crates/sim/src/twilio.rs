//! A simulated Twilio Media Streams call: it connects to a WebSocket URL and plays
//! mu-law audio as Twilio's exact messages (`connected`, `start`, `media` every 20 ms,
//! `dtmf`, `stop`), in real time or faster, signs the upgrade with `X-Twilio-Signature`
//! when given an auth token, and records everything the server sends.
//!
//! The server's audio is played as Twilio plays it: queued, in order, in real time; a
//! `mark` is echoed once the audio before it has played, and a `clear` drops what has not
//! begun to play and echoes every pending mark at once. The record says when each piece
//! of audio arrived, when it began to play and whether a `clear` cut it.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use switchboard_sim::twilio::TwilioCall;
//! let record = TwilioCall::new("ws://127.0.0.1:8080/twilio/media")
//!     .audio(switchboard_sim::mulaw::tone(2_000, 440.0))
//!     .parameter("FirstName", "Jane")
//!     .speed(4.0)
//!     .run()
//!     .await?;
//! println!("server closed with {:?}", record.close);
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Bytes of mu-law per Twilio media message (20 ms, as observed from Twilio).
pub const FRAME_BYTES: usize = 160;

/// `X-Twilio-Signature` for a media stream: base64(HMAC-SHA1(auth token, URL)). A stream
/// upgrade has no POST parameters, so the URL alone is signed.
pub fn signature(auth_token: &str, url: &str) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(url.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// How the call ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Send `stop`, then wait for the server to close (Twilio's normal hang-up).
    Stop,
    /// Close the socket with 1000 without sending `stop`.
    CloseWithoutStop,
    /// Drop the TCP connection without a close frame.
    Vanish,
}

/// A call to be placed.
#[derive(Debug, Clone)]
pub struct TwilioCall {
    url: String,
    audio: Vec<u8>,
    speed: f64,
    parameters: Vec<(String, String)>,
    dtmf: Vec<(Duration, String)>,
    gaps: Vec<(Duration, Duration)>,
    auth_token: Option<String>,
    call_sid: String,
    stream_sid: String,
    ending: Ending,
    close_wait: Duration,
}

/// What happened during a call.
#[derive(Debug, Clone, Default)]
pub struct CallRecord {
    /// The audio sent, exactly.
    pub sent_audio: Vec<u8>,
    /// Media messages sent.
    pub media_messages: usize,
    /// Every data message the server sent.
    pub received: Vec<String>,
    /// The server's close frame (code, reason), if one came.
    pub close: Option<(u16, String)>,
    /// Time from connect to the end of the audio.
    pub streamed_for: Duration,
    /// The server's audio (`media` messages), in order.
    pub outbound: Vec<OutboundAudio>,
    /// The server's `mark`s and their echoes.
    pub marks: Vec<MarkEcho>,
    /// When each `clear` came (since the start).
    pub clears: Vec<Duration>,
}

/// A `media` message the server sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundAudio {
    /// When it arrived (since the start).
    pub arrived: Duration,
    /// When it began to play, or would have.
    pub plays_from: Duration,
    /// The mu-law bytes.
    pub audio: Vec<u8>,
    /// A `clear` came before it began to play: the caller never heard it.
    pub cut: bool,
}

/// A `mark` the server sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkEcho {
    /// Its name.
    pub name: String,
    /// When it arrived.
    pub arrived: Duration,
    /// When it was echoed (`None`: the call ended first).
    pub echoed: Option<Duration>,
    /// It was echoed because of a `clear`, not because its audio played.
    pub cleared: bool,
}

impl CallRecord {
    /// The server's audio the caller heard, in order.
    pub fn heard_audio(&self) -> Vec<u8> {
        self.outbound.iter().filter(|piece| !piece.cut).flat_map(|piece| piece.audio.iter().copied()).collect()
    }

    /// The server's audio that arrived after `at`, in bytes.
    pub fn audio_after(&self, at: Duration) -> usize {
        self.outbound.iter().filter(|piece| piece.arrived > at).map(|piece| piece.audio.len()).sum()
    }
}

/// Twilio's playback of the server's audio, on the call's clock.
struct Playback {
    started: Instant,
    /// When everything queued will have played.
    play_end: Instant,
    /// Marks waiting for their audio to play: (due, index in the record).
    pending: VecDeque<(Instant, usize)>,
}

impl TwilioCall {
    /// A call to `url` with no audio yet.
    pub fn new(url: &str) -> Self {
        TwilioCall {
            url: url.to_owned(),
            audio: Vec::new(),
            speed: 1.0,
            parameters: Vec::new(),
            dtmf: Vec::new(),
            gaps: Vec::new(),
            auth_token: None,
            call_sid: "CA00000000000000000000000000000001".to_owned(),
            stream_sid: "MZ00000000000000000000000000000001".to_owned(),
            ending: Ending::Stop,
            close_wait: Duration::from_secs(15),
        }
    }

    /// The caller's audio (mu-law, 8 kHz, mono).
    pub fn audio(mut self, audio: Vec<u8>) -> Self {
        self.audio = audio;
        self
    }

    /// Plays `speed` times faster than real time (1.0 = real time).
    pub fn speed(mut self, speed: f64) -> Self {
        self.speed = speed.max(0.01);
        self
    }

    /// Adds a `<Parameter>` (arrives in `start.customParameters`).
    pub fn parameter(mut self, name: &str, value: &str) -> Self {
        self.parameters.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Presses `digit` once `at` of audio has played.
    pub fn dtmf_at(mut self, at: Duration, digit: &str) -> Self {
        self.dtmf.push((at, digit.to_owned()));
        self
    }

    /// Sends no media for `gap` (wall time) once `at` of audio has played, as Twilio may
    /// during silence.
    pub fn gap_at(mut self, at: Duration, gap: Duration) -> Self {
        self.gaps.push((at, gap));
        self
    }

    /// Signs the upgrade with `X-Twilio-Signature` computed from `auth_token`.
    pub fn sign_with(mut self, auth_token: &str) -> Self {
        self.auth_token = Some(auth_token.to_owned());
        self
    }

    /// Sets the call and stream SIDs.
    pub fn sids(mut self, call_sid: &str, stream_sid: &str) -> Self {
        self.call_sid = call_sid.to_owned();
        self.stream_sid = stream_sid.to_owned();
        self
    }

    /// How the call ends (default: `stop`, then wait for the server's close).
    pub fn ending(mut self, ending: Ending) -> Self {
        self.ending = ending;
        self
    }

    /// How long to wait for the server to close after `stop` (default 15 s).
    pub fn close_wait(mut self, wait: Duration) -> Self {
        self.close_wait = wait;
        self
    }

    fn message(&self, body: serde_json::Value) -> Message {
        Message::text(body.to_string())
    }

    /// Places the call and plays it to the end.
    pub async fn run(self) -> anyhow::Result<CallRecord> {
        let mut request = self.url.as_str().into_client_request().context("building the upgrade request")?;
        if let Some(token) = &self.auth_token {
            let value = http::HeaderValue::from_str(&signature(token, &self.url))?;
            request.headers_mut().insert("x-twilio-signature", value);
        }
        let (socket, _) = tokio::time::timeout(Duration::from_secs(20), tokio_tungstenite::connect_async(request))
            .await
            .context("connect timed out")?
            .with_context(|| format!("connecting to {}", self.url))?;
        let (mut sink, mut stream) = socket.split();
        let (received_tx, mut received_rx) = tokio::sync::mpsc::unbounded_channel::<Message>();
        // Read concurrently: the server may answer (marks, audio) while we stream.
        let reader = tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                let is_close = message.is_close();
                if received_tx.send(message).is_err() || is_close {
                    break;
                }
            }
        });
        let mut record = CallRecord::default();
        let mut sequence = 1u64;
        sink.send(self.message(serde_json::json!({"event": "connected", "protocol": "Call", "version": "1.0.0"}))).await?;
        let parameters: serde_json::Map<String, serde_json::Value> =
            self.parameters.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
        sink.send(self.message(serde_json::json!({
            "event": "start",
            "sequenceNumber": sequence.to_string(),
            "start": {
                "accountSid": "AC00000000000000000000000000000001",
                "streamSid": self.stream_sid,
                "callSid": self.call_sid,
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                "customParameters": parameters,
            },
            "streamSid": self.stream_sid,
        })))
        .await?;
        let started = Instant::now();
        let mut playback = Playback { started, play_end: started, pending: VecDeque::new() };
        let frame_interval = Duration::from_secs_f64(0.020 / self.speed);
        let mut pending_dtmf = self.dtmf.clone();
        let mut pending_gaps = self.gaps.clone();
        let mut paused = Duration::ZERO;
        for (index, frame) in self.audio.chunks(FRAME_BYTES).enumerate() {
            let audio_time = Duration::from_millis(index as u64 * 20);
            while let Some(position) = pending_dtmf.iter().position(|(at, _)| *at <= audio_time) {
                let (_, digit) = pending_dtmf.remove(position);
                sequence += 1;
                sink.send(self.message(serde_json::json!({
                    "event": "dtmf", "streamSid": self.stream_sid, "sequenceNumber": sequence.to_string(),
                    "dtmf": {"track": "inbound_track", "digit": digit},
                })))
                .await?;
            }
            sequence += 1;
            let payload = base64::engine::general_purpose::STANDARD.encode(frame);
            let sent = sink
                .send(self.message(serde_json::json!({
                    "event": "media",
                    "sequenceNumber": sequence.to_string(),
                    "media": {"track": "inbound", "chunk": (index + 1).to_string(), "timestamp": (index * 20).to_string(), "payload": payload},
                    "streamSid": self.stream_sid,
                })))
                .await;
            if let Err(error) = sent {
                // The server may have closed between two frames: then that is how the call ended.
                let wait = tokio::time::Instant::now() + Duration::from_secs(2);
                while record.close.is_none() {
                    match tokio::time::timeout_at(wait, received_rx.recv()).await {
                        Ok(Some(message)) => self.note(&mut record, &mut playback, message),
                        _ => break,
                    }
                }
                if record.close.is_none() {
                    return Err(error.into());
                }
                record.streamed_for = started.elapsed();
                reader.abort();
                return Ok(record);
            }
            record.sent_audio.extend_from_slice(frame);
            record.media_messages += 1;
            while let Ok(message) = received_rx.try_recv() {
                self.note(&mut record, &mut playback, message);
            }
            self.echo_due(&mut record, &mut playback, &mut sink, &mut sequence).await;
            if record.close.is_some() {
                // The server ended the call (an agent hanging up): Twilio stops streaming.
                record.streamed_for = started.elapsed();
                reader.abort();
                return Ok(record);
            }
            while let Some(position) = pending_gaps.iter().position(|(at, _)| *at <= audio_time) {
                paused += pending_gaps.remove(position).1;
            }
            let due = started + paused + frame_interval * (index as u32 + 1);
            tokio::time::sleep_until(due.into()).await;
        }
        record.streamed_for = started.elapsed();
        match self.ending {
            Ending::Vanish => {
                reader.abort();
                drop(sink);
                return Ok(record);
            }
            Ending::CloseWithoutStop => {
                sink.send(Message::Close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() }))).await?;
            }
            Ending::Stop => {
                sequence += 1;
                sink.send(self.message(serde_json::json!({
                    "event": "stop", "sequenceNumber": sequence.to_string(),
                    "stop": {"accountSid": "AC00000000000000000000000000000001", "callSid": self.call_sid},
                    "streamSid": self.stream_sid,
                })))
                .await?;
            }
        }
        let deadline = tokio::time::Instant::now() + self.close_wait;
        while record.close.is_none() {
            // Wake for the next mark due, too: audio still plays after the caller's ends.
            let wake = playback.pending.front().map_or(deadline, |(due, _)| tokio::time::Instant::from_std(*due).min(deadline));
            match tokio::time::timeout_at(wake, received_rx.recv()).await {
                Ok(Some(message)) => self.note(&mut record, &mut playback, message),
                Ok(None) => break,
                Err(_) if wake >= deadline => break,
                Err(_) => {}
            }
            self.echo_due(&mut record, &mut playback, &mut sink, &mut sequence).await;
        }
        reader.abort();
        Ok(record)
    }

    /// Echoes the marks whose audio has played.
    async fn echo_due<S>(&self, record: &mut CallRecord, playback: &mut Playback, sink: &mut S, sequence: &mut u64)
    where
        S: futures_util::Sink<Message> + Unpin,
    {
        let now = Instant::now();
        while let Some(&(due, index)) = playback.pending.front() {
            if due > now {
                break;
            }
            playback.pending.pop_front();
            self.echo(record, playback, index, sink, sequence).await;
        }
    }

    async fn echo<S>(&self, record: &mut CallRecord, playback: &Playback, index: usize, sink: &mut S, sequence: &mut u64)
    where
        S: futures_util::Sink<Message> + Unpin,
    {
        *sequence += 1;
        let name = record.marks[index].name.clone();
        let echo = serde_json::json!({
            "event": "mark", "sequenceNumber": sequence.to_string(), "streamSid": self.stream_sid, "mark": {"name": name},
        });
        // The server may have closed meanwhile; the echo is then moot.
        let _ = sink.send(Message::text(echo.to_string())).await;
        record.marks[index].echoed = Some(playback.started.elapsed());
    }

    /// Records a message from the server; `media`, `mark` and `clear` move the playback.
    fn note(&self, record: &mut CallRecord, playback: &mut Playback, message: Message) {
        match message {
            Message::Text(text) => {
                let text = text.as_str().to_owned();
                if let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) {
                    self.play(record, playback, &value);
                }
                record.received.push(text);
            }
            Message::Binary(data) => record.received.push(format!("<{} binary bytes>", data.len())),
            Message::Close(frame) => {
                record.close = Some(frame.map_or((1005, String::new()), |f| (u16::from(f.code), f.reason.as_str().to_owned())));
            }
            _ => {}
        }
    }

    fn play(&self, record: &mut CallRecord, playback: &mut Playback, value: &serde_json::Value) {
        let now = Instant::now();
        let since = |at: Instant| at.saturating_duration_since(playback.started);
        match value["event"].as_str() {
            Some("media") => {
                let payload = value["media"]["payload"].as_str().unwrap_or_default();
                let audio = base64::engine::general_purpose::STANDARD.decode(payload).unwrap_or_default();
                let from = playback.play_end.max(now);
                playback.play_end = from + Duration::from_micros(audio.len() as u64 * 125);
                record.outbound.push(OutboundAudio { arrived: since(now), plays_from: since(from), audio, cut: false });
            }
            Some("mark") => {
                let name = value["mark"]["name"].as_str().unwrap_or_default().to_owned();
                record.marks.push(MarkEcho { name, arrived: since(now), echoed: None, cleared: false });
                playback.pending.push_back((playback.play_end.max(now), record.marks.len() - 1));
            }
            Some("clear") => {
                let at = since(now);
                record.clears.push(at);
                for piece in record.outbound.iter_mut().filter(|piece| piece.plays_from > at) {
                    piece.cut = true;
                }
                // Every pending mark is echoed at once (the next echo_due sends them).
                for (due, index) in playback.pending.iter_mut() {
                    *due = now;
                    record.marks[*index].cleared = true;
                }
                playback.play_end = now;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_official_test_vector() {
        assert_eq!(signature("12345", "wss://example.com/media?foo=bar"), "FjZ/U6BopoJFWaIsLzTB835vZHI=");
    }
}
