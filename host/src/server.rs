//! The listeners: accepting TCP (optionally TLS) and HTTP/1.1 on the public and the
//! operator listener, routing, and the WebSocket upgrades that start calls.
//!
//! The public listener serves what Twilio needs and nothing else: routes answer only
//! WebSocket upgrades (426 otherwise), `/healthz` answers `ok`, `/readyz` fails while the
//! host drains, and every other path (the API, metrics, dashboard, deploy API included)
//! is 404. When every call slot is taken, or the host is draining, an upgrade gets 503.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

use crate::config::InboundTls;
use crate::host::HostInner;
use crate::runtime::bindings::RequestInfo;
use crate::timeline::CallId;

/// Longest time a client may take to send its request headers (or finish TLS).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest request head (request line and headers) accepted; larger ones are refused.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Open TCP connections at most, per allowed call (upgrading, idle and HTTP API ones
/// included); beyond that new connections are closed at once.
pub const CONNECTIONS_PER_CALL: usize = 2;

/// The remote address of the connection a request came on.
#[derive(Debug, Clone, Copy)]
struct RemoteAddr(SocketAddr);

pub(crate) type Shared = Arc<HostInner>;

/// Serves the public listener until `stop` turns true: configured routes (WebSocket
/// upgrades), `/healthz` and `/readyz`; every other path is 404.
pub(crate) async fn serve_public(host: Shared, listener: TcpListener, stop: watch::Receiver<bool>) -> std::io::Result<()> {
    let router = Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok\n" }))
        .route("/readyz", axum::routing::get(readiness))
        .fallback(upgrade)
        .with_state(host.clone());
    let tls = host.tls.clone();
    tracing::info!(address = %listener.local_addr()?, tls = tls.is_some(), "switchboard listening (public)");
    let connections = (host.config.max_concurrent_calls as usize).saturating_mul(CONNECTIONS_PER_CALL).max(16);
    accept_loop(listener, router, tls, connections, stop).await
}

/// Serves the operator listener until `stop` turns true (see [`crate::operator`]).
pub(crate) async fn serve_operator(host: Shared, listener: TcpListener, stop: watch::Receiver<bool>) -> std::io::Result<()> {
    let router = crate::operator::router(host.clone());
    let tls = host.operator_tls.clone();
    tracing::info!(address = %listener.local_addr()?, tls = tls.is_some(), "switchboard listening (operator)");
    accept_loop(listener, router, tls, OPERATOR_CONNECTIONS, stop).await
}

/// `/readyz`: 200 while the host takes calls, 503 once it drains (for load balancers).
pub(crate) async fn readiness(State(host): State<Shared>) -> Response {
    if host.stopping.load(Ordering::Relaxed) {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response()
    } else {
        "ready\n".into_response()
    }
}

/// Waits until `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Open TCP connections at most on the operator listener.
pub const OPERATOR_CONNECTIONS: usize = 256;

/// Accepts connections (TLS first when configured) and serves HTTP/1.1 with upgrades on
/// each, at most `max_connections` at once, until `stop` turns true.
async fn accept_loop(
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
        let Ok(connection_slot) = connections.clone().try_acquire_owned() else {
            tracing::warn!(%remote, "connection refused: too many open connections");
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let router = router.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _connection_slot = connection_slot;
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

/// Every other path: a WebSocket upgrade on a configured route starts a call.
async fn upgrade(State(host): State<Shared>, mut request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let Some(route) = host.routes.get(&path) else {
        return (StatusCode::NOT_FOUND, "no route for this path\n").into_response();
    };
    if host.stopping.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining: not taking new calls\n").into_response();
    }
    let Some(version) = host.registry.current(&route.component) else {
        return (StatusCode::NOT_FOUND, "no component for this route\n").into_response();
    };
    if !hyper_tungstenite::is_upgrade_request(&request) {
        return (StatusCode::UPGRADE_REQUIRED, "this path accepts WebSocket upgrades only\n").into_response();
    }
    if let Some(token) = &route.twilio_auth_token {
        let path_and_query = request.uri().path_and_query().map_or(path.clone(), |pq| pq.as_str().to_owned());
        if let Err(error) =
            crate::signature::verify(token.header_value().as_bytes(), request.headers(), &path_and_query, host.tls.is_some())
        {
            let call = CallId(host.next_call.fetch_add(1, Ordering::Relaxed));
            let remote = remote_of(&request);
            host.timeline.start_call(call).host(
                "call.rejected",
                &[("remote", remote), ("path", path.clone()), ("status", "403".to_owned()), ("reason", error.to_string())],
            );
            return (StatusCode::FORBIDDEN, "invalid Twilio signature\n").into_response();
        }
    }
    let Ok(permit) = host.call_slots.clone().try_acquire_owned() else {
        tracing::warn!(path, "call refused: every call slot is taken");
        return (StatusCode::SERVICE_UNAVAILABLE, "too many concurrent calls\n").into_response();
    };
    let config = version.loaded.sandbox().pump.websocket_config();
    let (response, websocket) = match hyper_tungstenite::upgrade(&mut request, Some(config)) {
        Ok(upgrade) => upgrade,
        Err(error) => {
            return (StatusCode::BAD_REQUEST, format!("bad WebSocket upgrade: {error}\n")).into_response();
        }
    };

    let call = CallId(host.next_call.fetch_add(1, Ordering::Relaxed));
    let timeline = host.timeline.start_call(call);
    let remote = remote_of(&request);
    timeline.host("call.accepted", &[("remote", remote), ("path", path.clone()), ("component", route.component.clone())]);
    let headers = route
        .forward_headers
        .iter()
        .filter_map(|name| request.headers().get(name).and_then(|v| v.to_str().ok()).map(|v| (name.as_str().to_owned(), v.to_owned())))
        .collect();
    let info = RequestInfo { connection_id: call.to_string(), path, query: request.uri().query().map(str::to_owned), headers };
    // The call keeps this version until it ends, whatever is deployed meanwhile.
    let live = version.enter_call();
    let closing = host.closing.subscribe();
    let deadlines = route.deadlines;
    tokio::spawn(async move {
        let _permit = permit;
        match websocket.await {
            Ok(socket) => crate::call::run(live, socket, info, timeline, closing, deadlines).await,
            Err(error) => timeline.host(
                "call.closed",
                &[("code", "1006".to_owned()), ("reason", format!("upgrade failed: {error}")), ("by", "network".to_owned())],
            ),
        }
    });
    response.map(Body::new)
}

/// The remote address of the connection `request` came on, for markers.
fn remote_of(request: &Request) -> String {
    request.extensions().get::<RemoteAddr>().map(|r| r.0.to_string()).unwrap_or_default()
}

/// A TLS acceptor from PEM files.
pub(crate) fn tls_acceptor(tls: &InboundTls) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    let certs = crate::ws::tls::read_certificates(&tls.cert).map_err(|e| e.to_string())?;
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| format!("key file {}: {e}", tls.key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(crate::ws::tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| format!("certificate or key refused: {e}"))?;
    Ok(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)))
}
