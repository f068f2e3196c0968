//! The `switchboard` binary.
//!
//! ```text
//! switchboard demo                  # a whole call, offline: simulated Twilio and Deepgram
//! switchboard serve                 # built-in defaults: voice pipeline on 127.0.0.1:8080
//! switchboard serve --config switchboard.toml
//! switchboard check --config switchboard.toml
//! ```

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use switchboard::{Config, Switchboard};

#[derive(Debug, Parser)]
#[command(name = "switchboard", version, about = "Sandboxed WebSocket edge runtime for real-time voice")]
struct Cli {
    /// Log format.
    #[arg(long, value_enum, default_value = "text", global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum CallsAction {
    /// One call's timeline, the cause of a failure first.
    Show {
        /// Call id (`call-N`), Twilio call SID or stream SID.
        key: String,
    },
}

#[derive(Debug, Subcommand)]
enum DeployAction {
    /// Upload a component file as the new version of COMPONENT.
    Upload {
        /// The component's name in the host's configuration.
        component: String,
        /// The `.wasm` file.
        file: PathBuf,
    },
    /// List every component version.
    List,
    /// Make an earlier version current again (default: the one before the current).
    Rollback {
        /// The component's name.
        component: String,
        /// The version number to return to.
        #[arg(long)]
        to: Option<u32>,
    },
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a whole call offline: a simulated Twilio call playing bundled speech, the
    /// bundled voice-pipeline component, and a local Deepgram-protocol simulator over wss
    /// (it does no recognition: it reports speech segments by energy). Prints the call's
    /// timeline as it happens, then a summary.
    Demo {
        /// Caller playback speed (1.0 = real time; the bundled speech lasts 13.2 s).
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Make the simulator drop the first Deepgram session with 1011 after this many
        /// seconds of audio, to watch a reconnect that loses nothing.
        #[arg(long)]
        drop_deepgram_after: Option<f64>,
    },
    /// Serve calls. Without --config: the bundled voice pipeline on /twilio/media at
    /// 127.0.0.1:8080, allowed to reach wss://api.deepgram.com with
    /// `Authorization: Token $DEEPGRAM_API_KEY`.
    Serve {
        /// TOML configuration file.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Override the configured listen address.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Recent calls from the call store, one line each (reads the database directly).
    Calls {
        /// TOML configuration file (for its `data_dir`).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The database, instead of `<data_dir>/calls.db`.
        #[arg(long)]
        db: Option<PathBuf>,
        /// Only calls with this outcome: live, ok, degraded, failed, interrupted.
        #[arg(long)]
        outcome: Option<String>,
        /// Only calls whose failing leg is this: twilio, deepgram, outbound, guest, host.
        #[arg(long)]
        leg: Option<String>,
        /// At most this many calls.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(subcommand)]
        action: Option<CallsAction>,
    },
    /// Manage component versions on a running host through its admin API.
    Deploy {
        /// The host's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        host: String,
        /// Environment variable holding the admin token.
        #[arg(long, default_value = "SWITCHBOARD_ADMIN_TOKEN")]
        token_env: String,
        #[command(subcommand)]
        action: DeployAction,
    },
    /// Compile components ahead of time into the artifact store (`data_dir`), so a
    /// start, deploy or rollback of them does not compile.
    Compile {
        /// TOML configuration file (its engine settings and `data_dir`).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Component files to compile besides the configured ones.
        files: Vec<PathBuf>,
    },
    /// Validate the configuration and check every component against the host's imports
    /// and the expected export, without serving.
    Check {
        /// TOML configuration file.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

fn load_config(path: Option<&PathBuf>) -> anyhow::Result<Config> {
    Ok(match path {
        Some(path) => Config::load(path)?,
        None => Config::builtin()?,
    })
}

fn init_logging(format: LogFormat, default_filter: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The demo prints its own timeline; the log repeats it only when asked (RUST_LOG).
    let default_filter = if matches!(cli.command, Command::Demo { .. }) { "warn" } else { "info" };
    init_logging(cli.log_format, default_filter);
    match cli.command {
        Command::Demo { speed, drop_deepgram_after } => {
            if !(0.1..=100.0).contains(&speed) {
                anyhow::bail!("--speed must be between 0.1 and 100");
            }
            let options =
                switchboard::demo::DemoOptions { speed, drop_deepgram_after: drop_deepgram_after.map(std::time::Duration::from_secs_f64) };
            #[allow(clippy::print_stdout)]
            let report = switchboard::demo::run(options, |line| println!("{line}")).await?;
            if !report.delivered_exactly || report.close_code != Some(1000) {
                anyhow::bail!("the demo call did not complete cleanly");
            }
        }
        Command::Serve { config, listen } => {
            let mut config = load_config(config.as_ref())?;
            if let Some(listen) = listen {
                config.listen = listen;
            }
            let address = config.listen;
            let host = tokio::task::spawn_blocking(move || Switchboard::new(config)).await??;
            let listener = tokio::net::TcpListener::bind(address).await.with_context(|| format!("cannot listen on {address}"))?;
            let shutdown = async {
                let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(signal) => signal,
                    Err(error) => {
                        tracing::error!("cannot listen for SIGTERM: {error}");
                        let _ = tokio::signal::ctrl_c().await;
                        return;
                    }
                };
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
                tracing::info!("shutting down: no new calls are accepted; draining live calls");
            };
            host.serve(listener, shutdown).await?;
        }
        Command::Deploy { host, token_env, action } => {
            let token = std::env::var(&token_env).with_context(|| format!("the admin token variable `{token_env}` is not set"))?;
            let (method, path, body, content_type) = match &action {
                DeployAction::Upload { component, file } => {
                    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
                    (http::Method::PUT, format!("/components/{component}"), bytes, "application/wasm")
                }
                DeployAction::List => (http::Method::GET, "/components".to_owned(), Vec::new(), "application/json"),
                DeployAction::Rollback { component, to } => {
                    let body = to.map(|n| serde_json::json!({ "to": n }).to_string().into_bytes()).unwrap_or_default();
                    (http::Method::POST, format!("/components/{component}/rollback"), body, "application/json")
                }
            };
            let answer = switchboard::admin_client::request(&host, &token, method, &path, body, content_type).await?;
            #[allow(clippy::print_stdout)]
            {
                println!("{}", serde_json::to_string_pretty(&answer)?);
            }
        }
        Command::Calls { config, db, outcome, leg, limit, action } => {
            let path = match db {
                Some(path) => path,
                None => {
                    load_config(config.as_ref())?.data_dir.map(|dir| dir.join("calls.db")).context("no data_dir configured: pass --db")?
                }
            };
            let store = switchboard::store::CallStore::open_read_only(&path).with_context(|| format!("opening {}", path.display()))?;
            let lines = match action {
                None => switchboard::calls_cli::list(&store, outcome, leg, limit)?,
                Some(CallsAction::Show { key }) => switchboard::calls_cli::show(&store, &key)?,
            };
            #[allow(clippy::print_stdout)]
            for line in lines {
                println!("{line}");
            }
        }
        Command::Compile { config, files } => {
            let config = load_config(config.as_ref())?;
            let report = tokio::task::spawn_blocking(move || switchboard::host::precompile(&config, &files)).await??;
            #[allow(clippy::print_stdout)]
            for line in report {
                println!("{line}");
            }
        }
        Command::Check { config } => {
            let config = load_config(config.as_ref())?;
            let components: Vec<String> = config.components.keys().cloned().collect();
            tokio::task::spawn_blocking(move || Switchboard::new(config)).await??;
            #[allow(clippy::print_stdout)]
            for name in components {
                println!("component `{name}`: ok (imports provided, exports switchboard:call/handler)");
            }
        }
    }
    Ok(())
}
