//! The host: validated configuration, compiled components and routes, ready to serve.
//!
//! [`Switchboard::new`] does everything that can fail before a port is bound (compiling
//! and checking components, reading TLS files, opening the call store);
//! [`Switchboard::serve`] then runs on listeners the caller bound, so tests bind
//! `127.0.0.1:0`. This is the top of the host: it composes the wings and nothing below
//! reaches up to it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::config::Config;
use crate::deploy::artifacts::ArtifactStore;
use crate::deploy::fleet::Fleet;
use crate::deploy::versions::Versions;
use crate::observe::calls::CallStore;
use crate::observe::calls::postgres::Database;
use crate::observe::metrics::Metrics;
use crate::observe::timeline::Timeline;
use crate::runtime::{EngineSettings, LoadError, Runtime};
use crate::state::{HostState, Parts, Shared};

/// After the drain deadline closes live calls, how long the host waits for them to end.
pub const DRAIN_GRACE: Duration = Duration::from_secs(15);

/// Calls whose markers stay in memory for the in-process API ([`Switchboard::timeline`]);
/// the call store keeps every call, and the HTTP API reads from it. Each retained call
/// costs a few KiB, so this bounds the host's memory under a steady stream of calls.
pub const RETAINED_CALLS: usize = 1_000;

/// How long a shutdown waits for the call store to commit what it was given.
const STORE_FLUSH: Duration = Duration::from_secs(5);

/// Why the host could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The engine could not be created (e.g. the pool could not reserve memory).
    #[error("cannot create the WebAssembly engine: {0}")]
    Engine(String),
    /// A component failed to load.
    #[error(transparent)]
    Component(#[from] LoadError),
    /// The public listener's TLS files are unusable.
    #[error("inbound TLS: {0}")]
    Tls(crate::net::tls::TlsSetupError),
    /// The operator listener's TLS files are unusable.
    #[error("operator TLS: {0}")]
    OperatorTls(crate::net::tls::TlsSetupError),
    /// The data directory cannot be used.
    #[error("data directory: {0}")]
    DataDir(String),
    /// The shared database's settings are unusable.
    #[error("call store database: {0}")]
    Database(String),
}

/// A host ready to serve: cheap to clone.
#[derive(Clone)]
pub struct Switchboard {
    state: Shared,
}

/// The two sockets a host serves on.
#[derive(Debug)]
pub struct Listeners {
    /// The public listener: routes (WebSocket upgrades), `/healthz`, `/readyz`.
    pub public: TcpListener,
    /// The operator listener: query API, events, dashboard, metrics, deploy API.
    pub operator: TcpListener,
}

impl Listeners {
    /// Binds both on loopback with ports chosen by the system (tests, the demo).
    pub async fn ephemeral() -> std::io::Result<Self> {
        Ok(Listeners { public: TcpListener::bind("127.0.0.1:0").await?, operator: TcpListener::bind("127.0.0.1:0").await? })
    }
}

impl std::fmt::Debug for Switchboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Switchboard").field("listen", &self.state.config.listen).finish_non_exhaustive()
    }
}

/// The engine `config` calls for: a pool of `max_concurrent_calls` instances, each memory
/// up to the largest component limit. `serve` and `compile` must agree on it, or compiled
/// artifacts would not match.
pub fn engine_settings(config: &Config) -> EngineSettings {
    let max_memory_bytes = config.components.values().map(|c| c.limits.memory_bytes).max().unwrap_or(64 << 20);
    EngineSettings { max_instances: config.max_concurrent_calls, max_memory_bytes, pooling: true, perf_map: config.perf_map }
}

impl Switchboard {
    /// Compiles and checks every component and its routes. CPU-heavy: run it before
    /// starting to serve (from async code, inside `spawn_blocking`).
    pub fn new(config: Config) -> Result<Self, StartError> {
        let runtime = Runtime::new(engine_settings(&config)).map_err(|e| StartError::Engine(format!("{e:#}")))?;
        let data_dir_error = |e: &dyn std::fmt::Display| {
            StartError::DataDir(format!("{}: {e}", config.data_dir.as_deref().unwrap_or(std::path::Path::new("?")).display()))
        };
        let artifacts = ArtifactStore::new(config.data_dir.as_deref(), runtime.engine()).map_err(|e| data_dir_error(&e))?;
        let components: Vec<_> = config.components.values().collect();
        let metrics = Arc::new(Metrics::new());
        let versions = Arc::new(Versions::load(Arc::new(runtime), artifacts, &components, &metrics)?);
        let replica = config.store.replica.as_str();
        let database = match &config.store.database {
            Some(settings) => {
                let extra_roots: Vec<_> = settings.ca_file.iter().cloned().collect();
                let tls = crate::net::tls::client_config(&extra_roots).map_err(|e| StartError::Database(e.to_string()))?;
                Some(Database::new(&settings.url.0, tls).map_err(StartError::Database)?)
            }
            None => None,
        };
        let calls = match (&database, &config.data_dir) {
            (Some(database), _) => CallStore::connect(database.clone(), config.retention, replica),
            (None, Some(dir)) => CallStore::open(&dir.join("calls.db"), config.retention, replica),
            (None, None) => CallStore::open_temporary(config.retention, replica),
        }
        .map_err(|e| StartError::DataDir(e.to_string()))?;
        let timeline = Timeline::new(RETAINED_CALLS);
        let observed = metrics.clone();
        timeline.observe(Box::new(move |marker| observed.observe(marker)));
        let recorder = calls.clone();
        timeline.observe(Box::new(move |marker| recorder.record(marker)));
        let acceptor = |tls: &crate::config::InboundTls| crate::net::tls::server_acceptor(&tls.cert, &tls.key);
        let tls = config.tls.as_ref().map(acceptor).transpose().map_err(StartError::Tls)?;
        let operator_tls = config.operator.tls.as_ref().map(acceptor).transpose().map_err(StartError::OperatorTls)?;
        let fleet = database.map(|database| Arc::new(Fleet::new(database, config.store.replica.clone(), versions.clone())));
        let state = HostState::new(Parts { config, versions, timeline, metrics, calls, fleet, tls, operator_tls });
        Ok(Switchboard { state: Arc::new(state) })
    }

    /// The timeline every call records to.
    pub fn timeline(&self) -> Timeline {
        self.state.timeline.clone()
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.state.config
    }

    /// Component versions and hot swap.
    pub fn versions(&self) -> &Arc<Versions> {
        &self.state.versions
    }

    /// The persistent call store.
    pub fn calls(&self) -> &CallStore {
        &self.state.calls
    }

    /// Calls alive right now.
    pub fn live_calls(&self) -> usize {
        self.state.live_calls()
    }

    /// Binds the configured public and operator addresses.
    pub async fn bind(&self) -> std::io::Result<Listeners> {
        let bind = |address: std::net::SocketAddr, what: &'static str| async move {
            TcpListener::bind(address).await.map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {address} ({what}): {e}")))
        };
        Ok(Listeners {
            public: bind(self.state.config.listen, "public").await?,
            operator: bind(self.state.config.operator.listen, "operator").await?,
        })
    }

    /// Serves on `listeners` until `shutdown` completes, then drains: new calls get 503
    /// and `/readyz` fails, live calls get the configured `drain_timeout_ms` to finish on
    /// their own, then their callers' sockets are closed with 1001 (a voice guest then
    /// flushes and closes its own legs) and the host waits up to [`DRAIN_GRACE`] more for
    /// them to end. Both listeners answer until the drain is over.
    pub async fn serve(self, listeners: Listeners, shutdown: impl Future<Output = ()> + Send) -> std::io::Result<()> {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let public = tokio::spawn(crate::http::public::serve(self.state.clone(), listeners.public, stopped.clone()));
        let operator = tokio::spawn(crate::http::operator::serve(self.state.clone(), listeners.operator, stopped));
        let _watchers = crate::deploy::watch::start(&self.state.config, &self.state.versions);
        let _fleet = match &self.state.fleet {
            Some(fleet) => Some(fleet.start(tokio::runtime::Handle::current())?),
            None => None,
        };
        shutdown.await;
        tracing::info!("shutting down: new calls get 503; draining live calls");
        self.state.stop_taking_calls();
        self.drain(self.state.config.drain_timeout).await;
        stop.send_replace(true);
        for server in [public, operator] {
            match server.await {
                Ok(result) => result?,
                Err(error) => tracing::error!("a listener task failed: {error}"),
            }
        }
        Ok(())
    }

    /// Waits until every call slot is free again, at most `within`.
    async fn calls_ended(&self, within: Duration) -> bool {
        let all = self.state.config.max_concurrent_calls;
        // Every permit back means every call has ended; holding them is harmless, as no
        // new call is taken while the host stops.
        matches!(tokio::time::timeout(within, self.state.call_slots.acquire_many(all)).await, Ok(Ok(_)))
    }

    async fn drain(&self, drain: Duration) {
        if self.live_calls() > 0 {
            tracing::info!(calls = self.live_calls(), "draining: waiting up to {drain:?} for live calls");
        }
        if !self.calls_ended(drain).await {
            tracing::warn!(calls = self.live_calls(), "drain deadline passed: closing live calls with 1001");
            self.state.closing.send_replace(true);
            self.calls_ended(DRAIN_GRACE).await;
        }
        let calls = self.state.calls.clone();
        let flushed = tokio::task::spawn_blocking(move || calls.flush(STORE_FLUSH)).await.unwrap_or(false);
        if !flushed {
            tracing::warn!("the call store did not commit everything within {STORE_FLUSH:?}");
        }
        tracing::info!(remaining = self.live_calls(), "drained");
    }
}
