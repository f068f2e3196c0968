//! The languages benchmark: the same relay component written in Rust, TypeScript and
//! Python (`tests/guests/relay`, `sdk/js/examples/relay.ts`, `sdk/python/examples/relay`),
//! side by side.
//!
//! For each: its size, the time to instantiate it per call (pooling allocator, as the host
//! does), then a `switchboard serve` process of its own relaying `calls` paced callers
//! (one 160-byte binary frame every 20 ms, as Twilio sends) to a plain `ws://` echo server
//! in the harness: the host's memory per live call (RSS with the calls up, less RSS before
//! them, over the calls) and its CPU time per relayed message (each echo is two: caller to
//! echo server and back).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use switchboard::config::{FileComponent, FileConfig, FileOperator, FileRoute};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use crate::procfs::{cpu_seconds, rss_bytes};
use crate::sut::serve_file;

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Concurrent relayed calls per language.
    pub calls: u32,
    /// Seconds the calls are measured for.
    pub measure_secs: u64,
    /// Instantiations timed per language.
    pub iterations: u32,
    /// Directory of the `switchboard` binary.
    pub bin_dir: PathBuf,
    /// Scratch space (configurations, logs, the artifact store).
    pub work_dir: PathBuf,
    /// `taskset` CPU list for the host, if pinned.
    pub cpus: Option<String>,
    /// The relay component in each language.
    pub components: Vec<(&'static str, PathBuf)>,
}

/// One language's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    /// `Rust`, `TypeScript`, `Python`.
    pub language: &'static str,
    /// The component file's size, MiB.
    pub size_mib: f64,
    /// Store plus instance per call, median, µs.
    pub instantiate_p50_us: f64,
    /// 99th percentile, µs.
    pub instantiate_p99_us: f64,
    /// Host RSS per live relayed call, KiB.
    pub memory_per_call_kib: f64,
    /// Host CPU time per relayed message, µs.
    pub cpu_per_message_us: f64,
    /// Messages relayed while measuring.
    pub messages: u64,
    /// Frames sent that did not come back by the end.
    pub lost: u64,
}

/// Runs every language in `plan`; `progress` gets a line per step.
pub async fn run(plan: &Plan, mut progress: impl FnMut(String)) -> anyhow::Result<Vec<Figures>> {
    let echo = EchoServer::start().await?;
    let mut all = Vec::new();
    for (language, wasm) in &plan.components {
        progress(format!("languages: {language}: compiling and timing {} instantiations", plan.iterations));
        let (p50, p99) = instantiation(wasm, plan.iterations).await?;
        progress(format!("languages: {language}: {} calls for {} s through switchboard serve", plan.calls, plan.measure_secs));
        let (memory, cpu, messages, lost) = relay_calls(plan, language, wasm, echo.addr).await?;
        let size_mib = std::fs::metadata(wasm)?.len() as f64 / 1_048_576.0;
        all.push(Figures {
            language,
            size_mib,
            instantiate_p50_us: p50,
            instantiate_p99_us: p99,
            memory_per_call_kib: memory,
            cpu_per_message_us: cpu,
            messages,
            lost,
        });
    }
    Ok(all)
}

fn component(wasm: &Path, echo: Option<SocketAddr>) -> FileComponent {
    let mut file = FileComponent { wasm: Some(wasm.to_owned()), ..FileComponent::default() };
    if let Some(echo) = echo {
        file.allow_outbound.push(format!("ws://{echo}"));
        file.settings.insert("target".to_owned(), format!("ws://{echo}/"));
    }
    file
}

async fn instantiation(wasm: &Path, iterations: u32) -> anyhow::Result<(f64, f64)> {
    let file = FileConfig {
        routes: vec![FileRoute { path: "/relay".to_owned(), component: "relay".to_owned(), ..FileRoute::default() }],
        components: [("relay".to_owned(), component(wasm, None))].into_iter().collect(),
        ..FileConfig::default()
    };
    let config = switchboard::Config::from_file(file, "languages benchmark", Path::new("."), &|_| None)?;
    let relay = config.components.get("relay").context("the relay component")?;
    let figures = crate::instantiate::measure(relay, true, iterations, iterations / 10).await?;
    Ok((figures.p50_us, figures.p99_us))
}

/// Memory per call (KiB), CPU per relayed message (µs), messages relayed, frames lost.
async fn relay_calls(plan: &Plan, language: &str, wasm: &Path, echo: SocketAddr) -> anyhow::Result<(f64, f64, u64, u64)> {
    let file = FileConfig {
        max_concurrent_calls: Some(plan.calls.max(16) * 2),
        data_dir: Some(plan.work_dir.join("languages-data")),
        operator: Some(FileOperator { listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))), ..FileOperator::default() }),
        routes: vec![FileRoute { path: "/relay".to_owned(), component: "relay".to_owned(), ..FileRoute::default() }],
        components: [("relay".to_owned(), component(wasm, Some(echo)))].into_iter().collect(),
        ..FileConfig::default()
    };
    let name = format!("languages-{}", language.to_lowercase());
    let serving = serve_file(&plan.bin_dir, &plan.work_dir, plan.cpus.as_deref(), &name, file).await?;
    let url = format!("ws://{}/relay", serving.listen);
    // One call first, so what the first call sets up once is not counted per call.
    Caller::connect(&url).await?.round_trip().await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = rss_bytes(serving.pid)?;

    let mut callers = Vec::new();
    for _ in 0..plan.calls {
        callers.push(Caller::connect(&url).await?);
    }
    let received = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let until = tokio::time::Instant::now() + Duration::from_secs(plan.measure_secs) + Duration::from_secs(1);
    let cpu_start = cpu_seconds(serving.pid)?;
    let received_start = received.load(Ordering::Relaxed);
    let mut tasks = Vec::new();
    for caller in callers {
        tasks.push(tokio::spawn(caller.paced(until, sent.clone(), received.clone())));
    }
    tokio::time::sleep(Duration::from_secs(plan.measure_secs / 2)).await;
    let rss_during = rss_bytes(serving.pid)?;
    for task in tasks {
        task.await??;
    }
    let cpu = cpu_seconds(serving.pid)? - cpu_start;
    let echoed = received.load(Ordering::Relaxed) - received_start;
    let messages = echoed * 2;
    let lost = sent.load(Ordering::Relaxed).saturating_sub(received.load(Ordering::Relaxed));
    let memory_kib = rss_during.saturating_sub(rss_before) as f64 / 1024.0 / f64::from(plan.calls.max(1));
    let cpu_us = if messages == 0 { f64::NAN } else { cpu * 1e6 / messages as f64 };
    Ok((memory_kib, cpu_us, messages, lost))
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One caller of the relay.
struct Caller(Socket);

impl Caller {
    async fn connect(url: &str) -> anyhow::Result<Self> {
        let (socket, _) = tokio_tungstenite::connect_async(url).await.with_context(|| format!("connecting to {url}"))?;
        Ok(Caller(socket))
    }

    async fn round_trip(mut self) -> anyhow::Result<()> {
        self.0.send(Message::binary(vec![0x7f; 160])).await?;
        let echoed = tokio::time::timeout(Duration::from_secs(30), self.0.next()).await.context("no echo")?;
        anyhow::ensure!(matches!(echoed, Some(Ok(Message::Binary(_)))), "unexpected answer: {echoed:?}");
        let _ = self.0.close(None).await;
        Ok(())
    }

    /// Sends a 160-byte frame every 20 ms until `until`, counting echoes; then waits a
    /// second for the last ones and closes.
    async fn paced(self, until: tokio::time::Instant, sent: Arc<AtomicU64>, received: Arc<AtomicU64>) -> anyhow::Result<()> {
        let (mut sink, mut stream) = self.0.split();
        let reading = tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                if message.is_binary() {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        let frame = Message::binary(vec![0x7f; 160]);
        while tokio::time::Instant::now() < until {
            tick.tick().await;
            sink.send(frame.clone()).await?;
            sent.fetch_add(1, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let _ = sink.close().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), reading).await;
        Ok(())
    }
}

/// A plain `ws://` server that echoes every message.
struct EchoServer {
    addr: SocketAddr,
}

impl EchoServer {
    async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let Ok(mut socket) = tokio_tungstenite::accept_async(tcp).await else { return };
                    while let Some(Ok(message)) = socket.next().await {
                        if (message.is_binary() || message.is_text()) && socket.send(message).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Ok(EchoServer { addr })
    }
}

/// The figures as a Markdown table, each with its ratio to the first language's (Rust).
pub fn table(figures: &[Figures]) -> String {
    let mut out = String::from(
        "| language | component | instantiation p50 (p99) | vs Rust | memory per call | vs Rust | CPU per relayed message | vs Rust | messages (lost) |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    let Some(base) = figures.first() else { return out };
    let ratio = |value: f64, base: f64| if base > 0.0 { format!("{:.1}x", value / base) } else { "-".to_owned() };
    for f in figures {
        out.push_str(&format!(
            "| {} | {:.1} MiB | {:.1} µs ({:.1}) | {} | {:.0} KiB | {} | {:.1} µs | {} | {} ({}) |\n",
            f.language,
            f.size_mib,
            f.instantiate_p50_us,
            f.instantiate_p99_us,
            ratio(f.instantiate_p50_us, base.instantiate_p50_us),
            f.memory_per_call_kib,
            ratio(f.memory_per_call_kib, base.memory_per_call_kib),
            f.cpu_per_message_us,
            ratio(f.cpu_per_message_us, base.cpu_per_message_us),
            f.messages,
            f.lost,
        ));
    }
    out
}
