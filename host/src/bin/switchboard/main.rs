//! The `switchboard` binary: parses the command line and hands each command to its module.
//!
//! ```text
//! switchboard demo                  # a whole call, offline: simulated Twilio and Deepgram
//! switchboard demo --agent          # a conversation with the voice agent, offline
//! switchboard serve                 # built-in defaults: voice pipeline on 127.0.0.1:8080
//! switchboard serve --config switchboard.toml
//! switchboard check --config switchboard.toml
//! switchboard calls --outcome failed
//! switchboard new my-component --lang ts
//! ```

mod args;
mod calls;
mod check;
mod compile;
#[cfg(feature = "demo")]
mod demo;
#[cfg(feature = "demo")]
mod demo_agent;
mod deploy;
mod new;
mod operator;
mod serve;

use clap::Parser;

use args::{Cli, Command, LogFormat};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The demo prints its own timeline; the log repeats it only when asked (RUST_LOG).
    let default_filter = if matches!(cli.command, Command::Demo { .. }) { "warn" } else { "info" };
    init_logging(cli.log_format, default_filter);
    match cli.command {
        Command::Demo { speed, drop_deepgram_after, agent } => run_demo(speed, drop_deepgram_after, agent).await,
        Command::Serve { config, listen, operator_listen, ready_file } => serve::run(config, listen, operator_listen, ready_file).await,
        Command::Push { file, reference } => deploy::push(&file, &reference).await,
        Command::Deploy { operator, admin_token_env, action } => deploy::run(&operator, &admin_token_env, action).await,
        Command::Calls { operator, db, outcome, leg, limit, action } => calls::run(&operator, db, outcome, leg, limit, action).await,
        Command::Compile { config, files } => compile::run(config, files).await,
        Command::New { name, lang, dir, switchboard_source } => new::run(&name, lang, dir, switchboard_source),
        Command::Check { config } => check::run(config).await,
    }
}

#[cfg(feature = "demo")]
async fn run_demo(speed: f64, drop_deepgram_after: Option<f64>, agent: bool) -> anyhow::Result<()> {
    if agent { demo_agent::run().await } else { demo::run(speed, drop_deepgram_after).await }
}

#[cfg(not(feature = "demo"))]
async fn run_demo(_speed: f64, _drop_deepgram_after: Option<f64>, _agent: bool) -> anyhow::Result<()> {
    anyhow::bail!("this switchboard was built without the `demo` feature (its simulators); build it with `--features demo`")
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
