//! The `wasi:http` send hook of a call: wasmtime-wasi-http calls it for every request,
//! and it applies the policy WebSockets get (allowlist on the URL and on every resolved
//! address, secret headers injected after the guest built the request, the instance's
//! request limits, deadlines no longer than the host's) and hands the exchange to
//! [`crate::fetch`]. What happens to each request is recorded on its leg's lane: the leg is
//! the request's `switchboard-leg` header (removed before sending), `http` without one.
//!
//! A call marks its first [`MAX_MARKED_REQUESTS`] requests (`http.response`,
//! `http.complete`) and its first [`MAX_MARKED_FAILURES`] refusals and failures, so ten
//! thousand requests do not grow its timeline; metrics count every request.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime_wasi_http::{Error as WasiHttpError, RequestOptions, WasiBody, WasiHttpHooks};

use super::sandbox::Sandbox;
use crate::fetch::{BodyEnd, Exchange, FetchError, FetchLimits, Plan, Pool};
use crate::observe::legs::DEFAULT_HTTP_LEG;
use crate::observe::metrics::Metrics;
use crate::observe::timeline::{CallTimeline, Value};
use crate::policy::egress::http_target;

/// The request header naming a request's leg; the host removes it before sending.
pub const LEG_HEADER: &str = "switchboard-leg";
/// Requests per call whose response and completion are marked.
pub const MAX_MARKED_REQUESTS: u32 = 64;
/// Refused and failed requests per call that are marked.
pub const MAX_MARKED_FAILURES: u32 = 64;
/// Bytes a guest may write to a request body stream at once.
const BODY_CHUNK_BYTES: usize = 64 * 1024;

/// The future `send_request` returns: the response head and an I/O driver (the exchange
/// drives its own connection, so the driver has nothing to do).
type SendFuture = Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoDriver), WasiHttpError>> + Send>;
type IoDriver = Box<dyn Future<Output = Result<(), WasiHttpError>> + Send>;

/// One call's `wasi:http` hooks: its policy, limits, keep-alive pool and timeline.
pub struct HttpHooks {
    sandbox: Arc<Sandbox>,
    timeline: CallTimeline,
    in_flight: Arc<Semaphore>,
    started: u32,
    pool: Arc<Pool>,
    failures_marked: Arc<AtomicU32>,
}

impl HttpHooks {
    /// Hooks for one call of a component.
    pub fn new(sandbox: Arc<Sandbox>, timeline: CallTimeline) -> Self {
        let in_flight = Arc::new(Semaphore::new(sandbox.limits.max_http_requests_in_flight as usize));
        HttpHooks { sandbox, timeline, in_flight, started: 0, pool: Arc::default(), failures_marked: Arc::default() }
    }

    /// Checks a request against policy and limits and adds the host's secrets; the
    /// exchange is then ready to run.
    fn prepare(&mut self, mut request: http::Request<WasiBody>, options: Option<RequestOptions>) -> Result<Prepared, WasiHttpError> {
        let label = request.headers_mut().remove(LEG_HEADER).map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
        let leg = self
            .timeline
            .connection_leg(label.as_deref(), DEFAULT_HTTP_LEG)
            .map_err(|error| WasiHttpError::InternalError(Some(format!("{LEG_HEADER}: {error}"))))?;
        let target = http_target(request.uri()).map_err(|_| WasiHttpError::HttpRequestUriInvalid)?;
        let report = Arc::new(Report {
            timeline: self.timeline.clone(),
            metrics: self.sandbox.metrics.clone(),
            leg,
            target: target.to_string(),
            method: request.method().to_string(),
            path: request.uri().path().to_owned(),
            started: Instant::now(),
            marked: self.started < MAX_MARKED_REQUESTS,
            failures_marked: self.failures_marked.clone(),
        });
        let sandbox = Arc::clone(&self.sandbox);
        let limits = &sandbox.limits;
        if !sandbox.egress.allows(&target) {
            report.denied("not-allowed", format!("no allow_outbound rule matches {target}"));
            return Err(WasiHttpError::HttpRequestDenied);
        }
        let permit = match self.in_flight.clone().try_acquire_owned() {
            Ok(permit) if self.started < limits.max_http_requests => permit,
            _ => {
                report.denied(
                    "request-limit",
                    format!(
                        "at most {} requests at once and {} per call ({} made)",
                        limits.max_http_requests_in_flight, limits.max_http_requests, self.started
                    ),
                );
                return Err(WasiHttpError::ConnectionLimitReached);
            }
        };
        self.started += 1;
        if self.started == MAX_MARKED_REQUESTS + 1 {
            self.timeline.host_on(&report.leg, "http.unmarked", &[("limit", MAX_MARKED_REQUESTS.into())]);
        }
        for secret in sandbox.secrets.for_host(&target.host) {
            request.headers_mut().insert(secret.name.clone(), secret.value.header_value().clone());
        }
        let shorter = |asked: Option<Duration>, most: Duration| asked.map_or(most, |asked| asked.min(most));
        let options = options.unwrap_or_default();
        let check_sandbox = sandbox.clone();
        let check_target = target.clone();
        let plan = Plan {
            address_check: Arc::new(move |address| check_sandbox.egress.allows_address(&check_target, address)),
            target,
            tls: sandbox.tls.clone(),
            limits: FetchLimits {
                connect_timeout: shorter(options.connect_timeout, limits.http_connect_timeout),
                first_byte_timeout: shorter(options.first_byte_timeout, limits.http_first_byte_timeout),
                between_bytes_timeout: shorter(options.between_bytes_timeout, limits.http_between_bytes_timeout),
                max_request_body: limits.max_http_request_body_bytes,
                max_response_body: limits.max_http_response_body_bytes,
            },
        };
        Ok(Prepared { request, plan, pool: self.pool.clone(), permit, report })
    }
}

impl WasiHttpHooks for HttpHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), WasiHttpError>> + Send>,
    ) -> SendFuture {
        match self.prepare(request, options) {
            Ok(prepared) => Box::new(prepared.run()),
            Err(error) => Box::new(std::future::ready(Err(error))),
        }
    }

    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        BODY_CHUNK_BYTES
    }
}

/// A checked request, ready to send.
struct Prepared {
    request: http::Request<WasiBody>,
    plan: Plan,
    pool: Arc<Pool>,
    permit: OwnedSemaphorePermit,
    report: Arc<Report>,
}

impl Prepared {
    async fn run(self) -> Result<(http::Response<WasiBody>, IoDriver), WasiHttpError> {
        let Prepared { request, plan, pool, permit, report } = self;
        let exchange = match crate::fetch::send(request, plan, pool).await {
            Ok(exchange) => exchange,
            Err(error) => {
                report.failed(None, &error);
                return Err(wasi_error(&error));
            }
        };
        report.response(&exchange);
        let status = exchange.response.status().as_u16();
        let sent = exchange.sent.clone();
        let (parts, mut body) = exchange.response.into_parts();
        body.on_end(Box::new(move |end| {
            report.ended(status, &end, sent.load(Ordering::Relaxed));
            // The request holds its place among those in flight until its body is done.
            drop(permit);
        }));
        let body = body.map_err(|error| wasi_error(&error)).boxed_unsync();
        let driver: IoDriver = Box::new(std::future::ready(Ok(())));
        Ok((http::Response::from_parts(parts, body), driver))
    }
}

/// What one request reports to the timeline and the metrics.
struct Report {
    timeline: CallTimeline,
    metrics: Arc<Metrics>,
    leg: String,
    target: String,
    method: String,
    path: String,
    started: Instant,
    marked: bool,
    failures_marked: Arc<AtomicU32>,
}

impl Report {
    fn may_mark_failure(&self) -> bool {
        self.failures_marked.fetch_add(1, Ordering::Relaxed) < MAX_MARKED_FAILURES
    }

    fn denied(&self, cause: &str, detail: String) {
        self.metrics.http_request(&self.leg, &self.target, "denied", cause);
        if self.may_mark_failure() {
            self.timeline.host_on(
                &self.leg,
                "http.denied",
                &[
                    ("target", self.target.as_str().into()),
                    ("method", self.method.as_str().into()),
                    ("path", self.path.as_str().into()),
                    ("cause", cause.into()),
                    ("detail", detail.into()),
                ],
            );
        }
    }

    fn failed(&self, status: Option<u16>, error: &FetchError) {
        if let FetchError::Denied(detail) = error {
            // Every address the name resolved to was one the policy refuses.
            self.denied("special-address", detail.clone());
            return;
        }
        self.metrics.http_request(&self.leg, &self.target, "failed", error.cause());
        if self.may_mark_failure() {
            let mut attributes: Vec<(&str, Value)> = vec![
                ("target", self.target.as_str().into()),
                ("method", self.method.as_str().into()),
                ("path", self.path.as_str().into()),
                ("cause", error.cause().into()),
                ("detail", error.to_string().into()),
            ];
            if let Some(status) = status {
                attributes.push(("status", status.into()));
            }
            self.timeline.host_on(&self.leg, "http.failed", &attributes);
        }
    }

    fn response(&self, exchange: &Exchange) {
        self.metrics.http_first_byte(&self.target, exchange.first_byte.as_secs_f64());
        if self.marked {
            self.timeline.host_on(
                &self.leg,
                "http.response",
                &[
                    ("target", self.target.as_str().into()),
                    ("method", self.method.as_str().into()),
                    ("path", self.path.as_str().into()),
                    ("status", exchange.response.status().as_u16().into()),
                    ("first_byte_ms", exchange.first_byte.into()),
                    ("reused", exchange.reused.into()),
                ],
            );
        }
    }

    fn ended(&self, status: u16, end: &BodyEnd, sent: u64) {
        let (received, how) = match end {
            BodyEnd::Finished { received } => (*received, "finished"),
            BodyEnd::Dropped { received } => (*received, "dropped"),
            BodyEnd::Failed { error, .. } => return self.failed(Some(status), error),
        };
        self.metrics.http_request(&self.leg, &self.target, &format!("{}xx", status / 100), "");
        if self.marked {
            self.timeline.host_on(
                &self.leg,
                "http.complete",
                &[
                    ("target", self.target.as_str().into()),
                    ("status", status.into()),
                    ("total_ms", self.started.elapsed().into()),
                    ("bytes_received", received.into()),
                    ("bytes_sent", sent.into()),
                    ("end", how.into()),
                ],
            );
        }
    }
}

/// The `wasi:http` error a failed exchange is reported to the guest as.
fn wasi_error(error: &FetchError) -> WasiHttpError {
    match error {
        FetchError::Dns(detail) => WasiHttpError::DnsError { rcode: Some(detail.clone()), info_code: None },
        FetchError::Denied(_) => WasiHttpError::HttpRequestDenied,
        FetchError::Refused => WasiHttpError::ConnectionRefused,
        FetchError::ConnectTimeout(_) => WasiHttpError::ConnectionTimeout,
        FetchError::TlsCertificate(_) => WasiHttpError::TlsCertificateError,
        FetchError::TlsAlert(message) => WasiHttpError::TlsAlertReceived { alert_id: None, alert_message: Some(message.clone()) },
        FetchError::Tls(_) => WasiHttpError::TlsProtocolError,
        FetchError::FirstByteTimeout(_) => WasiHttpError::HttpResponseTimeout,
        FetchError::BetweenBytesTimeout(_) => WasiHttpError::ConnectionReadTimeout,
        FetchError::RequestBodyTooLarge(cap) => WasiHttpError::HttpRequestBodySize(Some(*cap)),
        FetchError::ResponseBodyTooLarge(cap) => WasiHttpError::HttpResponseBodySize(Some(*cap)),
        FetchError::Incomplete => WasiHttpError::HttpResponseIncomplete,
        FetchError::Protocol(_) => WasiHttpError::HttpProtocolError,
        FetchError::RequestBody(detail) | FetchError::Other(detail) => WasiHttpError::InternalError(Some(detail.clone())),
    }
}
