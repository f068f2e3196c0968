//! A lean fake of Deepgram's live endpoint over real TLS (`wss://localhost:port`): it checks
//! the `Authorization` header, reads binary audio, times every stamped frame's trip from the
//! caller (see [`crate::stamp`]), sends a final `Results` (empty transcript) after every
//! second of audio as Deepgram does while nobody speaks, counts `KeepAlive`/`CloseStream`,
//! and answers `CloseStream` with `Metadata` and a normal close. It does no recognition:
//! the bench measures transport, and the fake must cost as little as possible beside the
//! system under test.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::stamp::{FRAME_BYTES, Stamp, now_ns};

/// Longest latency the histograms hold, microseconds (60 s).
const MAX_LATENCY_US: u64 = 60_000_000;

/// Audio between two final results, bytes (one second of mu-law).
const FINAL_EVERY_BYTES: u64 = 8_000;

/// What Deepgram sends before closing a stream.
const METADATA: &str =
    r#"{"type":"Metadata","transaction_key":"deprecated","request_id":"00000000-0000-0000-0000-000000000000","channels":1,"duration":0.0}"#;

/// The running fake.
pub struct FakeDeepgram {
    address: SocketAddr,
    recorder: Arc<Mutex<Arc<Recorder>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeDeepgram {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeDeepgram {
    /// Listens on `127.0.0.1:0` with `tls`, accepting `Authorization: Token {api_key}`.
    pub async fn start(tls: Arc<rustls::ServerConfig>, api_key: &str) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let recorder = Arc::new(Mutex::new(Arc::new(Recorder::new(0, u64::MAX))));
        let expected = format!("Token {api_key}");
        let acceptor = TlsAcceptor::from(tls);
        let current = recorder.clone();
        let server = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let recorder = lock(&current).clone();
                let session = Session { acceptor: acceptor.clone(), expected: expected.clone(), recorder };
                tokio::spawn(session.run(tcp));
            }
        });
        Ok(FakeDeepgram { address, recorder, server })
    }

    /// The URL a relay connects to.
    pub fn url(&self) -> String {
        format!("wss://localhost:{}/v1/listen", self.address.port())
    }

    /// The origin an allowlist names.
    pub fn origin(&self) -> String {
        format!("wss://localhost:{}", self.address.port())
    }

    /// Starts recording afresh: latencies count for frames sent in `[from_ns, to_ns)`.
    /// Connections already open keep recording into the recorder they started with.
    pub fn record(&self, from_ns: u64, to_ns: u64) -> Arc<Recorder> {
        let recorder = Arc::new(Recorder::new(from_ns, to_ns));
        *lock(&self.recorder) = recorder.clone();
        recorder
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What the fake saw during one recording.
pub struct Recorder {
    from_ns: u64,
    to_ns: u64,
    live: AtomicUsize,
    seen: Mutex<Seen>,
}

/// The figures of a recording.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Caller-send to fake-receive, microseconds, for frames sent inside the window.
    pub latency_us: Histogram<u64>,
    /// The same, since the last [`Recorder::take_interval`].
    pub interval_latency_us: Histogram<u64>,
    /// Trip of each call's first frame (includes the relay's connect to Deepgram), us.
    pub first_audio_us: Histogram<u64>,
    /// Frames received per call, as a bitset of sequence numbers.
    pub frames: HashMap<u32, FrameSet>,
    /// Frames received twice.
    pub duplicates: u64,
    /// Binary data that was not whole stamped frames, bytes.
    pub stray_bytes: u64,
    /// `KeepAlive` messages.
    pub keepalives: u64,
    /// `CloseStream` messages.
    pub close_streams: u64,
    /// Connections accepted (handshake passed).
    pub connections: u64,
    /// Handshakes refused for a missing or wrong `Authorization`.
    pub unauthorized: u64,
    /// Connections that ended before their WebSocket handshake completed (a TLS handshake
    /// cut off, say): not a call's failure, but counted.
    pub aborted_handshakes: u64,
    /// Established connections that failed (protocol, reset), with why; the first few.
    pub errors: Vec<String>,
    /// How many failed in all.
    pub error_count: u64,
}

/// The sequence numbers received on one call.
#[derive(Debug, Clone, Default)]
pub struct FrameSet {
    bits: Vec<u64>,
    count: u32,
}

impl FrameSet {
    /// Marks `seq`; false when it was already there.
    fn insert(&mut self, seq: u32) -> bool {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if self.bits.len() <= word {
            self.bits.resize(word + 1, 0);
        }
        let fresh = self.bits[word] & (1 << bit) == 0;
        self.bits[word] |= 1 << bit;
        self.count += u32::from(fresh);
        fresh
    }

    /// Distinct frames received.
    pub fn count(&self) -> u32 {
        self.count
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).unwrap_or_else(|_| unreachable!("constant bounds are valid"))
}

impl Recorder {
    fn new(from_ns: u64, to_ns: u64) -> Self {
        Recorder {
            from_ns,
            to_ns,
            live: AtomicUsize::new(0),
            seen: Mutex::new(Seen {
                latency_us: histogram(),
                interval_latency_us: histogram(),
                first_audio_us: histogram(),
                frames: HashMap::new(),
                duplicates: 0,
                stray_bytes: 0,
                keepalives: 0,
                close_streams: 0,
                connections: 0,
                unauthorized: 0,
                aborted_handshakes: 0,
                errors: Vec::new(),
                error_count: 0,
            }),
        }
    }

    /// Connections still open.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// A copy of everything seen so far.
    pub fn snapshot(&self) -> Seen {
        lock(&self.seen).clone()
    }

    /// The latencies since the previous call, and starts a new interval.
    pub fn take_interval(&self) -> Histogram<u64> {
        std::mem::replace(&mut lock(&self.seen).interval_latency_us, histogram())
    }

    /// Waits until every connection has closed, or `patience` runs out.
    pub async fn wait_closed(&self, patience: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + patience;
        while self.live() > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }

    /// Whole frames, in order.
    fn audio(&self, frames: &[u8]) {
        let now = now_ns();
        let mut seen = lock(&self.seen);
        for chunk in frames.chunks_exact(FRAME_BYTES) {
            let Some(stamp) = Stamp::read(chunk) else {
                continue;
            };
            let micros = (now.saturating_sub(stamp.sent_ns) / 1_000).clamp(1, MAX_LATENCY_US);
            if stamp.seq == 0 {
                let _ = seen.first_audio_us.record(micros);
            }
            if (self.from_ns..self.to_ns).contains(&stamp.sent_ns) {
                let _ = seen.latency_us.record(micros);
            }
            let _ = seen.interval_latency_us.record(micros);
            if !seen.frames.entry(stamp.call).or_default().insert(stamp.seq) {
                seen.duplicates += 1;
            }
        }
    }

    fn failed(&self, why: String) {
        let mut seen = lock(&self.seen);
        seen.error_count += 1;
        if seen.errors.len() < 10 {
            seen.errors.push(why);
        }
    }
}

/// One accepted connection.
struct Session {
    acceptor: TlsAcceptor,
    expected: String,
    recorder: Arc<Recorder>,
}

impl Session {
    async fn run(self, tcp: TcpStream) {
        self.recorder.live.fetch_add(1, Ordering::Relaxed);
        if let Err(error) = self.serve(tcp).await {
            self.recorder.failed(format!("{error:#}"));
        }
        self.recorder.live.fetch_sub(1, Ordering::Relaxed);
    }

    async fn serve(&self, tcp: TcpStream) -> anyhow::Result<()> {
        tcp.set_nodelay(true)?;
        let Ok(tls) = self.acceptor.accept(tcp).await else {
            lock(&self.recorder.seen).aborted_handshakes += 1;
            return Ok(());
        };
        let expected = self.expected.as_str();
        let recorder = &self.recorder;
        #[allow(clippy::result_large_err, reason = "the error type is tungstenite's")]
        let check = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
            let authorized = request.headers().get("authorization").is_some_and(|value| value.as_bytes() == expected.as_bytes());
            if authorized {
                Ok(response)
            } else {
                lock(&recorder.seen).unauthorized += 1;
                let mut refusal = ErrorResponse::new(Some("unauthorized".to_owned()));
                *refusal.status_mut() = http::StatusCode::UNAUTHORIZED;
                Err(refusal)
            }
        };
        let socket = match tokio_tungstenite::accept_hdr_async_with_config(tls, check, Some(crate::wire::lean())).await {
            Ok(socket) => socket,
            // Refused for its key (counted above), or cut off.
            Err(tokio_tungstenite::tungstenite::Error::Http(_)) => return Ok(()),
            Err(_) => {
                lock(&self.recorder.seen).aborted_handshakes += 1;
                return Ok(());
            }
        };
        lock(&self.recorder.seen).connections += 1;
        let (mut sink, mut stream) = socket.split();
        let (mut audio_bytes, mut finalized_bytes) = (0u64, 0u64);
        // Audio is a byte stream: a relay may split it into messages anywhere (the voice
        // pipeline sends a backlog in messages of up to 250 ms), so frames are cut from
        // the stream, not from each message.
        let mut partial: Vec<u8> = Vec::with_capacity(FRAME_BYTES);
        let outcome = self.read_loop(&mut sink, &mut stream, &mut partial, &mut audio_bytes, &mut finalized_bytes).await;
        lock(&self.recorder.seen).stray_bytes += partial.len() as u64;
        outcome
    }

    async fn read_loop<S, R>(
        &self,
        sink: &mut S,
        stream: &mut R,
        partial: &mut Vec<u8>,
        audio_bytes: &mut u64,
        finalized_bytes: &mut u64,
    ) -> anyhow::Result<()>
    where
        S: futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
        R: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
    {
        while let Some(message) = stream.next().await {
            match message? {
                Message::Binary(message) => {
                    let mut data: &[u8] = &message;
                    if !partial.is_empty() {
                        let take = (FRAME_BYTES - partial.len()).min(data.len());
                        partial.extend_from_slice(&data[..take]);
                        data = &data[take..];
                        if partial.len() == FRAME_BYTES {
                            self.recorder.audio(partial);
                            partial.clear();
                        }
                    }
                    let whole = data.len() / FRAME_BYTES * FRAME_BYTES;
                    self.recorder.audio(&data[..whole]);
                    partial.extend_from_slice(&data[whole..]);
                    *audio_bytes += message.len() as u64;
                    if *audio_bytes - *finalized_bytes >= FINAL_EVERY_BYTES {
                        sink.send(Message::Text(final_result(*finalized_bytes, *audio_bytes).into())).await?;
                        *finalized_bytes = *audio_bytes;
                    }
                }
                Message::Text(text) if text.contains("\"KeepAlive\"") => lock(&self.recorder.seen).keepalives += 1,
                Message::Text(text) if text.contains("\"CloseStream\"") => {
                    lock(&self.recorder.seen).close_streams += 1;
                    sink.send(Message::Text(METADATA.into())).await?;
                    sink.send(Message::Close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() }))).await?;
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
        Ok(())
    }
}

/// A final `Results` covering audio bytes `from..to` of the stream, with no words.
fn final_result(from: u64, to: u64) -> String {
    let seconds = |bytes: u64| bytes as f64 / 8_000.0;
    format!(
        r#"{{"type":"Results","channel_index":[0,1],"start":{:.3},"duration":{:.3},"is_final":true,"speech_final":false,"channel":{{"alternatives":[{{"transcript":"","confidence":0.0,"words":[]}}]}}}}"#,
        seconds(from),
        seconds(to - from)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_final_result_covers_the_audio_since_the_last() -> anyhow::Result<()> {
        let result: serde_json::Value = serde_json::from_str(&final_result(8_000, 20_000))?;
        assert_eq!((result["start"].as_f64(), result["duration"].as_f64()), (Some(1.0), Some(1.5)));
        assert_eq!(result["is_final"], true);
        Ok(())
    }

    #[test]
    fn a_frame_set_counts_distinct_frames() {
        let mut set = FrameSet::default();
        assert!(set.insert(0));
        assert!(set.insert(130));
        assert!(!set.insert(130));
        assert_eq!(set.count(), 2);
    }
}
