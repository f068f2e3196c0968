//! Host configuration: the TOML file, its built-in defaults, and validation.
//!
//! [`Config::load`] reads and checks a file; [`Config::builtin`] is what `switchboard
//! serve` runs without one. Both return a fully validated [`Config`]: unknown keys, bad
//! values, missing files and unset secret variables are refused here, before any port is
//! bound, with the key that is wrong and what was expected.

mod error;
mod file;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::ConfigError;
use file::{FileComponent, FileConfig, FileLimits};
use http::HeaderName;

use crate::egress::EgressPolicy;
use crate::secrets::{SecretHeader, SecretHeaders, TemplateError, expand_template};

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The route the built-in defaults serve the voice pipeline on.
pub const DEFAULT_ROUTE: &str = "/twilio/media";
/// Paths the host answers itself; no route may use them.
pub const RESERVED_PATHS: &[&str] = &["/healthz"];

/// A validated host configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Calls alive at once; sizes the instance pool. Further upgrades get 503.
    pub max_concurrent_calls: u32,
    /// Inbound TLS, when serving `wss://` directly.
    pub tls: Option<InboundTls>,
    /// Routes by exact path.
    pub routes: Vec<Route>,
    /// Components by name.
    pub components: BTreeMap<String, ComponentConfig>,
    /// The artifact store's directory; none = compile in memory on every start.
    pub data_dir: Option<PathBuf>,
    /// The admin API's bearer token; none = admin API off.
    pub admin_token: Option<crate::secrets::SecretValue>,
    /// How long and how much the call store keeps.
    pub retention: crate::store::Retention,
    /// On shutdown, how long live calls get to finish before they are closed with 1001.
    pub drain_timeout: Duration,
}

/// Inbound TLS files.
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
    pub twilio_auth_token: Option<crate::secrets::SecretValue>,
}

/// Where a component's code comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentSource {
    /// A `.wasm` file.
    File(PathBuf),
    /// A component compiled into the binary.
    Builtin(Builtin),
}

/// Components bundled in the `switchboard` binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// The Twilio to Deepgram pipeline (`component/`).
    VoicePipeline,
}

impl Builtin {
    /// Every bundled component, by config name.
    pub const ALL: &[(&str, Builtin)] = &[("voice-pipeline", Builtin::VoicePipeline)];

    /// The component's bytes.
    pub fn wasm(self) -> &'static [u8] {
        match self {
            Builtin::VoicePipeline => include_bytes!(env!("GUEST_VOICE_PIPELINE")),
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
        }
    }
}

impl Config {
    /// The built-in defaults: the bundled voice pipeline on [`DEFAULT_ROUTE`] at
    /// [`DEFAULT_LISTEN`], allowed to reach `wss://api.deepgram.com`, with
    /// `Authorization: Token $DEEPGRAM_API_KEY` injected (left out, with a warning, when
    /// the variable is unset).
    pub fn builtin() -> Result<Config, ConfigError> {
        let text = format!(
            r#"
listen = "{DEFAULT_LISTEN}"
admin_token_env = "SWITCHBOARD_ADMIN_TOKEN"

[[routes]]
path = "{DEFAULT_ROUTE}"
component = "voice-pipeline"

[components.voice-pipeline]
builtin = "voice-pipeline"
allow_outbound = ["wss://api.deepgram.com"]

[[components.voice-pipeline.secret_headers]]
host = "api.deepgram.com"
name = "Authorization"
value = "Token ${{DEEPGRAM_API_KEY}}"
optional = true
"#
        );
        let mut config = Config::parse(&text, "built-in defaults", Path::new("."), &env_lookup)?;
        config.data_dir = default_data_dir(&env_lookup);
        Ok(config)
    }

    /// Reads and validates a config file. Relative paths in it are relative to its folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, &path.display().to_string(), base, &env_lookup)
    }

    /// Parses and validates TOML text. `origin` names it in errors; `lookup` reads
    /// environment variables (tests pass their own).
    pub fn parse(text: &str, origin: &str, base: &Path, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let file: FileConfig =
            toml::from_str(text).map_err(|e| ConfigError::Parse { path: PathBuf::from(origin), message: e.to_string() })?;
        Validator { origin, base, lookup }.config(file)
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

struct Validator<'a> {
    origin: &'a str,
    base: &'a Path,
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Validator<'_> {
    fn invalid(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid { origin: self.origin.to_owned(), key: key.into(), message: message.into() }
    }

    fn path(&self, path: &Path) -> PathBuf {
        if path.is_absolute() { path.to_owned() } else { self.base.join(path) }
    }

    fn existing_file(&self, key: &str, path: &Path) -> Result<PathBuf, ConfigError> {
        let resolved = self.path(path);
        if !resolved.is_file() {
            return Err(self.invalid(key, format!("file {} does not exist", resolved.display())));
        }
        Ok(resolved)
    }

    fn config(&self, file: FileConfig) -> Result<Config, ConfigError> {
        let listen = match file.listen {
            Some(listen) => listen,
            None => DEFAULT_LISTEN.parse().map_err(|_| self.invalid("listen", "bad default"))?,
        };
        let max_concurrent_calls = file.max_concurrent_calls.unwrap_or(1_000);
        if !(1..=100_000).contains(&max_concurrent_calls) {
            return Err(self.invalid("max_concurrent_calls", "expected a number from 1 to 100000"));
        }
        let tls = file
            .tls
            .map(|tls| {
                Ok::<_, ConfigError>(InboundTls {
                    cert: self.existing_file("tls.cert", &tls.cert)?,
                    key: self.existing_file("tls.key", &tls.key)?,
                })
            })
            .transpose()?;

        let mut components = BTreeMap::new();
        for (name, component) in file.components {
            let validated = self.component(&name, component)?;
            components.insert(name, validated);
        }

        let mut routes: Vec<Route> = Vec::new();
        for (index, route) in file.routes.into_iter().enumerate() {
            let key = format!("routes[{index}]");
            if !route.path.starts_with('/') {
                return Err(self.invalid(format!("{key}.path"), format!("{:?} must start with `/`", route.path)));
            }
            if RESERVED_PATHS.contains(&route.path.as_str()) {
                return Err(self.invalid(format!("{key}.path"), format!("{} is served by the host itself", route.path)));
            }
            if routes.iter().any(|r| r.path == route.path) {
                return Err(self.invalid(format!("{key}.path"), format!("{} is routed twice", route.path)));
            }
            if !components.contains_key(&route.component) {
                let known: Vec<&String> = components.keys().collect();
                return Err(
                    self.invalid(format!("{key}.component"), format!("no component named {:?}; defined: {known:?}", route.component))
                );
            }
            let forward_headers = match route.forward_headers {
                None => default_forward_headers(),
                Some(names) => {
                    names.iter().map(|name| self.forwardable_header(&format!("{key}.forward_headers"), name)).collect::<Result<_, _>>()?
                }
            };
            let twilio_auth_token = match route.twilio_auth_token_env {
                None => None,
                Some(var) => {
                    let token = (self.lookup)(&var).filter(|t| !t.is_empty()).ok_or_else(|| {
                        self.invalid(format!("{key}.twilio_auth_token_env"), format!("environment variable `{var}` is not set"))
                    })?;
                    Some(
                        crate::secrets::SecretValue::new(&token)
                            .map_err(|e| self.invalid(format!("{key}.twilio_auth_token_env"), e.to_string()))?,
                    )
                }
            };
            routes.push(Route { path: route.path, component: route.component, forward_headers, twilio_auth_token });
        }
        if routes.is_empty() {
            return Err(
                self.invalid("routes", "at least one route is needed, e.g. [[routes]] path = \"/twilio/media\" component = \"...\"")
            );
        }
        let data_dir = file.data_dir.map(|dir| self.path(&dir));
        let admin_token = match file.admin_token_env {
            None => None,
            Some(var) => match (self.lookup)(&var).filter(|token| !token.is_empty()) {
                Some(token) if token.len() < 16 => {
                    return Err(self.invalid("admin_token_env", format!("the token in `{var}` is shorter than 16 characters")));
                }
                Some(token) => Some(crate::secrets::SecretValue::new(&token).map_err(|e| self.invalid("admin_token_env", e.to_string()))?),
                None => {
                    tracing::info!("admin API off: `{var}` is not set");
                    None
                }
            },
        };
        let days = file.retention_days.unwrap_or(7);
        if !(1..=3_650).contains(&days) {
            return Err(self.invalid("retention_days", format!("{days} is out of range: expected 1 to 3650")));
        }
        let calls = file.retention_calls.unwrap_or(100_000);
        if !(1..=100_000_000).contains(&calls) {
            return Err(self.invalid("retention_calls", format!("{calls} is out of range: expected 1 to 100000000")));
        }
        let retention = crate::store::Retention { max_age: Duration::from_secs(days * 86_400), max_calls: calls };
        let drain_ms = file.drain_timeout_ms.unwrap_or(30_000);
        if drain_ms > 3_600_000 {
            return Err(self.invalid("drain_timeout_ms", format!("{drain_ms} is out of range: expected 0 to 3600000")));
        }
        let drain_timeout = Duration::from_millis(drain_ms);
        Ok(Config { listen, max_concurrent_calls, tls, routes, components, data_dir, admin_token, retention, drain_timeout })
    }

    fn forwardable_header(&self, key: &str, name: &str) -> Result<HeaderName, ConfigError> {
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| self.invalid(key, format!("{name:?} is not a header name")))?;
        if NEVER_FORWARDED.contains(&header.as_str()) {
            return Err(self.invalid(key, format!("`{header}` carries credentials and is never forwarded to guests")));
        }
        Ok(header)
    }

    fn component(&self, name: &str, component: FileComponent) -> Result<ComponentConfig, ConfigError> {
        let key = |field: &str| format!("components.{name}.{field}");
        if component.watch && component.wasm.is_none() {
            return Err(self.invalid(key("watch"), "only a `wasm` file can be watched"));
        }
        let source = match (component.wasm, component.builtin) {
            (Some(path), None) => ComponentSource::File(self.existing_file(&key("wasm"), &path)?),
            (None, Some(builtin)) => {
                let found = Builtin::ALL.iter().find(|(n, _)| *n == builtin).map(|(_, b)| *b);
                ComponentSource::Builtin(found.ok_or_else(|| {
                    let names: Vec<&str> = Builtin::ALL.iter().map(|(n, _)| *n).collect();
                    self.invalid(key("builtin"), format!("unknown built-in component {builtin:?}; known: {names:?}"))
                })?)
            }
            _ => {
                return Err(self.invalid(
                    format!("components.{name}"),
                    "set exactly one of `wasm = \"path/to/component.wasm\"` or `builtin = \"voice-pipeline\"`",
                ));
            }
        };
        let egress = EgressPolicy::parse(&component.allow_outbound).map_err(|e| self.invalid(key("allow_outbound"), e.to_string()))?;
        let mut secret_headers = Vec::new();
        for (index, header) in component.secret_headers.into_iter().enumerate() {
            let key = key(&format!("secret_headers[{index}]"));
            let header_name = HeaderName::from_bytes(header.name.as_bytes())
                .map_err(|_| self.invalid(format!("{key}.name"), format!("{:?} is not a header name", header.name)))?;
            let host = header.host.to_ascii_lowercase();
            if host.is_empty() || host.contains(['/', ':']) && !host.starts_with('[') {
                return Err(self.invalid(format!("{key}.host"), "expected a bare host name, e.g. \"api.deepgram.com\""));
            }
            match expand_template(&header.value, self.lookup) {
                Ok(value) => secret_headers.push(SecretHeader { host, name: header_name, value }),
                Err(TemplateError::MissingVariable(var)) if header.optional => {
                    tracing::warn!(component = %name, header = %header_name, "environment variable {var} is not set: header not injected");
                }
                Err(error) => return Err(self.invalid(format!("{key}.value"), error.to_string())),
            }
        }
        let extra_ca_certs = component
            .extra_ca_certs
            .iter()
            .enumerate()
            .map(|(i, path)| self.existing_file(&key(&format!("extra_ca_certs[{i}]")), path))
            .collect::<Result<_, _>>()?;
        let limits = self.limits(name, component.limits)?;
        Ok(ComponentConfig {
            name: name.to_owned(),
            source,
            egress,
            secret_headers: SecretHeaders::new(secret_headers),
            settings: component.settings,
            extra_ca_certs,
            limits,
            watch: component.watch,
        })
    }

    fn limits(&self, name: &str, file: FileLimits) -> Result<Limits, ConfigError> {
        let defaults = Limits::default();
        let range = |field: &str, value: Option<u64>, default: u64, min: u64, max: u64| {
            let value = value.unwrap_or(default);
            if (min..=max).contains(&value) {
                Ok(value)
            } else {
                Err(self.invalid(format!("components.{name}.limits.{field}"), format!("{value} is out of range: expected {min} to {max}")))
            }
        };
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let memory_mb = range("memory_mb", file.memory_mb, (defaults.memory_bytes >> 20) as u64, 1, 4_096)?;
        let max_message = range("max_message_bytes", file.max_message_bytes, defaults.max_message_bytes as u64, 125, 64 << 20)?;
        let queue = range("send_queue_bytes", file.send_queue_bytes, defaults.send_queue_bytes as u64, 1_024, 256 << 20)?;
        let receive = range("receive_buffer_bytes", file.receive_buffer_bytes, defaults.receive_buffer_bytes as u64, 1_024, 256 << 20)?;
        let connect = range("connect_timeout_ms", file.connect_timeout_ms, ms(defaults.connect_timeout), 10, 600_000)?;
        let max_connect =
            range("max_connect_timeout_ms", file.max_connect_timeout_ms, ms(defaults.max_connect_timeout).max(connect), connect, 600_000)?;
        Ok(Limits {
            memory_bytes: (memory_mb as usize) << 20,
            cpu_burst: Duration::from_millis(range("cpu_burst_ms", file.cpu_burst_ms, ms(defaults.cpu_burst), 10, 600_000)?),
            cpu_total: Duration::from_millis(range("cpu_total_ms", file.cpu_total_ms, ms(defaults.cpu_total), 10, 86_400_000)?),
            max_outbound_connections: range(
                "max_outbound_connections",
                file.max_outbound_connections.map(u64::from),
                u64::from(defaults.max_outbound_connections),
                0,
                1_000,
            )? as u32,
            max_outbound_connects: range(
                "max_outbound_connects",
                file.max_outbound_connects.map(u64::from),
                u64::from(defaults.max_outbound_connects),
                0,
                1_000_000,
            )? as u32,
            max_message_bytes: max_message as usize,
            send_queue_bytes: queue as usize,
            receive_buffer_bytes: receive as usize,
            connect_timeout: Duration::from_millis(connect),
            max_connect_timeout: Duration::from_millis(max_connect),
        })
    }
}

/// Headers a route forwards when it names none.
fn default_forward_headers() -> Vec<HeaderName> {
    ["host", "user-agent", "origin", "x-forwarded-for", "x-forwarded-proto", "sec-websocket-protocol"]
        .into_iter()
        .map(HeaderName::from_static)
        .collect()
}

/// Headers that carry credentials: never handed to a guest.
const NEVER_FORWARDED: &[&str] = &["authorization", "cookie", "proxy-authorization", "x-twilio-signature"];

#[cfg(test)]
mod tests;
