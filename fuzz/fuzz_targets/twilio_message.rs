//! Any text as a Twilio Media Streams message: a typed result, never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|text: &str| {
    let _ = voice_pipeline::twilio::parse(text);
});
