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
    /// 127.0.0.1:8080 (the operator listener at 127.0.0.1:9090), allowed to reach
    /// wss://api.deepgram.com with `Authorization: Token $DEEPGRAM_API_KEY`.
    Serve {
        /// TOML configuration file.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Override the configured public listen address.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Override the configured operator listen address.
        #[arg(long)]
        operator_listen: Option<std::net::SocketAddr>,
    },
    /// Recent calls, one line each, from a running host's operator listener (or, with
    /// --db, from a call store on disk).
    Calls {
        #[command(flatten)]
        operator: OperatorArgs,
        /// Read this call store database directly instead of asking a host.
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
    /// Manage component versions on a running host through its deploy API.
    Deploy {
        #[command(flatten)]
        operator: OperatorArgs,
        /// Environment variable holding the admin token.
        #[arg(long, default_value = "SWITCHBOARD_ADMIN_TOKEN")]
        admin_token_env: String,
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

/// Where a running host's operator listener is, and how to talk to it.
#[derive(Debug, clap::Args)]
struct OperatorArgs {
    /// The operator listener's URL, e.g. https://10.0.0.5:9090 (default: from --config,
    /// else http://127.0.0.1:9090).
    #[arg(long)]
    operator: Option<String>,
    /// The host's configuration file, to find its operator listener (no secret is read).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Environment variable holding the operator (read) token, sent when set.
    #[arg(long, default_value = "SWITCHBOARD_OPERATOR_TOKEN")]
    token_env: String,
    /// A PEM file of CA certificates to trust for an https:// operator listener.
    #[arg(long)]
    ca_cert: Option<PathBuf>,
}

impl OperatorArgs {
    /// A client of the listener, sending the token from `token_env` when it is set.
    fn client(&self, token_env: &str) -> anyhow::Result<switchboard::client::OperatorClient> {
        let base = match &self.operator {
            Some(url) => url.clone(),
            None => switchboard::config::OperatorAddress::load(self.config.as_deref())?.url(),
        };
        let mut client = switchboard::client::OperatorClient::new(&base)?;
        if let Some(token) = std::env::var(token_env).ok().filter(|t| !t.is_empty()) {
            client = client.token(&token);
        }
        if let Some(ca) = &self.ca_cert {
            client = client.trust_pem_file(ca)?;
        }
        Ok(client)
    }
}

fn load_config(path: Option<&PathBuf>, overrides: switchboard::config::Overrides) -> anyhow::Result<Config> {
    Ok(match path {
        Some(path) => Config::load_with(path, overrides)?,
        None => Config::builtin_with(overrides)?,
    })
}

fn init_logging(format: LogFormat, default_filter: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    // Colours only on a terminal: a log file or journald gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
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
        Command::Serve { config, listen, operator_listen } => {
            let config = load_config(config.as_ref(), switchboard::config::Overrides { listen, operator_listen })?;
            let host = tokio::task::spawn_blocking(move || Switchboard::new(config)).await??;
            let listeners = host.bind().await?;
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
            };
            host.serve(listeners, shutdown).await?;
        }
        Command::Deploy { operator, admin_token_env, action } => {
            if std::env::var(&admin_token_env).map_or(true, |t| t.is_empty()) {
                anyhow::bail!("the admin token variable `{admin_token_env}` is not set");
            }
            let client = operator.client(&admin_token_env)?;
            let answer = match &action {
                DeployAction::Upload { component, file } => {
                    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
                    client.upload(component, bytes).await?
                }
                DeployAction::List => client.components().await?,
                DeployAction::Rollback { component, to } => client.rollback(component, *to).await?,
            };
            #[allow(clippy::print_stdout)]
            {
                println!("{}", serde_json::to_string_pretty(&answer)?);
            }
        }
        Command::Calls { operator, db, outcome, leg, limit, action } => {
            let lines = match db {
                Some(path) => calls_from_db(&path, outcome, leg, limit, action)?,
                None => {
                    let client = operator.client(&operator.token_env)?;
                    match action {
                        None => {
                            let query = switchboard::client::CallQuery { outcome, leg, limit: Some(limit) };
                            switchboard::calls_cli::list(&client.calls(&query).await?)
                        }
                        Some(CallsAction::Show { key }) => match client.call(&key).await? {
                            Some(detail) => switchboard::calls_cli::show(&detail.call, &detail.timeline),
                            None => vec![no_such_call(&key)],
                        },
                    }
                }
            };
            #[allow(clippy::print_stdout)]
            for line in lines {
                println!("{line}");
            }
        }
        Command::Compile { config, files } => {
            let config = Config::load_without_secrets(config.as_deref())?;
            let report = tokio::task::spawn_blocking(move || switchboard::host::precompile(&config, &files)).await??;
            #[allow(clippy::print_stdout)]
            for line in report {
                println!("{line}");
            }
        }
        Command::Check { config } => {
            let config = load_config(config.as_ref(), Default::default())?;
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

fn no_such_call(key: &str) -> String {
    format!("no call matches {key:?} (a call id, call SID or stream SID)")
}

/// `switchboard calls --db FILE`: the same lines, read from the database on disk.
fn calls_from_db(
    path: &std::path::Path,
    outcome: Option<String>,
    leg: Option<String>,
    limit: u32,
    action: Option<CallsAction>,
) -> anyhow::Result<Vec<String>> {
    let store = switchboard::store::CallStore::open_read_only(path).with_context(|| format!("opening {}", path.display()))?;
    Ok(match action {
        None => switchboard::calls_cli::list(&store.list(&switchboard::store::CallFilter {
            outcome,
            leg,
            limit: Some(limit),
            ..Default::default()
        })?),
        Some(CallsAction::Show { key }) => match store.find(&key)? {
            Some(call) => {
                let timeline = store.timeline(&call.call_id)?;
                switchboard::calls_cli::show(&call, &timeline)
            }
            None => vec![no_such_call(&key)],
        },
    })
}
