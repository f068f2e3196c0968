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
//! | `POST /admin/components/{name}/deploy-ref` | `{"reference": "oci://…"}` | likewise; 422 for a wrong digest, 502 when the registry cannot be reached |
//! | `POST /admin/components/{name}/rollback` | `{"to": 3}` or nothing | the version now current |
//!
//! With a shared database (`SWITCHBOARD_DATABASE_URL`) every successful deploy or rollback
//! is also published to the fleet ([`crate::deploy::fleet`]); the answer's `fleet` says
//! whether it was (`{"published": false, "error": …}` while the database is away: the
//! version then runs on this replica only).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;

use super::auth::{Access, allowed, unauthorized};
use crate::deploy::oci::{OciError, OciReference};
use crate::deploy::versions::{DeployError, Deployed};
use crate::state::Shared;

/// Largest upload.
pub const MAX_UPLOAD_BYTES: usize = crate::deploy::MAX_COMPONENT_BYTES;

pub(crate) fn router(host: Shared) -> Router<Shared> {
    Router::new()
        .route("/components", get(list))
        .route("/components/{name}", put(upload))
        .route("/components/{name}/deploy-file", post(deploy_file))
        .route("/components/{name}/rollback", post(rollback))
        .route("/components/{name}/deploy-ref", post(deploy_reference))
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

/// The answer to a deploy or rollback. In a fleet (a shared database), the version now
/// current is published for the other replicas once it serves here, and the answer's
/// `fleet` says whether that worked.
async fn answer(host: &Shared, result: Result<Deployed, DeployError>) -> Response {
    match result {
        Ok(deployed) => {
            let mut body = serde_json::to_value(&deployed).unwrap_or_default();
            if let Some(fleet) = host.fleet.clone() {
                let (versions, version) = (host.versions.clone(), deployed.version.clone());
                let published = tokio::task::spawn_blocking(move || {
                    // A registry's component is fetched by its pinned reference; other
                    // bytes travel in the row.
                    let reference = version.source.starts_with("oci://").then_some(version.source.as_str());
                    let bytes = match reference {
                        Some(_) => Vec::new(),
                        None => versions
                            .source_of(&version.digest)
                            .ok_or_else(|| format!("the bytes of {} are not in the artifact store", version.digest))?,
                    };
                    fleet.publish(&version.component, &version.digest, &version.source, reference, &bytes).map_err(|e| e.to_string())
                })
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
                body["fleet"] = match published {
                    Ok(()) => serde_json::json!({ "published": true }),
                    Err(error) => {
                        tracing::warn!("{error}");
                        serde_json::json!({ "published": false, "error": error })
                    }
                };
            }
            axum::Json(body).into_response()
        }
        Err(error) => {
            let status = match error {
                DeployError::UnknownComponent(_) | DeployError::NoSuchVersion(_) => StatusCode::NOT_FOUND,
                DeployError::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
                DeployError::Registry(OciError::DigestMismatch { .. } | OciError::NotAComponent { .. }) => StatusCode::UNPROCESSABLE_ENTITY,
                DeployError::Registry(OciError::NotFound { .. }) => StatusCode::NOT_FOUND,
                DeployError::Registry(_) => StatusCode::BAD_GATEWAY,
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
    answer(&host, host.versions.deploy(&name, body.to_vec(), "upload".to_owned()).await).await
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
        Ok(bytes) => answer(&host, host.versions.deploy(&name, bytes, request.path.display().to_string()).await).await,
        Err(error) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(serde_json::json!({ "error": format!("cannot read {}: {error}", request.path.display()) })),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct ReferenceRequest {
    reference: String,
}

async fn deploy_reference(
    State(host): State<Shared>,
    Path(name): Path<String>,
    axum::Json(request): axum::Json<ReferenceRequest>,
) -> Response {
    match OciReference::parse(&request.reference) {
        Ok(reference) => answer(&host, host.versions.deploy_reference(&name, &reference).await).await,
        Err(error) => (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(serde_json::json!({ "error": error.to_string() }))).into_response(),
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
    answer(&host, host.versions.rollback(&name, request.to).await).await
}
