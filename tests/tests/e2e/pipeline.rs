//! The voice pipeline end to end: a simulated Twilio call through the host and the
//! bundled component to the Deepgram simulator over `wss`, with every fault the pipeline
//! must survive. "Delivered" is the audio Deepgram's final results covered, session after
//! session; nothing lost means it equals what the caller sent.

use std::time::Duration;

use switchboard_harness::sim::deepgram::{DeepgramSim, RunningSim};
use switchboard_harness::sim::twilio::{Ending, TwilioCall};
use switchboard_harness::{ComponentSpec, TestCa, TestHost, caller_speech, guests};

use crate::init_tracing;

const KEY: &str = "dg-test-key";

/// The first `seconds` of the bundled speech.
fn speech(seconds: f64) -> Vec<u8> {
    let mut audio = caller_speech();
    audio.truncate((seconds * 8000.0) as usize);
    audio
}

struct Setup {
    host: TestHost,
    deepgram: RunningSim,
    _ca: TestCa,
}

/// The host serving the voice pipeline on `/twilio/media`, pointed at `sim` over wss.
async fn setup(sim: DeepgramSim, configure: impl FnOnce(ComponentSpec) -> ComponentSpec) -> anyhow::Result<Setup> {
    init_tracing();
    let ca = TestCa::new()?;
    let deepgram = sim.tls(ca.server_config()?).expect_token(KEY).start().await?;
    let spec = ComponentSpec::new("voice", guests::VOICE_PIPELINE)
        .allow(&deepgram.origin())
        .trust(&ca)
        .setting("deepgram_url", &deepgram.listen_url())
        .setting("reconnect_base_ms", "100")
        .secret_header("localhost", "Authorization", "Token ${DEEPGRAM_API_KEY}");
    let host = TestHost::builder().env("DEEPGRAM_API_KEY", KEY).route("/twilio/media", configure(spec)).start().await?;
    Ok(Setup { host, deepgram, _ca: ca })
}

impl Setup {
    fn call(&self, audio: Vec<u8>) -> TwilioCall {
        TwilioCall::new(&self.host.url("/twilio/media")).audio(audio)
    }

    async fn summary(&self) -> anyhow::Result<switchboard::Marker> {
        self.host.marker("pipeline.summary", |_| true).await
    }
}

#[tokio::test]
async fn a_call_reaches_deepgram_whole_and_comes_back_as_transcripts() -> anyhow::Result<()> {
    let script = ["Hello, thank you for calling.", "I'd like to check my order.", "It was placed Tuesday.", "Order four two seven nine."];
    let s = setup(DeepgramSim::new().transcripts(&script), |spec| spec).await?;
    let record = s.call(caller_speech()).parameter("FirstName", "Jane").speed(2.0).run().await?;
    assert_eq!(record.close.as_ref().map(|c| c.0), Some(1000), "{record:?}");

    assert_eq!(s.deepgram.delivered_audio(), record.sent_audio, "every byte, once, in order");
    let sessions = s.deepgram.sessions();
    assert_eq!(sessions.len(), 1);
    let session = &sessions[0];
    assert!(session.frames.iter().all(|len| *len > 0 && *len <= 2_000), "frames of 20-250 ms, never empty");
    assert_eq!(session.controls.iter().rev().take(2).collect::<Vec<_>>(), ["CloseStream", "Finalize"]);
    assert!(!session.transcripts.is_empty(), "the simulator found speech");

    let handshake = &s.deepgram.handshakes()[0];
    assert_eq!(handshake.header("authorization"), Some(format!("Token {KEY}").as_str()));
    for (param, value) in
        [("model", "nova-3"), ("encoding", "mulaw"), ("sample_rate", "8000"), ("channels", "1"), ("interim_results", "true")]
    {
        assert_eq!(handshake.param(param), Some(value), "{param}");
    }

    let start = s.host.marker("twilio.start", |_| true).await?;
    assert_eq!(start.shown("call_sid").as_deref(), Some("CA00000000000000000000000000000001"));
    assert_eq!(start.shown("parameter").as_deref(), Some("FirstName=Jane"));
    s.host.marker("twilio.first-media", |_| true).await?;
    s.host.marker("deepgram.open", |_| true).await?;
    s.host.marker("deepgram.first-result", |_| true).await?;
    let utterance = s.host.marker("utterance", |_| true).await?;
    assert_eq!(utterance.shown("call_sid").as_deref(), Some("CA00000000000000000000000000000001"));
    let texts: Vec<String> =
        s.host.timeline().find(|m| m.name == "utterance").iter().filter_map(|m| m.shown("text").as_deref().map(str::to_owned)).collect();
    assert_eq!(texts, script, "every scripted result came back as an utterance, in order");
    let summary = s.summary().await?;
    assert_eq!(summary.shown("lost_bytes").as_deref(), Some("0"));
    assert_eq!(summary.shown("audio_bytes").as_deref(), Some(record.sent_audio.len().to_string().as_str()));
    Ok(())
}

#[tokio::test]
async fn a_1011_mid_call_reconnects_and_replays_without_loss() -> anyhow::Result<()> {
    let s = setup(DeepgramSim::new().close_after_audio(Duration::from_millis(1_500), 1), |spec| spec).await?;
    let record = s.call(speech(4.0)).run().await?;
    assert_eq!(record.close.as_ref().map(|c| c.0), Some(1000));
    let sessions = s.deepgram.sessions();
    assert_eq!(sessions.len(), 2, "one reconnect");
    assert_eq!(sessions[0].closed.as_ref().map(|c| c.0), Some(1011));
    assert_eq!(s.deepgram.delivered_audio(), record.sent_audio, "nothing lost across the reconnect");
    let closed = s.host.marker("deepgram.closed", |m| m.shown("code").as_deref() == Some("1011")).await?;
    assert_eq!(closed.shown("reason").as_deref(), Some("NET-0000"));
    s.host.marker("deepgram.reconnect", |_| true).await?;
    let replay = s.host.marker("deepgram.replay", |_| true).await?;
    assert!(replay.shown("replay_bytes").as_deref().unwrap_or("0").parse::<u64>()? > 0, "{replay:?}");
    assert_eq!(s.summary().await?.shown("lost_bytes").as_deref(), Some("0"));
    Ok(())
}

#[tokio::test]
async fn a_handshake_that_never_answers_times_out_and_retries() -> anyhow::Result<()> {
    let s = setup(DeepgramSim::new().blackhole_first(1), |spec| spec.limit("connect_timeout_ms", 500)).await?;
    let record = s.call(speech(3.0)).run().await?;
    let failed = s.host.marker("deepgram.connect-failed", |_| true).await?;
    assert_eq!(failed.shown("cause").as_deref(), Some("connect-timeout"));
    assert_eq!(s.deepgram.connections(), 2);
    assert_eq!(s.deepgram.delivered_audio(), record.sent_audio, "audio buffered during the timeout arrives");
    assert_eq!(s.summary().await?.shown("lost_bytes").as_deref(), Some("0"));
    Ok(())
}

#[tokio::test]
async fn a_401_is_recorded_and_not_retried() -> anyhow::Result<()> {
    init_tracing();
    let ca = TestCa::new()?;
    let deepgram = DeepgramSim::new().tls(ca.server_config()?).expect_token("the-right-key").start().await?;
    let spec = ComponentSpec::new("voice", guests::VOICE_PIPELINE)
        .allow(&deepgram.origin())
        .trust(&ca)
        .setting("deepgram_url", &deepgram.listen_url())
        .secret_header("localhost", "Authorization", "Token ${DEEPGRAM_API_KEY}");
    let host = TestHost::builder().env("DEEPGRAM_API_KEY", "a-wrong-key").route("/twilio/media", spec).start().await?;
    let record = TwilioCall::new(&host.url("/twilio/media")).audio(speech(2.0)).run().await?;
    assert_eq!(record.close.as_ref().map(|c| c.0), Some(1000), "the call still ends cleanly");
    let rejected = host.marker("deepgram.rejected", |_| true).await?;
    assert_eq!(rejected.shown("status").as_deref(), Some("401"));
    assert_eq!(rejected.shown("dg_error").as_deref(), Some("Invalid credentials."));
    let failed = host.marker("outbound.failed", |_| true).await?;
    assert_eq!(failed.shown("cause").as_deref(), Some("handshake-rejected"));
    assert_eq!(deepgram.handshakes().len(), 1, "no retry storm");
    let summary = host.marker("pipeline.summary", |_| true).await?;
    assert_eq!(summary.shown("lost_bytes").as_deref(), Some(record.sent_audio.len().to_string().as_str()), "the loss is stated exactly");
    Ok(())
}

#[tokio::test]
async fn keepalives_hold_the_stream_open_through_silence() -> anyhow::Result<()> {
    let sim = DeepgramSim::new().idle_timeout(Duration::from_millis(2_500));
    let s = setup(sim, |spec| spec.setting("keepalive_ms", "1000")).await?;
    let record = s.call(speech(2.0)).gap_at(Duration::from_millis(1_000), Duration::from_secs(4)).run().await?;
    let sessions = s.deepgram.sessions();
    assert_eq!(sessions.len(), 1, "no idle close: {:?}", sessions.iter().map(|s| &s.closed).collect::<Vec<_>>());
    assert!(sessions[0].controls.iter().filter(|c| *c == "KeepAlive").count() >= 2, "{:?}", sessions[0].controls);
    assert_eq!(s.deepgram.delivered_audio(), record.sent_audio);
    Ok(())
}

#[tokio::test]
async fn an_idle_close_like_the_real_service_is_recovered() -> anyhow::Result<()> {
    let sim = DeepgramSim::new().idle_timeout(Duration::from_millis(1_000));
    let s = setup(sim, |spec| spec.setting("keepalive_ms", "9000")).await?;
    let record = s.call(speech(2.0)).gap_at(Duration::from_millis(1_000), Duration::from_millis(2_500)).run().await?;
    let closed = s.host.marker("deepgram.closed", |m| m.shown("code").as_deref() == Some("1011")).await?;
    assert_eq!(closed.shown("reason").as_deref(), Some("NET-0001"));
    assert!(s.deepgram.sessions().len() >= 2);
    assert_eq!(s.deepgram.delivered_audio(), record.sent_audio, "nothing lost to the idle close");
    Ok(())
}

#[tokio::test]
async fn a_caller_hanging_up_without_stop_still_gets_the_stream_closed() -> anyhow::Result<()> {
    let s = setup(DeepgramSim::new(), |spec| spec).await?;
    let record = s.call(speech(1.5)).ending(Ending::Vanish).run().await?;
    s.host.marker("twilio.closed", |_| true).await?;
    let summary = s.summary().await?;
    assert_eq!(summary.shown("lost_bytes").as_deref(), Some("0"));
    let sessions = s.deepgram.sessions();
    assert!(sessions[0].controls.contains(&"CloseStream".to_owned()));
    assert_eq!(s.deepgram.delivered_audio(), record.sent_audio);
    Ok(())
}

#[tokio::test]
async fn twenty_concurrent_calls_stay_isolated() -> anyhow::Result<()> {
    let s = setup(DeepgramSim::new(), |spec| spec).await?;
    let speech = caller_speech();
    let mut calls = Vec::new();
    for index in 0..20usize {
        // Each caller says a different 2 s stretch of the speech.
        let start = (index * 4_000) % (speech.len() - 16_000);
        let audio = speech[start..start + 16_000].to_vec();
        let call = s.call(audio).sids(&format!("CA{index:032}"), &format!("MZ{index:032}"));
        calls.push(tokio::spawn(call.run()));
    }
    let mut sent = Vec::new();
    for call in calls {
        let record = call.await??;
        assert_eq!(record.close.as_ref().map(|c| c.0), Some(1000));
        sent.push(record.sent_audio);
    }
    let mut delivered: Vec<Vec<u8>> = s.deepgram.sessions().into_iter().map(|s| s.audio[..s.finalized].to_vec()).collect();
    assert_eq!(delivered.len(), 20);
    sent.sort();
    delivered.sort();
    assert!(sent == delivered, "each call's audio reached its own Deepgram session whole");
    let summaries = s.host.timeline().find(|m| m.name == "pipeline.summary");
    assert_eq!(summaries.len(), 20);
    assert!(summaries.iter().all(|m| m.shown("lost_bytes").as_deref() == Some("0")));
    Ok(())
}

#[tokio::test]
async fn garbage_from_the_caller_is_recorded_and_the_call_goes_on() -> anyhow::Result<()> {
    use switchboard_harness::TestClient;
    let s = setup(DeepgramSim::new(), |spec| spec).await?;
    let mut caller = TestClient::connect(&s.host.url("/twilio/media")).await?;
    caller.send_text("{not json").await?;
    caller.send_text(r#"{"event":"party"}"#).await?;
    caller.send_binary(vec![1, 2, 3]).await?;
    caller.send_text(r#"{"event":"media","media":{"payload":"%%%"}}"#).await?;
    caller.send_text(r#"{"event":"stop"}"#).await?;
    assert_eq!(caller.expect_close().await?.code, 1000);
    for name in ["twilio.malformed", "twilio.unknown-event", "twilio.unexpected-binary", "twilio.bad-payload", "twilio.stop"] {
        s.host.marker(name, |_| true).await?;
    }
    assert!(s.host.timeline().find(|m| m.name == "guest.trap").is_empty());
    Ok(())
}

#[tokio::test]
async fn the_simulator_closes_on_an_empty_frame_like_the_real_service() -> anyhow::Result<()> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let sim = DeepgramSim::new().start().await?;
    let (mut socket, _) = tokio_tungstenite::connect_async(sim.listen_url()).await?;
    socket.send(Message::binary(vec![0xffu8; 160])).await?;
    socket.send(Message::binary(Vec::new())).await?;
    let close = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(message)) = socket.next().await {
            if let Message::Close(frame) = message {
                return frame.map(|f| u16::from(f.code));
            }
        }
        None
    })
    .await?;
    assert_eq!(close, Some(1011));
    Ok(())
}

#[tokio::test]
async fn a_shutdown_drains_then_closes_live_calls_and_deepgram_gets_close_stream() -> anyhow::Result<()> {
    init_tracing();
    let ca = TestCa::new()?;
    let deepgram = DeepgramSim::new().tls(ca.server_config()?).expect_token(KEY).start().await?;
    let spec = ComponentSpec::new("voice", guests::VOICE_PIPELINE)
        .allow(&deepgram.origin())
        .trust(&ca)
        .setting("deepgram_url", &deepgram.listen_url())
        .secret_header("localhost", "Authorization", "Token ${DEEPGRAM_API_KEY}");
    let mut host = TestHost::builder()
        .env("DEEPGRAM_API_KEY", KEY)
        .drain_timeout(Duration::from_millis(500))
        .route("/twilio/media", spec)
        .start()
        .await?;
    let url = host.url("/twilio/media");
    // A 13 s call, cut short by the shutdown.
    let call = tokio::spawn(TwilioCall::new(&url).audio(caller_speech()).run());
    deepgram.wait_until(Duration::from_secs(20), "audio flowing", |d| d.sessions().first().is_some_and(|s| s.audio.len() > 8_000)).await?;
    host.shut_down().await?;

    assert!(TwilioCall::new(&url).audio(speech(0.2)).run().await.is_err(), "new calls are refused (503)");
    host.marker("call.draining", |_| true).await?;
    let closed = host.marker("call.closed", |_| true).await?;
    assert_eq!(closed.shown("code").as_deref(), Some("1001"), "{closed:?}");
    let _ = call.await?; // the caller saw its socket closed mid-stream
    let session = &deepgram.sessions()[0];
    assert_eq!(session.controls.iter().rev().take(2).collect::<Vec<_>>(), ["CloseStream", "Finalize"], "Deepgram got CloseStream");
    assert_eq!(session.finalized, session.audio.len(), "everything Deepgram got was finalized");
    let summary = host.marker("pipeline.summary", |_| true).await?;
    assert_eq!(summary.shown("lost_bytes").as_deref(), Some("0"), "{summary:?}");
    Ok(())
}
