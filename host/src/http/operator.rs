//! The operator listener: the query API, the event stream, the dashboard and `/metrics`
//! (reading), and the deploy API under `/admin`, on an address of their own (loopback by
//! default), never on the public port.
//!
//! Reading needs the operator token (`[operator] token_env`) when one is configured, and
//! one must be configured when the listener is not loopback (the configuration refuses
//! to start otherwise). The deploy API always needs the admin token
//! (`[operator] admin_token_env`), which also grants reading. A token is presented as
//! `Authorization: Bearer <token>` (Prometheus' `authorization` scrape setting) or as the
//! password of HTTP Basic authentication, which a browser asks for on the dashboard.
//! Tokens are compared in constant time.

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::auth::{Access, allowed, unauthorized};
use super::listener::accept_loop;
use crate::state::Shared;

/// Open TCP connections at most on the operator listener.
pub const OPERATOR_CONNECTIONS: usize = 256;

/// Serves the operator listener until `stop` turns true.
pub(crate) async fn serve(host: Shared, listener: TcpListener, stop: watch::Receiver<bool>) -> std::io::Result<()> {
    let router = router(host.clone());
    let tls = host.operator_tls.clone();
    tracing::info!(address = %listener.local_addr()?, tls = tls.is_some(), "switchboard listening (operator)");
    accept_loop(listener, router, tls, OPERATOR_CONNECTIONS, stop).await
}

/// The operator listener's routes.
pub(crate) fn router(host: Shared) -> Router {
    let reading = super::api::router().layer(axum::middleware::from_fn_with_state(host.clone(), require_read));
    Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok\n" }))
        .route("/readyz", axum::routing::get(super::public::readiness))
        .merge(reading)
        .nest("/admin", super::admin::router(host.clone()))
        .with_state(host)
}

async fn require_read(State(host): State<Shared>, request: Request, next: Next) -> Response {
    if !allowed(&host, &request, Access::Read) {
        tracing::warn!(path = %request.uri().path(), "operator request refused: bad or missing token");
        return unauthorized("reading");
    }
    next.run(request).await
}
