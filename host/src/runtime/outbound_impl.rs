//! Host side of `switchboard:call/outbound`: policy checks, secret injection, and the
//! handshake on its own task while the guest keeps running.

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
use crate::observe::timeline::CallTimeline;
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
    async fn connect(&mut self, url: String, options: ConnectOptions) -> wasmtime::Result<Result<Resource<FutureConnection>, ErrorCode>> {
        let (request, permit) = match self.dial_request(&url, options) {
            Ok(checked) => checked,
            Err(error) => return Ok(Err(error)),
        };
        self.connects_started += 1;
        let timeline = self.timeline.clone();
        let pump_options = self.sandbox.pump.clone();
        let counters = self.sandbox.metrics.outbound.clone();
        let target = request.target.clone();
        timeline.host(
            "outbound.attempt",
            &[("target", target.to_string()), ("path", request.url.path().to_owned()), ("attempt", self.connects_started.to_string())],
        );
        let task = tokio::spawn(async move {
            match dial(request).await {
                Ok(dialed) => {
                    timeline.host(
                        "outbound.open",
                        &[
                            ("target", target.to_string()),
                            ("peer", dialed.peer.to_string()),
                            ("handshake_ms", format!("{:.3}", dialed.handshake.as_secs_f64() * 1e3)),
                            ("protocol", dialed.protocol.clone().unwrap_or_default()),
                        ],
                    );
                    let closed_timeline = timeline.clone();
                    let closed_target = target.to_string();
                    let (socket, _control) = pump::spawn(dialed.socket, &pump_options, dialed.protocol, counters, move |info| {
                        closed_timeline.host(
                            "outbound.closed",
                            &[
                                ("target", closed_target),
                                ("code", info.code.to_string()),
                                ("reason", info.reason.clone()),
                                ("by", info.by.label().to_owned()),
                            ],
                        );
                    });
                    Ok(Connection::outbound(socket, permit))
                }
                Err(error) => {
                    record_failure(&timeline, &target, &error);
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
    fn dial_request(&mut self, url: &str, options: ConnectOptions) -> Result<(DialRequest, OwnedSemaphorePermit), ErrorCode> {
        let (url, target) = parse_target(url).map_err(|e| ErrorCode::InvalidUrl(e.to_string()))?;
        let sandbox = Arc::clone(&self.sandbox);
        if !sandbox.egress.allows(&target) {
            let detail = format!("no allow_outbound rule matches {target}");
            self.timeline
                .host("outbound.denied", &[("target", target.to_string()), ("cause", "not-allowed".to_owned()), ("detail", detail)]);
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
                self.timeline.host(
                    "outbound.denied",
                    &[("target", target.to_string()), ("cause", "connection-limit".to_owned()), ("detail", detail)],
                );
                return Err(ErrorCode::ConnectionLimit);
            }
        };
        let mut headers = Vec::with_capacity(options.headers.len() + 1);
        for (name, value) in options.headers {
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
        // Secrets last, replacing any guest header of the same name.
        for secret in sandbox.secrets.for_host(&target.host) {
            headers.retain(|(name, _)| *name != secret.name);
            headers.push((secret.name.clone(), secret.value.header_value().clone()));
        }
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

fn record_failure(timeline: &CallTimeline, target: &Target, error: &DialError) {
    if let DialError::Denied(detail) = error {
        // The host's own policy refused every address the name resolved to: a refusal,
        // recorded as every policy refusal is.
        timeline.host(
            "outbound.denied",
            &[("target", target.to_string()), ("cause", "special-address".to_owned()), ("detail", detail.clone())],
        );
        return;
    }
    let mut attributes = vec![("target", target.to_string()), ("cause", error.cause().to_owned()), ("detail", error.to_string())];
    if let DialError::Rejected { status, headers, body_excerpt } = error {
        attributes.push(("status", status.to_string()));
        for (name, value) in headers {
            if name.starts_with("dg-") {
                attributes.push(("header", format!("{name}: {value}")));
            }
        }
        attributes.push(("body", body_excerpt.chars().take(200).collect()));
    }
    timeline.host("outbound.failed", &attributes);
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
    async fn subscribe(&mut self, future: Resource<FutureConnection>) -> wasmtime::Result<Resource<DynPollable>> {
        subscribe(&mut self.table, future)
    }

    async fn get(&mut self, future: Resource<FutureConnection>) -> wasmtime::Result<Option<Result<Resource<Connection>, ErrorCode>>> {
        let outcome = self.table.get_mut(&future)?.take();
        Ok(match outcome {
            None => None,
            Some(Ok(connection)) => Some(Ok(self.table.push(connection)?)),
            Some(Err(error)) => Some(Err(error)),
        })
    }

    async fn drop(&mut self, future: Resource<FutureConnection>) -> wasmtime::Result<()> {
        self.table.delete(future)?;
        Ok(())
    }
}
