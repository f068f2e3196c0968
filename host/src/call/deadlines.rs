//! The route's deadlines, held against every caller whatever the guest does: a first
//! message, an idle gap, a longest call. When one passes, the caller's socket is closed
//! with 1008 and a reason naming it; a guest that has not returned [`GUEST_GRACE`] later
//! is stopped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::config::CallerDeadlines;
use crate::observe::timeline::CallTimeline;
use crate::ws::{Activity, Closer};

/// After a deadline closed the caller's socket, how long the guest has to return before
/// the host stops it.
pub const GUEST_GRACE: Duration = Duration::from_secs(10);

/// The close code the host uses when a deadline ends a call (policy violation).
pub const DEADLINE_CLOSE_CODE: u16 = 1008;

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
pub(super) async fn watch(deadlines: CallerDeadlines, activity: Activity, closer: Closer, timeline: CallTimeline, stop_guest: Arc<Notify>) {
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
    let inbound = timeline.inbound_leg();
    let attributes = [("deadline", deadline.label().into()), ("limit_ms", (limit_ms as u64).into()), ("reason", reason.as_str().into())];
    timeline.host_on(&inbound, "call.deadline", &attributes);
    closer.close(DEADLINE_CLOSE_CODE, &reason);
    tokio::time::sleep(GUEST_GRACE).await;
    stop_guest.notify_one();
}
