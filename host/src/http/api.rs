//! The query API, metrics and dashboard, served on the operator listener behind its read
//! token (see `crate::operator`).
//!
//! | request | answer |
//! |---|---|
//! | `GET /api/calls?outcome=failed&leg=deepgram&since=MS&until=MS&limit=N` | recent calls, newest first, JSON |
//! | `GET /api/calls/{id or a reference}` | `{call, timeline}`: the summary and every marker |
//! | `GET /api/calls/{key}/transcript` | the call's transcript: the guest's `transcript` entries |
//! | `GET /api/events` | markers as they happen (server-sent events, JSON) |
//! | `GET /metrics` | Prometheus text |
//! | `GET /dashboard` | the live dashboard |

use std::convert::Infallible;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use crate::observe::calls::{CallFilter, StoreError};
use crate::state::Shared;

const DASHBOARD: &str = include_str!("dashboard.html");

pub(crate) fn router() -> Router<Shared> {
    Router::new()
        .route("/api/calls", get(list))
        .route("/api/calls/{key}", get(show))
        .route("/api/calls/{key}/transcript", get(transcript))
        .route("/api/events", get(events))
        .route("/metrics", get(metrics))
        .route("/dashboard", get(|| async { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], DASHBOARD) }))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    outcome: Option<String>,
    leg: Option<String>,
    since: Option<i64>,
    until: Option<i64>,
    limit: Option<u32>,
}

fn store_error(error: StoreError) -> Response {
    let status = match error {
        // The database is away: calls go on, and the client is told to try again.
        StoreError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        StoreError::Sqlite { .. } | StoreError::Postgres(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    tracing::error!("call store query failed: {error}");
    let mut response = (status, axum::Json(serde_json::json!({ "error": error.to_string() }))).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("5"));
    }
    response
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T, StoreError> + Send + 'static) -> Result<T, Response> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(store_error(error)),
        Err(error) => Err((StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response()),
    }
}

async fn list(State(host): State<Shared>, Query(query): Query<ListQuery>) -> Response {
    let filter = CallFilter { outcome: query.outcome, leg: query.leg, since_ms: query.since, until_ms: query.until, limit: query.limit };
    let store = host.calls.clone();
    match blocking(move || store.list(&filter)).await {
        Ok(calls) => axum::Json(calls).into_response(),
        Err(response) => response,
    }
}

async fn show(State(host): State<Shared>, Path(key): Path<String>) -> Response {
    let store = host.calls.clone();
    let found = blocking(move || {
        let Some(call) = store.find(&key)? else {
            return Ok(None);
        };
        let timeline = store.timeline(&call)?;
        Ok(Some((call, timeline)))
    })
    .await;
    match found {
        Ok(Some((call, timeline))) => axum::Json(serde_json::json!({ "call": call, "timeline": timeline })).into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, axum::Json(serde_json::json!({ "error": "no such call" }))).into_response(),
        Err(response) => response,
    }
}

async fn transcript(State(host): State<Shared>, Path(key): Path<String>) -> Response {
    let store = host.calls.clone();
    let found = blocking(move || {
        let Some(call) = store.find(&key)? else {
            return Ok(None);
        };
        Ok(Some(store.timeline(&call)?))
    })
    .await;
    match found {
        Ok(Some(timeline)) => {
            // The guest's `transcript.entry` reports, in order.
            let entries: Vec<serde_json::Value> = timeline
                .iter()
                .filter(|m| m.source == "guest" && m.name == "transcript.entry")
                .map(|m| {
                    let get = |key: &str| {
                        m.attributes.iter().find(|(k, _)| k == key).map_or(serde_json::Value::Null, |(_, v)| serde_json::json!(v))
                    };
                    serde_json::json!({
                        "speaker": get("speaker"),
                        "text": get("text"),
                        "start_ms": get("start_ms"),
                        "end_ms": get("end_ms"),
                        "confidence": get("confidence"),
                        "offset_ms": m.offset_ms,
                    })
                })
                .collect();
            axum::Json(entries).into_response()
        }
        Ok(None) => (StatusCode::NOT_FOUND, axum::Json(serde_json::json!({ "error": "no such call" }))).into_response(),
        Err(response) => response,
    }
}

async fn events(State(host): State<Shared>) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let receiver = host.timeline.subscribe();
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let event = match receiver.recv().await {
            Ok(marker) => {
                let data = serde_json::json!({
                    "call_id": marker.call.to_string(),
                    "offset_ms": marker.offset.as_secs_f64() * 1e3,
                    "source": marker.source.to_string(),
                    "leg": marker.leg,
                    "name": marker.name,
                    "attributes": marker.attributes,
                });
                Event::default().event("marker").data(data.to_string())
            }
            Err(RecvError::Lagged(skipped)) => Event::default().event("lagged").data(skipped.to_string()),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(event), receiver))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn metrics(State(host): State<Shared>) -> Response {
    let live = host.live_calls();
    let store = crate::observe::metrics::StoreGauges {
        dropped: host.calls.dropped(),
        pending: host.calls.pending(),
        unavailable: host.calls.unavailable(),
    };
    let text = host.metrics.render(live, store);
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response()
}
