//! Everything a component's calls run under: its egress policy and secret headers, its
//! limits, its outbound TLS trust and its settings, built once per component.

use std::sync::Arc;

use wasmtime_wasi_config::WasiConfigVariables;

use super::error::LoadError;
use crate::config::{ComponentConfig, Limits};
use crate::net::tls::client_config;
use crate::observe::metrics::Metrics;
use crate::policy::egress::EgressPolicy;
use crate::policy::secrets::SecretHeaders;
use crate::ws::PumpOptions;

/// How long the host waits for a peer's close frame after sending its own.
pub const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Everything a component's calls run under.
pub struct Sandbox {
    /// The component's name in the configuration.
    pub name: String,
    /// Where it may connect.
    pub egress: EgressPolicy,
    /// Headers added to its outbound handshakes.
    pub secrets: SecretHeaders,
    /// Its limits.
    pub limits: Limits,
    /// Outbound TLS settings.
    pub tls: Arc<rustls::ClientConfig>,
    /// Its `wasi:config/store` settings.
    pub settings: WasiConfigVariables,
    /// Socket sizing for its connections.
    pub pump: PumpOptions,
    /// The host's metrics (its sockets count frames and bytes there).
    pub metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("name", &self.name)
            .field("egress", &self.egress)
            .field("secrets", &self.secrets)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// The sandbox `config` describes: policy, secrets, limits, TLS trust, settings.
    pub fn from_config(config: &ComponentConfig, metrics: Arc<Metrics>) -> Result<Self, LoadError> {
        let tls = client_config(&config.extra_ca_certs).map_err(|source| LoadError::Tls { name: config.name.clone(), source })?;
        let limits = config.limits.clone();
        let pump = PumpOptions {
            max_message_bytes: limits.max_message_bytes,
            send_queue_bytes: limits.send_queue_bytes,
            receive_buffer_bytes: limits.receive_buffer_bytes,
            close_grace: CLOSE_GRACE,
        };
        Ok(Sandbox {
            name: config.name.clone(),
            egress: config.egress.clone(),
            secrets: config.secret_headers.clone(),
            limits,
            tls,
            settings: config.settings.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
            pump,
            metrics,
        })
    }
}
