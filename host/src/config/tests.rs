//! Unit tests for configuration parsing and validation.

use std::path::Path;

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    let lookup = |name: &str| (name == "DG_KEY").then(|| "k-123".to_owned());
    Config::parse(text, "test.toml", Path::new("/nonexistent-base"), &lookup)
}

fn error(text: &str) -> String {
    parse(text).expect_err("config must be refused").to_string()
}

const MINIMAL: &str = r#"
[[routes]]
path = "/call"
component = "p"

[components.p]
builtin = "voice-pipeline"
"#;

#[test]
fn builtin_defaults_are_valid() {
    let config = Config::builtin().expect("built-in defaults validate");
    assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
    assert_eq!(config.routes[0].path, DEFAULT_ROUTE);
    let component = &config.components["voice-pipeline"];
    assert_eq!(component.source, ComponentSource::Builtin(Builtin::VoicePipeline));
    let deepgram = crate::egress::parse_target("wss://api.deepgram.com/v1/listen").expect("url").1;
    assert!(component.egress.allows(&deepgram));
}

#[test]
fn minimal_file_gets_defaults() {
    let config = parse(MINIMAL).expect("minimal config validates");
    assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
    assert_eq!(config.max_concurrent_calls, 1_000);
    assert_eq!(config.components["p"].limits, Limits::default());
}

#[test]
fn unknown_keys_are_refused_with_their_name() {
    let message = error(&format!("lisen = \"0.0.0.0:1\"\n{MINIMAL}"));
    assert!(message.contains("unknown field `lisen`"), "{message}");
    assert!(message.contains("test.toml"), "{message}");
    let message = error(&format!("{MINIMAL}\n[components.p.limits]\nmemory = 3\n"));
    assert!(message.contains("unknown field `memory`"), "{message}");
    assert!(message.contains("memory_mb"), "the message lists the expected keys: {message}");
}

#[test]
fn wrong_types_are_refused() {
    let message = error(&format!("listen = \"not an address\"\n{MINIMAL}"));
    assert!(message.contains("listen"), "{message}");
    let message = error(&format!("{MINIMAL}\nsettings = {{ model = 3 }}\n"));
    assert!(message.contains("string"), "{message}");
}

#[test]
fn limits_are_range_checked() {
    let message = error(&format!("{MINIMAL}\n[components.p.limits]\nmemory_mb = 0\n"));
    assert!(message.contains("components.p.limits.memory_mb"), "{message}");
    assert!(message.contains("expected 1 to 4096"), "{message}");
}

#[test]
fn routes_must_point_at_known_components() {
    let message = error("[[routes]]\npath = \"/x\"\ncomponent = \"missing\"\n[components.p]\nbuiltin = \"voice-pipeline\"\n");
    assert!(message.contains("routes[0].component"), "{message}");
    assert!(message.contains("\"missing\""), "{message}");
    let message = error("[[routes]]\npath = \"/healthz\"\ncomponent = \"p\"\n[components.p]\nbuiltin = \"voice-pipeline\"\n");
    assert!(message.contains("served by the host"), "{message}");
    let message = error("[components.p]\nbuiltin = \"voice-pipeline\"\n");
    assert!(message.contains("at least one route"), "{message}");
}

#[test]
fn component_source_must_be_exactly_one() {
    let message = error("[[routes]]\npath = \"/x\"\ncomponent = \"p\"\n[components.p]\n");
    assert!(message.contains("exactly one of"), "{message}");
    let message = error("[[routes]]\npath = \"/x\"\ncomponent = \"p\"\n[components.p]\nwasm = \"missing.wasm\"\n");
    assert!(message.contains("components.p.wasm"), "{message}");
    assert!(message.contains("does not exist"), "{message}");
}

#[test]
fn bad_egress_rules_are_refused() {
    let message = error(&format!("{MINIMAL}allow_outbound = [\"api.deepgram.com\"]\n"));
    assert!(message.contains("components.p.allow_outbound"), "{message}");
    assert!(message.contains("does not contain a scheme"), "{message}");
}

#[test]
fn secret_headers_come_from_the_environment() {
    let with_header = |var: &str, optional: bool| {
        format!(
            "{MINIMAL}\n[[components.p.secret_headers]]\nhost = \"API.deepgram.com\"\nname = \"Authorization\"\nvalue = \"Token ${{{var}}}\"\noptional = {optional}\n"
        )
    };
    let config = parse(&with_header("DG_KEY", false)).expect("set variable validates");
    let headers = &config.components["p"].secret_headers;
    let header = headers.for_host("api.deepgram.com").next().expect("header for the host");
    assert_eq!(header.value.header_value(), "Token k-123");
    assert!(!format!("{config:?}").contains("k-123"), "Debug output must not show secrets");

    let message = error(&with_header("UNSET_VAR", false));
    assert!(message.contains("secret_headers[0].value"), "{message}");
    assert!(message.contains("UNSET_VAR"), "{message}");

    let config = parse(&with_header("UNSET_VAR", true)).expect("optional header may be missing");
    assert!(config.components["p"].secret_headers.is_empty());
}

#[test]
fn credentials_are_never_forwarded() {
    let message = error(
        "[[routes]]\npath = \"/x\"\ncomponent = \"p\"\nforward_headers = [\"Authorization\"]\n[components.p]\nbuiltin = \"voice-pipeline\"\n",
    );
    assert!(message.contains("never forwarded"), "{message}");
}
