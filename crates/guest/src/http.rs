//! Outbound HTTP over `wasi:http`, for a guest that keeps pumping its sockets while a
//! response streams in (an LLM's tokens arrive over seconds).
//!
//! [`send`] starts a request and returns at once; the [`Pending`] response and then the
//! [`Body`] each have a pollable to wait on beside the sockets', and a non-blocking step
//! ([`Pending::get`], [`Body::read`]). The host applies its egress allowlist, adds the
//! operator's secret headers (which the guest never sees), and bounds every request; a
//! failure is a `wasi:http` [`ErrorCode`] naming its cause.
//!
//! ```text
//! let pending = http::send(&http::Request::post(url, body).header("content-type", "application/json").leg("llm"))?;
//! // ... poll pending.subscribe() with the sockets' pollables, then:
//! let mut response = pending.get().expect("ready")?;
//! loop { match response.body.read() { Chunk::Data(bytes) => ..., Chunk::Pending => /* wait */, Chunk::End => break, Chunk::Failed(code) => ... } }
//! ```

use crate::bindings::wasi::http::outgoing_handler;
pub use crate::bindings::wasi::http::types::ErrorCode;
use crate::bindings::wasi::http::types::{
    Fields, FutureIncomingResponse, IncomingBody, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme, http_error_code,
};
use crate::bindings::wasi::io::poll::Pollable;
use crate::bindings::wasi::io::streams::{InputStream, StreamError};

/// The request header that names the request's leg; the host removes it before sending.
pub const LEG_HEADER: &str = "switchboard-leg";
/// Bytes read from a body stream at once.
const READ_BYTES: u64 = 64 * 1024;
/// Bytes `blocking-write-and-flush` takes at once.
const WRITE_BYTES: usize = 4096;

/// A request to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// An absolute `http://` or `https://` URL.
    pub url: String,
    /// Request headers.
    pub headers: Vec<(String, String)>,
    /// The body (empty for none).
    pub body: Vec<u8>,
    /// Deadline for DNS, TCP and TLS, ms; the host's when `None` (it never allows longer).
    pub connect_timeout_ms: Option<u64>,
    /// Deadline from sending to the response head, ms.
    pub first_byte_timeout_ms: Option<u64>,
    /// Longest silence inside the response body, ms.
    pub between_bytes_timeout_ms: Option<u64>,
}

impl Request {
    /// A `GET` of `url`.
    pub fn get(url: &str) -> Self {
        Request {
            method: "GET".to_owned(),
            url: url.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            connect_timeout_ms: None,
            first_byte_timeout_ms: None,
            between_bytes_timeout_ms: None,
        }
    }

    /// A `POST` of `body` to `url`.
    pub fn post(url: &str, body: impl Into<Vec<u8>>) -> Self {
        Request { method: "POST".to_owned(), body: body.into(), ..Request::get(url) }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Names the leg the host reports this request on (see `legs`).
    pub fn leg(self, leg: &str) -> Self {
        self.header(LEG_HEADER, leg)
    }
}

/// A request whose response head has not come yet.
pub struct Pending {
    future: FutureIncomingResponse,
}

/// A response head with its body still to read.
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Response headers, lower-case names.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body, read as it arrives.
    pub body: Body,
}

impl Response {
    /// The first value of header `name` (lower case), as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
}

/// One step of reading a body.
#[derive(Debug, Clone)]
pub enum Chunk {
    /// Bytes that arrived.
    Data(Vec<u8>),
    /// Nothing yet: wait on [`Body::subscribe`].
    Pending,
    /// The body is complete.
    End,
    /// The body failed (a deadline, the host's size cap, the connection); what came
    /// before was delivered.
    Failed(ErrorCode),
}

/// A response body. Fields drop in order: the stream before the body it belongs to.
pub struct Body {
    stream: Option<InputStream>,
    _body: Option<IncomingBody>,
    done: bool,
}

/// Starts `request`; returns once it is handed to the host (the host checks policy and
/// limits then; a refusal arrives through [`Pending::get`] as `HTTP-request-denied` or
/// `connection-limit-reached`).
pub fn send(request: &Request) -> Result<Pending, ErrorCode> {
    let invalid = |what: &str| ErrorCode::InternalError(Some(what.to_owned()));
    let (scheme, authority, path) = split_url(&request.url).ok_or(ErrorCode::HttpRequestUriInvalid)?;
    let entries: Vec<(String, Vec<u8>)> =
        request.headers.iter().map(|(name, value)| (name.to_ascii_lowercase(), value.as_bytes().to_vec())).collect();
    let fields = Fields::from_list(&entries).map_err(|error| invalid(&format!("headers: {error:?}")))?;
    let outgoing = OutgoingRequest::new(fields);
    outgoing.set_method(&method(&request.method)).map_err(|()| ErrorCode::HttpRequestMethodInvalid)?;
    outgoing.set_scheme(Some(&scheme)).map_err(|()| ErrorCode::HttpRequestUriInvalid)?;
    outgoing.set_authority(Some(authority)).map_err(|()| ErrorCode::HttpRequestUriInvalid)?;
    outgoing.set_path_with_query(Some(path)).map_err(|()| ErrorCode::HttpRequestUriInvalid)?;
    let body = outgoing.body().map_err(|()| invalid("the request body was already taken"))?;
    let ns = |ms: Option<u64>| ms.map(|ms| ms.saturating_mul(1_000_000));
    let timeouts = [request.connect_timeout_ms, request.first_byte_timeout_ms, request.between_bytes_timeout_ms];
    let options = if timeouts.iter().any(Option::is_some) {
        let options = RequestOptions::new();
        options.set_connect_timeout(ns(request.connect_timeout_ms)).map_err(|()| invalid("connect timeout"))?;
        options.set_first_byte_timeout(ns(request.first_byte_timeout_ms)).map_err(|()| invalid("first-byte timeout"))?;
        options.set_between_bytes_timeout(ns(request.between_bytes_timeout_ms)).map_err(|()| invalid("between-bytes timeout"))?;
        Some(options)
    } else {
        None
    };
    let future = outgoing_handler::handle(outgoing, options)?;
    // The body is written after `handle`: the host streams it to the server as it comes.
    write_body(body, &request.body);
    Ok(Pending { future })
}

/// Writes and finishes a request body. A write the host refuses (the body cap, a
/// connection gone) ends it early: the response then says why.
fn write_body(body: OutgoingBody, bytes: &[u8]) {
    let Ok(stream) = body.write() else { return };
    let written = bytes.chunks(WRITE_BYTES).all(|chunk| stream.blocking_write_and_flush(chunk).is_ok());
    drop(stream);
    if written {
        let _ = OutgoingBody::finish(body, None);
    }
}

impl Pending {
    /// Ready once the response head (or the failure) is in.
    pub fn subscribe(&self) -> Pollable {
        self.future.subscribe()
    }

    /// The response head, or why there is none; `None` while it is still coming.
    pub fn get(&self) -> Option<Result<Response, ErrorCode>> {
        let outcome = self.future.get()?;
        Some(match outcome {
            Err(()) => Err(ErrorCode::InternalError(Some("the response was already taken".to_owned()))),
            Ok(Err(code)) => Err(code),
            Ok(Ok(response)) => {
                let status = response.status();
                let headers = response.headers().entries();
                let body = response.consume().map_err(|()| ErrorCode::InternalError(Some("the body was already taken".to_owned())));
                body.map(|body| {
                    let stream = body.stream().ok();
                    Response { status, headers, body: Body { stream, _body: Some(body), done: false } }
                })
            }
        })
    }

    /// Waits for the response head.
    pub fn wait(self) -> Result<Response, ErrorCode> {
        loop {
            if let Some(outcome) = self.get() {
                return outcome;
            }
            self.subscribe().block();
        }
    }
}

impl Body {
    /// Ready once bytes, the end or a failure can be read.
    pub fn subscribe(&self) -> Option<Pollable> {
        self.stream.as_ref().map(InputStream::subscribe)
    }

    /// Takes what has arrived, without waiting.
    pub fn read(&mut self) -> Chunk {
        if self.done {
            return Chunk::End;
        }
        let Some(stream) = self.stream.as_ref() else {
            self.done = true;
            return Chunk::End;
        };
        match stream.read(READ_BYTES) {
            Ok(bytes) if bytes.is_empty() => Chunk::Pending,
            Ok(bytes) => Chunk::Data(bytes),
            Err(StreamError::Closed) => {
                self.done = true;
                Chunk::End
            }
            Err(StreamError::LastOperationFailed(error)) => {
                self.done = true;
                let code = http_error_code(&error).unwrap_or_else(|| ErrorCode::InternalError(Some(error.to_debug_string())));
                Chunk::Failed(code)
            }
        }
    }

    /// Reads the rest of the body, waiting as needed; at most `limit` bytes are kept (the
    /// rest is read and counted). Returns the bytes kept and the total.
    pub fn read_to_end(&mut self, limit: usize) -> Result<(Vec<u8>, u64), ErrorCode> {
        let mut kept = Vec::new();
        let mut total = 0u64;
        loop {
            match self.read() {
                Chunk::Data(bytes) => {
                    total += bytes.len() as u64;
                    let room = limit.saturating_sub(kept.len());
                    kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
                }
                Chunk::Pending => {
                    if let Some(ready) = self.subscribe() {
                        ready.block();
                    }
                }
                Chunk::End => return Ok((kept, total)),
                Chunk::Failed(code) => return Err(code),
            }
        }
    }
}

fn method(name: &str) -> Method {
    match name.to_ascii_uppercase().as_str() {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "CONNECT" => Method::Connect,
        "OPTIONS" => Method::Options,
        "TRACE" => Method::Trace,
        "PATCH" => Method::Patch,
        _ => Method::Other(name.to_owned()),
    }
}

/// `scheme://authority/path?query` into its parts (the path `/` when absent).
fn split_url(url: &str) -> Option<(Scheme, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "https" => Scheme::Https,
        "http" => Scheme::Http,
        _ => return None,
    };
    let rest = rest.split('#').next().unwrap_or_default();
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if authority.is_empty() {
        return None;
    }
    Some((scheme, authority, if path.is_empty() { "/" } else { path }))
}

/// A short label for `code`, the same the host's `http.failed` markers use (`dns-error`,
/// `first-byte-timeout`, ...), for a guest's own markers and faults.
pub fn cause(code: &ErrorCode) -> &'static str {
    match code {
        ErrorCode::DnsTimeout | ErrorCode::DnsError(_) | ErrorCode::DestinationNotFound => "dns-error",
        ErrorCode::ConnectionRefused | ErrorCode::DestinationUnavailable | ErrorCode::DestinationIpUnroutable => "connection-refused",
        ErrorCode::ConnectionTimeout => "connect-timeout",
        ErrorCode::HttpResponseTimeout => "first-byte-timeout",
        ErrorCode::ConnectionReadTimeout | ErrorCode::ConnectionWriteTimeout => "between-bytes-timeout",
        ErrorCode::TlsCertificateError => "tls-certificate",
        ErrorCode::TlsAlertReceived(_) => "tls-alert",
        ErrorCode::TlsProtocolError => "tls-error",
        ErrorCode::HttpRequestDenied | ErrorCode::DestinationIpProhibited => "denied",
        ErrorCode::ConnectionLimitReached => "request-limit",
        ErrorCode::HttpRequestBodySize(_) => "request-body-too-large",
        ErrorCode::HttpResponseBodySize(_) => "response-body-too-large",
        ErrorCode::HttpResponseIncomplete | ErrorCode::ConnectionTerminated => "response-incomplete",
        ErrorCode::HttpProtocolError => "protocol-error",
        ErrorCode::HttpRequestUriInvalid => "invalid-url",
        _ => "other",
    }
}
