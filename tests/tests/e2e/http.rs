//! Outbound HTTP (`wasi:http`) through a real host: the egress policy, secret headers,
//! redirects, deadlines, body caps, streaming beside a WebSocket, many requests in one call,
//! and what the timeline, metrics and call store say about them. The servers are
//! [`FakeHttpServer`]s with TLS from a test CA.

use std::time::{Duration, Instant};

use switchboard_harness::sim::tls::TestCa;
use switchboard_harness::{ComponentSpec, FakeHttpServer, FakeServer, Reply, TestClient, TestHost, guests};
use tokio_tungstenite::tungstenite::Message;

use crate::init_tracing;

/// The fetch guest, trusting `ca`.
fn fetch(ca: &TestCa) -> ComponentSpec {
    ComponentSpec::new("fetch", guests::FETCH).trust(ca)
}

/// A host serving `spec` on `/fetch`.
async fn host_with(spec: ComponentSpec) -> anyhow::Result<TestHost> {
    init_tracing();
    TestHost::builder().env("LLM_KEY", "sk-live-42").route("/fetch", spec).start().await
}

/// Sends one command and returns the guest's answer.
async fn ask(caller: &mut TestClient, command: &str) -> anyhow::Result<String> {
    caller.send_text(command).await?;
    caller.next_text().await
}

/// The stored summary of the host's only call, once it has closed.
async fn stored_call(host: &TestHost) -> anyhow::Result<serde_json::Value> {
    host.marker("call.closed", |_| true).await?;
    assert!(host.host().calls().flush(Duration::from_secs(10)), "the call store flushed");
    let calls: serde_json::Value = host.operator(None)?.get_json("/api/calls").await?;
    Ok(calls[0].clone())
}

#[tokio::test]
async fn an_allowlisted_https_request_carries_a_secret_the_guest_never_sees() -> anyhow::Result<()> {
    let ca = TestCa::new()?;
    let api = FakeHttpServer::new()
        .route("/v1/chat", Reply::text("hi"))
        .expect_header("authorization", "Bearer sk-live-42")
        .tls(&ca)
        .start()
        .await?;
    let spec = fetch(&ca).allow(&api.origin()).secret_header("localhost", "Authorization", "Bearer ${LLM_KEY}");
    let host = host_with(spec).await?;
    let mut caller = TestClient::connect(&host.url("/fetch")).await?;

    // The guest's own Authorization is replaced by the secret; the leg header is the host's.
    let answer = ask(&mut caller, &format!("get {} h:authorization=guessed leg=llm", api.url("/v1/chat"))).await?;
    assert_eq!(answer, "status=200 bytes=2 location= body=hi");
    let request = api.wait_for_requests(1).await?.remove(0);
    assert_eq!(request.header("authorization"), Some("Bearer sk-live-42"));
    assert_eq!(request.header("switchboard-leg"), None, "the leg header never leaves the host");
    assert_eq!(request.header("host"), Some(api.origin().trim_start_matches("https://")));

    let snoop = ask(&mut caller, "snoop").await?;
    assert!(!snoop.contains("sk-live-42"), "{snoop}");

    let response = host.marker("http.response", |m| m.leg == "llm").await?;
    assert_eq!(response.shown("status").as_deref(), Some("200"), "{response:?}");
    assert_eq!(response.shown("path").as_deref(), Some("/v1/chat"));
    let complete = host.marker("http.complete", |m| m.leg == "llm").await?;
    assert_eq!((complete.shown("end").as_deref(), complete.shown("bytes_received").as_deref()), (Some("finished"), Some("2")));
    let metrics = host.operator(None)?.get_text("/metrics").await?;
    let line = format!("switchboard_http_requests_total{{leg=\"llm\",target=\"{}\",result=\"2xx\",cause=\"\"}} 1", api.origin());
    assert!(metrics.contains(&line), "missing {line} in\n{metrics}");
    assert!(metrics.contains("switchboard_http_first_byte_seconds_count{target="), "{metrics}");
    Ok(())
}

#[tokio::test]
async fn requests_the_policy_refuses_are_http_request_denied_before_any_connection() -> anyhow::Result<()> {
    let ca = TestCa::new()?;
    let api = FakeHttpServer::new().route("/", Reply::text("reached")).tls(&ca).start().await?;
    let port = api.addr().port();
    init_tracing();
    let host = TestHost::builder()
        .route("/wildcard", fetch(&ca).allow("https://*:*"))
        .route("/listed", fetch(&ca).allow("https://api.example.com"))
        .start()
        .await?;
    let mut wildcard = TestClient::connect(&host.url("/wildcard")).await?;
    let cases = [
        (format!("http://localhost:{port}/"), "not-allowed"),
        (format!("https://localhost:{port}/"), "special-address"),
        (format!("https://127.0.0.1:{port}/"), "special-address"),
        (format!("https://[::1]:{port}/"), "special-address"),
        ("https://10.1.2.3/".to_owned(), "special-address"),
        ("https://169.254.169.254/latest/meta-data/".to_owned(), "special-address"),
    ];
    for (url, _) in &cases {
        assert_eq!(ask(&mut wildcard, &format!("get {url}")).await?, "error=head:HttpRequestDenied", "{url}");
    }
    let causes: Vec<String> = host.timeline().find(|m| m.name == "http.denied").into_iter().filter_map(|m| m.shown("cause")).collect();
    assert_eq!(causes, cases.iter().map(|(_, cause)| (*cause).to_owned()).collect::<Vec<_>>());
    let mut listed = TestClient::connect(&host.url("/listed")).await?;
    assert_eq!(ask(&mut listed, &format!("get {}", api.url("/"))).await?, "error=head:HttpRequestDenied");
    assert_eq!(api.connections(), 0, "no refused request reached the server");
    Ok(())
}

#[tokio::test]
async fn the_request_limits_answer_connection_limit_reached() -> anyhow::Result<()> {
    let ca = TestCa::new()?;
    let api = FakeHttpServer::new().route("/", Reply::text("ok")).tls(&ca).start().await?;
    let host = host_with(fetch(&ca).allow(&api.origin()).limit("max_http_requests", 2)).await?;
    let mut caller = TestClient::connect(&host.url("/fetch")).await?;
    assert_eq!(ask(&mut caller, &format!("many 3 {}", api.url("/"))).await?, "many ok=2 failed=1 last=ConnectionLimitReached");
    let denied = host.marker("http.denied", |_| true).await?;
    assert_eq!(denied.shown("cause").as_deref(), Some("request-limit"), "{denied:?}");
    Ok(())
}

#[tokio::test]
async fn a_redirect_is_handed_back_and_the_secret_stays_with_its_host() -> anyhow::Result<()> {
    let ca = TestCa::new()?;
    let elsewhere = FakeHttpServer::new().route("/landing", Reply::text("landed")).tls(&ca).start().await?;
    let landing = elsewhere.ip_url("/landing");
    let api = FakeHttpServer::new().route("/old", Reply::redirect(&landing)).tls(&ca).start().await?;
    let spec = fetch(&ca).allow(&api.origin()).allow(&format!("https://127.0.0.1:{}", elsewhere.addr().port())).secret_header(
        "localhost",
        "Authorization",
        "Bearer ${LLM_KEY}",
    );
    let host = host_with(spec).await?;
    let mut caller = TestClient::connect(&host.url("/fetch")).await?;

    let answer = ask(&mut caller, &format!("get {}", api.url("/old"))).await?;
    assert_eq!(answer, format!("status=302 bytes=0 location={landing} body="));
    assert!(elsewhere.requests().is_empty(), "the host followed the redirect");
    assert_eq!(api.requests()[0].header("authorization"), Some("Bearer sk-live-42"));

    // The guest follows it itself: the other host gets no secret.
    assert_eq!(ask(&mut caller, &format!("get {landing}")).await?, "status=200 bytes=6 location= body=landed");
    assert_eq!(elsewhere.wait_for_requests(1).await?[0].header("authorization"), None);
    Ok(())
}

/// How long `command` takes to be answered, and the answer.
async fn timed(caller: &mut TestClient, command: &str) -> anyhow::Result<(Duration, String)> {
    let started = Instant::now();
    let answer = ask(caller, command).await?;
    Ok((started.elapsed(), answer))
}

#[tokio::test]
async fn a_stalling_server_hits_each_deadline_and_a_guest_cannot_ask_for_more() -> anyhow::Result<()> {
    let ca = TestCa::new()?;
    let api = FakeHttpServer::new()
        .route("/head", Reply::StallHead)
        .route("/body", Reply::StallBody(b"partial".to_vec()))
        .tls(&ca)
        .start()
        .await?;
    let blackhole = FakeHttpServer::blackhole().tls(&ca).start().await?;
    let limit = Duration::from_millis(1500);
    let spec = fetch(&ca)
        .allow(&api.origin())
        .allow(&blackhole.origin())
        .limit("http_connect_timeout_ms", 1500)
        .limit("http_first_byte_timeout_ms", 1500)
        .limit("http_between_bytes_timeout_ms", 1500);
    let host = host_with(spec).await?;
    let mut caller = TestClient::connect(&host.url("/fetch")).await?;

    let (took, answer) = timed(&mut caller, &format!("get {} first_byte_ms=60000", api.url("/head"))).await?;
    assert_eq!(answer, "error=head:HttpResponseTimeout");
    assert!(took >= limit && took < Duration::from_secs(30), "first byte: asked for 60 s, cut at the host's 1.5 s, took {took:?}");

    let (took, answer) = timed(&mut caller, &format!("get {} first_byte_ms=100", api.url("/head"))).await?;
    assert_eq!(answer, "error=head:HttpResponseTimeout");
    assert!(took >= Duration::from_millis(100) && took < limit, "first byte: asked for 100 ms, took {took:?}");

    let (took, answer) = timed(&mut caller, &format!("get {}", api.url("/body"))).await?;
    assert_eq!(answer, "error=body:ConnectionReadTimeout status=200 bytes=7");
    assert!(took >= limit, "between bytes took {took:?}");

    let (took, answer) = timed(&mut caller, &format!("get {}", blackhole.url("/"))).await?;
    assert_eq!(answer, "error=head:ConnectionTimeout");
    assert!(took >= limit, "connect took {took:?}");

    let causes: Vec<String> = host.timeline().find(|m| m.name == "http.failed").into_iter().filter_map(|m| m.shown("cause")).collect();
    assert_eq!(causes, ["first-byte-timeout", "first-byte-timeout", "between-bytes-timeout", "connect-timeout"]);
    Ok(())
}

#[tokio::test]
async fn bodies_past_their_caps_are_cut_at_the_cap() -> anyhow::Result<()> {
    let ca = TestCa::new()?;
    let api = FakeHttpServer::new().route("/huge", Reply::Huge(64 << 20)).route("/upload", Reply::CountBody).tls(&ca).start().await?;
    let spec =
        fetch(&ca).allow(&api.origin()).limit("max_http_response_body_bytes", 1 << 20).limit("max_http_request_body_bytes", 64 * 1024);
    let host = host_with(spec).await?;
    let mut caller = TestClient::connect(&host.url("/fetch")).await?;

    let answer = ask(&mut caller, &format!("get {}", api.url("/huge"))).await?;
    assert_eq!(answer, "error=body:HttpResponseBodySize(Some(1048576)) status=200 bytes=1048576");
    let answer = ask(&mut caller, &format!("get {} method=POST body_bytes=200000", api.url("/upload"))).await?;
    assert_eq!(answer, "error=head:HttpRequestBodySize(Some(65536))");
    let answer = ask(&mut caller, &format!("get {} method=POST body_bytes=65536", api.url("/upload"))).await?;
    assert_eq!(answer, "status=200 bytes=14 location= body=received=65536");
    Ok(())
}

#[tokio::test]
async fn a_streamed_response_arrives_token_by_token_while_the_socket_keeps_flowing() -> anyhow::Result<()> {
    let ca = TestCa::new()?;
    let tokens: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
    let llm = FakeHttpServer::new().route("/v1/chat", Reply::sse(&tokens, Duration::from_millis(100))).tls(&ca).start().await?;
    let echo = FakeServer::echo().tls(&ca).start().await?;
    let spec = fetch(&ca).allow(&llm.origin()).allow(&echo.origin()).setting("relay", &echo.url("/relay"));
    let host = host_with(spec).await?;
    let mut caller = TestClient::connect(&host.url("/fetch")).await?;
    caller.send_text(&format!("sse {}", llm.url("/v1/chat"))).await?;

    let mut got_tokens: Vec<(String, Instant)> = Vec::new();
    let mut echoes: Vec<Instant> = Vec::new();
    let mut sent = 0u32;
    let give_up = Instant::now() + switchboard_harness::PATIENCE;
    // The relay is fed on a clock (not once per loop: echoes come back in microseconds,
    // so a burst would be over before the first token), for as long as the stream runs.
    let mut next_send = Instant::now();
    let done = loop {
        anyhow::ensure!(Instant::now() < give_up, "the stream did not finish: {got_tokens:?}");
        if Instant::now() >= next_send {
            caller.send_binary(sent.to_be_bytes().to_vec()).await?;
            sent += 1;
            next_send += Duration::from_millis(40);
        }
        let wait = next_send.saturating_duration_since(Instant::now());
        match tokio::time::timeout(wait, caller.next_data()).await {
            Ok(Ok(Message::Text(text))) if text.starts_with("token ") => got_tokens.push((text[6..].to_string(), Instant::now())),
            Ok(Ok(Message::Text(text))) => break text.to_string(),
            Ok(Ok(_)) => echoes.push(Instant::now()),
            Ok(Err(error)) => return Err(error),
            Err(_) => {}
        }
    };
    assert_eq!(done, "done status=200 events=20");
    let received: Vec<&str> = got_tokens.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(received, tokens.iter().map(String::as_str).collect::<Vec<_>>());
    let sent_at = llm.events_sent();
    assert!(got_tokens[0].1 < sent_at[19], "the first token reached the caller only after the last was sent: not streamed");
    let (first, last) = (got_tokens[0].1, got_tokens[19].1);
    let meanwhile = echoes.iter().filter(|at| **at > first && **at < last).count();
    assert!(meanwhile >= 5, "only {meanwhile} relayed messages came back while tokens streamed");
    Ok(())
}

#[tokio::test]
async fn many_requests_reuse_connections_and_mark_only_the_first_ones() -> anyhow::Result<()> {
    // The memory side of this is `host/tests/http_memory.rs`, on a process of its own.
    let ca = TestCa::new()?;
    let api = FakeHttpServer::new().route("/ping", Reply::text("pong")).tls(&ca).start().await?;
    let host = host_with(fetch(&ca).allow(&api.origin())).await?;
    let mut caller = TestClient::connect(&host.url("/fetch")).await?;
    assert_eq!(ask(&mut caller, &format!("many 500 {}", api.url("/ping"))).await?, "many ok=500 failed=0 last=");
    assert_eq!(api.connections(), 1, "one kept-alive connection carried every request");
    caller.close(1000, "done").await?;
    let returned = host.marker("guest.returned", |_| true).await?;
    let call_markers = host.timeline().markers(returned.call).len();
    assert!(call_markers < 150, "500 requests left {call_markers} markers on the call's timeline");
    let unmarked = host.marker("http.unmarked", |_| true).await?;
    assert_eq!(unmarked.shown("limit").as_deref(), Some("64"));
    let reused = host.timeline().find(|m| m.name == "http.response" && m.shown("reused").as_deref() == Some("true")).len();
    assert_eq!(reused, 63, "every marked request after the first was reused");
    let metrics = host.operator(None)?.get_text("/metrics").await?;
    let line = format!("switchboard_http_requests_total{{leg=\"http\",target=\"{}\",result=\"2xx\",cause=\"\"}} 500", api.origin());
    assert!(metrics.contains(&line), "missing {line}");
    Ok(())
}

#[tokio::test]
async fn a_failed_request_is_attributed_to_its_leg_in_the_call_store() -> anyhow::Result<()> {
    let ca = TestCa::new()?;
    // A port with nothing listening on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let host = host_with(fetch(&ca).allow(&format!("https://localhost:{port}"))).await?;
    let mut caller = TestClient::connect(&host.url("/fetch")).await?;
    let answer = ask(&mut caller, &format!("get https://localhost:{port}/contacts leg=crm")).await?;
    assert_eq!(answer, "error=head:ConnectionRefused");
    caller.close(1000, "done").await?;
    let call = stored_call(&host).await?;
    assert_eq!(call["outcome"], "degraded", "{call:#}");
    assert_eq!(call["failing_leg"], "crm", "{call:#}");
    assert!(call["cause"].as_str().unwrap_or_default().contains("connection-refused"), "{call:#}");
    Ok(())
}
