//! The systems under test, each started as its own process (so its CPU time and memory
//! can be read from `/proc`), optionally pinned to given CPUs with `taskset`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use switchboard::config::{FileComponent, FileConfig, FileOperator, FileRoute, FileSecretHeader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// Which relay carries the calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum System {
    /// `switchboard serve` with the bundled voice-pipeline component.
    Switchboard,
    /// `native-relay`: the same work in plain Rust, no wasm (the practical limit).
    Native,
    /// `bench/node-relay/relay.js` on Node.js and the `ws` package.
    Node,
}

impl System {
    /// The name in tables and charts.
    pub fn label(self) -> &'static str {
        match self {
            System::Switchboard => "Switchboard",
            System::Native => "native Rust relay",
            System::Node => "Node.js ws relay",
        }
    }
}

/// What every system needs to know.
#[derive(Debug, Clone)]
pub struct Environment {
    /// The fake Deepgram's endpoint, without a query.
    pub deepgram_url: String,
    /// Its origin, for Switchboard's allowlist.
    pub deepgram_origin: String,
    /// The CA that signed the fake Deepgram's certificate.
    pub ca_pem: PathBuf,
    /// The API key the fake Deepgram expects.
    pub api_key: String,
    /// Scratch space: configs, logs, Switchboard's artifact cache.
    pub work_dir: PathBuf,
    /// Directory holding the `switchboard` and `native-relay` binaries.
    pub bin_dir: PathBuf,
    /// Directory of `relay.js`, with `node_modules` installed.
    pub node_relay_dir: PathBuf,
    /// `taskset` CPU list for the system under test, if pinned.
    pub cpus: Option<String>,
    /// The hostile test guest, served beside the voice pipeline on `/hostile/<mode>` when
    /// set (the neighbours benchmark).
    pub hostile_wasm: Option<String>,
}

/// A started system.
pub struct RunningSystem {
    child: Child,
    /// Its process id.
    pub pid: u32,
    /// Where callers connect.
    pub url: String,
}

impl Drop for RunningSystem {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

impl RunningSystem {
    /// Stops the process as an operator would (SIGTERM: Switchboard drains and flushes
    /// its call store), killing it if it is still there after five seconds.
    pub async fn stop(mut self) {
        let _ = tokio::process::Command::new("kill").args(["-TERM", &self.pid.to_string()]).status().await;
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await.is_err() {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
    }
}

/// Why a system cannot run here.
pub fn unavailable(system: System, environment: &Environment) -> Option<String> {
    let missing = |path: &Path| (!path.exists()).then(|| format!("{} is missing", path.display()));
    match system {
        System::Switchboard => missing(&environment.bin_dir.join("switchboard")),
        System::Native => missing(&environment.bin_dir.join("native-relay")),
        System::Node => missing(&environment.node_relay_dir.join("node_modules/ws"))
            .map(|why| format!("{why} (run `npm ci` in {})", environment.node_relay_dir.display()))
            .or_else(|| {
                let found = std::process::Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
                (!found).then(|| "`node` is not installed".to_owned())
            }),
    }
}

/// Starts `system` on a free loopback port, sized for `max_calls`, and waits until it
/// accepts connections.
pub async fn start(system: System, environment: &Environment, max_calls: u32) -> anyhow::Result<RunningSystem> {
    let port = free_port()?;
    let listen = format!("127.0.0.1:{port}");
    let log_path = environment.work_dir.join(format!("{system:?}.log").to_lowercase());
    let log = std::fs::File::create(&log_path)?;
    let mut command = pinned(environment.cpus.as_deref());
    let path = match system {
        System::Switchboard => {
            let config = environment.work_dir.join("switchboard.toml");
            let mut file = switchboard_config(environment, &listen, max_calls)?;
            if let Some(wasm) = &environment.hostile_wasm {
                crate::neighbours::add_routes(&mut file, wasm, &environment.deepgram_url);
            }
            std::fs::write(&config, file.to_toml())?;
            command
                .arg(environment.bin_dir.join("switchboard"))
                .args(["serve", "--config"])
                .arg(&config)
                .env("BENCH_DEEPGRAM_KEY", &environment.api_key)
                .env("RUST_LOG", "warn");
            "/twilio/media"
        }
        System::Native => {
            command
                .arg(environment.bin_dir.join("native-relay"))
                .args(["--listen", &listen, "--deepgram-url", &environment.deepgram_url, "--ca"])
                .arg(&environment.ca_pem)
                .env("DEEPGRAM_API_KEY", &environment.api_key);
            "/"
        }
        System::Node => {
            command
                .args(["node", "relay.js"])
                .current_dir(&environment.node_relay_dir)
                .env("PORT", port.to_string())
                .env("DEEPGRAM_URL", &environment.deepgram_url)
                .env("DEEPGRAM_API_KEY", &environment.api_key)
                .env("NODE_EXTRA_CA_CERTS", &environment.ca_pem);
            "/"
        }
    };
    command.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log).kill_on_drop(true);
    let child = command.spawn().with_context(|| format!("starting {}", system.label()))?;
    let pid = child.id().context("the process has already exited")?;
    let running = RunningSystem { child, pid, url: format!("ws://{listen}{path}") };
    wait_listening(&listen, Duration::from_secs(120))
        .await
        .with_context(|| format!("{} did not start listening; see {}", system.label(), log_path.display()))?;
    Ok(running)
}

fn switchboard_config(environment: &Environment, listen: &str, max_calls: u32) -> anyhow::Result<FileConfig> {
    let pipeline = FileComponent {
        builtin: Some("voice-pipeline".to_owned()),
        allow_outbound: vec![environment.deepgram_origin.clone()],
        extra_ca_certs: vec![environment.ca_pem.clone()],
        settings: [("deepgram_url", environment.deepgram_url.as_str()), ("batch_ms", "20")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        secret_headers: vec![bench_key_header()],
        ..FileComponent::default()
    };
    Ok(FileConfig {
        listen: Some(listen.parse()?),
        max_concurrent_calls: Some(max_calls),
        data_dir: Some(environment.work_dir.join("switchboard-data")),
        operator: Some(FileOperator { listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))), ..FileOperator::default() }),
        routes: vec![FileRoute { path: "/twilio/media".to_owned(), component: "voice-pipeline".to_owned(), ..FileRoute::default() }],
        components: [("voice-pipeline".to_owned(), pipeline)].into_iter().collect(),
        ..FileConfig::default()
    })
}

/// The fake Deepgram's key, injected for `localhost`.
pub fn bench_key_header() -> FileSecretHeader {
    FileSecretHeader {
        host: "localhost".to_owned(),
        name: "Authorization".to_owned(),
        value: "Token ${BENCH_DEEPGRAM_KEY}".to_owned(),
        optional: false,
    }
}

/// A loopback port free right now.
pub fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Waits until something accepts TCP connections on `address`.
pub async fn wait_listening(address: &str, patience: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        if TcpStream::connect(address).await.is_ok() {
            return Ok(());
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "nothing listens on {address} after {patience:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A command that runs pinned to `cpus` with `taskset`, or unpinned (through `env`).
pub fn pinned(cpus: Option<&str>) -> Command {
    match cpus {
        Some(cpus) => {
            let mut command = Command::new("taskset");
            command.args(["-c", cpus]);
            command
        }
        None => Command::new("env"),
    }
}

/// A `switchboard serve` process of its own, killed when dropped.
pub struct Serving {
    _child: Child,
    /// Its process id.
    pub pid: u32,
    /// Its public listen address.
    pub listen: String,
}

/// Runs `switchboard serve` (from `bin_dir`, pinned to `cpus`) on `file` with a free
/// public port, its configuration and log named `name` in `work_dir`; returns once it
/// listens.
pub async fn serve_file(bin_dir: &Path, work_dir: &Path, cpus: Option<&str>, name: &str, mut file: FileConfig) -> anyhow::Result<Serving> {
    let listen = format!("127.0.0.1:{}", free_port()?);
    file.listen = Some(listen.parse()?);
    let config = work_dir.join(format!("{name}.toml"));
    std::fs::write(&config, file.to_toml())?;
    let log = std::fs::File::create(work_dir.join(format!("{name}-switchboard.log")))?;
    let child = pinned(cpus)
        .arg(bin_dir.join("switchboard"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("starting switchboard")?;
    let pid = child.id().context("switchboard exited at once")?;
    wait_listening(&listen, Duration::from_secs(180)).await.context("switchboard did not start listening")?;
    Ok(Serving { _child: child, pid, listen })
}
