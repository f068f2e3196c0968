//! The admin (deploy) API, under `/admin` on the operator listener: list component
//! versions, deploy a new one (uploaded, or a file on the host), roll back. Every request
//! needs the admin token (`[operator] admin_token_env`) as a bearer token; with no token
//! configured every `/admin` path answers 404.
//!
//! | request | body | answer |
//! |---|---|---|
//! | `GET /admin/components` | | every version, JSON |
//! | `PUT /admin/components/{name}` | the `.wasm` bytes | the new current version, or 422 with the reason |
//! | `POST /admin/components/{name}/deploy-file` | `{"path": "/srv/x.wasm"}` | likewise |
//! | `POST /admin/components/{name}/rollback` | `{"to": 3}` or nothing | the version now current |

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;

use super::auth::{Access, allowed, unauthorized};
use crate::deploy::versions::{DeployError, Deployed};
use crate::state::Shared;

/// Largest upload: componentize-py and componentize-js components run to tens of MB.
pub const MAX_UPLOAD_BYTES: usize = 64 << 20;

pub(crate) fn router(host: Shared) -> Router<Shared> {
    Router::new()
        .route("/components", get(list))
        .route("/components/{name}", put(upload))
        .route("/components/{name}/deploy-file", post(deploy_file))
        .route("/components/{name}/rollback", post(rollback))
        .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
        .layer(axum::middleware::from_fn_with_state(host, authorize))
}

async fn authorize(State(host): State<Shared>, request: Request, next: Next) -> Response {
    if host.config.operator.admin_token.is_none() {
        return StatusCode::NOT_FOUND.into_response();
    }
    if !allowed(&host, &request, Access::Admin) {
        tracing::warn!(path = %request.uri().path(), "admin request refused: bad or missing token");
        return unauthorized("the deploy API");
    }
    next.run(request).await
}

async fn list(State(host): State<Shared>) -> Response {
    axum::Json(host.versions.list()).into_response()
}

fn answer(result: Result<Deployed, DeployError>) -> Response {
    match result {
        Ok(deployed) => axum::Json(deployed).into_response(),
        Err(error) => {
            let status = match error {
                DeployError::UnknownComponent(_) | DeployError::NoSuchVersion(_) => StatusCode::NOT_FOUND,
                DeployError::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
                DeployError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            tracing::warn!("deploy refused: {error}");
            (status, axum::Json(serde_json::json!({ "error": error.to_string() }))).into_response()
        }
    }
}

async fn upload(State(host): State<Shared>, Path(name): Path<String>, headers: axum::http::HeaderMap, body: Bytes) -> Response {
    if let Err(refusal) = check_digest(&headers, &body) {
        tracing::warn!(component = name, "upload refused: {refusal}");
        return (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(serde_json::json!({ "error": refusal }))).into_response();
    }
    answer(host.versions.deploy(&name, body.to_vec(), "upload".to_owned()).await)
}

/// Checks an upload against the SHA-256 the client sent in `Content-Digest`
/// (`sha-256=:<base64>:`, RFC 9530), so a body cut short on its way is refused as such.
fn check_digest(headers: &axum::http::HeaderMap, body: &[u8]) -> Result<(), String> {
    use base64::Engine;
    use sha2::Digest;
    let Some(value) = headers.get("content-digest") else { return Ok(()) };
    let value = value.to_str().map_err(|_| "Content-Digest is not text".to_owned())?;
    let Some(expected) = value.split(',').find_map(|item| item.trim().strip_prefix("sha-256=:")?.strip_suffix(':')) else {
        return Err(format!("Content-Digest {value:?} has no sha-256 digest (expected sha-256=:<base64>:)"));
    };
    let actual = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(body));
    if actual == expected {
        Ok(())
    } else {
        Err(format!(
            "the upload arrived as {} bytes whose SHA-256 is not the one the client sent: it was cut short or changed on its way",
            body.len()
        ))
    }
}

#[derive(Deserialize)]
struct FileRequest {
    path: std::path::PathBuf,
}

async fn deploy_file(State(host): State<Shared>, Path(name): Path<String>, axum::Json(request): axum::Json<FileRequest>) -> Response {
    match tokio::fs::read(&request.path).await {
        Ok(bytes) => answer(host.versions.deploy(&name, bytes, request.path.display().to_string()).await),
        Err(error) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(serde_json::json!({ "error": format!("cannot read {}: {error}", request.path.display()) })),
        )
            .into_response(),
    }
}

#[derive(Deserialize, Default)]
struct RollbackRequest {
    to: Option<u32>,
}

async fn rollback(State(host): State<Shared>, Path(name): Path<String>, body: Bytes) -> Response {
    let request: RollbackRequest = if body.is_empty() {
        RollbackRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(request) => request,
            Err(error) => {
                return (StatusCode::BAD_REQUEST, format!("bad rollback request: {error}\n")).into_response();
            }
        }
    };
    answer(host.versions.rollback(&name, request.to).await)
}
