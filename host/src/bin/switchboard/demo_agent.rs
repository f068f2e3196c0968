//! `switchboard demo --agent`: a whole conversation with the bundled voice agent, offline.
//!
//! It starts Deepgram STT and TTS simulators over `wss`, an OpenAI-compatible LLM
//! simulator over `https` (with a CA made on the spot), a host serving `voice-agent`, and
//! a simulated Twilio caller who says four things, one of them over the agent's answer,
//! and ends with "goodbye". The agent's markers print as they happen, then each turn with
//! its latencies. Real time: it takes about 20 seconds.
//!
//! The simulators do **no recognition and no synthesis**: the caller's "speech" is tone,
//! each stretch of it becomes the next scripted transcript, and the agent's speech is
//! tone as long as its text. Everything else (the protocols, TLS, the injected keys, the
//! sandbox, the pacing and the marks) is the real thing.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use switchboard_sim::deepgram::DeepgramSim;
use switchboard_sim::llm::{Answer, LlmSim};
use switchboard_sim::mulaw;
use switchboard_sim::speak::SpeakSim;
use switchboard_sim::tls::TestCa;
use switchboard_sim::twilio::TwilioCall;
use tokio::sync::broadcast::error::RecvError;

use switchboard::config::{FileComponent, FileConfig, FileOperator, FileRoute, FileSecretHeader};
use switchboard::{Config, Listeners, Marker, Switchboard};

use crate::demo::{note, stored_outcome};

/// What the caller says, as the STT simulator will transcribe each stretch of speech.
const CALLER: &[&str] = &["what time do you open", "do you deliver", "sorry, one more thing", "that's all, goodbye"];
/// The caller's audio: (speech, silence after), ms. The third stretch cuts into the
/// agent's long second answer.
const TIMING: &[(u32, u32)] = &[(0, 4_000), (1_200, 4_500), (1_000, 2_800), (800, 3_200), (1_000, 5_000)];
/// The LLM's answers, in order (the goodbye gets the farewell, not the LLM).
const ANSWERS: &[&str] = &[
    "We open at seven every morning, except on Mondays.",
    "Yes, we deliver within five miles. Orders over twenty dollars are delivered free, and we are usually there within the hour, rain or shine, with everything still warm.",
    "Of course, go ahead.",
];

/// `switchboard demo --agent`: runs the conversation, printing as it goes; fails unless
/// the agent answered, was interrupted, and hung up.
pub(crate) async fn run() -> anyhow::Result<()> {
    #[allow(clippy::print_stdout, reason = "the demo's output")]
    let report = conversation(|line| println!("{line}")).await?;
    if report.replies < 3 || report.barge_ins != 1 || report.close_code != Some(1000) || !report.agent_hung_up {
        anyhow::bail!("the demo conversation did not go as scripted: {report:?}");
    }
    Ok(())
}

/// What the demo saw.
#[derive(Debug, Default)]
struct Report {
    replies: usize,
    barge_ins: usize,
    agent_hung_up: bool,
    close_code: Option<u16>,
    turns: Vec<Marker>,
}

async fn conversation(mut out: impl FnMut(&str) + Send) -> anyhow::Result<Report> {
    let ca = TestCa::new().context("making a throw-away CA")?;
    let stt = DeepgramSim::new().tls(ca.server_config()?).expect_token("demo-key").transcripts(CALLER).start().await?;
    let speak = SpeakSim::new().tls(ca.server_config()?).expect_token("demo-key").start().await?;
    let mut llm = LlmSim::new().tls(ca.server_config()?).expect_key("demo-llm-key");
    for answer in ANSWERS {
        llm = llm.answer(Answer::Text((*answer).to_owned()));
    }
    let llm = llm.start().await?;
    let config = agent_config(
        &[&stt.origin(), &speak.origin(), &llm.ip_origin()],
        &stt.listen_url(),
        &speak.speak_url(),
        &llm.ip_url(),
        ca.pem_path(),
    )?;
    let host = tokio::task::spawn_blocking(move || Switchboard::new(config)).await??;
    let listeners = Listeners::ephemeral().await?;
    let url = format!("ws://{}/twilio/media", listeners.public.local_addr()?);
    let mut live = host.timeline().subscribe();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(host.clone().serve(listeners, async move {
        let _ = stopped.await;
    }));

    out(&format!("Switchboard demo --agent: a simulated Twilio caller -> host ({url}) -> voice-agent component"));
    out(&format!("  listening: Deepgram STT simulator {} (wss)", stt.origin()));
    out(&format!("  thinking:  OpenAI-compatible LLM simulator {} (https)", llm.ip_origin()));
    out(&format!("  speaking:  Deepgram TTS simulator {} (wss)", speak.origin()));
    out("The simulators do no recognition and no synthesis: speech is tone, transcripts are scripted. About 20 s, real time.\n");

    let mut audio = Vec::new();
    for (speech, silence) in TIMING {
        audio.extend(mulaw::tone(*speech, 440.0));
        audio.extend(mulaw::tone(*silence, 0.0));
    }
    let mut call = tokio::spawn(TwilioCall::new(&url).audio(audio).close_wait(Duration::from_secs(15)).run());
    let mut report = Report::default();
    let record = loop {
        tokio::select! {
            finished = &mut call => break finished.context("the caller task failed")??,
            marker = live.recv() => match marker {
                Ok(marker) => shown(&marker, &mut report, &mut out),
                Err(RecvError::Lagged(_) | RecvError::Closed) => {}
            },
        }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut closed = false;
    while !closed {
        match tokio::time::timeout_at(deadline, live.recv()).await {
            Ok(Ok(marker)) => {
                closed = marker.name == "call.closed";
                shown(&marker, &mut report, &mut out);
            }
            Ok(Err(RecvError::Lagged(_))) => {}
            _ => break,
        }
    }
    let _ = stop.send(());
    report.close_code = record.close.as_ref().map(|c| c.0);
    out(&turns(&report.turns));
    let heard = record.marks.iter().filter(|mark| mark.echoed.is_some() && !mark.cleared).count();
    out(&format!(
        "\n  Twilio played {:.1} s of the agent's speech; {} of {} marks echoed after playback, {} returned by a clear",
        record.heard_audio().len() as f64 / 8000.0,
        heard,
        record.marks.len(),
        record.marks.iter().filter(|mark| mark.cleared).count()
    ));
    out(&format!("  call store says         {}", stored_outcome(&host)));
    out(&format!("  call closed with        {}", report.close_code.map_or("n/a".to_owned(), |c| c.to_string())));
    Ok(report)
}

/// Prints the markers of the conversation (not the per-frame ones).
fn shown(marker: &Marker, report: &mut Report, out: &mut impl FnMut(&str)) {
    match marker.name.as_str() {
        "agent.turn-summary" => {
            if marker.text("kind") == Some("reply") {
                report.replies += 1;
            }
            report.turns.push(marker.clone());
        }
        "agent.barge-in" => report.barge_ins += 1,
        "agent.hangup" => report.agent_hung_up = true,
        _ => {}
    }
    // The agent's own markers and the host's call markers; listening's are left out.
    let wanted = ["agent.", "llm.", "speak.open", "speak.gave-up", "call."];
    if wanted.iter().any(|prefix| marker.name.starts_with(prefix)) && marker.name != "agent.heard" {
        note(marker, out);
    }
}

/// The turns as a table of latencies (ms from the caller's end of speech).
fn turns(turns: &[Marker]) -> String {
    let mut table = String::from(
        "\nTurns (ms from the caller's end of speech; the greeting from the call's start)\n  turn  kind      final  1st token  1st audio  1st media  1st echo  heard\n",
    );
    for turn in turns {
        let ms = |key: &str| match turn.number(key) {
            Some(ms) if ms >= 0.0 => format!("{ms:.0}"),
            _ => "-".to_owned(),
        };
        let mut heard = turn.text("heard").unwrap_or_default().to_owned();
        if turn.shown("interrupted").as_deref() == Some("true") {
            heard = format!("(interrupted) {heard}");
        }
        switchboard::observe::timeline::truncate_utf8(&mut heard, 60);
        table.push_str(&format!(
            "  {:>4}  {:<8}  {:>5}  {:>9}  {:>9}  {:>9}  {:>8}  {heard}\n",
            turn.number("turn").map_or("?".to_owned(), |n| format!("{n:.0}")),
            turn.text("kind").unwrap_or_default(),
            ms("to_final_ms"),
            ms("to_first_token_ms"),
            ms("to_first_audio_ms"),
            ms("to_first_media_ms"),
            ms("to_first_echo_ms"),
        ));
    }
    table
}

fn agent_config(origins: &[&str], listen_url: &str, speak_url: &str, llm_url: &str, ca: &Path) -> anyhow::Result<Config> {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let secret = |host: &str, value: &str| FileSecretHeader {
        host: host.to_owned(),
        name: "Authorization".to_owned(),
        value: value.to_owned(),
        optional: false,
    };
    let agent = FileComponent {
        builtin: Some("voice-agent".to_owned()),
        allow_outbound: origins.iter().map(|origin| (*origin).to_owned()).collect(),
        extra_ca_certs: vec![ca.to_owned()],
        settings: [
            ("deepgram_url", listen_url),
            ("tts_url", speak_url),
            ("llm_url", llm_url),
            ("greeting", "Thanks for calling Bella's Bakery. How can I help?"),
            ("hangup_phrases", "goodbye"),
            ("farewell", "Thanks for calling, goodbye!"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        // Both Deepgram simulators are `localhost`; the LLM is reached by address, so
        // each gets only its own key.
        secret_headers: vec![secret("localhost", "Token ${DEMO_KEY}"), secret("127.0.0.1", "Bearer ${DEMO_LLM_KEY}")],
        ..FileComponent::default()
    };
    let file = FileConfig {
        listen: Some(loopback),
        max_concurrent_calls: Some(8),
        operator: Some(FileOperator { listen: Some(loopback), ..FileOperator::default() }),
        routes: vec![FileRoute { path: "/twilio/media".to_owned(), component: "voice-agent".to_owned(), ..FileRoute::default() }],
        components: [("voice-agent".to_owned(), agent)].into_iter().collect(),
        ..FileConfig::default()
    };
    let lookup = |name: &str| match name {
        "DEMO_KEY" => Some("demo-key".to_owned()),
        "DEMO_LLM_KEY" => Some("demo-llm-key".to_owned()),
        _ => None,
    };
    Ok(Config::from_file(file, "demo configuration", Path::new("."), &lookup)?)
}
