//! Any text as a Deepgram server message: a typed result, never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|text: &str| {
    let _ = voice_pipeline::deepgram::parse(text);
});
