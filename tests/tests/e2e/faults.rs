//! The fault matrix: the voice pipeline on a real host, against a Deepgram simulator over
//! real TLS, with one fault per test. Each checks what the design promises for that fault:
//! the call's outcome and failing leg in the call store, a marker naming the cause, and,
//! where the pipeline promises it (reconnects, a caller that vanishes), that Deepgram got
//! every byte of the caller's audio and the summary counts zero lost.
//!
//! SIGTERM on the real `switchboard serve` process is in `host/tests/cli.rs`; guest faults
//! (trap, loop, memory bomb, connect storm, huge messages) are in `sandbox.rs`.

use std::time::Duration;

use switchboard_harness::sim::deepgram::{DeepgramSim, RunningSim};
use switchboard_harness::sim::tls::TestCa;
use switchboard_harness::sim::twilio::{Ending, TwilioCall};
use switchboard_harness::{ComponentSpec, TestHost, caller_speech, guests};

use crate::init_tracing;

const KEY: &str = "matrix-key";

/// Where the pipeline is pointed, and how.
enum Deepgram {
    /// The simulator over TLS, trusted, with the right key.
    Sim(DeepgramSim),
    /// The simulator, but the injected key is wrong.
    WrongKey(DeepgramSim),
    /// The simulator, but its CA is not trusted.
    UnknownCa(DeepgramSim),
    /// An address where nothing listens.
    ClosedPort,
    /// A name that does not resolve.
    NoSuchHost,
    /// The simulator, allowed only by a wildcard rule: its loopback address is refused.
    BehindWildcard(DeepgramSim),
}

/// What one faulty call left behind.
struct Observed {
    call: serde_json::Value,
    timeline: Vec<switchboard::Marker>,
    lost_bytes: Option<u64>,
    sent_audio: Vec<u8>,
    deepgram: Option<RunningSim>,
    _ca: TestCa,
}

impl Observed {
    fn field(&self, name: &str) -> &str {
        self.call[name].as_str().unwrap_or_default()
    }

    fn marker(&self, name: &str) -> Option<&switchboard::Marker> {
        self.timeline.iter().find(|m| m.name == name)
    }

    /// Asserts every session got whole `batch_ms` frames (a shorter one only last, at the
    /// end of the call) at no more than 1.25x real time: over any stretch of frames, the
    /// audio before the stretch's last frame is at most 1.25x its duration, give or take
    /// one 250 ms frame for the network's jitter.
    fn assert_whole_paced_frames(&self, batch_bytes: usize) {
        let sessions = self.deepgram.as_ref().map(RunningSim::sessions).unwrap_or_default();
        assert!(!sessions.is_empty(), "Deepgram had a session");
        for (index, session) in sessions.iter().enumerate() {
            let Some((_, whole)) = session.frames.split_last() else { continue };
            assert!(
                whole.iter().all(|len| len % batch_bytes == 0),
                "session {index}: frames not whole {batch_bytes}-byte batches: {:?}",
                session.frames
            );
            assert!(session.frames.iter().all(|len| *len <= 2_000), "session {index}: a frame over 250 ms: {:?}", session.frames);
            let times = &session.frame_arrivals;
            for i in 0..times.len() {
                let mut bytes = 0usize;
                for j in i + 1..times.len() {
                    bytes += session.frames[j - 1];
                    let allowed = (times[j] - times[i]).as_secs_f64() * 10_000.0 + 2_000.0;
                    assert!(
                        bytes as f64 <= allowed,
                        "session {index}: {bytes} bytes in {:?} (frames {i}..{j}): faster than 1.25x",
                        times[j] - times[i]
                    );
                }
            }
        }
    }

    /// Asserts Deepgram received exactly the caller's audio across all its sessions.
    fn assert_delivered_whole(&self) {
        let deepgram = self.deepgram.as_ref().map(RunningSim::delivered_audio).unwrap_or_default();
        assert!(deepgram == self.sent_audio, "Deepgram got {} of {} bytes, or not in order", deepgram.len(), self.sent_audio.len());
        assert_eq!(self.lost_bytes, Some(0), "the pipeline counts no loss");
    }
}

/// Places one call of `seconds` of speech through a pipeline aimed at `deepgram`, with
/// extra pipeline `settings`, and collects what it left behind.
async fn faulty_call(deepgram: Deepgram, seconds: f64, ending: Ending, settings: &[(&str, &str)]) -> anyhow::Result<Observed> {
    init_tracing();
    let ca = TestCa::new()?;
    let closed_port = matches!(deepgram, Deepgram::ClosedPort);
    let wildcard = matches!(deepgram, Deepgram::BehindWildcard(_));
    let (sim, key, trusted) = match deepgram {
        Deepgram::Sim(sim) => (Some(sim), KEY, true),
        Deepgram::WrongKey(sim) => (Some(sim), "wrong-key", true),
        Deepgram::UnknownCa(sim) => (Some(sim), KEY, false),
        Deepgram::BehindWildcard(sim) => (Some(sim), KEY, true),
        Deepgram::ClosedPort | Deepgram::NoSuchHost => (None, KEY, true),
    };
    let running = match sim {
        Some(sim) => Some(sim.tls(ca.server_config()?).expect_token(KEY).start().await?),
        None => None,
    };
    let (origin, url) = match (&running, closed_port) {
        (Some(sim), _) => (sim.origin(), sim.listen_url()),
        (None, true) => {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            (format!("wss://localhost:{port}"), format!("wss://localhost:{port}/v1/listen"))
        }
        (None, false) => ("wss://deepgram.invalid".to_owned(), "wss://deepgram.invalid/v1/listen".to_owned()),
    };
    let origin = if wildcard { "wss://*:*".to_owned() } else { origin };
    let mut spec = ComponentSpec::new("voice", guests::VOICE_PIPELINE)
        .allow(&origin)
        .setting("deepgram_url", &url)
        .setting("reconnect_base_ms", "100")
        .limit("connect_timeout_ms", 700)
        .secret_header("localhost", "Authorization", "Token ${DEEPGRAM_API_KEY}");
    if trusted {
        spec = spec.trust(&ca);
    }
    for (key, value) in settings {
        spec = spec.setting(key, value);
    }
    let host = TestHost::builder().env("DEEPGRAM_API_KEY", key).route("/twilio/media", spec).start().await?;
    let audio = caller_speech()[..(seconds * 8_000.0) as usize].to_vec();
    let record = TwilioCall::new(&host.url("/twilio/media")).audio(audio).sids("CAFAULT", "MZFAULT").ending(ending).run().await?;
    host.marker("call.closed", |_| true).await?;
    let summary = host.marker("pipeline.summary", |_| true).await?;
    assert!(host.host().calls().flush(Duration::from_secs(10)), "the call store flushed");
    let stored: serde_json::Value = host.operator(None)?.get_json("/api/calls/CAFAULT").await?;
    Ok(Observed {
        call: stored["call"].clone(),
        timeline: host.timeline().find(|_| true),
        lost_bytes: summary.shown("lost_bytes").as_deref().and_then(|b| b.parse().ok()),
        sent_audio: record.sent_audio,
        deepgram: running,
        _ca: ca,
    })
}

/// A connect failure of `cause` was recorded, the pipeline gave up after its retries, and
/// the call is failed on the Deepgram leg.
fn assert_gave_up_after(observed: &Observed, cause: &str) {
    let failure = observed.marker("deepgram.connect-failed");
    assert_eq!(failure.and_then(|m| m.shown("cause")).as_deref(), Some(cause), "{:?}", failure);
    assert!(observed.marker("deepgram.gave-up").is_some(), "the pipeline gave up");
    assert_eq!((observed.field("outcome"), observed.field("failing_leg")), ("failed", "deepgram"), "{:#}", observed.call);
}

const FEW_RETRIES: &[(&str, &str)] = &[("max_reconnects", "2")];

#[tokio::test]
async fn deepgram_closing_1011_mid_call_is_recovered_without_loss() -> anyhow::Result<()> {
    let observed =
        faulty_call(Deepgram::Sim(DeepgramSim::new().close_after_audio(Duration::from_millis(800), 1)), 2.0, Ending::Stop, &[]).await?;
    assert_eq!(observed.marker("deepgram.closed").and_then(|m| m.shown("code")).as_deref(), Some("1011"));
    assert_eq!((observed.field("outcome"), observed.field("failing_leg")), ("degraded", "deepgram"), "{:#}", observed.call);
    assert!(observed.field("cause").contains("1011"), "{:#}", observed.call);
    assert_eq!(observed.deepgram.as_ref().map(|d| d.sessions().len()), Some(2), "one reconnect");
    observed.assert_delivered_whole();
    observed.assert_whole_paced_frames(320);
    Ok(())
}

#[tokio::test]
async fn a_handshake_that_never_answers_times_out_and_the_retry_loses_nothing() -> anyhow::Result<()> {
    let observed = faulty_call(Deepgram::Sim(DeepgramSim::new().blackhole_first(1)), 2.0, Ending::Stop, &[]).await?;
    assert_eq!(observed.marker("deepgram.connect-failed").and_then(|m| m.shown("cause")).as_deref(), Some("connect-timeout"));
    assert_eq!(observed.field("outcome"), "degraded", "{:#}", observed.call);
    assert!(observed.field("cause").contains("connect-timeout"), "{:#}", observed.call);
    observed.assert_delivered_whole();
    observed.assert_whole_paced_frames(320);
    Ok(())
}

#[tokio::test]
async fn a_401_fails_the_call_at_once_with_deepgram_s_reason() -> anyhow::Result<()> {
    let observed = faulty_call(Deepgram::WrongKey(DeepgramSim::new()), 1.0, Ending::Stop, &[]).await?;
    let rejected = observed.marker("deepgram.rejected");
    assert_eq!(rejected.and_then(|m| m.shown("status")).as_deref(), Some("401"), "{rejected:?}");
    assert!(observed.marker("deepgram.connect-failed").is_none(), "a rejection is not retried");
    assert_eq!((observed.field("outcome"), observed.field("failing_leg")), ("failed", "deepgram"));
    assert!(observed.field("cause").contains("HTTP 401"), "{:#}", observed.call);
    assert_eq!(observed.deepgram.as_ref().map(RunningSim::connections), Some(1));
    Ok(())
}

#[tokio::test]
async fn an_unknown_ca_is_a_tls_error() -> anyhow::Result<()> {
    let observed = faulty_call(Deepgram::UnknownCa(DeepgramSim::new()), 1.0, Ending::Stop, FEW_RETRIES).await?;
    assert_gave_up_after(&observed, "tls-error");
    assert!(observed.deepgram.as_ref().is_some_and(|d| d.sessions().is_empty()), "no session was opened");
    Ok(())
}

#[tokio::test]
async fn a_dns_failure_is_named() -> anyhow::Result<()> {
    let observed = faulty_call(Deepgram::NoSuchHost, 1.0, Ending::Stop, FEW_RETRIES).await?;
    assert_gave_up_after(&observed, "dns-error");
    Ok(())
}

#[tokio::test]
async fn a_refused_connection_is_named() -> anyhow::Result<()> {
    let observed = faulty_call(Deepgram::ClosedPort, 1.0, Ending::Stop, FEW_RETRIES).await?;
    assert_gave_up_after(&observed, "connection-refused");
    Ok(())
}

#[tokio::test]
async fn a_caller_that_vanishes_still_gets_its_audio_delivered_and_the_stream_closed() -> anyhow::Result<()> {
    let observed = faulty_call(Deepgram::Sim(DeepgramSim::new()), 1.5, Ending::Vanish, &[]).await?;
    assert_eq!((observed.field("outcome"), observed.field("failing_leg")), ("failed", "twilio"), "{:#}", observed.call);
    assert_eq!(observed.marker("call.closed").and_then(|m| m.shown("code")).as_deref(), Some("1006"));
    let session = observed.deepgram.as_ref().map(|d| d.sessions()).unwrap_or_default();
    assert_eq!(session.first().and_then(|s| s.controls.last()).map(String::as_str), Some("CloseStream"), "Deepgram got CloseStream");
    observed.assert_delivered_whole();
    Ok(())
}

#[tokio::test]
async fn a_target_refused_by_the_host_s_policy_is_blamed_on_the_policy() -> anyhow::Result<()> {
    let observed = faulty_call(Deepgram::BehindWildcard(DeepgramSim::new()), 1.0, Ending::Stop, &[]).await?;
    let denied = observed.marker("outbound.denied").ok_or_else(|| anyhow::anyhow!("no outbound.denied"))?;
    assert_eq!(denied.shown("cause").as_deref(), Some("special-address"), "{denied:?}");
    assert!(observed.marker("outbound.failed").is_none(), "a refusal has one marker");
    assert_eq!((observed.field("outcome"), observed.field("failing_leg")), ("failed", "policy"), "{:#}", observed.call);
    assert!(observed.field("cause").contains("egress policy refused"), "{:#}", observed.call);
    assert_eq!(observed.deepgram.as_ref().map(RunningSim::connections), Some(0), "nothing reached the simulator");
    Ok(())
}
