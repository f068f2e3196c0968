//! `switchboard serve`: validate, compile, bind both listeners, serve until SIGTERM or
//! Ctrl-C, then drain.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use switchboard::Switchboard;
use switchboard::config::Overrides;

use crate::check::load_config;

pub(crate) async fn run(
    config: Option<PathBuf>,
    listen: Option<SocketAddr>,
    operator_listen: Option<SocketAddr>,
    ready_file: Option<PathBuf>,
) -> anyhow::Result<()> {
    let config = load_config(config.as_deref(), Overrides { listen, operator_listen })?;
    if let Some(path) = &ready_file {
        // A file left by an earlier run must not be read as this one's.
        let _ = std::fs::remove_file(path);
    }
    let host = tokio::task::spawn_blocking(move || Switchboard::new(config)).await??;
    let listeners = host.bind().await?;
    if let Some(path) = ready_file {
        write_ready_file(&path, listeners.public.local_addr()?, listeners.operator.local_addr()?)?;
    }
    host.serve(listeners, shutdown_signal()).await?;
    Ok(())
}

/// Writes the bound addresses to `path` (through a temporary file, so a reader never sees
/// half of it).
fn write_ready_file(path: &Path, public: SocketAddr, operator: SocketAddr) -> anyhow::Result<()> {
    let text = serde_json::json!({ "public": public.to_string(), "operator": operator.to_string() }).to_string();
    let partial = path.with_extension("partial");
    std::fs::write(&partial, text)
        .and_then(|()| std::fs::rename(&partial, path))
        .with_context(|| format!("writing the ready file {}", path.display()))
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(error) => {
            tracing::error!("cannot listen for SIGTERM: {error}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
