//! Host side of `switchboard:call/outbound`: policy checks, secret injection, and the
//! handshake on its own task while the guest keeps running. What happens to a connection
//! is recorded on its leg's lane.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use tokio::sync::OwnedSemaphorePermit;
use wasmtime::component::Resource;
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi_io::poll::subscribe;

use super::bindings::switchboard::call::outbound::{ConnectOptions, Host, HostFutureConnection};
use super::bindings::{ErrorCode, HandshakeResponse};
use super::state::CallState;
use super::types::{Connection, FutureConnection};
use crate::observe::legs::DEFAULT_OUTBOUND_LEG;
use crate::observe::timeline::{CallTimeline, Value};
use crate::policy::egress::{Target, parse_target};
use crate::ws::dial::{DialError, DialRequest, dial};
use crate::ws::pump;

/// Request headers the host manages; a guest may not set them.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "connection",
    "upgrade",
    "content-length",
    "transfer-encoding",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-protocol",
];

impl Host for CallState {
    fn connect(&mut self, url: String, options: ConnectOptions) -> wasmtime::Result<Result<Resource<FutureConnection>, ErrorCode>> {
        let leg = match self.timeline.connection_leg(options.leg.as_deref(), DEFAULT_OUTBOUND_LEG) {
            Ok(leg) => leg,
            Err(error) => return Ok(Err(ErrorCode::InternalError(Some(error.to_string())))),
        };
        let (request, permit) = match self.dial_request(&url, options, &leg) {
            Ok(checked) => checked,
            Err(error) => return Ok(Err(error)),
        };
        self.connects_started += 1;
        let timeline = self.timeline.clone();
        let pump_options = self.sandbox.pump.clone();
        let counters = self.sandbox.metrics.outbound.clone();
        let target = request.target.clone();
        timeline.host_on(
            &leg,
            "outbound.attempt",
            &[("target", target.to_string().into()), ("path", request.url.path().into()), ("attempt", self.connects_started.into())],
        );
        let task = tokio::spawn(async move {
            match dial(request).await {
                Ok(dialed) => {
                    timeline.host_on(
                        &leg,
                        "outbound.open",
                        &[
                            ("target", target.to_string().into()),
                            ("peer", dialed.peer.to_string().into()),
                            ("handshake_ms", dialed.handshake.into()),
                            ("protocol", dialed.protocol.clone().unwrap_or_default().into()),
                        ],
                    );
                    let on_close = move |info: &crate::ws::CloseInfo| {
                        timeline.host_on(
                            &leg,
                            "outbound.closed",
                            &[
                                ("target", target.to_string().into()),
                                ("code", info.code.into()),
                                ("reason", info.reason.as_str().into()),
                                ("by", info.by.label().into()),
                            ],
                        );
                    };
                    let (socket, _control) = pump::spawn(dialed.socket, &pump_options, dialed.protocol, counters, on_close);
                    Ok(Connection::outbound(socket, permit))
                }
                Err(error) => {
                    record_failure(&timeline, &leg, &target, &error);
                    Err(to_error_code(error))
                }
            }
        });
        Ok(Ok(self.table.push(FutureConnection::new(task))?))
    }
}

impl CallState {
    /// Checks a connect against URL syntax, policy and limits, and builds the request
    /// with the guest's headers and the host's secrets; the permit holds one of the
    /// instance's outbound connections for as long as the connection lives.
    fn dial_request(&mut self, url: &str, options: ConnectOptions, leg: &str) -> Result<(DialRequest, OwnedSemaphorePermit), ErrorCode> {
        let (url, target) = parse_target(url).map_err(|e| ErrorCode::InvalidUrl(e.to_string()))?;
        let sandbox = Arc::clone(&self.sandbox);
        let deny = |cause: &str, detail: String| {
            self.timeline.host_on(
                leg,
                "outbound.denied",
                &[("target", target.to_string().into()), ("cause", cause.into()), ("detail", detail.into())],
            );
        };
        if !sandbox.egress.allows(&target) {
            deny("not-allowed", format!("no allow_outbound rule matches {target}"));
            return Err(ErrorCode::Denied);
        }
        let limits = &sandbox.limits;
        let permit = match self.outbound_permits.clone().try_acquire_owned() {
            Ok(permit) if self.connects_started < limits.max_outbound_connects => permit,
            _ => {
                let detail = format!(
                    "at most {} connections at once and {} connects per call ({} made)",
                    limits.max_outbound_connections, limits.max_outbound_connects, self.connects_started
                );
                deny("connection-limit", detail);
                return Err(ErrorCode::ConnectionLimit);
            }
        };
        let headers = request_headers(options.headers, &sandbox.secrets, &target.host)?;
        let timeout = options.timeout.map(Duration::from_nanos).unwrap_or(limits.connect_timeout).min(limits.max_connect_timeout);
        let check_target = target.clone();
        let check_sandbox = sandbox.clone();
        let address_check = Arc::new(move |address| check_sandbox.egress.allows_address(&check_target, address));
        let request = DialRequest {
            address_check,
            url,
            target,
            headers,
            subprotocols: options.subprotocols,
            timeout,
            tls: sandbox.tls.clone(),
            websocket: sandbox.pump.websocket_config(),
        };
        Ok((request, permit))
    }
}

/// The handshake's headers: the guest's (checked), then the host's secrets for `host`,
/// each replacing a guest header of the same name.
fn request_headers(
    guest_headers: Vec<(String, String)>,
    secrets: &crate::policy::secrets::SecretHeaders,
    host: &str,
) -> Result<Vec<(HeaderName, HeaderValue)>, ErrorCode> {
    let mut headers = Vec::with_capacity(guest_headers.len() + 1);
    for (name, value) in guest_headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ErrorCode::InternalError(Some(format!("{name:?} is not a valid header name"))))?;
        if RESERVED_HEADERS.contains(&name.as_str()) {
            return Err(ErrorCode::InternalError(Some(format!(
                "header `{name}` is set by the host; use `subprotocols` for Sec-WebSocket-Protocol"
            ))));
        }
        let value = HeaderValue::from_str(&value)
            .map_err(|_| ErrorCode::InternalError(Some(format!("the value of header `{name}` is not valid"))))?;
        headers.push((name, value));
    }
    for secret in secrets.for_host(host) {
        headers.retain(|(name, _)| *name != secret.name);
        headers.push((secret.name.clone(), secret.value.header_value().clone()));
    }
    Ok(headers)
}

fn record_failure(timeline: &CallTimeline, leg: &str, target: &Target, error: &DialError) {
    if let DialError::Denied(detail) = error {
        // The host's own policy refused every address the name resolved to: a refusal,
        // recorded as every policy refusal is.
        timeline.host_on(
            leg,
            "outbound.denied",
            &[("target", target.to_string().into()), ("cause", "special-address".into()), ("detail", detail.as_str().into())],
        );
        return;
    }
    let mut attributes: Vec<(&str, Value)> =
        vec![("target", target.to_string().into()), ("cause", error.cause().into()), ("detail", error.to_string().into())];
    if let DialError::Rejected { status, headers, body_excerpt } = error {
        attributes.push(("status", (*status).into()));
        for (name, value) in headers {
            if name.starts_with("dg-") {
                attributes.push(("header", format!("{name}: {value}").into()));
            }
        }
        attributes.push(("body", body_excerpt.chars().take(200).collect::<String>().into()));
    }
    timeline.host_on(leg, "outbound.failed", &attributes);
}

fn to_error_code(error: DialError) -> ErrorCode {
    match error {
        DialError::Dns(detail) => ErrorCode::DnsError(detail),
        DialError::Denied(_) => ErrorCode::Denied,
        DialError::Refused => ErrorCode::ConnectionRefused,
        DialError::Timeout(_) => ErrorCode::ConnectTimeout,
        DialError::Tls(reason) => ErrorCode::TlsError(reason),
        DialError::Rejected { status, headers, body_excerpt } => {
            ErrorCode::HandshakeRejected(HandshakeResponse { status, headers, body_excerpt })
        }
        DialError::Other(detail) => ErrorCode::InternalError(Some(detail)),
    }
}

impl HostFutureConnection for CallState {
    fn subscribe(&mut self, future: Resource<FutureConnection>) -> wasmtime::Result<Resource<DynPollable>> {
        subscribe(&mut self.table, future)
    }

    fn get(&mut self, future: Resource<FutureConnection>) -> wasmtime::Result<Option<Result<Resource<Connection>, ErrorCode>>> {
        let outcome = self.table.get_mut(&future)?.take();
        Ok(match outcome {
            None => None,
            Some(Ok(connection)) => Some(Ok(self.table.push(connection)?)),
            Some(Err(error)) => Some(Err(error)),
        })
    }

    fn drop(&mut self, future: Resource<FutureConnection>) -> wasmtime::Result<()> {
        self.table.delete(future)?;
        Ok(())
    }
}
