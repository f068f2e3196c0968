//! The public listener: routing, and the WebSocket upgrades that start calls.
//!
//! It serves what Twilio needs and nothing else: routes answer only WebSocket upgrades
//! (426 otherwise), `/healthz` answers `ok`, `/readyz` fails while the
//! host drains, and every other path (the API, metrics, dashboard, deploy API included)
//! is 404. When every call slot is taken, or the host is draining, an upgrade gets 503.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, watch};

use super::listener::{accept_loop, remote_of};
use crate::call::CallSetup;
use crate::config::Route;
use crate::deploy::versions::ComponentVersion;
use crate::policy::signature;
use crate::runtime::bindings::RequestInfo;
use crate::state::Shared;
use crate::ws::CloseInfo;

/// Open TCP connections at most, per allowed call (upgrading, idle and HTTP API ones
/// included); beyond that new connections are closed at once.
pub const CONNECTIONS_PER_CALL: usize = 2;

/// Serves the public listener until `stop` turns true: configured routes (WebSocket
/// upgrades), `/healthz` and `/readyz`; every other path is 404.
pub(crate) async fn serve(host: Shared, listener: TcpListener, stop: watch::Receiver<bool>) -> std::io::Result<()> {
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

/// `/readyz`: 200 while the host takes calls, 503 once it drains (for load balancers).
pub(crate) async fn readiness(State(host): State<Shared>) -> Response {
    if host.stopping() { (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response() } else { "ready\n".into_response() }
}

/// Every other path: a WebSocket upgrade on a configured route starts a call.
async fn upgrade(State(host): State<Shared>, mut request: Request) -> Response {
    let admitted = match admit(&host, &request) {
        Ok(admitted) => admitted,
        Err(refusal) => return refusal.into_response(),
    };
    let config = admitted.version.loaded.sandbox().pump.websocket_config();
    let (response, websocket) = match hyper_tungstenite::upgrade(&mut request, Some(config)) {
        Ok(upgrade) => upgrade,
        Err(error) => return (StatusCode::BAD_REQUEST, format!("bad WebSocket upgrade: {error}\n")).into_response(),
    };
    let Admitted { route, version, slot } = admitted;
    let call = host.next_call_id();
    let timeline = host.timeline.start_call(call);
    let path = request.uri().path().to_owned();
    timeline.host(
        "call.accepted",
        &[("remote", remote_of(&request).into()), ("path", path.as_str().into()), ("component", route.component.as_str().into())],
    );
    let headers = route
        .forward_headers
        .iter()
        .filter_map(|name| request.headers().get(name).and_then(|v| v.to_str().ok()).map(|v| (name.as_str().to_owned(), v.to_owned())))
        .collect();
    let request_info = RequestInfo { connection_id: call.to_string(), path, query: request.uri().query().map(str::to_owned), headers };
    // The call keeps this version until it ends, whatever is deployed meanwhile.
    let setup = CallSetup {
        hold: version.enter_call(),
        request: request_info,
        timeline,
        closing: host.closing.subscribe(),
        deadlines: route.deadlines,
    };
    tokio::spawn(async move {
        let _slot = slot;
        match websocket.await {
            Ok(socket) => crate::call::run(setup, socket).await,
            Err(error) => {
                let info = CloseInfo::network(&format!("upgrade failed: {error}"));
                setup
                    .timeline
                    .host("call.closed", &[("code", info.code.into()), ("reason", info.reason.into()), ("by", info.by.label().into())]);
            }
        }
    });
    response.map(Body::new)
}

/// An upgrade that may start a call.
struct Admitted {
    route: Route,
    version: Arc<ComponentVersion>,
    /// The call's slot, held until the call ends.
    slot: OwnedSemaphorePermit,
}

/// Decides whether `request` may start a call: a route, a WebSocket upgrade, a host that
/// takes calls, a valid Twilio signature where the route asks for one, a free call slot.
fn admit(host: &Shared, request: &Request) -> Result<Admitted, (StatusCode, &'static str)> {
    let path = request.uri().path();
    let Some(route) = host.routes.get(path) else {
        return Err((StatusCode::NOT_FOUND, "no route for this path\n"));
    };
    if host.stopping() {
        return Err((StatusCode::SERVICE_UNAVAILABLE, "draining: not taking new calls\n"));
    }
    let Some(version) = host.versions.current(&route.component) else {
        return Err((StatusCode::NOT_FOUND, "no component for this route\n"));
    };
    if !hyper_tungstenite::is_upgrade_request(request) {
        return Err((StatusCode::UPGRADE_REQUIRED, "this path accepts WebSocket upgrades only\n"));
    }
    if let Some(token) = &route.twilio_auth_token {
        let path_and_query = request.uri().path_and_query().map_or(path, |pq| pq.as_str());
        if let Err(error) = signature::verify(token.header_value().as_bytes(), request.headers(), path_and_query, host.tls.is_some()) {
            // The route checks Twilio's signatures: the caller it refuses claims to be Twilio.
            host.timeline.start_call(host.next_call_id()).host_on(
                "twilio",
                "call.rejected",
                &[
                    ("remote", remote_of(request).into()),
                    ("path", path.into()),
                    ("status", 403u16.into()),
                    ("reason", error.to_string().into()),
                ],
            );
            return Err((StatusCode::FORBIDDEN, "invalid Twilio signature\n"));
        }
    }
    let Ok(slot) = host.call_slots.clone().try_acquire_owned() else {
        tracing::warn!(path, "call refused: every call slot is taken");
        return Err((StatusCode::SERVICE_UNAVAILABLE, "too many concurrent calls\n"));
    };
    Ok(Admitted { route: route.clone(), version, slot })
}
