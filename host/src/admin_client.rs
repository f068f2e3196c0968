//! A small HTTP/1.1 client for the host's own APIs: the admin API behind `switchboard
//! deploy`, and the query API for tests. Plain HTTP over TCP to the host's port (run it on
//! the host, or through a TLS-terminating tunnel).

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

/// Sends one admin request (`path` under `/admin`) and returns the JSON answer on success.
pub async fn request(
    base: &str,
    token: &str,
    method: http::Method,
    path: &str,
    body: Vec<u8>,
    content_type: &str,
) -> anyhow::Result<serde_json::Value> {
    let text = send(base, Some(token), method, &format!("/admin{path}"), body, content_type).await?;
    serde_json::from_str(&text).with_context(|| format!("unexpected answer: {text}"))
}

/// `GET path` without credentials; the body as text on success.
pub async fn get(base: &str, path: &str) -> anyhow::Result<String> {
    send(base, None, http::Method::GET, path, Vec::new(), "application/json").await
}

/// Sends one request and returns the body on a 2xx answer.
pub async fn send(
    base: &str,
    token: Option<&str>,
    method: http::Method,
    path: &str,
    body: Vec<u8>,
    content_type: &str,
) -> anyhow::Result<String> {
    let url: url::Url = base.parse().with_context(|| format!("{base:?} is not a URL (e.g. http://127.0.0.1:8080)"))?;
    if url.scheme() != "http" {
        bail!("the admin client speaks plain http:// to the host's port; got {}", url.scheme());
    }
    let host = url.host_str().context("the admin URL has no host")?;
    let port = url.port_or_known_default().unwrap_or(80);
    let tcp = tokio::net::TcpStream::connect((host, port)).await.with_context(|| format!("connecting to {host}:{port}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(connection);
    let mut request = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, format!("{host}:{port}"))
        .header(http::header::CONTENT_TYPE, content_type);
    if let Some(token) = token {
        request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request.body(Full::new(Bytes::from(body)))?;
    let response = sender.send_request(request).await.context("sending the admin request")?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    let text = String::from_utf8_lossy(&body);
    if !status.is_success() {
        let reason = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| text.trim().to_owned());
        bail!("the host answered {status}: {reason}");
    }
    Ok(text.into_owned())
}
