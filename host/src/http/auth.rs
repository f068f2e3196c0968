//! Who may use the operator listener: the operator (read) and admin (deploy) tokens, as
//! a bearer token or the password of HTTP Basic authentication, compared in constant time.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;

use crate::policy::secrets::SecretValue;
use crate::state::Shared;

/// What a request may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Read calls, events, metrics, the dashboard.
    Read,
    /// Deploy and roll back components.
    Admin,
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
