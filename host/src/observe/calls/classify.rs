//! Deciding, from a call's markers, how it went and which leg failed, so the answer to
//! "is it Twilio or Deepgram?" is stored with every call.

use crate::observe::timeline::Marker;

/// How a call went.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdict {
    /// `live`, `ok`, `degraded` (a fault the pipeline recovered from) or `failed`.
    pub outcome: &'static str,
    /// `twilio`, `deepgram`, `outbound`, `policy`, `guest` or `host`, when something went wrong.
    pub failing_leg: Option<&'static str>,
    /// The cause, in a few words.
    pub cause: Option<String>,
}

/// The leg a marker belongs to, for lanes and filters.
pub fn leg_of(name: &str) -> &'static str {
    match name.split('.').next().unwrap_or_default() {
        "call" | "instance" | "guest" | "markers" => "host",
        "twilio" => "twilio",
        "deepgram" | "transcript" | "utterance" | "audio" | "pipeline" => "deepgram",
        "outbound" => "outbound",
        _ => "guest",
    }
}

fn attr<'a>(marker: &'a Marker, key: &str) -> &'a str {
    marker.attr(key).unwrap_or_default()
}

/// Classifies a call from its markers, oldest first. The first decisive failure wins.
pub fn classify(markers: &[Marker]) -> Verdict {
    let mut failed: Option<(&'static str, String)> = None;
    let mut degraded: Option<(&'static str, String)> = None;
    let mut fail = |leg: &'static str, cause: String| {
        if failed.is_none() {
            failed = Some((leg, cause));
        }
    };
    let mut closed = None;
    let mut stopped = false;
    let mut denial: Option<String> = None;
    for marker in markers {
        match marker.name.as_str() {
            "call.deadline" => match attr(marker, "deadline") {
                "first-message" => {
                    fail("twilio", format!("the caller sent nothing within the first-message deadline ({} ms)", attr(marker, "limit_ms")))
                }
                "idle" => fail("twilio", format!("the caller sent nothing for the idle deadline ({} ms)", attr(marker, "limit_ms"))),
                _ => fail("policy", format!("the call reached the longest-call limit ({} ms)", attr(marker, "limit_ms"))),
            },
            "guest.stopped" => fail("guest", "the guest did not return after its call was ended, and was stopped".to_owned()),
            "guest.trap" => fail("guest", format!("guest {}: {}", attr(marker, "cause"), attr(marker, "detail"))),
            "instance.failed" => fail("host", format!("instance failed: {}", attr(marker, "error"))),
            "deepgram.rejected" => {
                let reason = Some(attr(marker, "dg_error")).filter(|r| !r.is_empty()).unwrap_or_else(|| attr(marker, "body"));
                fail("deepgram", format!("Deepgram rejected the connection: HTTP {} {reason}", attr(marker, "status")))
            }
            // A guest that gives up after the host's policy refused it failed because of the
            // policy, not because of the service it was trying to reach.
            "deepgram.gave-up" => match (&denial, attr(marker, "why")) {
                (Some(refusal), "refused-by-host") => fail("policy", refusal.clone()),
                _ => fail("deepgram", format!("gave up on Deepgram ({})", attr(marker, "why"))),
            },
            "deepgram.final-timeout" => fail("deepgram", "Deepgram sent no final close after CloseStream".to_owned()),
            "pipeline.summary" if attr(marker, "lost_bytes") != "0" && !attr(marker, "lost_bytes").is_empty() => {
                fail("deepgram", format!("{} bytes of audio did not reach Deepgram", attr(marker, "lost_bytes")));
            }
            "outbound.failed" | "deepgram.connect-failed" if degraded.is_none() => {
                degraded = Some(("deepgram", format!("connect failed: {}", attr(marker, "cause"))));
            }
            "deepgram.closed" if attr(marker, "code") != "1000" && degraded.is_none() => {
                degraded = Some(("deepgram", format!("Deepgram closed {} {}", attr(marker, "code"), attr(marker, "reason"))));
            }
            "outbound.denied" => {
                let refusal =
                    format!("the egress policy refused {} ({}): {}", attr(marker, "target"), attr(marker, "cause"), attr(marker, "detail"));
                if degraded.is_none() {
                    degraded = Some(("policy", refusal.clone()));
                }
                denial = Some(refusal);
            }
            "twilio.malformed" | "twilio.bad-payload" | "twilio.unknown-event" if degraded.is_none() => {
                degraded = Some(("twilio", format!("{}: {}", marker.name, attr(marker, "error"))));
            }
            "twilio.stop" => stopped = true,
            "call.rejected" => {
                fail("twilio", format!("upgrade refused ({}): {}", attr(marker, "status"), attr(marker, "reason")));
                closed = Some(marker);
            }
            "call.closed" => closed = Some(marker),
            _ => {}
        }
    }
    let Some(closed) = closed else {
        let (leg, cause) = failed.or(degraded).map_or((None, None), |(l, c)| (Some(l), Some(c)));
        return Verdict { outcome: "live", failing_leg: leg, cause };
    };
    if failed.is_none() && attr(closed, "code") == "1006" && !stopped {
        failed = Some(("twilio", format!("the caller's socket ended without a close frame ({})", attr(closed, "reason"))));
    }
    if failed.is_none() && attr(closed, "code") == "1011" {
        failed = Some(("host", format!("call closed 1011: {}", attr(closed, "reason"))));
    }
    match (failed, degraded) {
        (Some((leg, cause)), _) => Verdict { outcome: "failed", failing_leg: Some(leg), cause: Some(cause) },
        (None, Some((leg, cause))) => Verdict { outcome: "degraded", failing_leg: Some(leg), cause: Some(cause) },
        (None, None) => Verdict { outcome: "ok", failing_leg: None, cause: None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, attrs: &[(&str, &str)]) -> Marker {
        crate::observe::timeline::test_marker(1, name, attrs, 0)
    }

    #[test]
    fn a_clean_call_is_ok() {
        let markers = [
            m("call.accepted", &[]),
            m("twilio.stop", &[]),
            m("pipeline.summary", &[("lost_bytes", "0")]),
            m("call.closed", &[("code", "1000")]),
        ];
        assert_eq!(classify(&markers), Verdict { outcome: "ok", failing_leg: None, cause: None });
    }

    #[test]
    fn a_rejected_key_blames_deepgram_first() {
        let markers = [
            m("deepgram.rejected", &[("status", "401"), ("dg_error", "Invalid credentials.")]),
            m("pipeline.summary", &[("lost_bytes", "16000")]),
            m("call.closed", &[("code", "1000")]),
        ];
        let verdict = classify(&markers);
        assert_eq!((verdict.outcome, verdict.failing_leg), ("failed", Some("deepgram")));
        assert!(verdict.cause.unwrap_or_default().contains("HTTP 401 Invalid credentials."));
    }

    #[test]
    fn a_recovered_reconnect_is_degraded_and_a_vanished_caller_blames_twilio() {
        let recovered = [
            m("deepgram.closed", &[("code", "1011"), ("reason", "NET-0000")]),
            m("twilio.stop", &[]),
            m("call.closed", &[("code", "1000")]),
        ];
        let verdict = classify(&recovered);
        assert_eq!((verdict.outcome, verdict.failing_leg), ("degraded", Some("deepgram")));
        let vanished = [m("call.closed", &[("code", "1006"), ("reason", "reset")])];
        assert_eq!(classify(&vanished).failing_leg, Some("twilio"));
        let refused = [
            m("outbound.denied", &[("target", "wss://x:443"), ("cause", "special-address"), ("detail", "resolves only to 127.0.0.1")]),
            m("deepgram.gave-up", &[("why", "refused-by-host")]),
            m("call.closed", &[("code", "1000")]),
        ];
        let verdict = classify(&refused);
        assert_eq!((verdict.outcome, verdict.failing_leg), ("failed", Some("policy")), "{verdict:?}");
        assert!(verdict.cause.unwrap_or_default().contains("special-address"));
        let trapped = [m("guest.trap", &[("cause", "cpu-budget")]), m("call.closed", &[("code", "1011")])];
        assert_eq!(classify(&trapped).failing_leg, Some("guest"));
        assert_eq!(classify(&[m("call.accepted", &[])]).outcome, "live");
    }
}
