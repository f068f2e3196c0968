//! What a simulator's connections record and its tests wait on: the state behind a
//! mutex, and a notification at every change.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

/// A simulator's recorded state.
#[derive(Debug, Default)]
pub(crate) struct Shared<S> {
    state: Mutex<S>,
    changed: Notify,
}

impl<S> Shared<S> {
    /// Shared state starting at `state`.
    pub(crate) fn new(state: S) -> Self {
        Shared { state: Mutex::new(state), changed: Notify::new() }
    }

    /// The state (a panicked writer's state is still read: it is a record, not an invariant).
    pub(crate) fn lock(&self) -> MutexGuard<'_, S> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes the state and wakes whoever waits.
    pub(crate) fn update(&self, change: impl FnOnce(&mut S)) {
        change(&mut self.lock());
        self.changed.notify_waiters();
    }

    /// Wakes whoever waits, for a change made through [`Shared::lock`].
    pub(crate) fn notify(&self) {
        self.changed.notify_waiters();
    }

    /// Waits until `check` holds, re-checked at every change, for up to `patience`;
    /// `who` and `what` name the timeout.
    pub(crate) async fn wait_until(&self, patience: Duration, who: &str, what: &str, check: impl Fn() -> bool) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let changed = self.changed.notified();
            if check() {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                anyhow::bail!("{who}: timed out waiting for {what}");
            }
        }
    }
}
