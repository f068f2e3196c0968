//! The speech-back benchmark: how long a TTS audio frame takes from leaving Deepgram to
//! reaching Twilio as a `media` message, through the voice agent under `switchboard serve`
//! and through `native-speak` (the same forwarding, natively), side by side.
//!
//! The harness plays Deepgram's speak socket (`wss`) and Twilio (the caller). On each
//! `Flush` the speak server sends `frames` frames of 20 ms mu-law at real time, each
//! stamped with a sequence number in its first bytes, noting when each left. The caller
//! notes when each `media` message arrives and reads the stamp back, so both times are on
//! the harness's clock. The agent's `lead_ms` is set above the frames' jitter, so its
//! pacing holds none back: what is measured is the forwarding itself. Both systems run as
//! processes on the systems' CPUs, in alternating rounds.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use switchboard::config::{FileComponent, FileConfig, FileOperator, FileRoute};
use switchboard_sim::deepgram::DeepgramSim;
use switchboard_sim::tls::TestCa;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use crate::fetch_latency::Figures;
use crate::sut::{Serving, free_port, pinned, serve_file, wait_listening};

/// The greeting's two sentences: two segments, two flushes (the agent flushes the first
/// sentence alone).
const TEXTS: [&str; 2] = ["Hello there.", "This is the rest of the greeting, spoken while the benchmark times every frame of it."];

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Frames sent per flush (20 ms each; two flushes per call).
    pub frames: u32,
    /// Rounds (each system once per round).
    pub rounds: u32,
    /// Directory of the `switchboard` and `native-speak` binaries.
    pub bin_dir: PathBuf,
    /// Scratch space.
    pub work_dir: PathBuf,
    /// `taskset` CPU list for the systems, if pinned.
    pub cpus: Option<String>,
}

/// Every round of both systems.
pub use crate::fetch_latency::Outcome;

/// The side-by-side table.
pub fn table(outcome: &Outcome) -> String {
    outcome.labelled("native relay (TTS frame to Twilio media)", "Switchboard voice agent")
}

/// When each stamped frame left the speak server.
type Sent = Arc<Mutex<HashMap<u32, Instant>>>;

/// Runs the benchmark.
pub async fn run(plan: &Plan, mut progress: impl FnMut(&str)) -> anyhow::Result<Outcome> {
    let ca = TestCa::new()?;
    let sent: Sent = Arc::default();
    let tts = serve_speak(ca.server_config()?, plan.frames, sent.clone()).await?;
    let stt = DeepgramSim::new().start().await?;
    let tts_url = format!("wss://localhost:{}/v1/speak", tts.port());
    let native_listen = format!("127.0.0.1:{}", free_port()?);
    let mut native_args = vec!["--listen".to_owned(), native_listen.clone(), "--tts".to_owned(), tts_url.clone(), "--ca".to_owned()];
    native_args.push(ca.pem_path().display().to_string());
    for text in TEXTS {
        native_args.extend(["--text".to_owned(), text.to_owned()]);
    }
    let _native = pinned(plan.cpus.as_deref())
        .arg(plan.bin_dir.join("native-speak"))
        .args(&native_args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    wait_listening(&native_listen, Duration::from_secs(30)).await.context("native-speak did not start listening")?;
    let switchboard = start_switchboard(plan, &tts_url, &stt.listen_url(), &stt.origin(), tts.port(), ca.pem_path()).await?;
    let expected = plan.frames as usize * TEXTS.len();
    let mut outcome = Outcome::default();
    for round in 1..=plan.rounds {
        let native = call(&format!("ws://{native_listen}/twilio/media"), expected, &sent).await?;
        progress(&format!("round {round}: native      {native:?}"));
        outcome.native.push(native);
        let agent = call(&format!("ws://{}/twilio/media", switchboard.listen), expected, &sent).await?;
        progress(&format!("round {round}: switchboard {agent:?}"));
        outcome.switchboard.push(agent);
    }
    Ok(outcome)
}

/// A Deepgram-protocol speak server: each `Flush` gets `frames` stamped frames at real time.
async fn serve_speak(tls: Arc<rustls::ServerConfig>, frames: u32, sent: Sent) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let next = Arc::new(std::sync::atomic::AtomicU32::new(0));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            let (acceptor, sent, next) = (acceptor.clone(), sent.clone(), next.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else { return };
                let Ok(socket) = tokio_tungstenite::accept_async(stream).await else { return };
                let (mut sink, mut stream) = socket.split();
                let mut flushes = 0u32;
                while let Some(Ok(message)) = stream.next().await {
                    let Message::Text(text) = message else { continue };
                    if !text.as_str().contains("\"Flush\"") {
                        continue;
                    }
                    let mut tick = tokio::time::interval(Duration::from_millis(20));
                    for _ in 0..frames {
                        tick.tick().await;
                        let seq = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let mut frame = vec![0xffu8; 160];
                        frame[..4].copy_from_slice(&seq.to_be_bytes());
                        sent.lock().unwrap_or_else(|p| p.into_inner()).insert(seq, Instant::now());
                        if sink.send(Message::binary(frame)).await.is_err() {
                            return;
                        }
                    }
                    let flushed = serde_json::json!({"type": "Flushed", "sequence_id": flushes});
                    flushes += 1;
                    if sink.send(Message::text(flushed.to_string())).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(addr)
}

/// One simulated Twilio call: waits for `expected` frames and times each.
async fn call(url: &str, expected: usize, sent: &Sent) -> anyhow::Result<Figures> {
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.with_context(|| format!("calling {url}"))?;
    socket.send(Message::text(r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#)).await?;
    let start = serde_json::json!({
        "event": "start", "sequenceNumber": "1", "streamSid": "MZbench",
        "start": {"accountSid": "ACbench", "streamSid": "MZbench", "callSid": "CAbench", "tracks": ["inbound"],
                  "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}, "customParameters": {}},
    });
    socket.send(Message::text(start.to_string())).await?;
    let mut latencies = Vec::with_capacity(expected);
    let mut failed = 0u32;
    let give_up = tokio::time::Instant::now() + Duration::from_millis(expected as u64 * 20 + 30_000);
    while latencies.len() + (failed as usize) < expected {
        let message = tokio::time::timeout_at(give_up, socket.next()).await.context("the frames stopped coming")?;
        let Some(message) = message else { break };
        let arrived = Instant::now();
        let Message::Text(text) = message? else { continue };
        let value: serde_json::Value = serde_json::from_str(text.as_str()).unwrap_or_default();
        if value["event"] != "media" {
            continue;
        }
        let payload = base64::engine::general_purpose::STANDARD.decode(value["media"]["payload"].as_str().unwrap_or_default())?;
        let stamp = payload.get(..4).map(|bytes| u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]));
        match stamp.and_then(|seq| sent.lock().unwrap_or_else(|p| p.into_inner()).get(&seq).copied()) {
            Some(left) => latencies.push(arrived.saturating_duration_since(left).as_micros() as u64),
            None => failed += 1,
        }
    }
    let stop = serde_json::json!({"event": "stop", "sequenceNumber": "2", "streamSid": "MZbench", "stop": {"callSid": "CAbench"}});
    let _ = socket.send(Message::text(stop.to_string())).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), async { while let Some(Ok(_)) = socket.next().await {} }).await;
    anyhow::ensure!(!latencies.is_empty(), "no stamped frame arrived from {url}");
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    Ok(Figures {
        n: latencies.len() as u32,
        failed,
        p50_us: at(0.50),
        p90_us: at(0.90),
        p99_us: at(0.99),
        mean_us: latencies.iter().sum::<u64>() / latencies.len() as u64,
    })
}

/// `switchboard serve` with the bundled voice agent pointed at the harness's servers.
async fn start_switchboard(
    plan: &Plan,
    tts_url: &str,
    stt_url: &str,
    stt_origin: &str,
    tts_port: u16,
    ca: &std::path::Path,
) -> anyhow::Result<Serving> {
    let greeting = TEXTS.join(" ");
    let agent = FileComponent {
        builtin: Some("voice-agent".to_owned()),
        allow_outbound: vec![stt_origin.to_owned(), format!("wss://localhost:{tts_port}")],
        extra_ca_certs: vec![ca.to_owned()],
        settings: [
            ("deepgram_url", stt_url),
            ("tts_url", tts_url),
            ("greeting", greeting.as_str()),
            ("lead_ms", "500"),
            ("min_sentence_chars", "4"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        ..FileComponent::default()
    };
    let file = FileConfig {
        data_dir: Some(plan.work_dir.join("speak-data")),
        operator: Some(FileOperator { listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))), ..FileOperator::default() }),
        routes: vec![FileRoute { path: "/twilio/media".to_owned(), component: "agent".to_owned(), ..FileRoute::default() }],
        components: [("agent".to_owned(), agent)].into_iter().collect(),
        ..FileConfig::default()
    };
    serve_file(&plan.bin_dir, &plan.work_dir, plan.cpus.as_deref(), "speak", file).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_compares_the_medians() {
        let native = Figures { n: 100, failed: 0, p50_us: 50, p90_us: 60, p99_us: 90, mean_us: 52 };
        let agent = Figures { n: 100, failed: 0, p50_us: 150, p90_us: 180, p99_us: 300, mean_us: 160 };
        let table = table(&Outcome { native: vec![native], switchboard: vec![agent] });
        assert!(table.contains("| added by Switchboard | +100 µs (3.00x) | +120 µs (3.00x) | +210 µs (3.33x)"), "{table}");
    }
}
