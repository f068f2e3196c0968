//! `switchboard serve`: validate, compile, bind both listeners, serve until SIGTERM or
//! Ctrl-C, then drain.

use std::net::SocketAddr;
use std::path::PathBuf;

use switchboard::Switchboard;
use switchboard::config::Overrides;

use crate::check::load_config;

pub(crate) async fn run(config: Option<PathBuf>, listen: Option<SocketAddr>, operator_listen: Option<SocketAddr>) -> anyhow::Result<()> {
    let config = load_config(config.as_deref(), Overrides { listen, operator_listen })?;
    let host = tokio::task::spawn_blocking(move || Switchboard::new(config)).await??;
    let listeners = host.bind().await?;
    host.serve(listeners, shutdown_signal()).await?;
    Ok(())
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
