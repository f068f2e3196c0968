//! The TOML file format, as parsed: every table rejects keys it does not know.
//!
//! These structs only describe the file; [`super::Config`] is the validated form the host
//! runs on. They also serialize, so tests, the demo and the benchmark build a
//! configuration as a typed value and validate it exactly as a file is validated.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address to listen on, e.g. `0.0.0.0:8080`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Most calls (component instances) alive at once; also sizes the instance pool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent_calls: Option<u32>,
    /// Serve `wss://` instead of `ws://`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<FileTls>,
    /// Where compiled components are kept (content-addressed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Moved to `[operator] admin_token_env`; refused here with a message saying so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token_env: Option<String>,
    /// The operator listener: query API, events, dashboard, metrics, deploy API.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator: Option<FileOperator>,
    /// On shutdown, how long live calls get to finish before they are closed, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_timeout_ms: Option<u64>,
    /// Days of calls the call store keeps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u64>,
    /// Most calls the call store keeps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_calls: Option<u64>,
    /// Which path runs which component.
    #[serde(default)]
    pub routes: Vec<FileRoute>,
    /// Components by name.
    #[serde(default)]
    pub components: BTreeMap<String, FileComponent>,
}

/// The operator listener.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileOperator {
    /// Address to listen on, e.g. `127.0.0.1:9090`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Environment variable holding the bearer token for reading (API, events, dashboard,
    /// metrics); required when `listen` is not a loopback address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// Environment variable holding the bearer token of the deploy API.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token_env: Option<String>,
    /// Serve `https://` instead of `http://`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<FileTls>,
}

/// Inbound TLS.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileTls {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// One route.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileRoute {
    /// Exact request path, e.g. `/twilio/media`.
    pub path: String,
    /// Name of a component under `[components]`.
    pub component: String,
    /// Request headers handed to the guest (names, case-insensitive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward_headers: Option<Vec<String>>,
    /// Environment variable holding the Twilio auth token: upgrades must carry a valid
    /// `X-Twilio-Signature`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub twilio_auth_token_env: Option<String>,
    /// Accept upgrades without `X-Twilio-Signature` on a listener that is not loopback
    /// (something in front of Switchboard authenticates callers).
    #[serde(default)]
    pub allow_unsigned: bool,
    /// The caller must send its first message within this long, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_message_timeout_ms: Option<u64>,
    /// The call ends when the caller sends nothing for this long, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout_ms: Option<u64>,
    /// The longest a call may last, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_call_ms: Option<u64>,
}

/// One component.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileComponent {
    /// Path of the `.wasm` component.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wasm: Option<PathBuf>,
    /// Name of a component bundled in the binary (`voice-pipeline`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub builtin: Option<String>,
    /// An OCI reference: `oci://registry/repository:tag` or `…@sha256:<digest>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oci: Option<String>,
    /// Reload the `wasm` file when it changes (development).
    #[serde(default)]
    pub watch: bool,
    /// Egress allowlist: `scheme://host[:port]` patterns.
    #[serde(default)]
    pub allow_outbound: Vec<String>,
    /// Headers the host adds to outbound handshakes, per target host.
    #[serde(default)]
    pub secret_headers: Vec<FileSecretHeader>,
    /// Non-secret settings for `wasi:config/store`.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// PEM files with extra CA certificates trusted for outbound TLS.
    #[serde(default)]
    pub extra_ca_certs: Vec<PathBuf>,
    /// Resource limits.
    #[serde(default)]
    pub limits: FileLimits,
}

/// One injected header.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileSecretHeader {
    /// Target host the header is sent to (exact, case-insensitive).
    pub host: String,
    /// Header name, e.g. `Authorization`.
    pub name: String,
    /// Value template; `${VAR}` is replaced by the environment variable `VAR`.
    pub value: String,
    /// When true, a missing variable drops the header with a warning instead of failing.
    #[serde(default)]
    pub optional: bool,
}

/// Per-component limits; each has a default.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileLimits {
    /// Linear memory per instance, MiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
    /// Longest stretch of guest execution without returning to the host, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_burst_ms: Option<u64>,
    /// Guest execution time per call, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_total_ms: Option<u64>,
    /// Outbound connections an instance may hold at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_outbound_connections: Option<u32>,
    /// Outbound connections an instance may open over its life.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_outbound_connects: Option<u32>,
    /// Largest message accepted or sent, bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_message_bytes: Option<u64>,
    /// Bytes a connection's send queue holds before `send` reports `would-block`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_queue_bytes: Option<u64>,
    /// Received bytes a connection buffers for the guest before it stops reading.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receive_buffer_bytes: Option<u64>,
    /// Default outbound handshake deadline, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_timeout_ms: Option<u64>,
    /// Longest handshake deadline a guest may ask for, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connect_timeout_ms: Option<u64>,
    /// `wasi:http` requests under way at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_http_requests_in_flight: Option<u32>,
    /// `wasi:http` requests over an instance's life.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_http_requests: Option<u32>,
    /// Connect (DNS, TCP, TLS) deadline of a request, ms; a guest may ask for less.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_connect_timeout_ms: Option<u64>,
    /// Deadline from sending a request to its response head, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_first_byte_timeout_ms: Option<u64>,
    /// Longest silence inside a response body, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_between_bytes_timeout_ms: Option<u64>,
    /// Largest request body, bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_http_request_body_bytes: Option<u64>,
    /// Largest response body, bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_http_response_body_bytes: Option<u64>,
    /// Bytes of guest stdout and stderr logged per call; the rest is counted and dropped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_bytes: Option<u64>,
    /// Bytes of guest output logged per second once a 64 KiB burst is spent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_bytes_per_second: Option<u64>,
}

impl FileConfig {
    /// Parses TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<FileConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse { path: PathBuf::from(origin), message: e.to_string() })
    }

    /// The TOML text of this value (what `switchboard serve --config` would read).
    pub fn to_toml(&self) -> String {
        // Every field is a string, number, bool, path, address or table of those.
        toml::to_string(self).unwrap_or_else(|error| format!("# cannot serialize: {error}\n"))
    }
}

impl FileLimits {
    /// Sets limit `key` (as the file spells it, e.g. `memory_mb`) to `value`; an unknown
    /// key is refused as the file's parser would refuse it.
    pub fn set(&mut self, key: &str, value: u64) -> Result<(), ConfigError> {
        let mut table =
            toml::Table::try_from(&*self).map_err(|e| ConfigError::Parse { path: PathBuf::from("limits"), message: e.to_string() })?;
        table.insert(key.to_owned(), toml::Value::Integer(i64::try_from(value).unwrap_or(i64::MAX)));
        *self =
            table.try_into().map_err(|e: toml::de::Error| ConfigError::Parse { path: PathBuf::from("limits"), message: e.to_string() })?;
        Ok(())
    }
}
