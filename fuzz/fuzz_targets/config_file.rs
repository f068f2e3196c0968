//! Any text as a host configuration file: a typed error or a config, never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|text: &str| {
    let _ = switchboard::Config::parse(text, "fuzz.toml", std::path::Path::new("/nonexistent"), &|_| Some("value".to_owned()));
});
