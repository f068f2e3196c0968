//! The `switchboard` binary: configuration errors are reported before any port is bound,
//! and `check` names what is wrong.

use std::process::Command;

fn switchboard(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the switchboard binary runs")
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("temp file");
    path.display().to_string()
}

#[test]
fn check_accepts_the_builtin_defaults() {
    let output = switchboard(&["check"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.contains("component `voice-pipeline`: ok"), "{stdout}");
}

#[test]
fn serve_refuses_an_unknown_key_before_listening() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The port is held by this test: if serve bound before validating, it would report
    // "address in use" instead of the bad key.
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let config = write(
        &dir,
        "bad.toml",
        &format!(
            "listen = \"{}\"\n[[routes]]\npath = \"/x\"\ncomponent = \"c\"\n[components.c]\nbuiltin = \"voice-pipeline\"\nmemory_mb = 5\n",
            held.local_addr().expect("addr")
        ),
    );
    let output = switchboard(&["serve", "--config", &config]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("unknown field `memory_mb`"), "{stderr}");
    assert!(stderr.contains("bad.toml"), "the file is named: {stderr}");
    assert!(!stderr.contains("in use"), "{stderr}");
}

#[test]
fn check_names_a_bad_value_and_its_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write(
        &dir,
        "limits.toml",
        "[[routes]]\npath = \"/x\"\ncomponent = \"c\"\n[components.c]\nbuiltin = \"voice-pipeline\"\nallow_outbound = [\"https://api.deepgram.com\"]\n",
    );
    let output = switchboard(&["check", "--config", &config]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("components.c.allow_outbound"), "{stderr}");
    assert!(stderr.contains("not a WebSocket scheme"), "{stderr}");
}

#[test]
fn check_reports_a_component_file_that_is_not_a_component() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(&dir, "junk.wasm", "not wasm at all");
    let config = write(&dir, "junk.toml", "[[routes]]\npath = \"/x\"\ncomponent = \"c\"\n[components.c]\nwasm = \"junk.wasm\"\n");
    let output = switchboard(&["check", "--config", &config]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("component `c`: not a valid WebAssembly component"), "{stderr}");
}

#[test]
fn the_demo_runs_a_whole_call_offline_and_loses_nothing() {
    let output = switchboard(&["demo", "--speed", "8", "--drop-deepgram-after", "1"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    for expected in [
        "does no speech recognition",
        "twilio.start",
        "outbound.open",
        "deepgram.reconnect",
        "deepgram.replay",
        "utterance",
        "exactly the caller's audio",
        "Deepgram sessions       2",
        "lost (pipeline's count) 0 bytes",
        "call closed with        1000",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?} in:\n{stdout}");
    }
}
