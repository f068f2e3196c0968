//! Any sequence of events into the voice pipeline: no panic, and after a tick (the glue
//! ticks on every wake-up) the next deadline is never in the past, so the glue never spins.
#![no_main]
use voice_pipeline::pipeline::{ConnectFailure, Pipeline};
use voice_pipeline::settings::Settings;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut pipeline = Pipeline::new(Settings { replay_buffer_ms: 1_000, ..Settings::default() }, 1);
    let mut now = 0u64;
    for chunk in data.chunks(3) {
        let (kind, arg) = (chunk[0], chunk.get(1).copied().unwrap_or(0));
        now += u64::from(chunk.get(2).copied().unwrap_or(1)) * 7;
        match kind % 9 {
            0 => pipeline.on_twilio_text(r#"{"event":"start","start":{"callSid":"CA1","streamSid":"MZ1","mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}"#, now),
            1 => pipeline.on_twilio_text(&format!(r#"{{"event":"media","media":{{"payload":"{}"}}}}"#, "AAAA".repeat(usize::from(arg) % 60)), now),
            2 => pipeline.on_twilio_text(r#"{"event":"stop"}"#, now),
            3 => pipeline.on_connected(now),
            4 => pipeline.on_connect_failed(ConnectFailure::Failed { cause: "connect-timeout".into(), detail: String::new() }, now),
            5 => pipeline.on_connect_failed(ConnectFailure::Rejected { status: 400 + u16::from(arg % 200), dg_error: None, body: String::new() }, now),
            6 => pipeline.on_deepgram_text(&format!(r#"{{"type":"Results","start":{},"duration":{},"is_final":{},"speech_final":{},"channel":{{"alternatives":[{{"transcript":"x","confidence":1}}]}}}}"#, arg / 10, f64::from(arg % 10) / 3.0, arg % 2 == 0, arg % 3 == 0), now),
            7 => pipeline.on_deepgram_closed(1000 + u16::from(arg % 16), "", now),
            _ => pipeline.on_tick(now),
        }
        pipeline.on_tick(now);
        let _ = pipeline.take_actions();
        if let Some(deadline) = pipeline.next_deadline() {
            assert!(deadline >= now, "a deadline in the past after a tick: {deadline} at {now}");
        }
    }
});
