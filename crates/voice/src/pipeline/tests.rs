//! The pipeline's rules, driven with a simulated clock.

use base64::Engine;

use super::*;

const START: &str = r#"{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC1","streamSid":"MZ1","callSid":"CA1","tracks":["inbound"],"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1},"customParameters":{"lang":"en"}},"streamSid":"MZ1"}"#;
const STOP: &str = r#"{"event":"stop","sequenceNumber":"99","stop":{"accountSid":"AC1","callSid":"CA1"},"streamSid":"MZ1"}"#;

/// 20 ms of "audio" whose bytes encode the frame number, so order and gaps show.
fn frame(n: u32) -> Vec<u8> {
    (0..160).map(|i| ((n * 7 + i) % 251) as u8).collect()
}

fn media(n: u32) -> String {
    let payload = base64::engine::general_purpose::STANDARD.encode(frame(n));
    format!(
        r#"{{"event":"media","sequenceNumber":"{}","media":{{"track":"inbound","chunk":"{}","timestamp":"{}","payload":"{payload}"}},"streamSid":"MZ1"}}"#,
        n + 2,
        n + 1,
        n * 20
    )
}

fn results(start: f64, duration: f64, text: &str, speech_final: bool) -> String {
    format!(
        r#"{{"type":"Results","start":{start},"duration":{duration},"is_final":true,"speech_final":{speech_final},"channel":{{"alternatives":[{{"transcript":"{text}","confidence":0.9}}]}}}}"#
    )
}

/// A marker value as text, as the timeline shows it (numbers with three decimals).
fn shown(value: &Value) -> String {
    match value {
        Value::Text(text) => text.clone(),
        Value::Integer(n) => n.to_string(),
        Value::Number(n) => format!("{n:.3}"),
        Value::Flag(flag) => flag.to_string(),
    }
}

/// Collects what a fake Deepgram would have received, per session.
#[derive(Default)]
struct Wire {
    sessions: Vec<Vec<u8>>,
    controls: Vec<&'static str>,
    marks: Vec<(String, Vec<(String, String)>)>,
    faults: Vec<(&'static str, Impact, &'static str, String)>,
    completed: Vec<&'static str>,
    identities: Vec<(&'static str, String)>,
    transcript: Vec<String>,
    heard: Vec<Heard>,
    connects: usize,
    finished: bool,
    closed_by_us: bool,
    frames: Vec<usize>,
}

impl Wire {
    fn apply(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Connect { .. } => {
                    self.connects += 1;
                    self.sessions.push(Vec::new());
                }
                Action::SendAudio(audio) => {
                    assert!(!audio.is_empty(), "never an empty frame");
                    self.frames.push(audio.len());
                    self.sessions.last_mut().expect("a session").extend(audio);
                }
                Action::SendControl(control) => self.controls.push(control),
                Action::CloseDeepgram => self.closed_by_us = true,
                Action::Mark { name, attributes } => self.marks.push((name, attributes.into_iter().map(|(k, v)| (k, shown(&v))).collect())),
                Action::Fault { leg, impact, cause, detail } => self.faults.push((leg, impact, cause, detail)),
                Action::Complete(leg) => self.completed.push(leg),
                Action::Identify { kind, value } => self.identities.push((kind, value)),
                Action::Transcript { text, .. } => self.transcript.push(text),
                Action::Heard(heard) => self.heard.push(heard),
                Action::Finish => self.finished = true,
            }
        }
    }

    fn mark(&self, name: &str) -> Option<&Vec<(String, String)>> {
        self.marks.iter().find(|(n, _)| n == name).map(|(_, a)| a)
    }

    fn attr(&self, name: &str, key: &str) -> Option<String> {
        self.mark(name)?.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }
}

/// Applies the actions so far, then lets time pass: ticks at each deadline the pipeline
/// asks for, up to `until`. Returns the time of the last tick (or `from`).
fn settle(p: &mut Pipeline, wire: &mut Wire, from: u64, until: u64) -> u64 {
    let mut now = from;
    loop {
        wire.apply(p.take_actions());
        match p.next_deadline() {
            Some(due) if due <= until => {
                now = due.max(now);
                p.on_tick(now);
            }
            _ => return now,
        }
    }
}

fn pipeline() -> Pipeline {
    Pipeline::new(Settings::default(), 7)
}

fn caller_audio(frames: std::ops::Range<u32>) -> Vec<u8> {
    frames.flat_map(frame).collect()
}

#[test]
fn a_clean_call_delivers_every_byte_then_closes_the_stream() {
    let mut p = pipeline();
    let mut wire = Wire::default();
    p.on_twilio_text(r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#, 0);
    p.on_twilio_text(START, 0);
    wire.apply(p.take_actions());
    assert_eq!(wire.connects, 1);
    // Audio arriving during the handshake is buffered ...
    for n in 0..5 {
        p.on_twilio_text(&media(n), n as u64 * 20);
    }
    p.on_connected(100);
    // ... and the rest flows in 40 ms frames.
    for n in 5..101 {
        p.on_twilio_text(&media(n), n as u64 * 20);
    }
    p.on_twilio_text(STOP, 2_100);
    settle(&mut p, &mut wire, 2_100, 2_190);
    assert_eq!(wire.controls, [FINALIZE, CLOSE_STREAM]);
    let (tail, whole) = wire.frames.split_last().expect("frames");
    assert!(whole.iter().all(|len| len % 320 == 0) && *tail <= 320, "whole 40 ms frames, a partial one last: {:?}", wire.frames);
    assert_eq!(wire.sessions[0], caller_audio(0..101), "every byte, in order");
    assert!(!wire.finished, "waits for Deepgram's close");
    p.on_deepgram_text(&results(0.0, 2.02, "hello there", true), 2_200);
    p.on_deepgram_closed(1000, "", 2_300);
    wire.apply(p.take_actions());
    assert!(wire.finished);
    assert_eq!(wire.attr("utterance", "text").as_deref(), Some("hello there"));
    assert_eq!(wire.attr("pipeline.summary", "lost_bytes").as_deref(), Some("0"));
    assert_eq!(wire.attr("pipeline.summary", "audio_bytes").as_deref(), Some("16160"));
    assert_eq!(wire.attr("twilio.start", "call_sid").as_deref(), Some("CA1"));
    assert!(wire.mark("twilio.first-media").is_some());
    assert!(wire.mark("deepgram.first-result").is_some());
}

#[test]
fn an_unexpected_close_reconnects_and_replays_what_was_not_finalized() {
    let mut p = pipeline();
    let mut wire = Wire::default();
    p.on_twilio_text(START, 0);
    p.on_connected(10);
    for n in 0..100 {
        p.on_twilio_text(&media(n), n as u64 * 20);
    }
    // Deepgram finalized the first second, then failed.
    p.on_deepgram_text(&results(0.0, 1.0, "first second", true), 2_000);
    p.on_deepgram_closed(1011, "NET-0000", 2_000);
    wire.apply(p.take_actions());
    let delay: u64 = wire.attr("deepgram.reconnect", "delay_ms").expect("reconnect scheduled").parse().expect("number");
    assert!(delay <= 250, "first delay is at most the base: {delay}");
    // Audio keeps coming while disconnected.
    for n in 100..150 {
        p.on_twilio_text(&media(n), 2_000 + (n as u64 - 100) * 20);
    }
    let deadline = p.next_deadline().expect("a reconnect is due");
    p.on_tick(deadline);
    p.on_connected(deadline + 50);
    p.on_twilio_text(STOP, 3_000);
    // 12,000 bytes to replay at 1.25x: 1.2 s.
    let done = settle(&mut p, &mut wire, 3_000, 5_000);
    assert!(wire.controls.ends_with(&[FINALIZE, CLOSE_STREAM]), "{:?}", wire.controls);
    p.on_deepgram_text(&results(0.5, 1.0, "after the gap", true), done + 100);
    p.on_deepgram_closed(1000, "", done + 200);
    wire.apply(p.take_actions());
    assert_eq!(wire.connects, 2);
    assert_eq!(wire.sessions[0], caller_audio(0..100));
    assert_eq!(wire.sessions[1], caller_audio(50..150), "the unconfirmed second, then the new audio");
    assert_eq!(wire.attr("deepgram.replay", "replay_bytes").as_deref(), Some("8000"));
    assert_eq!(wire.attr("pipeline.summary", "lost_bytes").as_deref(), Some("0"));
    // Transcript times are call time: 0.5 s into the second session is 1.5 s into the call.
    let second = wire.marks.iter().filter(|(n, _)| n == "transcript.final").nth(1).expect("second transcript");
    assert!(second.1.contains(&("start".to_owned(), "1.500".to_owned())), "{second:?}");
}

#[test]
fn a_401_is_not_retried() {
    let mut p = pipeline();
    let mut wire = Wire::default();
    p.on_twilio_text(START, 0);
    p.on_connect_failed(ConnectFailure::Rejected { status: 401, dg_error: Some("Invalid credentials.".into()), body: String::new() }, 50);
    for n in 0..50 {
        p.on_twilio_text(&media(n), n as u64 * 20);
    }
    for now in (1_000..20_000).step_by(500) {
        p.on_tick(now);
    }
    p.on_twilio_text(STOP, 20_000);
    wire.apply(p.take_actions());
    assert_eq!(wire.connects, 1, "no retry storm");
    assert_eq!(wire.attr("deepgram.rejected", "status").as_deref(), Some("401"));
    assert_eq!(wire.attr("deepgram.gave-up", "why").as_deref(), Some("rejected"));
    assert!(wire.finished);
    assert_eq!(wire.attr("pipeline.summary", "lost_bytes").as_deref(), Some("8000"));
}

#[test]
fn network_failures_back_off_then_give_up() {
    let settings = Settings { max_reconnects: 3, ..Settings::default() };
    let mut p = Pipeline::new(settings, 3);
    let mut wire = Wire::default();
    p.on_twilio_text(START, 0);
    let mut now = 0;
    for _ in 0..10 {
        p.on_connect_failed(ConnectFailure::Failed { cause: "connect-timeout".into(), detail: "".into() }, now);
        match p.next_deadline() {
            Some(deadline) => {
                now = deadline;
                p.on_tick(now);
            }
            None => break,
        }
    }
    wire.apply(p.take_actions());
    assert_eq!(wire.connects, 4, "the first try and three reconnects");
    assert_eq!(wire.attr("deepgram.gave-up", "why").as_deref(), Some("max-reconnects"));
}

#[test]
fn keepalive_when_no_audio_flows() {
    let mut p = pipeline();
    let mut wire = Wire::default();
    p.on_twilio_text(START, 0);
    p.on_connected(0);
    p.on_twilio_text(&media(0), 0);
    p.on_twilio_text(&media(1), 20);
    p.on_tick(3_000);
    wire.apply(p.take_actions());
    assert!(wire.controls.is_empty());
    let due = p.next_deadline().expect("keepalive due");
    assert_eq!(due, 4_020);
    p.on_tick(due);
    wire.apply(p.take_actions());
    assert_eq!(wire.controls, [KEEP_ALIVE]);
}

/// Checks the pace on one session's frames, (time, size): over any stretch, the audio sent
/// before the last frame of the stretch is at most 1.25x the stretch's duration plus the
/// pace's credit.
fn assert_paced(frames: &[(u64, usize)]) {
    for i in 0..frames.len() {
        let mut bytes = 0u64;
        for j in i + 1..frames.len() {
            bytes += frames[j - 1].1 as u64;
            let elapsed = frames[j].0 - frames[i].0;
            assert!(
                bytes <= (elapsed + PACE_CREDIT_MS) * PACE_BYTES_PER_MS,
                "{bytes} bytes in {elapsed} ms (frames {i}..{j}): faster than 1.25x"
            );
        }
    }
}

#[test]
fn replay_is_paced_at_most_one_and_a_quarter_real_time_in_whole_frames() {
    let mut p = pipeline();
    let mut wire = Wire::default();
    p.on_twilio_text(START, 0);
    // 10 s of audio arrives before Deepgram answers.
    for n in 0..500 {
        p.on_twilio_text(&media(n), n as u64 * 20);
    }
    p.on_connected(10_000);
    let mut timed = Vec::new();
    let mut now = 10_000;
    loop {
        let before = wire.frames.len();
        wire.apply(p.take_actions());
        timed.extend(wire.frames[before..].iter().map(|len| (now, *len)));
        if wire.sessions[0].len() == 80_000 || now > 60_000 {
            break;
        }
        let deadline = p.next_deadline().expect("audio is waiting");
        assert!(deadline > now, "the next deadline is in the future ({deadline} <= {now})");
        now = deadline;
        p.on_tick(now);
    }
    assert!(wire.sessions[0] == caller_audio(0..500), "everything, in order");
    assert!(wire.frames.iter().all(|len| len % 320 == 0 && *len <= 2_000), "whole 40 ms frames, at most 250 ms: {:?}", wire.frames);
    assert_paced(&timed);
    // 80,000 bytes at 10 bytes a millisecond, the last frame going 1920 bytes' time early.
    assert!((17_000..18_100).contains(&now), "at the paced rate, not later: done at {now}");
}

#[test]
fn live_audio_that_arrives_early_after_a_late_frame_goes_at_once() {
    let mut p = pipeline();
    let mut wire = Wire::default();
    let mut timed = Vec::new();
    p.on_twilio_text(START, 0);
    p.on_connected(0);
    wire.apply(p.take_actions());
    // Two media messages make a 40 ms batch (320 bytes, 32 ms of pace). Every other batch
    // completes 12 ms late, so the next one follows it by 28 ms: sooner than the pace, and
    // still it goes when it completes.
    for n in 0..100u32 {
        let late = n % 4 == 1;
        let now = u64::from(n) * 20 + if late { 12 } else { 0 };
        p.on_twilio_text(&media(n), now);
        let before = wire.frames.len();
        wire.apply(p.take_actions());
        timed.extend(wire.frames[before..].iter().map(|len| (now, *len)));
        if n % 2 == 1 {
            assert_eq!(wire.frames.len(), before + 1, "batch {} went when it completed, at {now} ms", n / 2);
        }
    }
    assert!(wire.sessions[0] == caller_audio(0..100), "everything, in order");
    assert_paced(&timed);
}

#[test]
fn a_backlog_while_live_audio_keeps_arriving_goes_in_whole_frames_then_the_tail_at_the_end() {
    let mut p = pipeline();
    let mut wire = Wire::default();
    let mut timed = Vec::new();
    p.on_twilio_text(START, 0);
    // 3 s of audio while the handshake hangs, then the call goes on for 5 s more, live.
    for n in 0..150 {
        p.on_twilio_text(&media(n), u64::from(n) * 20);
    }
    p.on_connected(3_000);
    let mut next_media = 150u32;
    let mut now = 3_000u64;
    loop {
        let before = wire.frames.len();
        wire.apply(p.take_actions());
        timed.extend(wire.frames[before..].iter().map(|len| (now, *len)));
        if wire.controls.contains(&CLOSE_STREAM) || now > 60_000 {
            break;
        }
        let media_due = if next_media < 400 { u64::from(next_media) * 20 } else { u64::MAX };
        now = p.next_deadline().unwrap_or(u64::MAX).min(media_due).max(now + 1);
        if now >= media_due {
            p.on_twilio_text(&media(next_media), now);
            next_media += 1;
            if next_media == 400 {
                // 8 s of audio in all, plus an odd 100 bytes, then `stop`.
                let odd = base64::engine::general_purpose::STANDARD.encode([7u8; 100]);
                p.on_twilio_text(&format!(r#"{{"event":"media","media":{{"payload":"{odd}"}}}}"#), now);
                p.on_twilio_text(STOP, now);
            }
        }
        p.on_tick(now);
    }
    let sizes: Vec<usize> = timed.iter().map(|(_, len)| *len).collect();
    let (tail, whole) = sizes.split_last().expect("frames were sent");
    assert!(whole.iter().all(|len| len % 320 == 0 && *len >= 320), "whole frames until the tail: {sizes:?}");
    assert!(*tail > 0 && *tail <= 320, "only the very last frame is partial: {tail}");
    assert_eq!(sizes.iter().sum::<usize>(), 400 * 160 + 100, "every byte");
    assert_paced(&timed);
}

#[test]
fn bad_twilio_input_is_recorded_not_fatal() {
    let mut p = pipeline();
    let mut wire = Wire::default();
    p.on_twilio_text("{not json", 0);
    p.on_twilio_text(r#"{"event":"party"}"#, 0);
    p.on_twilio_text(r#"{"event":"media","media":{"payload":"%%%"}}"#, 0);
    p.on_twilio_binary(12);
    p.on_twilio_text(r#"{"event":"dtmf","dtmf":{"digit":"5"}}"#, 0);
    wire.apply(p.take_actions());
    for name in ["twilio.malformed", "twilio.unknown-event", "twilio.bad-payload", "twilio.unexpected-binary"] {
        assert!(wire.mark(name).is_some(), "{name}");
    }
    assert_eq!(wire.attr("twilio.dtmf", "digit").as_deref(), Some("5"));
    assert!(!wire.finished);
}

#[test]
fn a_caller_hanging_up_without_stop_still_drains() {
    let mut p = pipeline();
    let mut wire = Wire::default();
    p.on_twilio_text(START, 0);
    p.on_connected(0);
    for n in 0..3 {
        p.on_twilio_text(&media(n), n as u64 * 20);
    }
    p.on_twilio_closed(1006, "gone", 100);
    wire.apply(p.take_actions());
    assert_eq!(wire.sessions[0], caller_audio(0..3), "the odd last 20 ms is flushed");
    assert_eq!(wire.controls, [FINALIZE, CLOSE_STREAM]);
    // Deepgram never closes: the final wait is bounded.
    let deadline = p.next_deadline().expect("final wait");
    assert_eq!(deadline, 100 + Settings::default().final_wait_ms);
    p.on_tick(deadline);
    wire.apply(p.take_actions());
    assert!(wire.closed_by_us);
    assert!(wire.finished);
    assert!(wire.mark("deepgram.final-timeout").is_some());
}

#[test]
fn a_replay_buffer_overflow_is_counted_exactly() {
    let settings = Settings { replay_buffer_ms: 1_000, ..Settings::default() };
    let mut p = Pipeline::new(settings, 1);
    let mut wire = Wire::default();
    p.on_twilio_text(START, 0);
    p.on_connect_failed(ConnectFailure::Failed { cause: "connection-refused".into(), detail: String::new() }, 0);
    // 2 s arrive while nothing is connected; the buffer holds 1 s.
    for n in 0..100 {
        p.on_twilio_text(&media(n), n as u64 * 20);
    }
    let due = p.next_deadline().expect("reconnect due");
    p.on_tick(due.max(2_000));
    p.on_connected(2_100);
    p.on_twilio_text(STOP, 2_200);
    let done = settle(&mut p, &mut wire, 2_200, 4_000);
    p.on_deepgram_closed(1000, "", done + 100);
    wire.apply(p.take_actions());
    let overflowed: u64 = wire
        .marks
        .iter()
        .filter(|(n, _)| n == "audio.overflow")
        .map(|(_, a)| a.iter().find(|(k, _)| k == "bytes").map_or(0, |(_, v)| v.parse::<u64>().unwrap_or(0)))
        .sum();
    assert_eq!(overflowed, 8_000);
    assert_eq!(wire.sessions.last().expect("session"), &caller_audio(50..100));
}

// Found by the `pipeline_events` fuzz target: after a tick, no deadline may lie in the past
// (the glue would wake at once, again and again).
#[test]
fn deadlines_never_lie_in_the_past_after_a_tick() {
    // Events after the pipeline finished are ignored.
    let mut p = pipeline();
    p.on_twilio_text(STOP, 1_722);
    assert!(p.finished());
    p.on_deepgram_closed(1002, "", 5_194);
    p.on_tick(5_194);
    assert_eq!(p.next_deadline(), None);

    // While draining, the draining deadline rules, not the end-of-call one.
    let mut p = pipeline();
    p.on_twilio_text(&media(0), 70);
    p.on_twilio_text(STOP, 1_855);
    p.on_connected(3_640);
    p.on_tick(7_042);
    let deadline = p.next_deadline().expect("the draining deadline");
    assert!(deadline >= 7_042, "{deadline}");
}

#[test]
fn speech_before_the_final_transcript_is_reported_as_heard() {
    let mut p = Pipeline::new(Settings::default(), 1);
    let mut wire = Wire::default();
    p.on_twilio_text(START, 0);
    p.on_connected(10);
    for n in 0..10 {
        p.on_twilio_text(&media(n), 20 * u64::from(n));
    }
    p.on_deepgram_text(r#"{"type":"SpeechStarted","channel":[0,1],"timestamp":0.12}"#, 200);
    p.on_deepgram_text(
        r#"{"type":"Results","start":0,"duration":0.1,"is_final":false,"channel":{"alternatives":[{"transcript":"","confidence":0}]}}"#,
        210,
    );
    p.on_deepgram_text(r#"{"type":"Results","start":0,"duration":0.2,"is_final":false,"channel":{"alternatives":[{"transcript":"wait a","confidence":0.5}]}}"#, 220);
    wire.apply(p.take_actions());
    assert_eq!(wire.heard, vec![Heard::SpeechStarted { at: 0.12 }, Heard::Interim { text: "wait a".into(), words: 2 }]);
    assert_eq!(p.call().call_sid, "CA1");
    // A voice agent hanging up ends the pipeline as `stop` does.
    p.end(300);
    p.on_tick(300);
    wire.apply(p.take_actions());
    assert!(wire.controls.ends_with(&[FINALIZE, CLOSE_STREAM]), "{:?}", wire.controls);
}

#[test]
fn flux_turns_are_utterances_and_its_close_after_close_stream_is_expected() {
    let settings =
        Settings::from_lookup(|key| (key == "deepgram_url").then(|| "wss://api.deepgram.com/v2/listen".to_owned())).expect("flux");
    let mut p = Pipeline::new(settings, 1);
    let mut wire = Wire::default();
    p.on_twilio_text(START, 0);
    p.on_connected(10);
    p.on_deepgram_text(r#"{"type":"Connected","request_id":"r1","sequence_id":0}"#, 10);
    for n in 0..100 {
        p.on_twilio_text(&media(n), 20 * u64::from(n));
        p.on_tick(20 * u64::from(n));
    }
    let turn = |event: &str, start: f64, end: f64, text: &str| {
        format!(
            r#"{{"type":"TurnInfo","event":"{event}","turn_index":0,"audio_window_start":{start},"audio_window_end":{end},"transcript":"{text}","words":[],"end_of_turn_confidence":0.9}}"#
        )
    };
    p.on_deepgram_text(&turn("StartOfTurn", 0.5, 0.6, ""), 700);
    p.on_deepgram_text(&turn("Update", 0.5, 1.0, "hello"), 1_100);
    p.on_deepgram_text(&turn("EndOfTurn", 0.5, 2.0, "hello there"), 2_100);
    wire.apply(p.take_actions());
    assert_eq!(wire.heard, vec![Heard::SpeechStarted { at: 0.5 }, Heard::Interim { text: "hello".into(), words: 1 }]);
    assert_eq!(wire.transcript, vec!["hello there".to_owned()]);
    let events: Vec<String> = wire
        .marks
        .iter()
        .filter(|(name, _)| name == "deepgram.turn")
        .filter_map(|(_, attributes)| attributes.iter().find(|(key, _)| key == "event").map(|(_, value)| value.clone()))
        .collect();
    assert_eq!(events, ["StartOfTurn", "EndOfTurn"]);
    // 10 s without audio: Flux has no KeepAlive, and the deadline is not a busy loop.
    p.on_tick(12_000);
    wire.apply(p.take_actions());
    assert!(!wire.controls.contains(&KEEP_ALIVE), "{:?}", wire.controls);
    assert!(p.next_deadline().is_none_or(|deadline| deadline >= 12_000));
    // The end: CloseStream without Finalize; Flux's close without a status is clean.
    p.on_twilio_text(STOP, 12_000);
    p.on_tick(12_000);
    wire.apply(p.take_actions());
    assert_eq!(wire.controls, vec![CLOSE_STREAM]);
    p.on_deepgram_text(&turn("Update", 2.0, 2.0, ""), 12_010);
    p.on_deepgram_closed(1005, "", 12_020);
    wire.apply(p.take_actions());
    assert!(wire.finished);
    assert!(wire.faults.is_empty(), "{:?}", wire.faults);
    assert_eq!(wire.attr("pipeline.summary", "clean").as_deref(), Some("true"));
}
