//! The agent's rules, driven with a simulated clock against a recording world.

use base64::Engine;
use serde_json::Value as Json;

use super::*;

const START: &str = r#"{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC1","streamSid":"MZ1","callSid":"CA1","tracks":["inbound"],"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1},"customParameters":{}},"streamSid":"MZ1"}"#;
const STOP: &str = r#"{"event":"stop","sequenceNumber":"99","stop":{"accountSid":"AC1","callSid":"CA1"},"streamSid":"MZ1"}"#;

/// What Twilio received.
#[derive(Debug, Clone, PartialEq)]
enum ToTwilio {
    Media(usize),
    Mark(String),
    Clear,
}

#[derive(Default)]
struct World {
    now: u64,
    twilio: Vec<(u64, ToTwilio)>,
    speak: Vec<String>,
    listen_connects: usize,
    speak_connects: usize,
    listen_closed: bool,
    speak_closed: bool,
    asks: Vec<Json>,
    cancels: usize,
    posts: Vec<(String, String)>,
    marks: Vec<(String, Vec<(String, Value)>)>,
    faults: Vec<(&'static str, Impact, &'static str)>,
    completed: Vec<&'static str>,
    transcript: Vec<(&'static str, String)>,
    finished: bool,
    /// Twilio's playback: when the audio sent so far will have played.
    play_end: u64,
    /// Marks Twilio will echo, and when.
    echoes: Vec<(u64, String)>,
}

impl World {
    fn apply(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Connect { socket: Socket::Listen, .. } => self.listen_connects += 1,
                Action::Connect { socket: Socket::Speak, url } => {
                    assert!(url.contains("encoding=mulaw&sample_rate=8000"), "{url}");
                    self.speak_connects += 1;
                }
                Action::SendText { socket: Socket::Speak, text } => self.speak.push(text),
                Action::SendText { socket: Socket::Listen, .. } | Action::SendAudio(_) => {}
                Action::Close(Socket::Listen) => self.listen_closed = true,
                Action::Close(Socket::Speak) => self.speak_closed = true,
                Action::ToTwilio(text) => {
                    let message: Json = serde_json::from_str(&text).expect("JSON to Twilio");
                    assert_eq!(message["streamSid"], "MZ1");
                    let out = match message["event"].as_str() {
                        Some("media") => {
                            let payload = message["media"]["payload"].as_str().expect("payload");
                            let len = base64::engine::general_purpose::STANDARD.decode(payload).expect("base64").len();
                            self.play_end = self.play_end.max(self.now) + playback::audio_ms(len);
                            ToTwilio::Media(len)
                        }
                        Some("mark") => {
                            let name = message["mark"]["name"].as_str().expect("name").to_owned();
                            self.echoes.push((self.play_end.max(self.now), name.clone()));
                            ToTwilio::Mark(name)
                        }
                        Some("clear") => {
                            // Twilio drops its queue and echoes every pending mark at once.
                            self.play_end = self.now;
                            for echo in &mut self.echoes {
                                echo.0 = echo.0.min(self.now);
                            }
                            ToTwilio::Clear
                        }
                        other => panic!("unexpected event {other:?}"),
                    };
                    self.twilio.push((self.now, out));
                }
                Action::Ask { body, .. } => self.asks.push(serde_json::from_str(&body).expect("JSON body")),
                Action::CancelAsk => self.cancels += 1,
                Action::Post { url, body, leg } => {
                    assert_eq!(leg, TWILIO_REST_LEG);
                    self.posts.push((url, body));
                }
                Action::Mark { name, attributes } => self.marks.push((name, attributes)),
                Action::Fault { leg, impact, cause, .. } => self.faults.push((leg, impact, cause)),
                Action::Complete(leg) => self.completed.push(leg),
                Action::Identify { .. } => {}
                Action::Transcript { speaker, text, .. } => self.transcript.push((speaker, text)),
                Action::Finish => self.finished = true,
            }
        }
    }

    fn marked(&self, name: &str) -> Vec<&Vec<(String, Value)>> {
        self.marks.iter().filter(|(n, _)| n == name).map(|(_, a)| a).collect()
    }

    /// An attribute of the last `name` marker, as text.
    fn attr(&self, name: &str, key: &str) -> Option<String> {
        self.marked(name).last()?.iter().find(|(k, _)| k == key).map(|(_, v)| match v {
            Value::Text(text) => text.clone(),
            Value::Integer(n) => n.to_string(),
            Value::Number(n) => n.to_string(),
            Value::Flag(flag) => flag.to_string(),
        })
    }

    fn marks_sent(&self) -> Vec<String> {
        self.twilio.iter().filter_map(|(_, out)| if let ToTwilio::Mark(name) = out { Some(name.clone()) } else { None }).collect()
    }

    fn media_bytes(&self) -> usize {
        self.twilio.iter().map(|(_, out)| if let ToTwilio::Media(n) = out { *n } else { 0 }).sum()
    }

    fn speaks(&self) -> Vec<String> {
        self.speak
            .iter()
            .filter_map(|text| {
                let message: Json = serde_json::from_str(text).ok()?;
                (message["type"] == "Speak").then(|| message["text"].as_str().unwrap_or_default().to_owned())
            })
            .collect()
    }

    fn count(&self, control: &str) -> usize {
        self.speak.iter().filter(|text| text.as_str() == control).count()
    }
}

struct Call {
    agent: Agent,
    world: World,
    audio_ms: u64,
}

fn settings(pairs: &[(&str, &str)]) -> AgentSettings {
    AgentSettings::from_lookup(|key| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| (*v).to_owned())).expect("settings")
}

impl Call {
    fn new(pairs: &[(&str, &str)]) -> Call {
        Call { agent: Agent::new(settings(pairs), 7), world: World::default(), audio_ms: 0 }
    }

    /// A started call with both sockets open.
    fn started(pairs: &[(&str, &str)]) -> Call {
        let mut call = Call::new(pairs);
        call.twilio(START);
        call.agent.on_listen_connected(call.world.now);
        call.agent.on_speak_connected(call.world.now);
        call.sync();
        call
    }

    fn sync(&mut self) {
        let actions = self.agent.take_actions();
        self.world.apply(actions);
        if let Some(deadline) = self.agent.next_deadline(self.world.now) {
            assert!(deadline >= self.world.now, "a deadline in the past: {deadline} at {}", self.world.now);
        }
    }

    fn twilio(&mut self, text: &str) {
        self.agent.on_twilio_text(text, self.world.now);
        self.sync();
    }

    /// Time passes, the agent ticking at every deadline it asks for.
    fn advance(&mut self, ms: u64) {
        let end = self.world.now + ms;
        while let Some(due) = self.agent.next_deadline(self.world.now).filter(|due| *due <= end) {
            self.world.now = due.max(self.world.now);
            self.agent.on_tick(self.world.now);
            self.sync();
            if self.agent.next_deadline(self.world.now) == Some(self.world.now) {
                self.world.now += 1;
            }
        }
        self.world.now = end;
        self.agent.on_tick(end);
        self.sync();
    }

    /// Caller audio for `ms` (so the audio clock knows when speech arrived).
    fn caller_audio(&mut self, ms: u64) {
        for _ in 0..ms / 20 {
            let payload = base64::engine::general_purpose::STANDARD.encode([0xffu8; 160]);
            let media = format!(
                r#"{{"event":"media","media":{{"track":"inbound","chunk":"1","timestamp":"0","payload":"{payload}"}},"streamSid":"MZ1"}}"#
            );
            self.twilio(&media);
            self.audio_ms += 20;
            self.advance(20);
        }
    }

    /// The caller says `text`; Deepgram's final result ends the turn.
    fn says(&mut self, text: &str) {
        self.caller_audio(200);
        let end = self.audio_ms as f64 / 1e3;
        let results = format!(
            r#"{{"type":"Results","start":{},"duration":0.2,"is_final":true,"speech_final":true,"channel":{{"alternatives":[{{"transcript":"{text}","confidence":0.9}}]}}}}"#,
            end - 0.2
        );
        self.advance(150);
        self.agent.on_listen_text(&results, self.world.now);
        self.sync();
    }

    fn llm_head(&mut self, status: u16) {
        self.agent.on_llm_response(status, self.world.now);
        self.sync();
    }

    fn llm_tokens(&mut self, tokens: &[&str]) {
        for token in tokens {
            let chunk = serde_json::json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": token}, "finish_reason": null}]});
            self.agent.on_llm_body(format!("data: {chunk}\n\n").as_bytes(), self.world.now);
            self.sync();
        }
    }

    fn llm_done(&mut self) {
        self.agent.on_llm_body(
            b"data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n",
            self.world.now,
        );
        self.agent.on_llm_end(self.world.now);
        self.sync();
    }

    /// Deepgram speak answers the oldest flush: `bytes` of audio, then `Flushed`.
    fn speak_answers(&mut self, bytes: usize) {
        self.agent.on_speak_audio(&vec![0x7f; bytes], self.world.now);
        self.agent.on_speak_text(r#"{"type":"Flushed","sequence_id":0}"#, self.world.now);
        self.sync();
    }

    /// Twilio plays what was sent, echoing each mark once the audio before it has played.
    fn twilio_plays(&mut self, ms: u64) {
        let end = self.world.now + ms;
        loop {
            let due: Vec<String> = {
                let now = self.world.now;
                let (due, later): (Vec<_>, Vec<_>) = self.world.echoes.drain(..).partition(|(at, _)| *at <= now);
                self.world.echoes = later;
                due.into_iter().map(|(_, name)| name).collect()
            };
            for name in due {
                self.twilio(&format!(r#"{{"event":"mark","sequenceNumber":"5","streamSid":"MZ1","mark":{{"name":"{name}"}}}}"#));
            }
            if self.world.now >= end {
                break;
            }
            self.advance(20.min(end - self.world.now));
        }
    }

    fn last_user_line(&self) -> String {
        let body = self.world.asks.last().expect("an LLM request");
        let messages = body["messages"].as_array().expect("messages");
        messages.iter().rev().find(|m| m["role"] == "user").and_then(|m| m["content"].as_str()).unwrap_or_default().to_owned()
    }
}

#[test]
fn the_greeting_is_spoken_paced_and_marked_and_heard() {
    let mut call = Call::started(&[("lead_ms", "100")]);
    assert_eq!((call.world.listen_connects, call.world.speak_connects), (1, 1));
    assert_eq!(call.world.speaks(), vec!["Hello! How can I help you today?".to_owned()]);
    assert_eq!(call.world.count(speak::FLUSH), 1);
    // 1 s of speech comes back at once; Twilio gets it paced, a mark after the last frame.
    call.speak_answers(8_000);
    let first: Vec<u64> = call.world.twilio.iter().map(|(at, _)| *at).collect();
    assert_eq!(first.len(), 5, "only the 100 ms lead goes at once: {:?}", call.world.twilio);
    call.twilio_plays(1_200);
    assert_eq!(call.world.media_bytes(), 8_000);
    let frames: Vec<&(u64, ToTwilio)> = call.world.twilio.iter().filter(|(_, out)| matches!(out, ToTwilio::Media(_))).collect();
    assert!(frames.iter().all(|(_, out)| *out == ToTwilio::Media(160)));
    let span = frames.last().expect("frames").0 - frames[0].0;
    assert!((880..=920).contains(&span), "50 frames paced over ~900 ms, took {span}");
    assert_eq!(call.world.marks_sent(), vec!["g0-t0-s0".to_owned()]);
    assert_eq!(call.world.attr("agent.turn-summary", "heard"), Some("Hello! How can I help you today?".to_owned()));
    assert_eq!(call.agent.history().last(), Some(&Line { role: Role::Assistant, content: "Hello! How can I help you today?".into() }));
    assert_eq!(call.world.transcript.last(), Some(&("agent", "Hello! How can I help you today?".to_owned())));
}

#[test]
fn a_reply_streams_sentence_by_sentence_with_the_history_and_timings() {
    let mut call = Call::started(&[("greeting", "")]);
    call.says("what time do you open");
    assert_eq!(call.world.asks.len(), 1);
    let body = &call.world.asks[0];
    assert_eq!(body["stream"], true);
    assert_eq!(body["messages"][0]["role"], "system");
    assert_eq!(call.last_user_line(), "what time do you open");
    call.world.now += 300;
    call.llm_head(200);
    call.llm_tokens(&["We open", " at nine.", " On Sundays"]);
    // The first sentence is spoken and flushed at once.
    assert_eq!(call.world.speaks(), vec!["We open at nine.".to_owned()]);
    assert_eq!(call.world.count(speak::FLUSH), 1);
    call.llm_tokens(&[" we open at ten.", " See you"]);
    // The next sentence is sent, but its segment stays open while the first is synthesized.
    assert_eq!(call.world.speaks().len(), 2);
    assert_eq!(call.world.count(speak::FLUSH), 1);
    call.world.now += 200;
    call.speak_answers(1_600);
    assert_eq!(call.world.count(speak::FLUSH), 2, "the second segment goes once the first has its audio");
    call.llm_tokens(&[" soon!"]);
    call.llm_done();
    assert_eq!(call.world.speaks().len(), 3);
    assert_eq!(call.world.count(speak::FLUSH), 3, "the last words go at once");
    call.speak_answers(800);
    call.twilio_plays(400);
    call.speak_answers(2_400);
    call.twilio_plays(1_000);
    assert_eq!(call.world.marks_sent(), vec!["g0-t0-s0".to_owned(), "g0-t0-s1".to_owned(), "g0-t0-s2".to_owned()]);
    let heard = "We open at nine. On Sundays we open at ten. See you soon!";
    assert_eq!(call.agent.history().last(), Some(&Line { role: Role::Assistant, content: heard.into() }));
    // Timings run from the caller's last word.
    let ms =
        |key: &str| -> i64 { call.world.attr("agent.turn-summary", key).and_then(|ms| ms.parse().ok()).unwrap_or_else(|| panic!("{key}")) };
    assert!(ms("to_final_ms") >= 150, "{}", ms("to_final_ms"));
    assert!(ms("to_first_token_ms") >= ms("to_final_ms") + 300);
    assert!(ms("to_first_audio_ms") >= ms("to_first_token_ms") + 200);
    assert!(ms("to_first_media_ms") >= ms("to_first_audio_ms"));
    assert!(ms("to_first_echo_ms") > ms("to_first_media_ms"));
    assert_eq!(call.world.attr("agent.turn-summary", "interrupted"), Some("false".to_owned()));
}

#[test]
fn barge_in_clears_twilio_cancels_the_llm_and_keeps_only_what_was_heard() {
    let mut call = Call::started(&[("greeting", ""), ("lead_ms", "60")]);
    call.says("tell me a story");
    call.llm_head(200);
    call.llm_tokens(&["Once upon a time there was a fox.", " The fox lived in a wood.", " It"]);
    call.speak_answers(800);
    call.twilio_plays(200);
    // The first segment was heard; the second is being synthesized and played.
    call.speak_answers(4_000);
    call.twilio_plays(100);
    let media_before = call.world.media_bytes();
    call.agent.on_listen_text(r#"{"type":"SpeechStarted","channel":[0,1],"timestamp":0.5}"#, call.world.now);
    call.sync();
    let clear_at = call.world.twilio.iter().position(|(_, out)| *out == ToTwilio::Clear).expect("Twilio got clear");
    assert_eq!(call.world.count(speak::CLEAR), 1);
    assert_eq!(call.world.cancels, 1, "the LLM stream is cancelled");
    // Audio of the old text still arriving before `Cleared` is dropped; nothing follows the clear.
    call.agent.on_speak_audio(&[0x7f; 1_600], call.world.now);
    call.agent.on_speak_text(r#"{"type":"Flushed","sequence_id":1}"#, call.world.now);
    call.agent.on_speak_text(r#"{"type":"Cleared","sequence_id":0}"#, call.world.now);
    call.llm_tokens(&[" was hungry."]);
    call.twilio_plays(2_000);
    assert_eq!(call.world.twilio.len(), clear_at + 1, "nothing after the clear: {:?}", &call.world.twilio[clear_at..]);
    assert_eq!(call.world.media_bytes(), media_before);
    // Twilio echoed the cleared mark (in twilio_plays): it did not count as heard.
    assert_eq!(call.agent.history().last(), Some(&Line { role: Role::Assistant, content: "Once upon a time there was a fox.".into() }));
    assert_eq!(call.world.attr("agent.barge-in", "heard_segments"), Some("1".to_owned()));
    assert_eq!(call.world.attr("agent.barge-in", "trigger"), Some("speech-started".to_owned()));
    // The caller's words are the next turn; its history holds the cut answer.
    assert!(call.world.faults.is_empty(), "{:?}", call.world.faults);
    call.says("wait stop");
    let messages = call.world.asks.last().expect("second request")["messages"].as_array().expect("messages").clone();
    let roles: Vec<&str> = messages.iter().filter_map(|m| m["role"].as_str()).collect();
    assert_eq!(roles, vec!["system", "user", "assistant", "user"]);
    assert_eq!(messages[2]["content"], "Once upon a time there was a fox.");
}

#[test]
fn barge_in_by_words_waits_for_enough_words() {
    let mut call = Call::started(&[("barge_in", "words"), ("barge_in_min_words", "3")]);
    call.speak_answers(4_000);
    call.twilio_plays(100);
    let interim = |text: &str| {
        format!(
            r#"{{"type":"Results","start":0,"duration":0.2,"is_final":false,"channel":{{"alternatives":[{{"transcript":"{text}","confidence":0.5}}]}}}}"#
        )
    };
    call.agent.on_listen_text(r#"{"type":"SpeechStarted","channel":[0,1],"timestamp":0.1}"#, call.world.now);
    call.agent.on_listen_text(&interim("uh huh"), call.world.now);
    call.sync();
    assert!(!call.world.twilio.iter().any(|(_, out)| *out == ToTwilio::Clear), "two words are not enough");
    call.agent.on_listen_text(&interim("hold on please"), call.world.now);
    call.sync();
    assert!(call.world.twilio.iter().any(|(_, out)| *out == ToTwilio::Clear));
}

#[test]
fn with_barge_in_off_the_caller_is_answered_after_the_agent_finishes() {
    let mut call = Call::started(&[("barge_in", "off")]);
    call.speak_answers(800);
    call.says("my order number is five");
    assert!(call.world.asks.is_empty(), "the greeting is still playing");
    assert!(!call.world.twilio.iter().any(|(_, out)| *out == ToTwilio::Clear));
    call.twilio_plays(400);
    assert_eq!(call.world.asks.len(), 1);
    assert_eq!(call.last_user_line(), "my order number is five");
}

#[test]
fn an_llm_error_is_a_fault_on_its_leg_and_the_fallback_is_spoken() {
    for (status, cause) in [(429, "rate-limited"), (500, "server-error"), (401, "rejected")] {
        let mut call = Call::started(&[("greeting", ""), ("fallback_text", "Sorry, say again?")]);
        call.says("hello");
        call.llm_head(status);
        call.agent.on_llm_body(br#"{"error":{"message":"slow down","type":"requests"}}"#, call.world.now);
        call.agent.on_llm_end(call.world.now);
        call.sync();
        assert_eq!(call.world.faults, vec![(LLM_LEG, Impact::Recovered, cause)]);
        assert_eq!(call.world.attr("llm.failed", "detail"), Some(format!("the LLM answered HTTP {status}: slow down")));
        assert_eq!(call.world.speaks(), vec!["Sorry, say again?".to_owned()]);
    }
    // A timeout from the host.
    let mut call = Call::started(&[("greeting", "")]);
    call.says("hello");
    call.llm_head(200);
    call.llm_tokens(&["Let me check"]);
    call.agent.on_llm_failed("between-bytes-timeout", call.world.now);
    call.sync();
    assert_eq!(call.world.faults, vec![(LLM_LEG, Impact::Recovered, "request-failed")]);
    assert_eq!(call.world.speaks(), vec!["Let me check".to_owned()], "what came is spoken; no fallback on top");
}

#[test]
fn a_dropped_speak_socket_reconnects_and_speaks_the_unheard_part_again() {
    let mut call = Call::started(&[("greeting", "First part of the greeting. Second part of it.")]);
    call.speak_answers(800);
    call.twilio_plays(200);
    call.speak_answers(400);
    // Half of the second segment played when the socket drops.
    call.agent.on_speak_closed(1011, "boom", call.world.now);
    call.sync();
    assert_eq!(call.world.faults, vec![(SPEAK_LEG, Impact::Recovered, "closed")]);
    assert!(call.world.twilio.iter().any(|(_, out)| *out == ToTwilio::Clear));
    call.advance(1_000);
    assert_eq!(call.world.speak_connects, 2);
    call.agent.on_speak_connected(call.world.now);
    call.sync();
    assert_eq!(call.world.speaks().last().map(String::as_str), Some("Second part of it."));
    call.speak_answers(400);
    call.twilio_plays(500);
    assert_eq!(call.agent.history().last().map(|line| line.content.as_str()), Some("First part of the greeting. Second part of it."));
}

#[test]
fn a_rejected_speak_socket_ends_the_call_with_the_cause_on_its_leg() {
    let mut call = Call::new(&[]);
    call.twilio(START);
    call.agent.on_listen_connected(0);
    call.agent.on_speak_connect_failed(ConnectFailure::Rejected { status: 401, dg_error: Some("bad key".into()), body: String::new() }, 0);
    call.sync();
    assert_eq!(call.world.faults, vec![(SPEAK_LEG, Impact::Failed, "rejected")]);
    // Listening finishes as at the end of a call, then the call is over.
    call.agent.on_listen_closed(1000, "", call.world.now);
    call.sync();
    call.advance(10);
    assert!(call.world.finished, "{:?}", call.world.marks.iter().map(|(n, _)| n).collect::<Vec<_>>());
}

#[test]
fn a_hangup_phrase_says_farewell_and_hangs_up_through_twilio_rest() {
    let mut call = Call::started(&[("greeting", ""), ("twilio_rest_hangup", "true"), ("twilio_api_url", "http://127.0.0.1:9")]);
    call.says("ok thanks goodbye");
    assert!(call.world.asks.is_empty(), "no LLM for the farewell");
    assert_eq!(call.world.speaks(), vec!["Goodbye!".to_owned()]);
    call.speak_answers(800);
    assert!(call.world.posts.is_empty(), "not before the farewell was heard");
    call.twilio_plays(300);
    assert_eq!(
        call.world.posts,
        vec![("http://127.0.0.1:9/2010-04-01/Accounts/AC1/Calls/CA1.json".to_owned(), "Status=completed".to_owned())]
    );
    call.agent.on_rest_response(200, call.world.now);
    call.sync();
    assert!(call.world.completed.contains(&TWILIO_REST_LEG));
    assert!(call.world.speak_closed);
    call.agent.on_listen_closed(1000, "", call.world.now);
    call.sync();
    assert!(call.world.finished);
}

#[test]
fn the_models_end_call_tool_hangs_up_after_its_words_are_heard() {
    let mut call = Call::started(&[("greeting", "")]);
    call.says("that is all");
    call.llm_head(200);
    call.llm_tokens(&["Have a good day."]);
    let tool = br#"data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"end_call","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}

"#;
    call.agent.on_llm_body(tool, call.world.now);
    call.llm_done();
    call.speak_answers(800);
    call.twilio_plays(300);
    assert_eq!(call.world.attr("agent.hangup", "rest"), Some("false".to_owned()));
    assert!(call.world.speak_closed);
    call.agent.on_listen_closed(1000, "", call.world.now);
    call.sync();
    assert!(call.world.finished);
}

#[test]
fn keypad_digits_become_a_line_of_the_conversation() {
    let mut call = Call::started(&[("greeting", ""), ("dtmf_wait_ms", "1000")]);
    for digit in ["4", "2"] {
        call.twilio(&format!(
            r#"{{"event":"dtmf","streamSid":"MZ1","sequenceNumber":"5","dtmf":{{"track":"inbound_track","digit":"{digit}"}}}}"#
        ));
        call.advance(300);
    }
    assert!(call.world.asks.is_empty());
    call.advance(1_000);
    assert_eq!(call.last_user_line(), "(The caller pressed 4 2 on the keypad.)");
}

#[test]
fn flushes_stay_within_the_budget() {
    let mut call = Call::started(&[("greeting", ""), ("max_flushes_per_minute", "2")]);
    call.says("count");
    call.llm_head(200);
    call.llm_tokens(&["One is first. ", "Two is second. "]);
    call.speak_answers(160);
    call.llm_tokens(&["Three is third. "]);
    call.speak_answers(160);
    call.llm_done();
    assert_eq!(call.world.count(speak::FLUSH), 2, "the budget is spent");
    call.advance(30_000);
    assert_eq!(call.world.count(speak::FLUSH), 2);
    call.advance(31_000);
    assert_eq!(call.world.count(speak::FLUSH), 3, "a minute after the first flush, the next may go");
}

#[test]
fn the_caller_hanging_up_cancels_everything_and_finishes_after_listening() {
    let mut call = Call::started(&[("greeting", "")]);
    call.says("hello");
    call.llm_head(200);
    call.llm_tokens(&["Hi there, how"]);
    call.twilio(STOP);
    assert_eq!(call.world.cancels, 1);
    assert!(call.world.speak_closed);
    assert!(!call.world.finished, "listening drains first");
    call.agent.on_listen_closed(1000, "", call.world.now);
    call.sync();
    assert!(call.world.finished);
    assert_eq!(call.world.attr("agent.summary", "turns"), Some("1".to_owned()));
}

#[test]
fn mark_names_round_trip() {
    assert_eq!(parse_mark(&mark_name(3, 12, 4)), Some((3, 12, 4)));
    assert_eq!(parse_mark("user-mark"), None);
    assert_eq!(parse_mark("g1-t2-s3-x"), None);
}

#[test]
fn a_speak_socket_that_never_answers_clear_is_replaced() {
    let mut call = Call::started(&[]);
    call.speak_answers(4_000);
    call.twilio_plays(100);
    call.agent.on_listen_text(r#"{"type":"SpeechStarted","channel":[0,1],"timestamp":0.1}"#, call.world.now);
    call.sync();
    assert_eq!(call.world.count(speak::CLEAR), 1);
    // No `Cleared` comes: after the wait, the socket is replaced (a new one owes nothing).
    call.advance(2_100);
    assert!(call.world.speak_closed);
    assert_eq!(call.world.faults, vec![(SPEAK_LEG, Impact::Recovered, "stalled")]);
    call.advance(1_000);
    assert_eq!(call.world.speak_connects, 2);
    call.agent.on_speak_connected(call.world.now);
    call.says("hello again");
    call.llm_head(200);
    call.llm_tokens(&["Hi again, how can I help?"]);
    call.llm_done();
    assert_eq!(call.world.speaks().last().map(String::as_str), Some("Hi again, how can I help?"), "speech goes on on the new socket");
}
