//! The host: validated configuration, compiled components and routes, ready to serve.
//!
//! [`Switchboard::new`] does everything that can fail before a port is bound (compiling
//! and checking components, reading TLS files); [`Switchboard::serve`] then runs on a
//! listener the caller bound, so tests bind `127.0.0.1:0`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::{Config, Route};
use crate::registry::Registry;
use crate::runtime::artifacts::ArtifactStore;
use crate::runtime::{EngineSettings, LoadError, Runtime};
use crate::timeline::Timeline;

/// After the drain deadline closes live calls, how long the host waits for them to end.
pub const DRAIN_GRACE: std::time::Duration = std::time::Duration::from_secs(15);

/// Calls whose markers stay in memory for the in-process API ([`Switchboard::timeline`]);
/// the call store keeps every call, and the HTTP API reads from it. Each retained call
/// costs a few KiB, so this bounds the host's memory under a steady stream of calls.
pub const RETAINED_CALLS: usize = 1_000;

/// Why the host could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The engine could not be created (e.g. the pool could not reserve memory).
    #[error("cannot create the WebAssembly engine: {0}")]
    Engine(String),
    /// A component failed to load.
    #[error(transparent)]
    Component(#[from] LoadError),
    /// The inbound TLS files are unusable.
    #[error("inbound TLS: {0}")]
    Tls(String),
    /// The operator listener's TLS files are unusable.
    #[error("operator TLS: {0}")]
    OperatorTls(String),
    /// The data directory cannot be used.
    #[error("data directory: {0}")]
    DataDir(String),
}

/// A host ready to serve: cheap to clone.
#[derive(Clone)]
pub struct Switchboard {
    pub(crate) inner: Arc<HostInner>,
}

pub(crate) struct HostInner {
    pub(crate) config: Config,
    pub(crate) registry: Arc<Registry>,
    pub(crate) routes: HashMap<String, Route>,
    pub(crate) timeline: Timeline,
    /// One permit per live call; sized by `max_concurrent_calls`, like the instance pool.
    pub(crate) call_slots: Arc<Semaphore>,
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    pub(crate) store: crate::store::CallStore,
    pub(crate) next_call: AtomicU64,
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
    pub(crate) operator_tls: Option<tokio_rustls::TlsAcceptor>,
    /// Set when a shutdown begins: new calls get 503 and `/readyz` fails.
    pub(crate) stopping: AtomicBool,
    /// Flipped to true when a shutdown's drain deadline passes: live calls close with 1001.
    pub(crate) closing: tokio::sync::watch::Sender<bool>,
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
        f.debug_struct("Switchboard").field("listen", &self.inner.config.listen).finish_non_exhaustive()
    }
}

impl Switchboard {
    /// Compiles and checks every component and prepares routes. CPU-heavy: run it before
    /// starting to serve (from async code, inside `spawn_blocking`).
    pub fn new(config: Config) -> Result<Self, StartError> {
        let runtime = runtime_for(&config).map_err(|e| StartError::Engine(format!("{e:#}")))?;
        let store = ArtifactStore::new(config.data_dir.as_deref(), runtime.engine()).map_err(|e| {
            StartError::DataDir(format!("{}: {e}", config.data_dir.as_deref().unwrap_or(std::path::Path::new("?")).display()))
        })?;
        let components: Vec<_> = config.components.values().collect();
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let registry = Arc::new(Registry::load(Arc::new(runtime), store, &components, &metrics)?);
        let calls = match &config.data_dir {
            Some(dir) => crate::store::CallStore::open(&dir.join("calls.db"), config.retention),
            None => crate::store::CallStore::open_temporary(config.retention),
        }
        .map_err(|e| StartError::DataDir(e.to_string()))?;
        let timeline = Timeline::new(RETAINED_CALLS);
        let observed = metrics.clone();
        timeline.observe(Box::new(move |marker| observed.observe(marker)));
        let recorder = calls.clone();
        timeline.observe(Box::new(move |marker| recorder.record(marker)));
        let routes = config.routes.iter().map(|route| (route.path.clone(), route.clone())).collect();
        let tls = config.tls.as_ref().map(crate::server::tls_acceptor).transpose().map_err(StartError::Tls)?;
        let operator_tls = config.operator.tls.as_ref().map(crate::server::tls_acceptor).transpose().map_err(StartError::OperatorTls)?;
        Ok(Switchboard {
            inner: Arc::new(HostInner {
                call_slots: Arc::new(Semaphore::new(config.max_concurrent_calls as usize)),
                config,
                registry,
                routes,
                timeline,
                // Call ids stay unique across restarts: they start from the clock.
                next_call: AtomicU64::new(call_id_base()),
                metrics,
                store: calls,
                stopping: AtomicBool::new(false),
                closing: tokio::sync::watch::channel(false).0,
                tls,
                operator_tls,
            }),
        })
    }

    /// The timeline every call records to.
    pub fn timeline(&self) -> Timeline {
        self.inner.timeline.clone()
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Component versions and hot swap.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.inner.registry
    }

    /// The persistent call store.
    pub fn calls(&self) -> &crate::store::CallStore {
        &self.inner.store
    }

    /// Calls alive right now.
    pub fn live_calls(&self) -> usize {
        self.inner.config.max_concurrent_calls as usize - self.inner.call_slots.available_permits()
    }

    /// Binds the configured public and operator addresses.
    pub async fn bind(&self) -> std::io::Result<Listeners> {
        let bind = |address: std::net::SocketAddr, what: &'static str| async move {
            TcpListener::bind(address).await.map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {address} ({what}): {e}")))
        };
        Ok(Listeners {
            public: bind(self.inner.config.listen, "public").await?,
            operator: bind(self.inner.config.operator.listen, "operator").await?,
        })
    }

    /// Serves on `listeners` until `shutdown` completes, then drains: new calls get 503
    /// and `/readyz` fails, live calls get the configured `drain_timeout_ms` to finish on
    /// their own, then their callers' sockets are closed with 1001 (a voice guest then
    /// flushes and closes its own legs) and the host waits up to [`DRAIN_GRACE`] more for
    /// them to end. Both listeners answer until the drain is over.
    pub async fn serve(self, listeners: Listeners, shutdown: impl Future<Output = ()> + Send) -> std::io::Result<()> {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let public = tokio::spawn(crate::server::serve_public(self.inner.clone(), listeners.public, stopped.clone()));
        let operator = tokio::spawn(crate::server::serve_operator(self.inner.clone(), listeners.operator, stopped));
        let _watchers = crate::watch::start(&self);
        shutdown.await;
        tracing::info!("shutting down: new calls get 503; draining live calls");
        self.inner.stopping.store(true, Ordering::Relaxed);
        self.drain(self.inner.config.drain_timeout).await;
        stop.send_replace(true);
        for server in [public, operator] {
            match server.await {
                Ok(result) => result?,
                Err(error) => tracing::error!("a listener task failed: {error}"),
            }
        }
        Ok(())
    }

    async fn drain(&self, drain: std::time::Duration) {
        let started = std::time::Instant::now();
        if self.live_calls() > 0 {
            tracing::info!(calls = self.live_calls(), "draining: waiting up to {drain:?} for live calls");
        }
        while self.live_calls() > 0 && started.elapsed() < drain {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        if self.live_calls() > 0 {
            tracing::warn!(calls = self.live_calls(), "drain deadline passed: closing live calls with 1001");
            self.inner.closing.send_replace(true);
            let closing = std::time::Instant::now();
            while self.live_calls() > 0 && closing.elapsed() < DRAIN_GRACE {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
        self.inner.store.flush(std::time::Duration::from_secs(5));
        tracing::info!(remaining = self.live_calls(), "drained");
    }
}

/// The engine `config` calls for: a pool of `max_concurrent_calls` instances, each memory up
/// to the largest component limit. `serve` and `compile` must agree on it, or compiled
/// artifacts would not match.
fn runtime_for(config: &Config) -> wasmtime::Result<Runtime> {
    let max_memory_bytes = config.components.values().map(|c| c.limits.memory_bytes).max().unwrap_or(64 << 20);
    Runtime::new(EngineSettings { max_instances: config.max_concurrent_calls, max_memory_bytes, pooling: true })
}

fn call_id_base() -> u64 {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    ms.saturating_mul(1_000)
}

/// Compiles every configured component and `extra_files` into the artifact store of
/// `config` (its `data_dir`), with the engine settings `serve` will use; one line each.
pub fn precompile(config: &Config, extra_files: &[std::path::PathBuf]) -> anyhow::Result<Vec<String>> {
    let Some(dir) = config.data_dir.as_deref() else {
        anyhow::bail!("no data_dir configured: there is no artifact store to fill");
    };
    let runtime = runtime_for(config).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let store = ArtifactStore::new(Some(dir), runtime.engine())?;
    let mut sources: Vec<(String, Vec<u8>)> = Vec::new();
    for component in config.components.values() {
        sources.push((component.name.clone(), crate::runtime::component::source_bytes(component)?));
    }
    for file in extra_files {
        let bytes = std::fs::read(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        sources.push((file.display().to_string(), bytes));
    }
    let mut lines = Vec::new();
    for (name, bytes) in sources {
        let started = std::time::Instant::now();
        let (_, digest, compiled) = store.compile(runtime.engine(), &bytes).map_err(|e| anyhow::anyhow!("{name}: {e:#}"))?;
        lines.push(format!("{name}: {digest} {compiled:?} in {:.0} ms -> {}", started.elapsed().as_secs_f64() * 1e3, dir.display()));
    }
    Ok(lines)
}
