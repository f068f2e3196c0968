//! Watching component files (`watch = true`): when a `.wasm` file changes, it is deployed
//! as a new version, the same way the admin API does it. Polls every half second: cheap,
//! and it works on every filesystem.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::config::ComponentSource;
use crate::host::Switchboard;
use crate::runtime::artifacts::digest;

/// How often watched files are checked.
pub const POLL: Duration = Duration::from_millis(500);

/// The running watchers; dropping this stops them.
pub(crate) struct Watchers(Vec<tokio::task::AbortHandle>);

impl Drop for Watchers {
    fn drop(&mut self) {
        for watcher in &self.0 {
            watcher.abort();
        }
    }
}

/// Starts a watcher per watched component.
pub(crate) fn start(host: &Switchboard) -> Watchers {
    let handles = host
        .config()
        .components
        .values()
        .filter(|c| c.watch)
        .filter_map(|c| match &c.source {
            ComponentSource::File(path) => Some((c.name.clone(), path.clone())),
            ComponentSource::Builtin(_) => None,
        })
        .map(|(name, path)| tokio::spawn(watch(host.clone(), name, path)).abort_handle())
        .collect();
    Watchers(handles)
}

fn stamp(path: &PathBuf) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

async fn watch(host: Switchboard, name: String, path: PathBuf) {
    tracing::info!(component = name, path = %path.display(), "watching for changes");
    let mut last = stamp(&path);
    loop {
        tokio::time::sleep(POLL).await;
        let now = stamp(&path);
        if now.is_none() || now == last {
            continue;
        }
        last = now;
        let Ok(bytes) = tokio::fs::read(&path).await else {
            continue;
        };
        let current = host.registry().current(&name).map(|v| v.digest.clone());
        if current.as_deref() == Some(digest(&bytes).as_str()) {
            continue;
        }
        match host.registry().deploy(&name, bytes, path.display().to_string()).await {
            Ok(deployed) => tracing::info!(component = name, version = deployed.version.number, "file changed: deployed"),
            Err(error) => tracing::warn!(component = name, "file changed but was refused: {error}"),
        }
    }
}
