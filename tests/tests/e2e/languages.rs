//! The same calls with components written in Rust, TypeScript and Python: the SDKs'
//! echo and relay examples pass what the Rust guests pass, and guests in the interpreted
//! languages are held to the same sandbox (CPU budget, memory limit, no secrets).

use std::time::Duration;

use switchboard_harness::{ComponentSpec, FakeServer, TestCa, TestClient, TestHost, guests};
use tokio_tungstenite::tungstenite::Message;

use crate::init_tracing;
use crate::sandbox::echo_round_trips;

/// The language a component was written in, and its echo and relay builds.
#[derive(Debug, Clone, Copy)]
enum Language {
    Rust,
    TypeScript,
    Python,
}

impl Language {
    fn echo(self) -> &'static str {
        match self {
            Language::Rust => guests::ECHO,
            Language::TypeScript => guests::TS_ECHO,
            Language::Python => guests::PY_ECHO,
        }
    }

    fn relay(self) -> &'static str {
        match self {
            Language::Rust => guests::RELAY,
            Language::TypeScript => guests::TS_RELAY,
            Language::Python => guests::PY_RELAY,
        }
    }
}

async fn start(route: &str, spec: ComponentSpec) -> anyhow::Result<TestHost> {
    init_tracing();
    TestHost::builder().env("UPSTREAM_KEY", "sk-test-123").share_compiled().route(route, spec).start().await
}

async fn echoes_and_closes_1000_on_return(language: Language) -> anyhow::Result<()> {
    let host = start("/echo", ComponentSpec::new("echo", language.echo())).await?;
    let mut caller = TestClient::connect(&host.url("/echo")).await?;
    caller.send_text("héllo").await?;
    assert_eq!(caller.next_text().await?, "héllo");
    caller.send_binary(vec![0, 1, 2, 255]).await?;
    assert_eq!(caller.next_data().await?, Message::binary(vec![0, 1, 2, 255]));
    // `bye` makes the guest return without closing: the host closes cleanly.
    caller.send_text("bye").await?;
    assert_eq!(caller.expect_close().await?.code, 1000);
    let started = host.marker("echo.started", |_| true).await?;
    assert_eq!(started.shown("path").as_deref(), Some("/echo"), "{started:?}");
    host.marker("call.closed", |_| true).await?;
    assert!(host.timeline().find(|m| m.name == "guest.trap").is_empty(), "no trap");
    Ok(())
}

async fn echo_sees_the_caller_close(language: Language) -> anyhow::Result<()> {
    let host = start("/echo", ComponentSpec::new("echo", language.echo())).await?;
    let mut caller = TestClient::connect(&host.url("/echo")).await?;
    caller.send_text("one").await?;
    assert_eq!(caller.next_text().await?, "one");
    caller.close(1000, "done").await?;
    assert_eq!(caller.expect_close().await?.code, 1000);
    let closed = host.marker("echo.peer-closed", |_| true).await?;
    assert_eq!(closed.shown("code").as_deref(), Some("1000"), "{closed:?}");
    Ok(())
}

async fn relays_over_wss_with_an_injected_secret(language: Language) -> anyhow::Result<()> {
    let ca = TestCa::new()?;
    let upstream = FakeServer::echo().tls(&ca).expect_token("sk-test-123").select_protocol("stt").start().await?;
    let spec = ComponentSpec::new("relay", language.relay())
        .allow(&upstream.origin())
        .setting("target", &upstream.url("/v1/listen?model=nova-3"))
        .trust(&ca)
        .setting("subprotocols", "stt")
        .setting("header.x-guest", "hello")
        .secret_header("localhost", "Authorization", "Token ${UPSTREAM_KEY}");
    let host = start("/relay", spec).await?;

    let mut caller = TestClient::connect(&host.url("/relay")).await?;
    caller.send_text("to upstream").await?;
    assert_eq!(caller.next_text().await?, "to upstream");
    caller.send_binary(vec![0xff; 160]).await?;
    assert_eq!(caller.next_data().await?, Message::binary(vec![0xff; 160]));

    let handshake = upstream.wait_for_handshake().await?;
    assert_eq!(handshake.path, "/v1/listen");
    assert_eq!(handshake.query.as_deref(), Some("model=nova-3"));
    assert_eq!(handshake.header("authorization"), Some("Token sk-test-123"));
    assert_eq!(handshake.header("x-guest"), Some("hello"));
    assert_eq!(handshake.header("sec-websocket-protocol"), Some("stt"));
    let connected = host.marker("relay.connected", |_| true).await?;
    assert_eq!(connected.shown("protocol").as_deref(), Some("stt"));
    // Nothing the guest recorded carries the secret.
    let leaked = host.timeline().find(|m| format!("{m:?}").contains("sk-test-123"));
    assert!(leaked.is_empty(), "the secret reached the timeline: {leaked:?}");

    // Closing the caller closes the upstream leg with the same code.
    caller.close(1000, "bye").await?;
    assert_eq!(caller.expect_close().await?.code, 1000);
    let closed = host.marker("outbound.closed", |_| true).await?;
    assert_eq!(closed.shown("code").as_deref(), Some("1000"));
    upstream.wait_until("the upstream saw the close", |server| server.closes().contains(&1000)).await?;
    Ok(())
}

async fn a_denied_target_is_refused_before_the_network(language: Language) -> anyhow::Result<()> {
    let upstream = FakeServer::echo().start().await?;
    // Allowed: another port only.
    let spec = ComponentSpec::new("relay", language.relay()).allow("wss://localhost:1").setting("target", &upstream.url("/"));
    let host = start("/relay", spec).await?;
    let mut caller = TestClient::connect(&host.url("/relay")).await?;
    let report = caller.next_text().await?;
    assert!(report.starts_with("connect-failed: "), "{report}");
    assert!(report.to_lowercase().contains("denied"), "{report}");
    assert_eq!(caller.expect_close().await?.code, 1011);
    assert_eq!(upstream.connections(), 0, "nothing reached the network");
    let denied = host.marker("outbound.denied", |_| true).await?;
    assert_eq!(denied.shown("cause").as_deref(), Some("not-allowed"));
    Ok(())
}

/// One test per language for each scenario above.
macro_rules! in_every_language {
    ($($scenario:ident),* $(,)?) => {
        mod rust {
            $(#[tokio::test] async fn $scenario() -> anyhow::Result<()> { super::$scenario(super::Language::Rust).await })*
        }
        mod typescript {
            $(#[tokio::test] async fn $scenario() -> anyhow::Result<()> { super::$scenario(super::Language::TypeScript).await })*
        }
        mod python {
            $(#[tokio::test] async fn $scenario() -> anyhow::Result<()> { super::$scenario(super::Language::Python).await })*
        }
    };
}

in_every_language!(
    echoes_and_closes_1000_on_return,
    echo_sees_the_caller_close,
    relays_over_wss_with_an_injected_secret,
    a_denied_target_is_refused_before_the_network,
);

/// A host with the Rust echo guest on `/echo` and `spec` on `/hostile`.
async fn beside_an_echo(spec: ComponentSpec) -> anyhow::Result<TestHost> {
    init_tracing();
    TestHost::builder()
        .env("SECRET_TOKEN", "do-not-leak-42")
        .share_compiled()
        .route("/echo", ComponentSpec::new("echo", guests::ECHO))
        .route("/hostile", spec)
        .start()
        .await
}

/// A guest in `wasm` that spins is stopped by its CPU budget while an echo call flows.
async fn a_loop_is_stopped_by_the_cpu_budget(wasm: &str) -> anyhow::Result<()> {
    let host = beside_an_echo(ComponentSpec::new("hostile", wasm).setting("mode", "loop").limit("cpu_burst_ms", 500)).await?;
    let mut looper = TestClient::connect(&host.url("/hostile")).await?;
    // The guest is spinning from its first marker on; echoes go on meanwhile.
    host.marker("hostile.mode", |_| true).await?;
    let trips = echo_round_trips(&host, Duration::from_millis(300)).await?;
    assert!(trips > 0, "an echo call got no round trip while the guest spun");
    assert!(host.timeline().find(|m| m.name == "guest.trap").is_empty(), "the echoes ran while the guest was still spinning");
    assert_eq!(looper.expect_close().await?.code, 1011);
    let trap = host.marker("guest.trap", |_| true).await?;
    assert_eq!(trap.shown("cause").as_deref(), Some("cpu-budget"), "{trap:?}");
    assert!(echo_round_trips(&host, Duration::from_millis(50)).await? > 0, "the host still serves");
    Ok(())
}

#[tokio::test]
async fn a_typescript_loop_is_stopped_by_the_cpu_budget() -> anyhow::Result<()> {
    a_loop_is_stopped_by_the_cpu_budget(guests::TS_HOSTILE).await
}

#[tokio::test]
async fn a_python_loop_is_stopped_by_the_cpu_budget() -> anyhow::Result<()> {
    a_loop_is_stopped_by_the_cpu_budget(guests::PY_HOSTILE).await
}

#[tokio::test]
async fn a_typescript_allocation_without_end_hits_the_memory_limit() -> anyhow::Result<()> {
    let spec = ComponentSpec::new("hostile", guests::TS_HOSTILE).setting("mode", "memory-bomb").limit("memory_mb", 96);
    let host = beside_an_echo(spec).await?;
    let mut echo = TestClient::connect(&host.url("/echo")).await?;
    let mut bomb = TestClient::connect(&host.url("/hostile")).await?;
    // The other call flows while the bomb grows and after it is stopped.
    host.marker("hostile.mode", |_| true).await?;
    echo.send_text("before").await?;
    assert_eq!(echo.next_text().await?, "before");
    assert_eq!(bomb.expect_close().await?.code, 1011);
    let trap = host.marker("guest.trap", |_| true).await?;
    assert_eq!(trap.shown("cause").as_deref(), Some("memory-limit"), "{trap:?}");
    echo.send_text("after").await?;
    assert_eq!(echo.next_text().await?, "after");
    Ok(())
}

/// What a snooping guest in `wasm` reports, with a secret injected for its `target`.
async fn snoop(wasm: &str) -> anyhow::Result<(serde_json::Value, switchboard_harness::RunningServer)> {
    let upstream = FakeServer::echo().expect_token("do-not-leak-42").start().await?;
    let spec = ComponentSpec::new("hostile", wasm)
        .setting("mode", "snoop")
        .allow(&upstream.origin())
        .setting("target", &upstream.url("/"))
        .setting("innocent", "value")
        .secret_header("localhost", "Authorization", "Token ${SECRET_TOKEN}");
    let host = beside_an_echo(spec).await?;
    let mut caller = TestClient::connect(&host.url("/hostile")).await?;
    caller.send_text("connected").await?;
    let report = caller.next_text().await?;
    assert!(!report.contains("do-not-leak-42"), "secret leaked: {report}");
    // The secret did its job on the wire, replacing the guest's own header.
    let handshake = upstream.wait_for_handshake().await?;
    assert_eq!(handshake.header("authorization"), Some("Token do-not-leak-42"));
    assert_eq!(upstream.connections(), 1, "only the policy-checked connect reached the server");
    Ok((serde_json::from_str(&report)?, upstream))
}

#[tokio::test]
async fn a_typescript_guest_cannot_observe_an_injected_secret() -> anyhow::Result<()> {
    let (report, _upstream) = snoop(guests::TS_HOSTILE).await?;
    assert!(report["connect"].as_str().unwrap_or_default().starts_with("ok"), "{report}");
    assert!(report["settings"].to_string().contains("innocent"), "settings are visible: {report}");
    assert_eq!(report["process"], "undefined", "no Node.js process object: {report}");
    assert_eq!(report["require"], "undefined", "{report}");
    Ok(())
}

#[tokio::test]
async fn a_python_guest_cannot_observe_an_injected_secret() -> anyhow::Result<()> {
    let (report, _upstream) = snoop(guests::PY_HOSTILE).await?;
    assert!(report["connect"].as_str().unwrap_or_default().starts_with("ok"), "{report}");
    assert!(report["settings"].to_string().contains("innocent"), "settings are visible: {report}");
    assert_eq!(report["env"], serde_json::json!({}), "no environment: {report}");
    assert!(report["files"].as_str().unwrap_or_default().starts_with("error"), "no filesystem: {report}");
    assert_eq!(report["stdin"], "", "stdin is empty: {report}");
    assert!(report["socket"].as_str().unwrap_or_default().starts_with("error"), "no sockets of its own: {report}");
    Ok(())
}

/// A TypeScript or Python component takes seconds to compile; a restart on the same
/// data directory loads its machine code from the artifact store instead.
#[tokio::test]
async fn a_restart_loads_typescript_and_python_components_without_compiling() -> anyhow::Result<()> {
    init_tracing();
    const TOKEN: &str = "test-admin-token-0123456789";
    for wasm in [guests::TS_ECHO, guests::PY_ECHO] {
        let data = tempfile::tempdir()?;
        let start =
            || TestHost::builder().admin_token(TOKEN).data_dir(data.path()).route("/echo", ComponentSpec::new("echo", wasm)).start();
        // The first start compiles into its own store (no shared cache: the store alone
        // must make the second start load without compiling).
        drop(start().await?);
        let restarted = start().await?;
        let listed = restarted.operator(Some(TOKEN))?.components().await?;
        assert_eq!(listed[0]["compiled"], "cached", "{wasm}: a restart does not recompile: {listed:?}");
        let mut caller = TestClient::connect(&restarted.url("/echo")).await?;
        caller.send_text("again").await?;
        assert_eq!(caller.next_text().await?, "again");
    }
    Ok(())
}

/// The TypeScript or Python SDK's `request` over `wasi:http`: an allowlisted `https` call
/// carries the injected secret in place of the guest's own header, a body goes up whole, a
/// body larger than one stream write (4 KiB) too, and a host not on the list is refused
/// before any connection.
async fn http_requests_carry_the_secret_and_obey_the_allowlist(wasm: &str) -> anyhow::Result<()> {
    use switchboard_harness::{FakeHttpServer, Reply};
    let ca = TestCa::new()?;
    let api = FakeHttpServer::new()
        .route("/v1/chat", Reply::text("hi there"))
        .route("/count", Reply::CountBody)
        .expect_header("authorization", "Bearer sk-live-42")
        .tls(&ca)
        .start()
        .await?;
    let other = FakeHttpServer::new().route("/", Reply::text("never")).start().await?;
    let spec =
        ComponentSpec::new("fetch", wasm).trust(&ca).allow(&api.origin()).secret_header("localhost", "Authorization", "Bearer ${LLM_KEY}");
    init_tracing();
    let host = TestHost::builder().env("LLM_KEY", "sk-live-42").share_compiled().route("/fetch", spec).start().await?;
    let mut caller = TestClient::connect(&host.url("/fetch")).await?;

    caller.send_text(&format!("get {} leg=llm", api.url("/v1/chat"))).await?;
    assert_eq!(caller.next_text().await?, "status=200 body=hi there");
    let request = api.wait_for_requests(1).await?.remove(0);
    assert_eq!(request.header("authorization"), Some("Bearer sk-live-42"), "the secret replaced the guest's header");
    assert_eq!(request.header("switchboard-leg"), None, "the leg header stays in the host");

    let body = "x".repeat(10_000);
    caller.send_text(&format!("post {} {body}", api.url("/count"))).await?;
    assert_eq!(caller.next_text().await?, "status=200 body=received=10000");

    caller.send_text(&format!("get {}", other.url("/"))).await?;
    let refused = caller.next_text().await?;
    assert!(refused.to_lowercase().contains("denied"), "{refused}");
    assert!(other.requests().is_empty(), "nothing reached a host not on the list");
    Ok(())
}

#[tokio::test]
async fn typescript_http_requests_carry_the_secret_and_obey_the_allowlist() -> anyhow::Result<()> {
    http_requests_carry_the_secret_and_obey_the_allowlist(guests::TS_FETCH).await
}

#[tokio::test]
async fn python_http_requests_carry_the_secret_and_obey_the_allowlist() -> anyhow::Result<()> {
    http_requests_carry_the_secret_and_obey_the_allowlist(guests::PY_FETCH).await
}
