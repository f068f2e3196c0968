//! The HTTP benchmark: how much latency one `wasi:http` request gains by going through
//! Switchboard, against a native hyper client making the same request.
//!
//! An HTTPS server in the harness answers `GET /ping` with four bytes. `native-fetch` (hyper
//! over tokio-rustls, one kept-alive connection) and the fetch test guest under `switchboard
//! serve` (`time <n> <url>`: the same `GET`s through `wasi:http`) each make `requests`
//! requests one after another, timing each from sending to the end of its body on their own
//! clock. Both run as processes on the systems' CPUs, in alternating rounds.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::body::Bytes;
use serde::Serialize;
use switchboard::config::{FileComponent, FileConfig, FileLimits, FileOperator, FileRoute};
use switchboard_sim::tls::TestCa;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use crate::sut::{Serving, pinned, serve_file};

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Requests timed per round and system.
    pub requests: u32,
    /// Requests made first in each round and not timed.
    pub warmup: u32,
    /// Rounds (each system once per round).
    pub rounds: u32,
    /// Directory of the `switchboard` and `native-fetch` binaries.
    pub bin_dir: PathBuf,
    /// Scratch space.
    pub work_dir: PathBuf,
    /// `taskset` CPU list for the systems, if pinned.
    pub cpus: Option<String>,
    /// The fetch test guest.
    pub fetch_wasm: PathBuf,
}

/// One round's figures for one system, microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Figures {
    /// Requests timed.
    pub n: u32,
    /// Requests that failed.
    pub failed: u32,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Mean.
    pub mean_us: u64,
}

impl Figures {
    /// Parses `time n=.. failed=.. p50_us=.. p90_us=.. p99_us=.. mean_us=..`.
    pub fn parse(line: &str) -> anyhow::Result<Figures> {
        let value = |key: &str| -> anyhow::Result<u64> {
            let found = line.split_whitespace().find_map(|word| word.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')));
            found.with_context(|| format!("no {key} in {line:?}"))?.parse().with_context(|| format!("{key} in {line:?}"))
        };
        anyhow::ensure!(line.starts_with("time "), "not a timing line: {line:?}");
        Ok(Figures {
            n: u32::try_from(value("n")?)?,
            failed: u32::try_from(value("failed")?)?,
            p50_us: value("p50_us")?,
            p90_us: value("p90_us")?,
            p99_us: value("p99_us")?,
            mean_us: value("mean_us")?,
        })
    }
}

/// Every round of both systems (the speech-back benchmark's too).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    /// The native baseline, per round.
    pub native: Vec<Figures>,
    /// Switchboard, per round.
    pub switchboard: Vec<Figures>,
}

impl Outcome {
    /// The median over rounds of one figure.
    pub fn median(rounds: &[Figures], figure: impl Fn(&Figures) -> u64) -> u64 {
        let mut values: Vec<u64> = rounds.iter().map(figure).collect();
        values.sort_unstable();
        values.get(values.len() / 2).copied().unwrap_or(0)
    }

    /// The side-by-side table.
    pub fn table(&self) -> String {
        self.labelled("native hyper client", "Switchboard guest (wasi:http)")
    }

    /// The side-by-side table with these names for the two rows (medians over rounds,
    /// then what Switchboard adds).
    pub fn labelled(&self, native_name: &str, switchboard_name: &str) -> String {
        let mut text = String::from("| | p50 | p90 | p99 | mean |\n|---|---|---|---|---|\n");
        let row = |name: &str, rounds: &[Figures]| {
            format!(
                "| {name} | {} µs | {} µs | {} µs | {} µs |\n",
                Self::median(rounds, |f| f.p50_us),
                Self::median(rounds, |f| f.p90_us),
                Self::median(rounds, |f| f.p99_us),
                Self::median(rounds, |f| f.mean_us)
            )
        };
        text.push_str(&row(native_name, &self.native));
        text.push_str(&row(switchboard_name, &self.switchboard));
        let added = |figure: fn(&Figures) -> u64| {
            let (native, switchboard) = (Self::median(&self.native, figure), Self::median(&self.switchboard, figure));
            format!("+{} µs ({:.2}x)", switchboard.saturating_sub(native), switchboard as f64 / native.max(1) as f64)
        };
        text.push_str(&format!(
            "| added by Switchboard | {} | {} | {} | {} |\n",
            added(|f| f.p50_us),
            added(|f| f.p90_us),
            added(|f| f.p99_us),
            added(|f| f.mean_us)
        ));
        text
    }
}

/// Runs the benchmark.
pub async fn run(plan: &Plan, mut progress: impl FnMut(&str)) -> anyhow::Result<Outcome> {
    let ca = TestCa::new()?;
    let server = serve_ping(ca.server_config()?).await?;
    let url = format!("https://localhost:{}/ping", server.port());
    let switchboard = start_switchboard(plan, &server, ca.pem_path()).await?;
    let mut outcome = Outcome::default();
    for round in 1..=plan.rounds {
        let native = run_native(plan, &url, ca.pem_path()).await?;
        progress(&format!("round {round}: native      {native:?}"));
        outcome.native.push(native);
        let guest = run_guest(plan, &format!("ws://{}/fetch", switchboard.listen), &url).await?;
        progress(&format!("round {round}: switchboard {guest:?}"));
        outcome.switchboard.push(guest);
    }
    Ok(outcome)
}

async fn serve_ping(tls: Arc<rustls::ServerConfig>) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else { return };
                let service = hyper::service::service_fn(|_request| async {
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(b"pong"))))
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), service).await;
            });
        }
    });
    Ok(addr)
}

async fn run_native(plan: &Plan, url: &str, ca: &std::path::Path) -> anyhow::Result<Figures> {
    let output = pinned(plan.cpus.as_deref())
        .arg(plan.bin_dir.join("native-fetch"))
        .args(["--url", url, "--requests", &plan.requests.to_string(), "--warmup", &plan.warmup.to_string(), "--ca"])
        .arg(ca)
        .stdin(Stdio::null())
        .output()
        .await
        .context("running native-fetch")?;
    anyhow::ensure!(output.status.success(), "native-fetch failed: {}", String::from_utf8_lossy(&output.stderr));
    Figures::parse(String::from_utf8_lossy(&output.stdout).trim())
}

/// `switchboard serve` with the fetch guest allowed to reach the ping server.
async fn start_switchboard(plan: &Plan, server: &SocketAddr, ca: &std::path::Path) -> anyhow::Result<Serving> {
    let mut limits = FileLimits::default();
    // The guest makes its requests back to back: its bursts are long but not loops.
    limits.set("cpu_burst_ms", 600_000)?;
    limits.set("cpu_total_ms", 3_600_000)?;
    limits.set("max_http_requests", 100_000_000)?;
    let fetch = FileComponent {
        wasm: Some(plan.fetch_wasm.clone()),
        allow_outbound: vec![format!("https://localhost:{}", server.port())],
        extra_ca_certs: vec![ca.to_owned()],
        limits,
        ..FileComponent::default()
    };
    let file = FileConfig {
        data_dir: Some(plan.work_dir.join("fetch-data")),
        operator: Some(FileOperator { listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))), ..FileOperator::default() }),
        routes: vec![FileRoute {
            path: "/fetch".to_owned(),
            component: "fetch".to_owned(),
            idle_timeout_ms: Some(3_600_000),
            ..FileRoute::default()
        }],
        components: [("fetch".to_owned(), fetch)].into_iter().collect(),
        ..FileConfig::default()
    };
    serve_file(&plan.bin_dir, &plan.work_dir, plan.cpus.as_deref(), "fetch", file).await
}

async fn run_guest(plan: &Plan, call_url: &str, url: &str) -> anyhow::Result<Figures> {
    let (mut socket, _) = tokio_tungstenite::connect_async(call_url).await.context("calling the fetch guest")?;
    let mut ask = async |command: String| -> anyhow::Result<String> {
        socket.send(Message::text(command)).await?;
        loop {
            match socket.next().await.context("the call ended")?? {
                Message::Text(text) => return Ok(text.to_string()),
                Message::Close(frame) => anyhow::bail!("the call closed: {frame:?}"),
                _ => {}
            }
        }
    };
    ask(format!("time {} {url}", plan.warmup)).await?;
    let figures = Figures::parse(&ask(format!("time {} {url}", plan.requests)).await?)?;
    let _ = socket.close(None).await;
    Ok(figures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_lines_parse_and_tables_compare() {
        let native = Figures::parse("time n=5000 failed=0 p50_us=40 p90_us=50 p99_us=80 mean_us=42").expect("parses");
        assert_eq!(native, Figures { n: 5000, failed: 0, p50_us: 40, p90_us: 50, p99_us: 80, mean_us: 42 });
        let guest = Figures::parse("time n=5000 failed=0 p50_us=100 p90_us=120 p99_us=200 mean_us=105").expect("parses");
        let table = Outcome { native: vec![native], switchboard: vec![guest] }.table();
        assert!(table.contains("| added by Switchboard | +60 µs (2.50x) |"), "{table}");
        assert!(Figures::parse("many ok=1").is_err());
    }
}
