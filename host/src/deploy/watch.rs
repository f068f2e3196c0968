//! Watching component files (`watch = true`): when a `.wasm` file changes, it is deployed
//! as a new version, the same way the admin API does it. Polls every half second: cheap,
//! and it works on every filesystem.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::artifacts::digest;
use super::versions::Versions;
use crate::config::{ComponentSource, Config};

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
pub(crate) fn start(config: &Config, versions: &Arc<Versions>) -> Watchers {
    let handles = config
        .components
        .values()
        .filter(|c| c.watch)
        .filter_map(|c| match &c.source {
            ComponentSource::File(path) => Some((c.name.clone(), path.clone())),
            ComponentSource::Builtin(_) | ComponentSource::Oci(_) => None,
        })
        .map(|(name, path)| tokio::spawn(watch(versions.clone(), name, path)).abort_handle())
        .collect();
    Watchers(handles)
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

async fn watch(versions: Arc<Versions>, name: String, path: PathBuf) {
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
        let current = versions.current(&name).map(|v| v.digest.clone());
        if current.as_deref() == Some(digest(&bytes).as_str()) {
            continue;
        }
        match versions.deploy(&name, bytes, path.display().to_string()).await {
            Ok(deployed) => tracing::info!(component = name, version = deployed.version.number, "file changed: deployed"),
            Err(error) => tracing::warn!(component = name, "file changed but was refused: {error}"),
        }
    }
}
