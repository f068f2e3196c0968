//! One call's idle keep-alive connections, so a guest asking the same service again does
//! not pay for TCP and TLS again. Connections are never shared between calls: the pool
//! lives in the call's state and closes its connections when the call ends.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::client::conn::http1::SendRequest;

use super::error::FetchError;
use crate::policy::egress::Target;

/// The request body type on the pool's connections: any guest body, counted and capped.
pub type OutBody = http_body_util::combinators::UnsyncBoxBody<Bytes, FetchError>;

/// The connection an exchange came on, handed back to its pool when the response body
/// ends cleanly.
pub(crate) struct KeepAlive {
    pub(crate) pool: Arc<Pool>,
    pub(crate) target: Target,
    pub(crate) sender: SendRequest<OutBody>,
    pub(crate) peer: SocketAddr,
}

impl KeepAlive {
    /// Keeps the connection for the call's next request to the same target.
    pub(crate) fn give_back(self) {
        self.pool.put(self.target, self.sender, self.peer);
    }
}

/// Idle connections kept per call.
pub const MAX_IDLE: usize = 4;
/// How long an idle connection is kept.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

struct Idle {
    target: Target,
    since: Instant,
    sender: SendRequest<OutBody>,
    peer: SocketAddr,
}

/// Idle connections by target.
#[derive(Default)]
pub struct Pool {
    idle: Mutex<Vec<Idle>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("idle", &self.idle_count()).finish()
    }
}

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        // Every update is one push or removal: a poisoned lock is still consistent.
        self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Connections idle now.
    pub fn idle_count(&self) -> usize {
        self.lock().len()
    }

    /// The most recently idled live connection to `target`, dropping stale ones.
    pub(crate) fn take(&self, target: &Target) -> Option<(SendRequest<OutBody>, SocketAddr)> {
        let mut idle = self.lock();
        idle.retain(|entry| entry.since.elapsed() < IDLE_TIMEOUT && !entry.sender.is_closed());
        let position = idle.iter().rposition(|entry| entry.target == *target)?;
        let entry = idle.remove(position);
        Some((entry.sender, entry.peer))
    }

    /// Keeps a connection whose exchange finished cleanly; the oldest goes when full.
    pub(crate) fn put(&self, target: Target, sender: SendRequest<OutBody>, peer: SocketAddr) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.lock();
        if idle.len() >= MAX_IDLE {
            idle.remove(0);
        }
        idle.push(Idle { target, since: Instant::now(), sender, peer });
    }
}
