//! The host: validated configuration, compiled components and routes, ready to serve.
//!
//! [`Switchboard::new`] does everything that can fail before a port is bound (compiling
//! and checking components, reading TLS files); [`Switchboard::serve`] then runs on a
//! listener the caller bound, so tests bind `127.0.0.1:0`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::{Config, Route};
use crate::runtime::{EngineSettings, LoadError, LoadedComponent, Runtime};
use crate::timeline::Timeline;

/// Calls whose markers stay in memory.
pub const RETAINED_CALLS: usize = 10_000;

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
}

/// A host ready to serve: cheap to clone.
#[derive(Clone)]
pub struct Switchboard {
    pub(crate) inner: Arc<HostInner>,
}

pub(crate) struct HostInner {
    pub(crate) config: Config,
    pub(crate) _runtime: Runtime,
    pub(crate) routes: HashMap<String, (Route, Arc<LoadedComponent>)>,
    pub(crate) timeline: Timeline,
    /// One permit per live call; sized by `max_concurrent_calls`, like the instance pool.
    pub(crate) call_slots: Arc<Semaphore>,
    pub(crate) next_call: AtomicU64,
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
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
        let max_memory_bytes = config.components.values().map(|c| c.limits.memory_bytes).max().unwrap_or(64 << 20);
        let runtime = Runtime::new(EngineSettings { max_instances: config.max_concurrent_calls, max_memory_bytes })
            .map_err(|e| StartError::Engine(format!("{e:#}")))?;
        let mut loaded: HashMap<String, Arc<LoadedComponent>> = HashMap::new();
        for (name, component) in &config.components {
            loaded.insert(name.clone(), Arc::new(LoadedComponent::load(&runtime, component)?));
        }
        let routes = config
            .routes
            .iter()
            .filter_map(|route| loaded.get(&route.component).map(|c| (route.path.clone(), (route.clone(), c.clone()))))
            .collect();
        let tls = config.tls.as_ref().map(crate::server::tls_acceptor).transpose().map_err(StartError::Tls)?;
        Ok(Switchboard {
            inner: Arc::new(HostInner {
                call_slots: Arc::new(Semaphore::new(config.max_concurrent_calls as usize)),
                config,
                _runtime: runtime,
                routes,
                timeline: Timeline::new(RETAINED_CALLS),
                next_call: AtomicU64::new(1),
                tls,
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

    /// Calls alive right now.
    pub fn live_calls(&self) -> usize {
        self.inner.config.max_concurrent_calls as usize - self.inner.call_slots.available_permits()
    }

    /// Serves on `listener` until `shutdown` completes. Calls already running continue
    /// on their own tasks.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()> + Send) -> std::io::Result<()> {
        crate::server::serve(self, listener, shutdown).await
    }
}
