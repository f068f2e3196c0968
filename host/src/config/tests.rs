//! Unit tests for configuration parsing and validation.

use std::path::Path;

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    let lookup = |name: &str| match name {
        "DG_KEY" => Some("k-123".to_owned()),
        "OPS" => Some("an-operator-token-0123".to_owned()),
        "SHORT" => Some("short".to_owned()),
        "TW" => Some("twilio-auth-token".to_owned()),
        _ => None,
    };
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
    let deepgram = crate::policy::egress::parse_target("wss://api.deepgram.com/v1/listen").expect("url").1;
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

/// A route on a public address, with `route` keys added to it, and `rest` after.
fn public(route: &str, rest: &str) -> String {
    format!(
        "listen = \"0.0.0.0:8080\"\n{rest}\n[[routes]]\npath = \"/call\"\ncomponent = \"p\"\n{route}\n[components.p]\nbuiltin = \"voice-pipeline\"\n"
    )
}

#[test]
fn the_operator_listener_defaults_to_loopback_apart_from_the_public_port() {
    let config = parse(MINIMAL).expect("minimal config validates");
    assert_eq!(config.operator.listen.to_string(), DEFAULT_OPERATOR_LISTEN);
    assert!(config.operator.read_token.is_none() && config.operator.admin_token.is_none());
    let message = error(&format!("admin_token_env = \"ADMIN\"\n{MINIMAL}"));
    assert!(message.contains("`admin_token_env`") && message.contains("under `[operator]`"), "{message}");
    let message = error(&format!("listen = \"127.0.0.1:7000\"\n[operator]\nlisten = \"127.0.0.1:7000\"\n{MINIMAL}"));
    assert!(message.contains("operator.listen") && message.contains("port of its own"), "{message}");
}

#[test]
fn a_public_operator_listener_needs_a_read_token() {
    let open = format!("[operator]\nlisten = \"0.0.0.0:9090\"\n{MINIMAL}");
    let message = error(&open);
    assert!(message.contains("operator.token_env") && message.contains("not a loopback address"), "{message}");
    let unset = format!("[operator]\nlisten = \"0.0.0.0:9090\"\ntoken_env = \"UNSET\"\n{MINIMAL}");
    assert!(error(&unset).contains("`UNSET`"), "the message names the variable to set");
    let short = format!("[operator]\nlisten = \"[::]:9090\"\ntoken_env = \"SHORT\"\n{MINIMAL}");
    assert!(error(&short).contains("shorter than 16 characters"));
    let tokened = format!("[operator]\nlisten = \"0.0.0.0:9090\"\ntoken_env = \"OPS\"\nadmin_token_env = \"OPS\"\n{MINIMAL}");
    let config = parse(&tokened).expect("a token makes it acceptable");
    assert!(config.operator.read_token.is_some() && config.operator.admin_token.is_some());
    assert!(!format!("{config:?}").contains("an-operator-token"), "tokens never show in Debug output");
}

#[test]
fn a_public_route_needs_signatures_or_says_it_accepts_unsigned_upgrades() {
    let message = error(&public("", ""));
    assert!(message.contains("routes[0].twilio_auth_token_env"), "{message}");
    assert!(message.contains("allow_unsigned = true"), "the fix is named: {message}");
    parse(&public("twilio_auth_token_env = \"TW\"", "")).expect("signed");
    let config = parse(&public("allow_unsigned = true", "")).expect("explicitly unsigned");
    assert!(config.routes[0].allow_unsigned);
    // Loopback needs neither.
    parse(MINIMAL).expect("loopback");
    // An override is validated like the file.
    let overridden = Config::parse_with(
        MINIMAL,
        "test.toml",
        Path::new("/"),
        &|_| None,
        Overrides { listen: Some("0.0.0.0:1".parse().expect("addr")), operator_listen: None },
    );
    assert!(overridden.expect_err("override on a public address").to_string().contains("twilio_auth_token_env"));
}

#[test]
fn caller_deadlines_default_for_twilio_and_are_range_checked() {
    let config = parse(MINIMAL).expect("minimal config validates");
    assert_eq!(config.routes[0].deadlines, CallerDeadlines::default());
    let config = parse("[[routes]]\npath = \"/x\"\ncomponent = \"p\"\nfirst_message_timeout_ms = 2000\nidle_timeout_ms = 9000\nmax_call_ms = 60000\n[components.p]\nbuiltin = \"voice-pipeline\"\n").expect("deadlines");
    assert_eq!(config.routes[0].deadlines.first_message, std::time::Duration::from_secs(2));
    assert_eq!(config.routes[0].deadlines.max_call, std::time::Duration::from_secs(60));
    let message =
        error("[[routes]]\npath = \"/x\"\ncomponent = \"p\"\nidle_timeout_ms = 5\n[components.p]\nbuiltin = \"voice-pipeline\"\n");
    assert!(message.contains("routes[0].idle_timeout_ms") && message.contains("expected 100 to"), "{message}");
    let message = error(&format!("{MINIMAL}\n[components.p.limits]\nlog_bytes_per_second = 0\n"));
    assert!(message.contains("components.p.limits.log_bytes_per_second"), "{message}");
}

#[test]
fn a_file_value_round_trips_through_toml() {
    let file = FileConfig::parse(
        &public("allow_unsigned = true", "[operator]\nlisten = \"127.0.0.1:9\"\n[tls]\ncert = \"c.pem\"\nkey = \"k.pem\""),
        "test",
    )
    .expect("parses");
    let again = FileConfig::parse(&file.to_toml(), "again").expect("its own TOML parses");
    assert_eq!(format!("{file:?}"), format!("{again:?}"));
}

#[test]
fn tools_find_the_operator_listener_without_the_server_s_secrets() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("server.toml");
    let text = "data_dir = \"data\"\n[operator]\nlisten = \"0.0.0.0:9443\"\ntoken_env = \"NOT_SET_IN_THIS_SHELL\"\n[operator.tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n[[routes]]\npath = \"/x\"\ncomponent = \"p\"\ntwilio_auth_token_env = \"ALSO_NOT_SET\"\n[components.p]\nbuiltin = \"voice-pipeline\"\n[[components.p.secret_headers]]\nhost = \"a\"\nname = \"b\"\nvalue = \"${NOR_THIS}\"\n";
    std::fs::write(&path, text).expect("write");
    let address = OperatorAddress::load(Some(&path)).expect("no secret is needed");
    assert_eq!(address.url(), "https://127.0.0.1:9443");
    assert_eq!(address.data_dir, Some(dir.path().join("data")));
    std::fs::write(&path, "[bad").expect("write");
    assert!(OperatorAddress::load(Some(&path)).is_err(), "a broken file is still refused");
}

#[test]
fn the_perf_map_is_off_unless_its_variable_says_1() {
    let parse_with = |value: &str| {
        let value = value.to_owned();
        let lookup = move |name: &str| match name {
            PERF_MAP_ENV => Some(value.clone()),
            "DG_KEY" => Some("k-123".to_owned()),
            _ => None,
        };
        Config::parse(MINIMAL, "test.toml", Path::new("/nonexistent-base"), &lookup)
    };
    assert!(!parse(MINIMAL).expect("valid").perf_map);
    assert!(!parse_with("0").expect("valid").perf_map);
    assert!(parse_with("1").expect("valid").perf_map);
    let refused = parse_with("yes").expect_err("only 0 and 1").to_string();
    assert!(refused.contains(PERF_MAP_ENV) && refused.contains("\"yes\""), "{refused}");
}
