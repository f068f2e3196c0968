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
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::listener::accept_loop;
use crate::policy::secrets::SecretValue;
use crate::state::Shared;

/// Open TCP connections at most on the operator listener.
pub const OPERATOR_CONNECTIONS: usize = 256;

/// What a request may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Read calls, events, metrics, the dashboard.
    Read,
    /// Deploy and roll back components.
    Admin,
}

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

/// The token a request presents: a bearer token, or the password of Basic authentication.
pub(crate) fn presented_token(request: &Request) -> Option<Vec<u8>> {
    let value = request.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.trim().as_bytes().to_vec());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()?;
        let colon = decoded.iter().position(|b| *b == b':')?;
        return Some(decoded[colon + 1..].to_vec());
    }
    None
}

/// Whether `request` carries a token that grants `access`.
pub(crate) fn allowed(host: &Shared, request: &Request, access: Access) -> bool {
    let operator = &host.config.operator;
    let tokens: Vec<&SecretValue> = match access {
        Access::Read => match &operator.read_token {
            // Open reading is only ever configured on loopback (see the module docs).
            None => return true,
            Some(read) => std::iter::once(read).chain(operator.admin_token.as_ref()).collect(),
        },
        Access::Admin => operator.admin_token.iter().collect(),
    };
    let Some(presented) = presented_token(request) else {
        return false;
    };
    // Every token is compared, so the time taken does not tell which one matched.
    tokens.iter().fold(false, |found, token| token.matches(&presented) | found)
}

/// The answer to a request without a valid token: 401 with the challenges a browser and
/// an API client understand.
pub(crate) fn unauthorized(what: &str) -> Response {
    let mut response = (StatusCode::UNAUTHORIZED, format!("{what}: a valid operator token is required\n")).into_response();
    let headers = response.headers_mut();
    headers.append(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"switchboard operator\""));
    headers.append(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"switchboard operator\", charset=\"UTF-8\""));
    response
}

async fn require_read(State(host): State<Shared>, request: Request, next: Next) -> Response {
    if !allowed(&host, &request, Access::Read) {
        tracing::warn!(path = %request.uri().path(), "operator request refused: bad or missing token");
        return unauthorized("reading");
    }
    next.run(request).await
}
