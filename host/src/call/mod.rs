//! One call: from an accepted upgrade to the closed socket, on a fresh instance.
//!
//! Beside the guest, [`deadlines`] holds the caller to the route's deadlines, and the
//! host's drain signal closes the caller's socket with 1001 when a shutdown's deadline
//! passes. The guest's own logic is needed for neither.

pub mod deadlines;

use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Notify, watch};
use tokio_tungstenite::WebSocketStream;
use wasmtime::Store;

use crate::config::CallerDeadlines;
use crate::deploy::versions::{ComponentVersion, VersionHold};
use crate::observe::timeline::CallTimeline;
use crate::runtime::bindings::{CallHandler, RequestInfo};
use crate::runtime::sandbox::CLOSE_GRACE;
use crate::runtime::state::CallState;
use crate::runtime::types::Connection;
use crate::ws::{Closer, Socket, pump};
pub use deadlines::{DEADLINE_CLOSE_CODE, Deadline, GUEST_GRACE};

/// What a call is given to run.
pub struct CallSetup {
    /// The version that serves the call, held until it ends.
    pub hold: VersionHold,
    /// What the guest is told about the upgrade.
    pub request: RequestInfo,
    /// Where the call's markers go.
    pub timeline: CallTimeline,
    /// Turns true when the host's drain deadline passes.
    pub closing: watch::Receiver<bool>,
    /// The route's deadlines for the caller.
    pub deadlines: CallerDeadlines,
}

/// Runs the call's component for the inbound socket until the guest returns or traps, then
/// closes the socket (1000 after a return, 1011 after a trap) and frees the instance.
pub async fn run<S>(setup: CallSetup, socket: WebSocketStream<S>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let CallSetup { hold, request, timeline, closing, deadlines } = setup;
    let version = hold.version().clone();
    let sandbox = version.loaded.sandbox().clone();
    let (inbound, control) = pump::spawn(socket, &sandbox.pump, None, sandbox.metrics.inbound.clone(), |_| {});
    let drain_watch = tokio::spawn(close_when_draining(closing, control.closer(), timeline.clone()));
    let stop_guest = Arc::new(Notify::new());
    let watchdog = tokio::spawn(deadlines::watch(deadlines, control.activity(), control.closer(), timeline.clone(), stop_guest.clone()));
    let (code, reason) = run_guest(&version, inbound, &request, &timeline, &stop_guest).await;
    drain_watch.abort();
    watchdog.abort();
    control.close(code, reason);
    let info = control.finished(CLOSE_GRACE + CLOSE_GRACE).await;
    let inbound = timeline.inbound_leg();
    timeline.host_on(
        &inbound,
        "call.closed",
        &[("code", info.code.into()), ("reason", info.reason.as_str().into()), ("by", info.by.label().into())],
    );
}

/// When the host's drain deadline passes, closes the caller's socket with 1001: the guest
/// sees its inbound connection end and finishes the call its own way.
async fn close_when_draining(mut closing: watch::Receiver<bool>, closer: Closer, timeline: CallTimeline) {
    if closing.wait_for(|now| *now).await.is_ok() {
        timeline.host("call.draining", &[("code", 1001u16.into())]);
        closer.close(1001, "server shutting down");
    }
}

/// Instantiates the component and runs `handle` until it returns, traps, or the host stops
/// it; returns the close code and reason for the caller's socket.
async fn run_guest(
    version: &ComponentVersion,
    inbound: Socket,
    request: &RequestInfo,
    timeline: &CallTimeline,
    stop_guest: &Notify,
) -> (u16, &'static str) {
    let started = Instant::now();
    let (mut store, handler) = match version.loaded.instantiate(timeline.clone()).await {
        Ok(instance) => instance,
        Err(error) => {
            timeline.host("instance.failed", &[("error", format!("{error:#}").into())]);
            tracing::error!(call = %timeline.call(), "instantiation failed: {error:#}");
            return (1011, "the call handler could not start");
        }
    };
    timeline.host(
        "instance.started",
        &[
            ("component", version.component.as_str().into()),
            ("version", version.number.into()),
            ("digest", version.short_digest().into()),
            ("instantiate_us", (started.elapsed().as_micros() as u64).into()),
        ],
    );
    let outcome = tokio::select! {
        outcome = call_handle(&mut store, &handler, request, inbound) => Some(outcome),
        // Dropping the call tears the guest's fiber down; the store is dropped below.
        () = stop_guest.notified() => None,
    };
    let verdict = record_outcome(&store, outcome, timeline);
    let output = store.data().output.finish();
    if output.logged + output.dropped > 0 {
        timeline.host("guest.output", &[("logged_bytes", output.logged.into()), ("dropped_bytes", output.dropped.into())]);
    }
    // Dropping the store frees the instance and every resource it held; outbound
    // connections it still had close with 1000.
    drop(store);
    verdict
}

async fn call_handle(store: &mut Store<CallState>, handler: &CallHandler, request: &RequestInfo, inbound: Socket) -> wasmtime::Result<()> {
    let inbound = store.data_mut().table.push(Connection::inbound(inbound))?;
    handler.switchboard_call_handler().call_handle(&mut *store, request, inbound).await
}

/// Records how the guest ended (`None`: stopped by the host) and says how to close.
fn record_outcome(store: &Store<CallState>, outcome: Option<wasmtime::Result<()>>, timeline: &CallTimeline) -> (u16, &'static str) {
    let state = store.data();
    match outcome {
        Some(Ok(())) => {
            timeline
                .host("guest.returned", &[("cpu_ms", state.cpu.total().into()), ("memory_kib", (state.limiter.largest() / 1024).into())]);
            (1000, "")
        }
        Some(Err(error)) => {
            let cause = state.trap_cause();
            let detail = format!("{error:#}");
            timeline.host("guest.trap", &[("cause", cause.into()), ("detail", detail.as_str().into())]);
            tracing::warn!(call = %timeline.call(), cause, "guest trapped: {detail}");
            (1011, "the call handler failed")
        }
        None => {
            timeline.host("guest.stopped", &[("grace_ms", (GUEST_GRACE.as_millis() as u64).into())]);
            tracing::warn!(call = %timeline.call(), "guest stopped: it did not return within {GUEST_GRACE:?} of a deadline");
            (DEADLINE_CLOSE_CODE, "")
        }
    }
}
