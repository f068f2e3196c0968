//! The accept loop both listeners share: TCP (TLS first when configured), HTTP/1.1 with
//! upgrades, limits on request heads and their time, and a cap on open connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

/// Longest time a client may take to send its request headers (or finish TLS).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest request head (request line and headers) accepted; larger ones are refused.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// The remote address of the connection a request came on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RemoteAddr(pub(crate) SocketAddr);

/// The remote address of the connection `request` came on, for markers.
pub(crate) fn remote_of(request: &Request) -> String {
    request.extensions().get::<RemoteAddr>().map(|r| r.0.to_string()).unwrap_or_default()
}

/// Waits until `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Accepts connections (TLS first when configured) and serves HTTP/1.1 with upgrades on
/// each, at most `max_connections` at once, until `stop` turns true.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    router: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    max_connections: usize,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let connections = Arc::new(tokio::sync::Semaphore::new(max_connections));
    loop {
        let (tcp, remote) = tokio::select! {
            () = stopped(&mut stop) => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(connection_permit) = connections.clone().try_acquire_owned() else {
            tracing::warn!(%remote, "connection refused: too many open connections");
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let router = router.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _connection_permit = connection_permit;
            let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(RemoteAddr(remote));
                router.clone().oneshot(request.map(Body::new))
            });
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT).max_buf_size(MAX_HEADER_BYTES);
            let result = match tls {
                None => http.serve_connection(TokioIo::new(tcp), service).with_upgrades().await,
                Some(acceptor) => match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => http.serve_connection(TokioIo::new(stream), service).with_upgrades().await,
                    Ok(Err(error)) => {
                        tracing::debug!(%remote, "inbound TLS handshake failed: {error}");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%remote, "inbound TLS handshake timed out");
                        return;
                    }
                },
            };
            if let Err(error) = result {
                tracing::debug!(%remote, "connection ended with an error: {error}");
            }
        });
    }
}
