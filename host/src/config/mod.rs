//! Host configuration: the TOML file, its built-in defaults, and validation.
//!
//! [`Config::load`] reads and checks a file; [`Config::builtin`] is what `switchboard
//! serve` runs without one. Both return a fully validated [`Config`]: unknown keys, bad
//! values, missing files, unset secret variables and an exposed listener without
//! authentication are refused here, before any port is bound, with the key that is wrong
//! and what was expected. [`Overrides`] (the command line's `--listen`) are applied before
//! validation, so they are checked like the file.

mod error;
mod file;
pub mod oci;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::ConfigError;
pub use file::{FileComponent, FileConfig, FileLimits, FileOperator, FileRoute, FileSecretHeader, FileTls};
use http::HeaderName;

use crate::policy::egress::EgressPolicy;
use crate::policy::secrets::{SecretHeaders, SecretValue};

/// The default public listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The default operator listen address.
pub const DEFAULT_OPERATOR_LISTEN: &str = "127.0.0.1:9090";
/// The route the built-in defaults serve the voice pipeline on.
pub const DEFAULT_ROUTE: &str = "/twilio/media";
/// Paths the host answers itself; no route may use them.
pub const RESERVED_PATHS: &[&str] = &["/healthz", "/readyz"];
/// The variable the built-in defaults read the operator's read token from.
pub const DEFAULT_OPERATOR_TOKEN_ENV: &str = "SWITCHBOARD_OPERATOR_TOKEN";
/// The variable the built-in defaults read the deploy API's token from.
pub const DEFAULT_ADMIN_TOKEN_ENV: &str = "SWITCHBOARD_ADMIN_TOKEN";
/// The variable the built-in defaults read Twilio's auth token from, when it is set.
pub const DEFAULT_TWILIO_TOKEN_ENV: &str = "TWILIO_AUTH_TOKEN";
/// Shortest bearer token accepted for the operator listener.
pub const MIN_TOKEN_CHARS: usize = 16;

/// A validated host configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The public listener's address: routes, `/healthz`, `/readyz`.
    pub listen: SocketAddr,
    /// Calls alive at once; sizes the instance pool. Further upgrades get 503.
    pub max_concurrent_calls: u32,
    /// Inbound TLS on the public listener, when serving `wss://` directly.
    pub tls: Option<InboundTls>,
    /// The operator listener.
    pub operator: OperatorConfig,
    /// Routes by exact path.
    pub routes: Vec<Route>,
    /// Components by name.
    pub components: BTreeMap<String, ComponentConfig>,
    /// The artifact store's directory; none = compile in memory on every start.
    pub data_dir: Option<PathBuf>,
    /// How long and how much the call store keeps.
    pub retention: crate::observe::calls::Retention,
    /// On shutdown, how long live calls get to finish before they are closed with 1001.
    pub drain_timeout: Duration,
    /// The call store's database and this replica's name.
    pub store: StoreConfig,
    /// Write `/tmp/perf-<pid>.map` naming the guests' compiled functions, so `perf`
    /// profiles show them by name (from [`PERF_MAP_ENV`]; off by default).
    pub perf_map: bool,
}

/// The variable naming this replica in the call store and the fleet's deploys.
pub const REPLICA_ENV: &str = "SWITCHBOARD_REPLICA";
/// The variable holding the shared PostgreSQL database's connection string.
pub const DATABASE_URL_ENV: &str = "SWITCHBOARD_DATABASE_URL";
/// The variable naming a PEM file of extra roots for the database's TLS.
pub const DATABASE_CA_ENV: &str = "SWITCHBOARD_DATABASE_CA_FILE";
/// The variable that, set to `1`, has the engine write a perf map of the guests' code.
pub const PERF_MAP_ENV: &str = "SWITCHBOARD_PERF_MAP";

/// Where calls (and, with a shared database, the fleet's deploys) are kept.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The shared PostgreSQL database; none = SQLite in the data directory.
    pub database: Option<DatabaseUrl>,
    /// This replica's name (`SWITCHBOARD_REPLICA`, else the hostname).
    pub replica: String,
}

/// The shared database: its connection string and extra TLS roots.
#[derive(Debug, Clone)]
pub struct DatabaseUrl {
    /// The connection string (it may hold a password).
    pub url: SecretText,
    /// `SWITCHBOARD_DATABASE_CA_FILE`: extra PEM roots for the database's TLS.
    pub ca_file: Option<PathBuf>,
}

/// Text that must not be shown: `Debug` prints `<redacted>`.
#[derive(Clone)]
pub struct SecretText(pub String);

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The machine's hostname, or `switchboard` when it cannot be read.
pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "switchboard".to_owned())
}

/// The operator listener: the query API, the event stream, the dashboard, `/metrics`
/// and the deploy API, apart from the public port.
#[derive(Debug, Clone)]
pub struct OperatorConfig {
    /// Its address (loopback by default).
    pub listen: SocketAddr,
    /// Bearer token for reading; none = reading is open (loopback only).
    pub read_token: Option<SecretValue>,
    /// Bearer token for the deploy API (it also grants reading); none = deploy API off.
    pub admin_token: Option<SecretValue>,
    /// Its own TLS, when serving `https://`.
    pub tls: Option<InboundTls>,
}

/// TLS files for a listener.
#[derive(Debug, Clone)]
pub struct InboundTls {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// A path served by a component.
#[derive(Debug, Clone)]
pub struct Route {
    /// Exact request path.
    pub path: String,
    /// The component's name.
    pub component: String,
    /// Request headers handed to the guest.
    pub forward_headers: Vec<HeaderName>,
    /// Twilio's auth token, when upgrades must be signed.
    pub twilio_auth_token: Option<SecretValue>,
    /// Unsigned upgrades were accepted explicitly on a listener that is not loopback.
    pub allow_unsigned: bool,
    /// How long the host waits on a caller before it ends the call.
    pub deadlines: CallerDeadlines,
}

/// Deadlines the host holds every caller of a route to, whatever the guest does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallerDeadlines {
    /// The first data message must arrive within this long of the upgrade.
    pub first_message: Duration,
    /// The call ends when no data message arrives for this long.
    pub idle: Duration,
    /// The longest a call may last.
    pub max_call: Duration,
}

impl Default for CallerDeadlines {
    /// Defaults for Twilio, which sends `connected` and `start` within milliseconds and
    /// then a `media` message every 20 ms (it may pause during silence).
    fn default() -> Self {
        CallerDeadlines { first_message: Duration::from_secs(5), idle: Duration::from_secs(30), max_call: Duration::from_secs(4 * 3600) }
    }
}

/// Where a component's code comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentSource {
    /// A `.wasm` file.
    File(PathBuf),
    /// A component compiled into the binary.
    Builtin(Builtin),
    /// A component in an OCI registry, pulled when the host starts.
    Oci(oci::OciReference),
}

/// Components bundled in the `switchboard` binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// The Twilio to Deepgram pipeline (`component/`).
    VoicePipeline,
    /// The voice agent: Deepgram STT, an OpenAI-compatible LLM, Deepgram TTS (`agent/`).
    VoiceAgent,
}

impl Builtin {
    /// Every bundled component, by config name.
    pub const ALL: &[(&str, Builtin)] = &[("voice-pipeline", Builtin::VoicePipeline), ("voice-agent", Builtin::VoiceAgent)];

    /// The component's bytes.
    pub fn wasm(self) -> &'static [u8] {
        match self {
            Builtin::VoicePipeline => include_bytes!(env!("GUEST_VOICE_PIPELINE")),
            Builtin::VoiceAgent => include_bytes!(env!("GUEST_VOICE_AGENT")),
        }
    }
}

/// One component and its sandbox.
#[derive(Debug, Clone)]
pub struct ComponentConfig {
    /// The name routes refer to.
    pub name: String,
    /// Its code.
    pub source: ComponentSource,
    /// Where it may connect.
    pub egress: EgressPolicy,
    /// Headers the host adds for it.
    pub secret_headers: SecretHeaders,
    /// Non-secret settings for `wasi:config/store`.
    pub settings: BTreeMap<String, String>,
    /// Extra CAs for outbound TLS.
    pub extra_ca_certs: Vec<PathBuf>,
    /// Its limits.
    pub limits: Limits,
    /// Reload the file when it changes.
    pub watch: bool,
}

/// Per-component resource limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory per instance, bytes.
    pub memory_bytes: usize,
    /// Longest stretch of guest execution without waiting on the host.
    pub cpu_burst: Duration,
    /// Guest execution time per call.
    pub cpu_total: Duration,
    /// Outbound connections held at once.
    pub max_outbound_connections: u32,
    /// Outbound connects over an instance's life.
    pub max_outbound_connects: u32,
    /// Largest WebSocket message, either direction.
    pub max_message_bytes: usize,
    /// Send queue size per connection.
    pub send_queue_bytes: usize,
    /// Received bytes buffered per connection while the guest has not taken them.
    pub receive_buffer_bytes: usize,
    /// Default outbound handshake deadline.
    pub connect_timeout: Duration,
    /// Longest deadline a guest may ask for.
    pub max_connect_timeout: Duration,
    /// `wasi:http` requests an instance may have under way at once (a request holds its
    /// place until its response body is finished or dropped).
    pub max_http_requests_in_flight: u32,
    /// `wasi:http` requests over an instance's life.
    pub max_http_requests: u32,
    /// Deadline for DNS, TCP and TLS of a request; a guest may ask for less.
    pub http_connect_timeout: Duration,
    /// Deadline from sending a request to its response head; a guest may ask for less.
    pub http_first_byte_timeout: Duration,
    /// Longest silence inside a response body; a guest may ask for less.
    pub http_between_bytes_timeout: Duration,
    /// Largest request body a guest may send, bytes.
    pub max_http_request_body_bytes: u64,
    /// Largest response body handed to a guest, bytes; the body fails past it.
    pub max_http_response_body_bytes: u64,
    /// Bytes of guest stdout and stderr logged per call.
    pub log_bytes: usize,
    /// Bytes of guest output logged per second once the burst is spent.
    pub log_bytes_per_second: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 << 20,
            cpu_burst: Duration::from_millis(1_000),
            cpu_total: Duration::from_secs(300),
            max_outbound_connections: 8,
            max_outbound_connects: 256,
            max_message_bytes: 1 << 20,
            send_queue_bytes: 1 << 20,
            receive_buffer_bytes: 1 << 20,
            connect_timeout: Duration::from_secs(10),
            max_connect_timeout: Duration::from_secs(60),
            max_http_requests_in_flight: 8,
            max_http_requests: 10_000,
            http_connect_timeout: Duration::from_secs(10),
            http_first_byte_timeout: Duration::from_secs(60),
            http_between_bytes_timeout: Duration::from_secs(30),
            max_http_request_body_bytes: 1 << 20,
            max_http_response_body_bytes: 16 << 20,
            log_bytes: 1 << 20,
            log_bytes_per_second: 4 * 1024,
        }
    }
}

/// Values from the command line that replace the file's, validated with it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Overrides {
    /// Replaces `listen`.
    pub listen: Option<SocketAddr>,
    /// Replaces `operator.listen`.
    pub operator_listen: Option<SocketAddr>,
}

/// Where the operator listener of a configuration file is, read without its secrets:
/// what `switchboard calls` and `switchboard deploy` need to find the host.
#[derive(Debug, Clone)]
pub struct OperatorAddress {
    /// The operator listener's address.
    pub listen: SocketAddr,
    /// Whether it serves `https://`.
    pub tls: bool,
    /// The artifact store's directory (where `calls.db` lives).
    pub data_dir: Option<PathBuf>,
}

impl Config {
    /// The built-in defaults: the bundled voice pipeline on [`DEFAULT_ROUTE`] at
    /// [`DEFAULT_LISTEN`], the operator listener at [`DEFAULT_OPERATOR_LISTEN`], allowed
    /// to reach `wss://api.deepgram.com`, with `Authorization: Token $DEEPGRAM_API_KEY`
    /// injected (left out, with a warning, when the variable is unset). When
    /// `TWILIO_AUTH_TOKEN` is set, upgrades must carry a valid Twilio signature.
    pub fn builtin() -> Result<Config, ConfigError> {
        Config::builtin_with(Overrides::default())
    }

    /// The built-in defaults with `overrides` applied.
    pub fn builtin_with(overrides: Overrides) -> Result<Config, ConfigError> {
        let mut config = Config::validate(builtin_file(&env_lookup), "built-in defaults", Path::new("."), &env_lookup, overrides)?;
        config.data_dir = default_data_dir(&env_lookup);
        Ok(config)
    }

    /// Reads and validates a config file. Relative paths in it are relative to its folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_with(path, Overrides::default())
    }

    /// Reads a config file, applies `overrides`, and validates the result.
    pub fn load_with(path: &Path, overrides: Overrides) -> Result<Config, ConfigError> {
        let text = read(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse_with(&text, &path.display().to_string(), base, &env_lookup, overrides)
    }

    /// Parses and validates TOML text. `origin` names it in errors; `lookup` reads
    /// environment variables (tests pass their own).
    pub fn parse(text: &str, origin: &str, base: &Path, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        Config::parse_with(text, origin, base, lookup, Overrides::default())
    }

    /// [`Config::parse`] with `overrides` applied before validation.
    pub fn parse_with(
        text: &str,
        origin: &str,
        base: &Path,
        lookup: &dyn Fn(&str) -> Option<String>,
        overrides: Overrides,
    ) -> Result<Config, ConfigError> {
        Config::validate(FileConfig::parse(text, origin)?, origin, base, lookup, overrides)
    }

    fn validate(
        mut file: FileConfig,
        origin: &str,
        base: &Path,
        lookup: &dyn Fn(&str) -> Option<String>,
        overrides: Overrides,
    ) -> Result<Config, ConfigError> {
        if let Some(listen) = overrides.listen {
            file.listen = Some(listen);
        }
        if let Some(listen) = overrides.operator_listen {
            file.operator.get_or_insert_with(Default::default).listen = Some(listen);
        }
        validate::Validator { origin, base, lookup }.config(file)
    }

    /// Reads a config file for work that never serves (`switchboard compile`): a variable
    /// that is not set reads as a placeholder, so a build machine needs none of the
    /// server's secrets. The result must not serve calls.
    pub fn load_without_secrets(path: Option<&Path>) -> Result<Config, ConfigError> {
        // Secrets read as placeholders; the store's settings and the perf-map switch are not
        // secrets and are read as they are (a placeholder database would be one the host
        // tries to reach, a placeholder switch is refused).
        let read_as_is = |name: &str| [REPLICA_ENV, DATABASE_URL_ENV, DATABASE_CA_ENV, PERF_MAP_ENV].contains(&name);
        let lookup = |name: &str| env_lookup(name).or_else(|| (!read_as_is(name)).then(|| format!("placeholder-for-{name}-0123456789")));
        let (file, origin, base) = match path {
            Some(path) => (
                FileConfig::parse(&read(path)?, &path.display().to_string())?,
                path.display().to_string(),
                path.parent().unwrap_or(Path::new(".")).to_owned(),
            ),
            None => (builtin_file(&env_lookup), "built-in defaults".to_owned(), PathBuf::from(".")),
        };
        let mut config = Config::validate(file, &origin, &base, &lookup, Overrides::default())?;
        if path.is_none() {
            config.data_dir = default_data_dir(&env_lookup);
        }
        Ok(config)
    }

    /// Validates a file value built in code (tests, the demo, the benchmark).
    pub fn from_file(file: FileConfig, origin: &str, base: &Path, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        Config::validate(file, origin, base, lookup, Overrides::default())
    }
}

impl OperatorAddress {
    /// The operator listener of the file at `path` (or of the built-in defaults), without
    /// resolving any secret: an operator's shell has none of the server's variables.
    pub fn load(path: Option<&Path>) -> Result<OperatorAddress, ConfigError> {
        let (file, base) = match path {
            Some(path) => {
                (FileConfig::parse(&read(path)?, &path.display().to_string())?, path.parent().unwrap_or(Path::new(".")).to_owned())
            }
            None => (builtin_file(&env_lookup), PathBuf::from(".")),
        };
        let operator = file.operator.unwrap_or_default();
        let listen = operator.listen.unwrap_or_else(default_operator_listen);
        let data_dir = match (file.data_dir, path) {
            (Some(dir), _) if dir.is_absolute() => Some(dir),
            (Some(dir), _) => Some(base.join(dir)),
            (None, None) => default_data_dir(&env_lookup),
            (None, Some(_)) => None,
        };
        Ok(OperatorAddress { listen, tls: operator.tls.is_some(), data_dir })
    }

    /// The base URL a client on this machine reaches the listener at (a wildcard address
    /// becomes loopback).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        let mut address = self.listen;
        if address.ip().is_unspecified() {
            address.set_ip(if address.is_ipv4() { std::net::Ipv4Addr::LOCALHOST.into() } else { std::net::Ipv6Addr::LOCALHOST.into() });
        }
        format!("{scheme}://{address}")
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })
}

fn default_operator_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9090))
}

/// The built-in defaults (Twilio signatures are checked when the variable is set).
fn builtin_file(lookup: &dyn Fn(&str) -> Option<String>) -> FileConfig {
    let signed = lookup(DEFAULT_TWILIO_TOKEN_ENV).is_some_and(|token| !token.is_empty());
    let pipeline = FileComponent {
        builtin: Some("voice-pipeline".to_owned()),
        allow_outbound: vec!["wss://api.deepgram.com".to_owned()],
        secret_headers: vec![FileSecretHeader {
            host: "api.deepgram.com".to_owned(),
            name: "Authorization".to_owned(),
            value: "Token ${DEEPGRAM_API_KEY}".to_owned(),
            optional: true,
        }],
        ..FileComponent::default()
    };
    FileConfig {
        listen: DEFAULT_LISTEN.parse().ok(),
        operator: Some(FileOperator {
            listen: DEFAULT_OPERATOR_LISTEN.parse().ok(),
            token_env: Some(DEFAULT_OPERATOR_TOKEN_ENV.to_owned()),
            admin_token_env: Some(DEFAULT_ADMIN_TOKEN_ENV.to_owned()),
            tls: None,
        }),
        routes: vec![FileRoute {
            path: DEFAULT_ROUTE.to_owned(),
            component: "voice-pipeline".to_owned(),
            twilio_auth_token_env: signed.then(|| DEFAULT_TWILIO_TOKEN_ENV.to_owned()),
            ..FileRoute::default()
        }],
        components: [("voice-pipeline".to_owned(), pipeline)].into_iter().collect(),
        ..FileConfig::default()
    }
}

fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// `$XDG_CACHE_HOME/switchboard`, else `$HOME/.cache/switchboard`.
fn default_data_dir(lookup: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    lookup("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| lookup("HOME").filter(|h| !h.is_empty()).map(|home| PathBuf::from(home).join(".cache")))
        .map(|dir| dir.join("switchboard"))
}

#[cfg(test)]
mod tests;
