//! The state every front door shares, below them all: the configuration in force, the
//! component versions, the routes, the timeline, metrics and call store, the call slots,
//! and the shutdown signals. The listeners in [`crate::http`] read it; nothing here
//! reaches up to them.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::{Semaphore, watch};

use crate::config::{Config, Route};
use crate::deploy::versions::Versions;
use crate::observe::calls::CallStore;
use crate::observe::metrics::Metrics;
use crate::observe::timeline::{CallId, Timeline};

/// The shared state, behind an `Arc`.
pub(crate) type Shared = Arc<HostState>;

/// What the host's front doors share.
pub(crate) struct HostState {
    /// The configuration in force.
    pub(crate) config: Config,
    /// Every component's versions; new calls get the current one.
    pub(crate) versions: Arc<Versions>,
    /// Routes by exact path.
    pub(crate) routes: HashMap<String, Route>,
    /// Every call's markers.
    pub(crate) timeline: Timeline,
    /// One permit per live call; sized by `max_concurrent_calls`, like the instance pool.
    pub(crate) call_slots: Arc<Semaphore>,
    /// The Prometheus figures.
    pub(crate) metrics: Arc<Metrics>,
    /// The persistent call store.
    pub(crate) calls: CallStore,
    /// Fleet deploys, with a shared database.
    pub(crate) fleet: Option<Arc<crate::deploy::fleet::Fleet>>,
    /// The next call id; ids start from the clock so they stay unique across restarts.
    next_call: AtomicU64,
    /// The public listener's TLS, when it serves `wss://`.
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
    /// The operator listener's TLS, when it serves `https://`.
    pub(crate) operator_tls: Option<tokio_rustls::TlsAcceptor>,
    /// Set when a shutdown begins: new calls get 503 and `/readyz` fails.
    stopping: AtomicBool,
    /// Turns true when a shutdown's drain deadline passes: live calls close with 1001.
    pub(crate) closing: watch::Sender<bool>,
}

/// What [`HostState::new`] is built from.
pub(crate) struct Parts {
    pub(crate) config: Config,
    pub(crate) versions: Arc<Versions>,
    pub(crate) timeline: Timeline,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) calls: CallStore,
    pub(crate) fleet: Option<Arc<crate::deploy::fleet::Fleet>>,
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
    pub(crate) operator_tls: Option<tokio_rustls::TlsAcceptor>,
}

impl HostState {
    pub(crate) fn new(parts: Parts) -> Self {
        let Parts { config, versions, timeline, metrics, calls, fleet, tls, operator_tls } = parts;
        HostState {
            call_slots: Arc::new(Semaphore::new(config.max_concurrent_calls as usize)),
            routes: config.routes.iter().map(|route| (route.path.clone(), route.clone())).collect(),
            config,
            versions,
            timeline,
            metrics,
            calls,
            fleet,
            next_call: AtomicU64::new(call_id_base()),
            tls,
            operator_tls,
            stopping: AtomicBool::new(false),
            closing: watch::channel(false).0,
        }
    }

    /// A new call's id.
    pub(crate) fn next_call_id(&self) -> CallId {
        CallId(self.next_call.fetch_add(1, Ordering::Relaxed))
    }

    /// Calls alive right now.
    pub(crate) fn live_calls(&self) -> usize {
        self.config.max_concurrent_calls as usize - self.call_slots.available_permits()
    }

    /// Whether a shutdown has begun.
    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// A shutdown begins: no new calls, readiness fails.
    pub(crate) fn stop_taking_calls(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }
}

fn call_id_base() -> u64 {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    ms.saturating_mul(1_000)
}
