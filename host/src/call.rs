//! One call: from an accepted upgrade to the closed socket, on a fresh instance.
//!
//! Beside the guest, a watchdog holds the caller to the route's deadlines (a first
//! message, an idle gap, a longest call): when one passes, the caller's socket is closed
//! with 1008 and a reason naming it, and a guest that has not returned
//! [`GUEST_GRACE`] later is stopped. None of this needs the guest's cooperation.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;
use tokio_tungstenite::WebSocketStream;

use crate::config::CallerDeadlines;
use crate::registry::LiveCall;
use crate::runtime::bindings::RequestInfo;
use crate::runtime::component::{CLOSE_GRACE, micros_since, trap_cause};
use crate::timeline::CallTimeline;
use crate::ws::{Activity, Closer, pump};

/// After a deadline closed the caller's socket, how long the guest has to return before
/// the host stops it.
pub const GUEST_GRACE: Duration = Duration::from_secs(10);

/// The close code the host uses when a deadline ends a call (policy violation).
pub const DEADLINE_CLOSE_CODE: u16 = 1008;

/// Runs `component` for the inbound socket until the guest returns or traps, then closes
/// the socket (1000 after a return, 1011 after a trap) and frees the instance.
pub async fn run<S>(
    live: LiveCall,
    socket: WebSocketStream<S>,
    request: RequestInfo,
    timeline: CallTimeline,
    mut draining: tokio::sync::watch::Receiver<bool>,
    deadlines: CallerDeadlines,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let version = live.version().clone();
    let component = &version.loaded;
    let sandbox = component.sandbox().clone();
    let (inbound, control) = pump::spawn(socket, &sandbox.pump, None, sandbox.metrics.inbound.clone(), |_| {});
    // When the host's drain deadline passes, the caller's socket is closed with 1001: the
    // guest sees its inbound connection end and finishes the call its own way.
    let closer = control.closer();
    let drain_timeline = timeline.clone();
    let drain_watch = tokio::spawn(async move {
        if draining.wait_for(|now| *now).await.is_ok() {
            drain_timeline.host("call.draining", &[("code", "1001".to_owned())]);
            closer.close(1001, "server shutting down");
        }
    });
    let stop_guest = Arc::new(Notify::new());
    let watchdog = tokio::spawn(watch_deadlines(deadlines, control.activity(), control.closer(), timeline.clone(), stop_guest.clone()));

    let started = Instant::now();
    let (code, reason) = match component.instantiate(timeline.clone()).await {
        Err(error) => {
            timeline.host("instance.failed", &[("error", format!("{error:#}"))]);
            tracing::error!(call = %timeline.call(), "instantiation failed: {error:#}");
            (1011, "the call handler could not start")
        }
        Ok((mut store, handler)) => {
            timeline.host(
                "instance.started",
                &[
                    ("component", sandbox.name.clone()),
                    ("version", version.number.to_string()),
                    ("digest", version.short_digest().to_owned()),
                    ("instantiate_us", micros_since(started)),
                ],
            );
            let outcome = tokio::select! {
                outcome = async {
                    let inbound = store.data_mut().table.push(inbound)?;
                    handler.switchboard_call_handler().call_handle(&mut store, &request, inbound).await
                } => Some(outcome),
                // Dropping the call tears the guest's fiber down; the store is dropped below.
                () = stop_guest.notified() => None,
            };
            let verdict = match outcome {
                Some(Ok(())) => {
                    let state = store.data();
                    timeline.host(
                        "guest.returned",
                        &[
                            ("cpu_ms", format!("{:.3}", state.cpu.total().as_secs_f64() * 1e3)),
                            ("memory_kib", (state.limiter.largest() / 1024).to_string()),
                        ],
                    );
                    (1000, "")
                }
                Some(Err(error)) => {
                    let cause = trap_cause(store.data());
                    let detail = format!("{error:#}");
                    timeline.host("guest.trap", &[("cause", cause.to_owned()), ("detail", detail.clone())]);
                    tracing::warn!(call = %timeline.call(), cause, "guest trapped: {detail}");
                    (1011, "the call handler failed")
                }
                None => {
                    timeline.host("guest.stopped", &[("grace_ms", GUEST_GRACE.as_millis().to_string())]);
                    tracing::warn!(call = %timeline.call(), "guest stopped: it did not return within {GUEST_GRACE:?} of a deadline");
                    (DEADLINE_CLOSE_CODE, "")
                }
            };
            let output = store.data().output.finish();
            if output.logged + output.dropped > 0 {
                timeline
                    .host("guest.output", &[("logged_bytes", output.logged.to_string()), ("dropped_bytes", output.dropped.to_string())]);
            }
            // Dropping the store frees the instance and every resource it held; outbound
            // connections it still had close with 1000.
            drop(store);
            verdict
        }
    };
    drain_watch.abort();
    watchdog.abort();
    control.close(code, reason);
    let info = control.finished(CLOSE_GRACE + CLOSE_GRACE).await;
    timeline.host("call.closed", &[("code", info.code.to_string()), ("reason", info.reason.clone()), ("by", info.by.label().to_owned())]);
}

/// Which of a route's deadlines ended a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// The caller sent no data message in time after the upgrade.
    FirstMessage,
    /// The caller went silent for too long.
    Idle,
    /// The call reached the longest duration allowed.
    MaxCall,
}

impl Deadline {
    /// The label on markers.
    pub fn label(self) -> &'static str {
        match self {
            Deadline::FirstMessage => "first-message",
            Deadline::Idle => "idle",
            Deadline::MaxCall => "max-call",
        }
    }
}

/// The deadline that comes next and when, given what the caller has sent.
fn next_deadline(deadlines: &CallerDeadlines, started: Instant, activity: &Activity) -> (Instant, Deadline) {
    let silence = if activity.messages() == 0 {
        (started + deadlines.first_message, Deadline::FirstMessage)
    } else {
        (activity.last_received() + deadlines.idle, Deadline::Idle)
    };
    let longest = (started + deadlines.max_call, Deadline::MaxCall);
    if silence.0 <= longest.0 { silence } else { longest }
}

/// Sleeps until a deadline passes (re-checking when the caller sent something meanwhile),
/// then closes the caller's socket; stops the guest if it has not returned in grace.
async fn watch_deadlines(deadlines: CallerDeadlines, activity: Activity, closer: Closer, timeline: CallTimeline, stop_guest: Arc<Notify>) {
    let started = Instant::now();
    let deadline = loop {
        let (at, which) = next_deadline(&deadlines, started, &activity);
        tokio::time::sleep_until(at.into()).await;
        if activity.ended() {
            return;
        }
        let (now_at, now_which) = next_deadline(&deadlines, started, &activity);
        if now_which == which && now_at <= Instant::now() {
            break which;
        }
    };
    let limit = match deadline {
        Deadline::FirstMessage => deadlines.first_message,
        Deadline::Idle => deadlines.idle,
        Deadline::MaxCall => deadlines.max_call,
    };
    let limit_ms = limit.as_millis();
    let reason = match deadline {
        Deadline::FirstMessage => {
            format!("first-message deadline: nothing received within {limit_ms} ms")
        }
        Deadline::Idle => format!("idle deadline: nothing received for {limit_ms} ms"),
        Deadline::MaxCall => format!("longest call reached: {limit_ms} ms"),
    };
    timeline.host(
        "call.deadline",
        &[("deadline", deadline.label().to_owned()), ("limit_ms", limit_ms.to_string()), ("reason", reason.clone())],
    );
    closer.close(DEADLINE_CLOSE_CODE, &reason);
    tokio::time::sleep(GUEST_GRACE).await;
    stop_guest.notify_one();
}
