//! Deciding, from a call's markers, how it went and which leg failed, so the answer to
//! "is it Twilio or Deepgram?" is stored with every call, for any component.
//!
//! Only the host's own vocabulary is read: its markers ([`HOST_MARKERS`]) and the markers
//! it records for a guest's typed reports ([`REPORT_MARKERS`]: `leg.fault`,
//! `leg.complete`, `leg.inbound`). Legs are whatever the guest named them. The rules, in
//! order of precedence:
//!
//! 1. the first *failure* decides: a refused upgrade (on its lane) or a silent caller (the
//!    inbound leg),
//!    the longest-call limit (`policy`), a trap or a stopped guest (`guest`), a failed
//!    instantiation (`host`), or a guest's `failed` fault on its leg (blamed on `policy`
//!    when the host's egress policy had refused that leg's connect);
//! 2. a caller whose socket vanished without a close frame, before the guest said the
//!    inbound leg was complete, fails the inbound leg; a call closed 1011 with no other
//!    failure fails the host;
//! 3. else the first *fault* makes the call degraded: a guest's `recovered` fault, a
//!    connect or request that failed, an outbound socket closed abnormally by its peer, a
//!    policy refusal;
//! 4. a call with no `call.closed` yet is `live`.
//!
//! [`HOST_MARKERS`]: crate::observe::marker::HOST_MARKERS
//! [`REPORT_MARKERS`]: crate::observe::marker::REPORT_MARKERS

use crate::observe::legs::{DEFAULT_INBOUND_LEG, GUEST_LEG, HOST_LEG, POLICY_LEG};
use crate::observe::marker::{Marker, MarkerSource};

/// How a call went.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdict {
    /// `live`, `ok`, `degraded` (a fault the call recovered from) or `failed`.
    pub outcome: &'static str,
    /// The leg that went wrong, when something did.
    pub failing_leg: Option<String>,
    /// The cause, in a few words.
    pub cause: Option<String>,
}

fn text<'a>(marker: &'a Marker, key: &str) -> &'a str {
    marker.text(key).unwrap_or_default()
}

fn shown(marker: &Marker, key: &str) -> String {
    marker.shown(key).unwrap_or_default()
}

/// What a pass over the markers gathered.
#[derive(Default)]
struct Findings<'a> {
    failed: Option<(String, String)>,
    degraded: Option<(String, String)>,
    /// The policy refusal of each leg's last connect, if any.
    refusals: Vec<(String, String)>,
    inbound_leg: Option<String>,
    completed: Vec<String>,
    closed: Option<&'a Marker>,
}

impl Findings<'_> {
    fn fail(&mut self, leg: &str, cause: String) {
        if self.failed.is_none() {
            self.failed = Some((leg.to_owned(), cause));
        }
    }

    fn degrade(&mut self, leg: &str, cause: String) {
        if self.degraded.is_none() {
            self.degraded = Some((leg.to_owned(), cause));
        }
    }

    fn inbound(&self) -> &str {
        self.inbound_leg.as_deref().unwrap_or(DEFAULT_INBOUND_LEG)
    }

    fn refusal_of(&self, leg: &str) -> Option<&String> {
        self.refusals.iter().rev().find(|(refused, _)| refused == leg).map(|(_, cause)| cause)
    }
}

/// Classifies a call from its markers, oldest first.
pub fn classify(markers: &[Marker]) -> Verdict {
    let mut findings = Findings::default();
    for marker in markers {
        match marker.source {
            MarkerSource::Host => host_marker(marker, &mut findings),
            MarkerSource::Guest => report_marker(marker, &mut findings),
        }
    }
    let Some(closed) = findings.closed else {
        let (leg, cause) = findings.failed.or(findings.degraded).map_or((None, None), |(l, c)| (Some(l), Some(c)));
        return Verdict { outcome: "live", failing_leg: leg, cause };
    };
    let code = closed.number("code").unwrap_or(0.0) as i64;
    let inbound = findings.inbound().to_owned();
    if code == 1006 && !findings.completed.contains(&inbound) {
        findings.fail(&inbound, format!("the caller's socket ended without a close frame ({})", text(closed, "reason")));
    }
    if code == 1011 {
        findings.fail(HOST_LEG, format!("call closed 1011: {}", text(closed, "reason")));
    }
    match (findings.failed, findings.degraded) {
        (Some((leg, cause)), _) => Verdict { outcome: "failed", failing_leg: Some(leg), cause: Some(cause) },
        (None, Some((leg, cause))) => Verdict { outcome: "degraded", failing_leg: Some(leg), cause: Some(cause) },
        (None, None) => Verdict { outcome: "ok", failing_leg: None, cause: None },
    }
}

fn host_marker<'a>(marker: &'a Marker, findings: &mut Findings<'a>) {
    let leg = marker.leg.as_str();
    match marker.name.as_str() {
        "call.rejected" => {
            // Refused before any guest ran: the lane says whose upgrade it was.
            findings.fail(leg, format!("upgrade refused ({}): {}", shown(marker, "status"), text(marker, "reason")));
            findings.closed = Some(marker);
        }
        "call.deadline" => {
            let limit = shown(marker, "limit_ms");
            let inbound = findings.inbound().to_owned();
            match text(marker, "deadline") {
                "first-message" => {
                    findings.fail(&inbound, format!("the caller sent nothing within the first-message deadline ({limit} ms)"))
                }
                "idle" => findings.fail(&inbound, format!("the caller sent nothing for the idle deadline ({limit} ms)")),
                _ => findings.fail(POLICY_LEG, format!("the call reached the longest-call limit ({limit} ms)")),
            }
        }
        "guest.trap" => findings.fail(GUEST_LEG, format!("guest {}: {}", text(marker, "cause"), text(marker, "detail"))),
        "guest.stopped" => findings.fail(GUEST_LEG, "the guest did not return after its call was ended, and was stopped".to_owned()),
        "instance.failed" => findings.fail(HOST_LEG, format!("instance failed: {}", text(marker, "error"))),
        "outbound.denied" | "http.denied" => {
            let refusal = format!(
                "the egress policy refused {} for the {leg} leg ({}): {}",
                text(marker, "target"),
                text(marker, "cause"),
                text(marker, "detail")
            );
            findings.degrade(POLICY_LEG, refusal.clone());
            findings.refusals.push((leg.to_owned(), refusal));
        }
        "outbound.failed" => {
            findings.degrade(leg, format!("connect failed on the {leg} leg: {} ({})", text(marker, "cause"), text(marker, "detail")))
        }
        "http.failed" => findings.degrade(
            leg,
            format!("a request failed on the {leg} leg: {} {} ({})", text(marker, "method"), text(marker, "target"), text(marker, "cause")),
        ),
        "outbound.open" | "http.response" => findings.refusals.retain(|(refused, _)| refused != leg),
        "outbound.closed" if text(marker, "by") == "peer" || text(marker, "by") == "network" => {
            let code = marker.number("code").unwrap_or(0.0) as i64;
            // A leg the guest declared complete has done its part: how it closes after that
            // (Deepgram Flux closes without a status) is no fault.
            if code != 1000 && code != 1001 && !findings.completed.iter().any(|done| done == leg) {
                findings.degrade(leg, format!("the {leg} leg closed {code} {}", text(marker, "reason")));
            }
        }
        "call.closed" => findings.closed = Some(marker),
        _ => {}
    }
}

fn report_marker(marker: &Marker, findings: &mut Findings<'_>) {
    let leg = marker.leg.as_str();
    match marker.name.as_str() {
        "leg.inbound" => findings.inbound_leg = Some(leg.to_owned()),
        "leg.complete" => findings.completed.push(leg.to_owned()),
        "leg.fault" => {
            let detail = text(marker, "detail").to_owned();
            if text(marker, "impact") == "failed" {
                // A leg the host's policy refused failed because of the policy, not
                // because of the service it was trying to reach.
                match findings.refusal_of(leg).cloned() {
                    Some(refusal) => findings.fail(POLICY_LEG, refusal),
                    None => findings.fail(leg, detail),
                }
            } else {
                findings.degrade(leg, detail);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::marker::test_marker;

    fn host(name: &str, attrs: &[(&str, &str)]) -> Marker {
        test_marker(1, name, attrs, 0)
    }

    fn on(leg: &str, mut marker: Marker) -> Marker {
        marker.leg = leg.to_owned();
        marker
    }

    fn report(leg: &str, name: &str, attrs: &[(&str, &str)]) -> Marker {
        let mut marker = on(leg, test_marker(1, name, attrs, 0));
        marker.source = MarkerSource::Guest;
        marker
    }

    #[test]
    fn a_clean_call_is_ok() {
        let markers = [host("call.accepted", &[]), report("twilio", "leg.complete", &[]), host("call.closed", &[("code", "1000")])];
        assert_eq!(classify(&markers), Verdict { outcome: "ok", failing_leg: None, cause: None });
    }

    #[test]
    fn a_guest_s_failed_fault_names_its_leg_and_cause() {
        let markers = [
            report("billing", "leg.declared", &[]),
            report("billing", "leg.fault", &[("impact", "failed"), ("cause", "rejected"), ("detail", "the billing API answered 401")]),
            report("billing", "leg.fault", &[("impact", "failed"), ("cause", "lost"), ("detail", "later")]),
            host("call.closed", &[("code", "1000")]),
        ];
        let verdict = classify(&markers);
        assert_eq!((verdict.outcome, verdict.failing_leg.as_deref()), ("failed", Some("billing")));
        assert_eq!(verdict.cause.as_deref(), Some("the billing API answered 401"), "the first failure wins");
    }

    #[test]
    fn faults_the_host_sees_are_attributed_to_the_leg_they_happened_on() {
        let recovered = [
            on("deepgram", host("outbound.closed", &[("code", "1011"), ("reason", "NET-0000"), ("by", "peer")])),
            host("call.closed", &[("code", "1000")]),
        ];
        let verdict = classify(&recovered);
        assert_eq!((verdict.outcome, verdict.failing_leg.as_deref()), ("degraded", Some("deepgram")));
        let vanished = [report("twilio", "leg.inbound", &[]), host("call.closed", &[("code", "1006"), ("reason", "reset")])];
        assert_eq!(classify(&vanished).failing_leg.as_deref(), Some("twilio"));
        let after_stop =
            [report("twilio", "leg.inbound", &[]), report("twilio", "leg.complete", &[]), host("call.closed", &[("code", "1006")])];
        assert_eq!(classify(&after_stop).outcome, "ok", "the caller dropping the socket after it was done is no fault");
        let trapped = [host("guest.trap", &[("cause", "cpu-budget")]), host("call.closed", &[("code", "1011")])];
        assert_eq!(classify(&trapped).failing_leg.as_deref(), Some("guest"));
        assert_eq!(classify(&[host("call.accepted", &[])]).outcome, "live");
    }

    #[test]
    fn a_leg_closing_oddly_after_the_guest_completed_it_is_no_fault() {
        let closed = |code: &str| on("deepgram", host("outbound.closed", &[("code", code), ("by", "peer"), ("reason", "")]));
        let after = [report("deepgram", "leg.complete", &[]), closed("1005"), host("call.closed", &[("code", "1000")])];
        assert_eq!(classify(&after).outcome, "ok");
        let before = [closed("1005"), report("deepgram", "leg.complete", &[]), host("call.closed", &[("code", "1000")])];
        assert_eq!(classify(&before).outcome, "degraded", "a close before the guest was done still counts");
    }

    #[test]
    fn a_policy_refusal_is_blamed_on_the_policy() {
        let refused = [
            on(
                "deepgram",
                host(
                    "outbound.denied",
                    &[("target", "wss://x:443"), ("cause", "special-address"), ("detail", "resolves only to 127.0.0.1")],
                ),
            ),
            report("deepgram", "leg.fault", &[("impact", "failed"), ("cause", "gave-up"), ("detail", "gave up on Deepgram")]),
            host("call.closed", &[("code", "1000")]),
        ];
        let verdict = classify(&refused);
        assert_eq!((verdict.outcome, verdict.failing_leg.as_deref()), ("failed", Some("policy")), "{verdict:?}");
        assert!(verdict.cause.unwrap_or_default().contains("special-address"));
        // A leg whose later connect succeeded is its own again.
        let recovered = [
            on("deepgram", host("outbound.denied", &[("cause", "connection-limit")])),
            on("deepgram", host("outbound.open", &[])),
            report("deepgram", "leg.fault", &[("impact", "failed"), ("detail", "Deepgram went away")]),
            host("call.closed", &[("code", "1000")]),
        ];
        assert_eq!(classify(&recovered).failing_leg.as_deref(), Some("deepgram"));
    }

    #[test]
    fn http_requests_are_attributed_like_connections() {
        let failed = [
            on(
                "llm",
                host("http.failed", &[("method", "POST"), ("target", "https://api.openai.com:443"), ("cause", "first-byte-timeout")]),
            ),
            host("call.closed", &[("code", "1000")]),
        ];
        let verdict = classify(&failed);
        assert_eq!((verdict.outcome, verdict.failing_leg.as_deref()), ("degraded", Some("llm")), "{verdict:?}");
        assert!(verdict.cause.unwrap_or_default().contains("first-byte-timeout"));
        let denied = [
            on("crm", host("http.denied", &[("target", "https://10.0.0.5:443"), ("cause", "special-address")])),
            report("crm", "leg.fault", &[("impact", "failed"), ("detail", "no CRM")]),
            host("call.closed", &[("code", "1000")]),
        ];
        assert_eq!(classify(&denied).failing_leg.as_deref(), Some("policy"));
    }
}
