//! `switchboard demo`: a whole call, offline, in one command.
//!
//! It starts a Deepgram-protocol simulator on loopback over `wss` (with a CA made on the
//! spot), a host serving the bundled voice-pipeline component, and a simulated Twilio call
//! playing the bundled speech. The call's timeline prints as it happens, then a summary.
//!
//! The simulator does **no speech recognition**: it finds speech by its energy and reports
//! each stretch as `(speech 1.4 s)`. Everything else (the Twilio messages, the Deepgram
//! protocol, TLS, the injected `Authorization` header, the sandbox) is the real thing.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use switchboard_sim::deepgram::DeepgramSim;
use switchboard_sim::tls::TestCa;
use switchboard_sim::twilio::TwilioCall;
use tokio::sync::broadcast::error::RecvError;

use switchboard::config::{FileComponent, FileConfig, FileOperator, FileRoute, FileSecretHeader};
use switchboard::observe::timeline::{Value, truncate_utf8};
use switchboard::{Config, Listeners, Marker, MarkerSource, Switchboard};
use switchboard_sim::CALLER_SPEECH;

/// How to run the demo.
#[derive(Debug, Clone)]
struct DemoOptions {
    /// Playback speed of the caller (1.0 = real time).
    speed: f64,
    /// Make the simulator drop the first Deepgram session (1011) after this much audio,
    /// to show a reconnect with replay.
    drop_deepgram_after: Option<Duration>,
}

/// What the demo measured.
#[derive(Debug, Clone, Default)]
struct DemoReport {
    /// Audio the caller sent, bytes.
    caller_bytes: usize,
    /// Audio Deepgram's final results covered, bytes (equal to `caller_bytes` when
    /// nothing was lost).
    delivered_bytes: usize,
    /// Whether the delivered audio is exactly the caller's.
    delivered_exactly: bool,
    /// Deepgram sessions (more than one after a reconnect).
    sessions: usize,
    /// Handshake time of the first outbound connection, ms.
    handshake_ms: Option<f64>,
    /// Lines of the transcript.
    transcript_lines: usize,
    /// How the call store classified the call.
    outcome: String,
    /// The inbound close code the caller saw.
    close_code: Option<u16>,
}

/// `switchboard demo`: runs the demo, printing as it goes; fails unless the call
/// completed cleanly with every byte delivered.
pub(crate) async fn run(speed: f64, drop_deepgram_after: Option<f64>) -> anyhow::Result<()> {
    if !(0.1..=100.0).contains(&speed) {
        anyhow::bail!("--speed must be between 0.1 and 100");
    }
    let options = DemoOptions { speed, drop_deepgram_after: drop_deepgram_after.map(Duration::from_secs_f64) };
    #[allow(clippy::print_stdout, reason = "the demo's output")]
    let report = call(options, |line| println!("{line}")).await?;
    if !report.delivered_exactly || report.close_code != Some(1000) {
        anyhow::bail!("the demo call did not complete cleanly");
    }
    Ok(())
}

/// Runs the demo, writing the timeline and summary to `out` as they happen.
async fn call(options: DemoOptions, mut out: impl FnMut(&str) + Send) -> anyhow::Result<DemoReport> {
    let ca = TestCa::new().context("making a throw-away CA")?;
    let mut sim = DeepgramSim::new().tls(ca.server_config()?).expect_token("demo-key");
    if let Some(after) = options.drop_deepgram_after {
        sim = sim.close_after_audio(after, 1);
    }
    let deepgram = sim.start().await.context("starting the Deepgram simulator")?;
    let config = demo_config(&deepgram.origin(), &deepgram.listen_url(), ca.pem_path())?;
    let host = tokio::task::spawn_blocking(move || Switchboard::new(config)).await??;
    let listeners = Listeners::ephemeral().await?;
    let url = format!("ws://{}/twilio/media", listeners.public.local_addr()?);
    let timeline = host.timeline();
    let mut live = timeline.subscribe();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(host.clone().serve(listeners, async move {
        let _ = stopped.await;
    }));

    out(&format!(
        "Switchboard demo: a simulated Twilio call -> host ({url}) -> voice-pipeline component -> Deepgram simulator ({}, wss)",
        deepgram.origin()
    ));
    out("The simulator does no speech recognition: it reports stretches of speech found by energy.\n");

    let call = TwilioCall::new(&url).audio(CALLER_SPEECH.to_vec()).speed(options.speed).parameter("demo", "true");
    let mut call = tokio::spawn(call.run());
    let mut report = DemoReport::default();
    let record = loop {
        tokio::select! {
            finished = &mut call => break finished.context("the caller task failed")??,
            marker = live.recv() => match marker {
                Ok(marker) => tally(&marker, &mut report, &mut out),
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => {}
            },
        }
    };
    // The pipeline finishes after the caller: drain until the call has closed (bounded).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut closed = false;
    while !closed {
        match tokio::time::timeout_at(deadline, live.recv()).await {
            Ok(Ok(marker)) => {
                closed = marker.name == "call.closed";
                tally(&marker, &mut report, &mut out);
            }
            Ok(Err(RecvError::Lagged(_))) => {}
            _ => break,
        }
    }
    let _ = stop.send(());
    let delivered = deepgram.delivered_audio();
    report.caller_bytes = record.sent_audio.len();
    report.delivered_bytes = delivered.len();
    report.delivered_exactly = delivered == record.sent_audio;
    report.sessions = deepgram.sessions().len();
    report.close_code = record.close.as_ref().map(|c| c.0);
    report.outcome = stored_outcome(&host);
    out(&summary(&report));
    Ok(report)
}

/// The call store's verdict on the demo's call, in words.
pub(crate) fn stored_outcome(host: &Switchboard) -> String {
    if !host.calls().flush(Duration::from_secs(5)) {
        return "n/a (the call store did not answer)".to_owned();
    }
    match host.calls().list(&Default::default()).ok().and_then(|calls| calls.into_iter().next()) {
        Some(call) => match (call.failing_leg, call.cause) {
            (Some(leg), Some(cause)) => format!("{} on the {leg} leg: {cause}", call.outcome),
            _ => call.outcome,
        },
        None => "n/a".to_owned(),
    }
}

fn demo_config(origin: &str, listen_url: &str, ca: &Path) -> anyhow::Result<Config> {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let pipeline = FileComponent {
        builtin: Some("voice-pipeline".to_owned()),
        allow_outbound: vec![origin.to_owned()],
        extra_ca_certs: vec![ca.to_owned()],
        settings: [("deepgram_url", listen_url), ("reconnect_base_ms", "200")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        secret_headers: vec![FileSecretHeader {
            host: "localhost".to_owned(),
            name: "Authorization".to_owned(),
            value: "Token ${DEMO_KEY}".to_owned(),
            optional: false,
        }],
        ..FileComponent::default()
    };
    let file = FileConfig {
        listen: Some(loopback),
        max_concurrent_calls: Some(8),
        operator: Some(FileOperator { listen: Some(loopback), ..FileOperator::default() }),
        routes: vec![FileRoute { path: "/twilio/media".to_owned(), component: "voice-pipeline".to_owned(), ..FileRoute::default() }],
        components: [("voice-pipeline".to_owned(), pipeline)].into_iter().collect(),
        ..FileConfig::default()
    };
    let lookup = |name: &str| (name == "DEMO_KEY").then(|| "demo-key".to_owned());
    Ok(Config::from_file(file, "demo configuration", Path::new("."), &lookup)?)
}

/// Counts what the summary needs, and prints the marker.
fn tally(marker: &Marker, report: &mut DemoReport, out: &mut impl FnMut(&str)) {
    if marker.source == MarkerSource::Host && marker.name == "outbound.open" && report.handshake_ms.is_none() {
        report.handshake_ms = marker.number("handshake_ms");
    }
    if marker.source == MarkerSource::Guest && marker.name == "transcript.entry" {
        report.transcript_lines += 1;
    }
    note(marker, out);
}

/// One line per marker: when, who, which lane, what, and its first attributes.
pub(crate) fn note(marker: &Marker, out: &mut impl FnMut(&str)) {
    let source = match marker.source {
        MarkerSource::Host => "host ",
        MarkerSource::Guest => "guest",
    };
    let mut line = format!("{:>8.3}s  {source}  {:<9} {:<24}", marker.offset.as_secs_f64(), marker.leg, marker.name);
    for (key, value) in marker.attributes.iter().take(MAX_SHOWN_ATTRIBUTES) {
        let mut value = match value {
            Value::Number(n) => format!("{n:.3}"),
            other => other.to_string(),
        };
        truncate_utf8(&mut value, MAX_SHOWN_VALUE);
        let _ = write!(line, " {key}={value}");
    }
    out(line.trim_end());
}

/// Attributes shown per marker line.
const MAX_SHOWN_ATTRIBUTES: usize = 4;
/// Characters shown per attribute value.
const MAX_SHOWN_VALUE: usize = 48;

fn summary(report: &DemoReport) -> String {
    let ms = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v:.1} ms"));
    format!(
        "\nSummary\n  caller audio sent       {} bytes\n  audio Deepgram covered  {} bytes ({})\n  Deepgram sessions       {}\n  wss handshake           {}\n  transcript lines        {}\n  call store says         {}\n  call closed with        {}",
        report.caller_bytes,
        report.delivered_bytes,
        if report.delivered_exactly { "exactly the caller's audio" } else { "DIFFERS from the caller's audio" },
        report.sessions,
        ms(report.handshake_ms),
        report.transcript_lines,
        report.outcome,
        report.close_code.map_or("n/a".to_owned(), |c| c.to_string()),
    )
}
