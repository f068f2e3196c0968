//! The command line: every command, flag and argument of `switchboard`.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "switchboard", version, about = "Sandboxed WebSocket edge runtime for real-time voice")]
pub(crate) struct Cli {
    /// Log format.
    #[arg(long, value_enum, default_value = "text", global = true)]
    pub(crate) log_format: LogFormat,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// The language of a project made by `switchboard new`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Language {
    /// Rust, with `switchboard-guest` and `switchboard-harness`.
    Rust,
    /// TypeScript, built with componentize-js.
    Ts,
    /// Python, built with componentize-py.
    Python,
}

impl Language {
    /// How the language is called in reports.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Language::Rust => "Rust",
            Language::Ts => "TypeScript",
            Language::Python => "Python",
        }
    }

    /// What to run next in a project made at `dir`.
    pub(crate) fn next_steps(self, dir: &std::path::Path) -> String {
        let dir = dir.display();
        match self {
            Language::Rust => format!("next: cd {dir} && cargo test"),
            Language::Ts => format!("next: cd {dir} && npm ci && npm test"),
            Language::Python => format!("next: cd {dir} && ./test.sh"),
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum CallsAction {
    /// One call's timeline, the cause of a failure first.
    Show {
        /// Call id (`call-N`), Twilio call SID or stream SID.
        key: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum DeployAction {
    /// Upload a component file as the new version of COMPONENT.
    Upload {
        /// The component's name in the host's configuration.
        component: String,
        /// The `.wasm` file.
        file: PathBuf,
    },
    /// Point COMPONENT at a component in an OCI registry: pulled by the host, checked
    /// against the reference's digest, and deployed (in a fleet, on every replica).
    Ref {
        /// The component's name.
        component: String,
        /// `oci://registry/repository:tag` or `oci://registry/repository@sha256:…`.
        reference: String,
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
pub(crate) enum Command {
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
        #[arg(long, conflicts_with = "agent")]
        drop_deepgram_after: Option<f64>,
        /// Hold a conversation with the bundled voice agent instead (simulated LLM and
        /// Deepgram TTS too; one interruption; real time, about 20 s).
        #[arg(long, conflicts_with = "speed")]
        agent: bool,
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
        /// Once both listeners are bound, write their addresses to this file as JSON
        /// (`{"public":"127.0.0.1:41234","operator":"127.0.0.1:41235"}`), so a test or a
        /// supervisor can use port 0 and learn the ports.
        #[arg(long)]
        ready_file: Option<PathBuf>,
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
    /// Publish a component to an OCI registry (the wasm artifact layout) and print its
    /// pinned reference, `oci://…:tag@sha256:…`. Credentials and TLS settings come from
    /// SWITCHBOARD_REGISTRY_USERNAME, _PASSWORD, _CA_FILE and _INSECURE.
    Push {
        /// The `.wasm` component.
        file: PathBuf,
        /// Where to push it: `oci://registry/repository:tag`.
        reference: String,
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
    /// Write a new component project: an echo component, a test against a real host, a
    /// configuration and a README, ready to build and test with one command each.
    New {
        /// The project's name (a-z, 0-9 and -), also its component's name.
        name: String,
        /// The component's language.
        #[arg(long, value_enum)]
        lang: Language,
        /// Where to write it (default: ./NAME); must not exist or be empty.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The Switchboard sources a Rust project's path dependencies point at (default:
        /// the sources this binary was built from).
        #[arg(long)]
        switchboard_source: Option<PathBuf>,
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
pub(crate) struct OperatorArgs {
    /// The operator listener's URL, e.g. https://10.0.0.5:9090 (default: from --config,
    /// else http://127.0.0.1:9090).
    #[arg(long)]
    pub(crate) operator: Option<String>,
    /// The host's configuration file, to find its operator listener (no secret is read).
    #[arg(long, short)]
    pub(crate) config: Option<PathBuf>,
    /// Environment variable holding the operator (read) token, sent when set.
    #[arg(long, default_value = "SWITCHBOARD_OPERATOR_TOKEN")]
    pub(crate) token_env: String,
    /// A PEM file of CA certificates to trust for an https:// operator listener.
    #[arg(long)]
    pub(crate) ca_cert: Option<PathBuf>,
}
