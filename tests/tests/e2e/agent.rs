//! The voice agent end to end: a simulated Twilio call through the host and the bundled
//! `voice-agent` component, with Deepgram STT and TTS simulators over `wss` and an
//! OpenAI-compatible LLM simulator over `https`, each with its key injected by the host.
//! The caller's "speech" is tone, silence between; the STT simulator turns each stretch of
//! tone into the next scripted transcript.

use std::time::Duration;

use switchboard_harness::sim::deepgram::{DeepgramSim, RunningSim};
use switchboard_harness::sim::llm::{Answer, LlmSim, RunningLlm};
use switchboard_harness::sim::mulaw;
use switchboard_harness::sim::speak::{RunningSpeak, SpeakSim};
use switchboard_harness::sim::twilio::{CallRecord, TwilioCall};
use switchboard_harness::{ComponentSpec, FakeHttpServer, Reply, TestCa, TestHost, guests};

use crate::init_tracing;

const DEEPGRAM_KEY: &str = "dg-test-key";
const LLM_KEY: &str = "sk-test-key";

/// Caller audio: for each `(speech_ms, silence_ms)`, tone then silence.
fn conversation(parts: &[(u32, u32)]) -> Vec<u8> {
    let mut audio = Vec::new();
    for (speech, silence) in parts {
        audio.extend(mulaw::tone(*speech, 440.0));
        audio.extend(mulaw::tone(*silence, 0.0));
    }
    audio
}

struct Agent {
    host: TestHost,
    stt: RunningSim,
    speak: RunningSpeak,
    llm: RunningLlm,
    _ca: TestCa,
}

struct Sims {
    stt: DeepgramSim,
    speak: SpeakSim,
    llm: LlmSim,
    /// More allowlist rules (another server the agent reaches).
    allow: Vec<String>,
    /// The CA to serve with, when another server must share it.
    ca: Option<TestCa>,
}

impl Sims {
    fn new(transcripts: &[&str]) -> Sims {
        Sims { stt: DeepgramSim::new().transcripts(transcripts), speak: SpeakSim::new(), llm: LlmSim::new(), allow: Vec::new(), ca: None }
    }
}

/// The host serving the voice agent on `/twilio/media`, pointed at the simulators.
async fn agent(sims: Sims, settings: &[(&str, &str)]) -> anyhow::Result<Agent> {
    agent_listening_on(sims, settings, "/v1/listen").await
}

/// [`agent`], with the STT simulator's endpoint at `listen_path` (`/v2/listen` is Flux).
async fn agent_listening_on(mut sims: Sims, settings: &[(&str, &str)], listen_path: &str) -> anyhow::Result<Agent> {
    init_tracing();
    let ca = match sims.ca.take() {
        Some(ca) => ca,
        None => TestCa::new()?,
    };
    let stt = sims.stt.tls(ca.server_config()?).expect_token(DEEPGRAM_KEY).start().await?;
    let speak = sims.speak.tls(ca.server_config()?).expect_token(DEEPGRAM_KEY).start().await?;
    let llm = sims.llm.tls(ca.server_config()?).expect_key(LLM_KEY).start().await?;
    let mut spec = ComponentSpec::new("agent", guests::VOICE_AGENT)
        .allow(&stt.origin())
        .allow(&speak.origin())
        .allow(&llm.ip_origin())
        .trust(&ca)
        .setting("deepgram_url", &format!("{}{listen_path}", stt.origin()))
        .setting("tts_url", &speak.speak_url())
        .setting("llm_url", &llm.ip_url())
        .setting("reconnect_base_ms", "100")
        // Both Deepgram simulators are `localhost`; the LLM is reached by address, so each
        // gets only its own key.
        .secret_header("localhost", "Authorization", "Token ${DEEPGRAM_API_KEY}")
        .secret_header("127.0.0.1", "Authorization", "Bearer ${LLM_API_KEY}");
    for (key, value) in settings {
        spec = spec.setting(key, value);
    }
    for rule in &sims.allow {
        spec = spec.allow(rule);
    }
    let host =
        TestHost::builder().env("DEEPGRAM_API_KEY", DEEPGRAM_KEY).env("LLM_API_KEY", LLM_KEY).route("/twilio/media", spec).start().await?;
    Ok(Agent { host, stt, speak, llm, _ca: ca })
}

impl Agent {
    fn call(&self, audio: Vec<u8>) -> TwilioCall {
        TwilioCall::new(&self.host.url("/twilio/media")).audio(audio).close_wait(Duration::from_secs(20))
    }

    /// The stored summary of the host's only call, once it has closed.
    async fn stored_call(&self) -> anyhow::Result<serde_json::Value> {
        self.host.marker("call.closed", |_| true).await?;
        assert!(self.host.host().calls().flush(Duration::from_secs(10)), "the call store flushed");
        let calls: serde_json::Value = self.host.operator(None)?.get_json("/api/calls").await?;
        Ok(calls[0].clone())
    }

    fn roles(&self, request: usize) -> Vec<(String, String)> {
        self.llm.requests()[request].messages.clone()
    }
}

/// Every mark was echoed because its audio played, not because of a `clear`.
fn all_heard(record: &CallRecord) -> bool {
    record.marks.iter().all(|mark| mark.echoed.is_some() && !mark.cleared)
}

#[tokio::test]
async fn a_three_turn_conversation_is_heard_as_paced_audio_with_every_mark_echoed() -> anyhow::Result<()> {
    let mut sims = Sims::new(&["what time do you open", "do you have parking", "thank you"]);
    for answer in ["We open at nine.", "Yes, there is parking behind the shop.", "You're welcome."] {
        sims.llm = sims.llm.answer(Answer::Text(answer.to_owned()));
    }
    let a = agent(sims, &[("greeting", "Hello, how can I help?"), ("lead_ms", "100"), ("hangup_phrases", "")]).await?;
    let record = a.call(conversation(&[(0, 3_000), (1_000, 4_000), (1_000, 4_500), (800, 4_000)])).run().await?;
    assert_eq!(record.close.as_ref().map(|c| c.0), Some(1000), "{:?}", record.close);

    // The LLM heard the whole conversation, with the agent's lines as the caller heard them.
    let requests = a.llm.requests();
    assert_eq!(requests.len(), 3);
    assert!(requests.iter().all(|r| r.authorization.as_deref() == Some("Bearer sk-test-key")), "the key reached the LLM");
    assert_eq!(requests[0].body["stream"], true);
    let lines = a.roles(2);
    let last: Vec<(&str, &str)> = lines.iter().map(|(r, c)| (r.as_str(), c.as_str())).collect();
    assert_eq!(
        last[1..],
        [
            ("assistant", "Hello, how can I help?"),
            ("user", "what time do you open"),
            ("assistant", "We open at nine."),
            ("user", "do you have parking"),
            ("assistant", "Yes, there is parking behind the shop."),
            ("user", "thank you"),
        ]
    );
    assert_eq!(last[0].0, "system");

    // Speech reached Twilio as 20 ms frames, paced: never more than the lead ahead of playback.
    assert!(!record.outbound.is_empty());
    assert!(record.outbound.iter().all(|piece| piece.audio.len() <= 160), "frames of at most 20 ms");
    let ahead = record.outbound.iter().map(|piece| piece.plays_from.saturating_sub(piece.arrived)).max().unwrap_or_default();
    assert!(ahead <= Duration::from_millis(160), "audio arrived {ahead:?} before it would play: not paced");
    assert!(record.clears.is_empty(), "nobody interrupted");
    assert!(all_heard(&record), "every mark echoed after its audio: {:?}", record.marks);
    assert!(record.marks.len() >= 4, "a mark after each segment: {:?}", record.marks);
    // What Twilio played is what Deepgram synthesized, byte for byte, nothing else.
    let synthesized: Vec<u8> = a.speak.sessions().iter().flat_map(|s| s.flushes.iter().flat_map(|f| f.audio.clone())).collect();
    assert_eq!(record.heard_audio(), synthesized);
    let handshake = &a.speak.handshakes()[0];
    assert_eq!((handshake.param("encoding"), handshake.param("sample_rate")), (Some("mulaw"), Some("8000")));

    // Every turn is timed, from the caller's end of speech.
    let summaries = a.host.timeline().find(|m| m.name == "agent.turn-summary");
    assert_eq!(summaries.len(), 4, "the greeting and three replies");
    for summary in &summaries[1..] {
        for key in ["to_final_ms", "to_first_token_ms", "to_first_audio_ms", "to_first_media_ms", "to_first_echo_ms"] {
            let ms: i64 = summary.shown(key).and_then(|v| v.parse().ok()).unwrap_or(-1);
            assert!(ms >= 0, "{key} missing in {summary:?}");
        }
    }
    let call = a.stored_call().await?;
    assert_eq!(call["outcome"], "ok", "{call:#}");
    // The call store keeps the turns' timings and both sides of the transcript (what
    // `switchboard calls show` prints).
    let shown: serde_json::Value =
        a.host.operator(None)?.get_json(&format!("/api/calls/{}", call["call_id"].as_str().unwrap_or_default())).await?;
    let stored_turns = shown["timeline"].as_array().map_or(0, |t| t.iter().filter(|m| m["name"] == "agent.turn-summary").count());
    assert_eq!(stored_turns, 4, "{shown:#}");
    let transcript: serde_json::Value =
        a.host.operator(None)?.get_json(&format!("/api/calls/{}/transcript", call["call_id"].as_str().unwrap_or_default())).await?;
    let speakers: Vec<&str> =
        transcript.as_array().map(|lines| lines.iter().filter_map(|l| l["speaker"].as_str()).collect()).unwrap_or_default();
    assert_eq!(speakers, ["agent", "caller", "agent", "caller", "agent", "caller", "agent"], "{transcript:#}");
    Ok(())
}

#[tokio::test]
async fn barge_in_clears_twilio_cancels_the_answer_and_the_history_keeps_only_what_was_heard() -> anyhow::Result<()> {
    let mut sims = Sims::new(&["tell me about your offers", "stop"]);
    // A long answer, streamed slowly: still streaming when the caller cuts in.
    let answer =
        "We have three offers. The first one is a discount on all shoes for the whole of December, and the second is free delivery.";
    sims.llm =
        sims.llm.answer(Answer::Text(answer.into())).answer(Answer::Stall).delays(Duration::from_millis(150), Duration::from_millis(300));
    let a = agent(sims, &[("greeting", "")]).await?;
    let record = a.call(conversation(&[(1_000, 5_000), (1_000, 3_000)])).run().await?;

    assert_eq!(record.clears.len(), 1, "Twilio got one clear: {:?}", record.clears);
    let cleared_at = record.clears[0];
    assert_eq!(record.audio_after(cleared_at), 0, "no audio after the clear");
    let heard: Vec<&str> = record.marks.iter().filter(|m| m.echoed.is_some() && !m.cleared).map(|m| m.name.as_str()).collect();
    assert_eq!(heard, ["g0-t0-s0"], "the first sentence played before the caller spoke: {:?}", record.marks);
    let barge_in = a.host.marker("agent.barge-in", |_| true).await?;
    assert_eq!(barge_in.shown("trigger").as_deref(), Some("speech-started"), "cut at SpeechStarted, before the final transcript");
    // The speak socket cleared, the streaming answer was dropped, and the next request
    // holds the answer as far as the caller heard it.
    a.speak.wait_until(Duration::from_secs(10), "the Clear", |speak| speak.sessions()[0].clears == 1).await?;
    a.llm.wait_until(Duration::from_secs(10), "the cancel", |llm| llm.requests()[0].cancelled).await?;
    a.llm.wait_until(Duration::from_secs(10), "the second request", |llm| llm.requests().len() == 2).await?;
    let lines = a.roles(1);
    let tail: Vec<(&str, &str)> = lines[1..].iter().map(|(r, c)| (r.as_str(), c.as_str())).collect();
    assert_eq!(tail, [("user", "tell me about your offers"), ("assistant", "We have three offers."), ("user", "stop")]);
    Ok(())
}

#[tokio::test]
async fn an_llm_error_is_spoken_as_the_fallback_and_stored_on_the_llm_leg() -> anyhow::Result<()> {
    let mut sims = Sims::new(&["hello there"]);
    sims.llm = sims.llm.answer(Answer::Status(429, "Rate limit reached".into()));
    let a = agent(sims, &[("greeting", ""), ("fallback_text", "Sorry, could you say that again?")]).await?;
    let record = a.call(conversation(&[(1_000, 4_000)])).run().await?;
    assert_eq!(record.close.as_ref().map(|c| c.0), Some(1000));
    let spoken: Vec<String> = a.speak.sessions().iter().flat_map(|s| s.speaks.clone()).collect();
    assert_eq!(spoken, ["Sorry, could you say that again?"]);
    assert!(all_heard(&record) && !record.marks.is_empty());
    let failed = a.host.marker("llm.failed", |_| true).await?;
    assert_eq!(failed.shown("cause").as_deref(), Some("rate-limited"));
    let call = a.stored_call().await?;
    assert_eq!((call["outcome"].as_str(), call["failing_leg"].as_str()), (Some("degraded"), Some("llm")), "{call:#}");
    assert!(call["cause"].as_str().unwrap_or_default().contains("429"), "{call:#}");
    Ok(())
}

#[tokio::test]
async fn a_stalled_llm_hits_its_deadline_and_the_fallback_is_spoken() -> anyhow::Result<()> {
    let mut sims = Sims::new(&["hello there"]);
    sims.llm = sims.llm.answer(Answer::StallAfter("Let me see what".into(), 2));
    let a = agent(sims, &[("greeting", ""), ("llm_between_tokens_timeout_ms", "500")]).await?;
    let record = a.call(conversation(&[(1_000, 4_000)])).run().await?;
    assert_eq!(record.close.as_ref().map(|c| c.0), Some(1000));
    let failed = a.host.marker("llm.failed", |_| true).await?;
    assert!(failed.shown("detail").unwrap_or_default().contains("between-bytes-timeout"), "{failed:?}");
    let spoken: Vec<String> = a.speak.sessions().iter().flat_map(|s| s.speaks.clone()).collect();
    assert_eq!(spoken, ["Let me"], "what came is spoken");
    Ok(())
}

#[tokio::test]
async fn a_dropped_speak_socket_is_reconnected_and_the_reply_still_heard() -> anyhow::Result<()> {
    let mut sims = Sims::new(&[]);
    sims.speak = sims.speak.close_after_flushes(1, 1);
    let a = agent(sims, &[("greeting", "First we say hello. Then we say the rest of it.")]).await?;
    let record = a.call(conversation(&[(0, 6_000)])).run().await?;
    assert_eq!(record.close.as_ref().map(|c| c.0), Some(1000));
    let sessions = a.speak.sessions();
    assert_eq!(sessions.len(), 2, "one reconnect");
    assert_eq!(sessions[0].closed.as_ref().map(|c| c.0), Some(1011));
    assert_eq!(sessions[1].speaks.last().map(String::as_str), Some("Then we say the rest of it."));
    let summary = a.host.marker("agent.turn-summary", |_| true).await?;
    assert_eq!(summary.shown("heard").as_deref(), Some("First we say hello. Then we say the rest of it."));
    let call = a.stored_call().await?;
    assert_eq!((call["outcome"].as_str(), call["failing_leg"].as_str()), (Some("degraded"), Some("deepgram-speak")), "{call:#}");
    Ok(())
}

#[tokio::test]
async fn a_rejected_speak_socket_ends_the_call_failed_on_its_leg() -> anyhow::Result<()> {
    let mut sims = Sims::new(&[]);
    sims.speak = sims.speak.reject(401, "Invalid credentials.");
    let a = agent(sims, &[]).await?;
    let record = a.call(conversation(&[(0, 3_000)])).run().await?;
    assert_eq!(record.close.as_ref().map(|c| c.0), Some(1000), "the agent closed the call");
    assert!(record.streamed_for < Duration::from_millis(2_900), "it did not wait for the caller to hang up");
    let call = a.stored_call().await?;
    assert_eq!((call["outcome"].as_str(), call["failing_leg"].as_str()), (Some("failed"), Some("deepgram-speak")), "{call:#}");
    assert!(call["cause"].as_str().unwrap_or_default().contains("401"), "{call:#}");
    Ok(())
}

#[tokio::test]
async fn the_model_can_end_the_call_after_its_goodbye_is_heard() -> anyhow::Result<()> {
    let mut sims = Sims::new(&["that is all thanks"]);
    sims.llm = sims.llm.answer(Answer::EndCall("Have a nice day.".into()));
    let a = agent(sims, &[("greeting", "")]).await?;
    let record = a.call(conversation(&[(1_000, 8_000)])).run().await?;
    assert_eq!(record.close.as_ref().map(|c| c.0), Some(1000));
    assert!(record.streamed_for < Duration::from_millis(8_500), "the agent hung up before the caller did");
    assert!(all_heard(&record) && !record.marks.is_empty(), "the goodbye was heard first");
    a.host.marker("agent.hangup", |_| true).await?;
    Ok(())
}

#[tokio::test]
async fn twenty_agent_calls_at_once_each_hold_their_own_conversation() -> anyhow::Result<()> {
    let a = agent(Sims::new(&["hello"]), &[("greeting", "Hi.")]).await?;
    let calls: Vec<_> = (0..20)
        .map(|n| {
            let call = a.call(conversation(&[(0, 1_500), (800, 4_000)])).sids(&format!("CA{n:032}"), &format!("MZ{n:032}"));
            tokio::spawn(call.run())
        })
        .collect();
    for (n, call) in calls.into_iter().enumerate() {
        let record = call.await??;
        assert_eq!(record.close.as_ref().map(|c| c.0), Some(1000));
        assert!(all_heard(&record) && record.marks.len() >= 2, "greeting and reply heard: {:?}", record.marks);
        let own = format!("\"streamSid\":\"MZ{n:032}\"");
        assert!(record.received.iter().all(|m| m.contains(&own)), "call {n} got only its own stream's messages");
    }
    let requests = a.llm.requests();
    assert_eq!(requests.len(), 20);
    assert!(requests.iter().all(|r| r.messages.last().map(|(_, c)| c.as_str()) == Some("hello")));
    assert_eq!(a.speak.sessions().len(), 20);
    assert_eq!(a.stt.sessions().len(), 20);
    Ok(())
}

#[tokio::test]
async fn with_flux_the_turn_ends_at_end_of_turn() -> anyhow::Result<()> {
    let mut sims = Sims::new(&["is the shop open today"]);
    sims.llm = sims.llm.answer(Answer::Text("Yes, until six.".into()));
    let a = agent_listening_on(sims, &[("greeting", "")], "/v2/listen").await?;
    let record = a.call(conversation(&[(1_000, 4_000)])).run().await?;
    assert_eq!(record.close.as_ref().map(|c| c.0), Some(1000));

    let handshake = &a.stt.handshakes()[0];
    assert_eq!(handshake.path, "/v2/listen");
    assert_eq!((handshake.param("model"), handshake.param("encoding")), (Some("flux-general-en"), Some("mulaw")));
    let requests = a.llm.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].messages.last().map(|(_, c)| c.as_str()), Some("is the shop open today"), "EndOfTurn's transcript");
    let session = &a.stt.sessions()[0];
    assert!(!session.controls.iter().any(|c| c == "Finalize" || c == "KeepAlive"), "Flux has neither: {:?}", session.controls);
    assert_eq!(session.controls.last().map(String::as_str), Some("CloseStream"));
    assert!(all_heard(&record) && !record.marks.is_empty());
    let call = a.stored_call().await?;
    assert_eq!(call["outcome"], "ok", "Flux's close without a status is the expected end: {call:#}");
    Ok(())
}

#[tokio::test]
async fn a_dropped_listen_socket_is_recovered_and_the_conversation_goes_on() -> anyhow::Result<()> {
    let mut sims = Sims::new(&[]);
    sims.stt =
        sims.stt.transcripts_across_sessions(&["first question", "second question"]).close_after_audio(Duration::from_millis(2_500), 1);
    let a = agent(sims, &[("greeting", "")]).await?;
    let record = a.call(conversation(&[(1_000, 4_000), (1_000, 4_000)])).run().await?;
    assert_eq!(record.close.as_ref().map(|c| c.0), Some(1000));
    assert_eq!(a.stt.sessions().len(), 2, "listening reconnected");
    let requests = a.llm.requests();
    let asked: Vec<&str> = requests.iter().filter_map(|r| r.messages.last().map(|(_, c)| c.as_str())).collect();
    assert_eq!(asked, ["first question", "second question"], "both turns were heard and answered");
    assert_eq!(a.stt.delivered_audio(), record.sent_audio, "the caller's audio reached Deepgram whole across the reconnect");
    let call = a.stored_call().await?;
    assert_eq!((call["outcome"].as_str(), call["failing_leg"].as_str()), (Some("degraded"), Some("deepgram")), "{call:#}");
    Ok(())
}

#[tokio::test]
async fn a_hang_up_phrase_ends_the_call_through_twilios_rest_api() -> anyhow::Result<()> {
    let ca = TestCa::new()?;
    let path = "/2010-04-01/Accounts/AC00000000000000000000000000000001/Calls/CA00000000000000000000000000000001.json";
    let twilio_api = FakeHttpServer::new().route(path, Reply::text("{}")).tls(&ca).start().await?;
    let mut sims = Sims::new(&["ok goodbye"]);
    sims.allow.push(twilio_api.origin());
    sims.ca = Some(ca);
    let api_url = twilio_api.url("");
    let a =
        agent(sims, &[("greeting", ""), ("twilio_rest_hangup", "true"), ("twilio_api_url", &api_url), ("farewell", "Bye now!")]).await?;
    let record = a.call(conversation(&[(800, 8_000)])).run().await?;
    assert_eq!(record.close.as_ref().map(|c| c.0), Some(1000));
    assert!(record.streamed_for < Duration::from_millis(8_500), "the agent hung up first");
    assert!(all_heard(&record), "the farewell was heard before the hang-up");
    let requests = twilio_api.wait_for_requests(1).await?;
    assert_eq!((requests[0].method.as_str(), requests[0].path.as_str()), ("POST", path));
    assert_eq!(requests[0].header("content-type"), Some("application/x-www-form-urlencoded"));
    assert_eq!(requests[0].body_bytes, "Status=completed".len() as u64);
    a.host.marker("twilio-rest.response", |m| m.shown("status").as_deref() == Some("200")).await?;
    assert!(a.llm.requests().is_empty(), "a hang-up phrase needs no LLM");
    Ok(())
}
