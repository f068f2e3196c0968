//! The TOML file format, as parsed: every table rejects keys it does not know.
//!
//! These structs only describe the file; [`super::Config`] is the validated form the host
//! runs on.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address to listen on, e.g. `0.0.0.0:8080`.
    pub listen: Option<SocketAddr>,
    /// Most calls (component instances) alive at once; also sizes the instance pool.
    pub max_concurrent_calls: Option<u32>,
    /// Serve `wss://` instead of `ws://`.
    pub tls: Option<FileTls>,
    /// Where compiled components are kept (content-addressed).
    pub data_dir: Option<PathBuf>,
    /// Environment variable holding the admin API's bearer token.
    pub admin_token_env: Option<String>,
    /// On shutdown, how long live calls get to finish before they are closed, ms.
    pub drain_timeout_ms: Option<u64>,
    /// Days of calls the call store keeps.
    pub retention_days: Option<u64>,
    /// Most calls the call store keeps.
    pub retention_calls: Option<u64>,
    /// Which path runs which component.
    #[serde(default)]
    pub routes: Vec<FileRoute>,
    /// Components by name.
    #[serde(default)]
    pub components: BTreeMap<String, FileComponent>,
}

/// Inbound TLS.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTls {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// One route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRoute {
    /// Exact request path, e.g. `/twilio/media`.
    pub path: String,
    /// Name of a component under `[components]`.
    pub component: String,
    /// Request headers handed to the guest (names, case-insensitive).
    pub forward_headers: Option<Vec<String>>,
    /// Environment variable holding the Twilio auth token: upgrades must carry a valid
    /// `X-Twilio-Signature`.
    pub twilio_auth_token_env: Option<String>,
}

/// One component.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileComponent {
    /// Path of the `.wasm` component.
    pub wasm: Option<PathBuf>,
    /// Name of a component bundled in the binary (`voice-pipeline`).
    pub builtin: Option<String>,
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
#[derive(Debug, Deserialize)]
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
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileLimits {
    /// Linear memory per instance, MiB.
    pub memory_mb: Option<u64>,
    /// Longest stretch of guest execution without returning to the host, ms.
    pub cpu_burst_ms: Option<u64>,
    /// Guest execution time per call, ms.
    pub cpu_total_ms: Option<u64>,
    /// Outbound connections an instance may hold at once.
    pub max_outbound_connections: Option<u32>,
    /// Outbound connections an instance may open over its life.
    pub max_outbound_connects: Option<u32>,
    /// Largest message accepted or sent, bytes.
    pub max_message_bytes: Option<u64>,
    /// Bytes a connection's send queue holds before `send` reports `would-block`.
    pub send_queue_bytes: Option<u64>,
    /// Received bytes a connection buffers for the guest before it stops reading.
    pub receive_buffer_bytes: Option<u64>,
    /// Default outbound handshake deadline, ms.
    pub connect_timeout_ms: Option<u64>,
    /// Longest handshake deadline a guest may ask for, ms.
    pub max_connect_timeout_ms: Option<u64>,
}
