//! One call: from an accepted upgrade to the closed socket, on a fresh instance.

use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;

use crate::registry::LiveCall;
use crate::runtime::bindings::RequestInfo;
use crate::runtime::component::{CLOSE_GRACE, micros_since, trap_cause};
use crate::timeline::CallTimeline;
use crate::ws::pump;

/// Runs `component` for the inbound socket until the guest returns or traps, then closes
/// the socket (1000 after a return, 1011 after a trap) and frees the instance.
pub async fn run<S>(
    live: LiveCall,
    socket: WebSocketStream<S>,
    request: RequestInfo,
    timeline: CallTimeline,
    mut draining: tokio::sync::watch::Receiver<bool>,
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
            let outcome = async {
                let inbound = store.data_mut().table.push(inbound)?;
                handler.switchboard_call_handler().call_handle(&mut store, &request, inbound).await
            }
            .await;
            let verdict = match outcome {
                Ok(()) => {
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
                Err(error) => {
                    let cause = trap_cause(store.data());
                    let detail = format!("{error:#}");
                    timeline.host("guest.trap", &[("cause", cause.to_owned()), ("detail", detail.clone())]);
                    tracing::warn!(call = %timeline.call(), cause, "guest trapped: {detail}");
                    (1011, "the call handler failed")
                }
            };
            log_output(&timeline, store.data().captured_output());
            // Dropping the store frees the instance and every resource it held; outbound
            // connections it still had close with 1000.
            drop(store);
            verdict
        }
    };
    drain_watch.abort();
    control.close(code, reason);
    let info = control.finished(CLOSE_GRACE + CLOSE_GRACE).await;
    timeline.host("call.closed", &[("code", info.code.to_string()), ("reason", info.reason.clone()), ("by", info.by.label().to_owned())]);
}

fn log_output(timeline: &CallTimeline, (stdout, stderr): (bytes::Bytes, bytes::Bytes)) {
    for (stream, bytes) in [("stdout", stdout), ("stderr", stderr)] {
        if !bytes.is_empty() {
            tracing::info!(target: "switchboard::guest", call = %timeline.call(), stream, "{}", String::from_utf8_lossy(&bytes));
        }
    }
}
