//! Who can reach what: a stranger on the public listener can start a call only the way
//! Twilio does and can read nothing; the operator listener answers operators alone; every
//! caller is held to the route's deadlines, whatever the guest does.

use std::time::{Duration, Instant};

use switchboard_harness::{ComponentSpec, Deadlines, TestClient, TestHost, guests};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

use crate::init_tracing;

const READ_TOKEN: &str = "operator-read-token-0123456789";
const ADMIN_TOKEN: &str = "operator-admin-token-0123456789";

/// Every path the operator listener serves, with the method it takes.
const OPERATOR_PATHS: &[(&str, &str)] = &[
    ("GET", "/api/calls"),
    ("GET", "/api/calls/call-1"),
    ("GET", "/api/calls/call-1/transcript"),
    ("GET", "/api/events"),
    ("GET", "/dashboard"),
    ("GET", "/metrics"),
    ("GET", "/admin/components"),
    ("PUT", "/admin/components/echo"),
    ("POST", "/admin/components/echo/rollback"),
];

/// Sends one raw request and returns the response head (status line and headers).
async fn head(address: std::net::SocketAddr, method: &str, path: &str, authorization: Option<&str>) -> anyhow::Result<String> {
    let mut tcp = tokio::net::TcpStream::connect(address).await?;
    let auth = authorization.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
    tcp.write_all(format!("{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n").as_bytes())
        .await?;
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    // Enough for the head: the event stream never ends, so do not read to the end.
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buffer)).await??;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..n]);
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    Ok(text.split("\r\n\r\n").next().unwrap_or_default().to_owned())
}

fn status(head: &str) -> u16 {
    head.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn a_stranger_on_the_public_listener_reads_nothing() -> anyhow::Result<()> {
    init_tracing();
    let host = TestHost::builder().admin_token(ADMIN_TOKEN).route("/echo", ComponentSpec::new("echo", guests::ECHO)).start().await?;
    for (method, path) in OPERATOR_PATHS {
        let answer = head(host.addr(), method, path, Some(&format!("Bearer {ADMIN_TOKEN}"))).await?;
        assert_eq!(status(&answer), 404, "{method} {path} on the public listener: {answer}");
    }
    assert_eq!(status(&head(host.addr(), "GET", "/healthz", None).await?), 200);
    assert_eq!(status(&head(host.addr(), "GET", "/readyz", None).await?), 200);
    // The operator listener serves them (reading is open on loopback without a token).
    assert_eq!(status(&head(host.operator_addr(), "GET", "/api/calls", None).await?), 200);
    assert_eq!(status(&head(host.operator_addr(), "GET", "/metrics", None).await?), 200);
    // Calls cannot be started there.
    assert_eq!(status(&head(host.operator_addr(), "GET", "/echo", None).await?), 404);
    Ok(())
}

#[tokio::test]
async fn the_operator_listener_needs_its_token_where_one_is_set() -> anyhow::Result<()> {
    init_tracing();
    let host = TestHost::builder()
        .operator_token(READ_TOKEN)
        .admin_token(ADMIN_TOKEN)
        .route("/echo", ComponentSpec::new("echo", guests::ECHO))
        .start()
        .await?;
    let operator = host.operator_addr();
    for (method, path) in OPERATOR_PATHS {
        let answer = head(operator, method, path, None).await?;
        assert_eq!(status(&answer), 401, "{method} {path} without a token: {answer}");
        assert!(answer.contains("WWW-Authenticate: Basic") || answer.contains("www-authenticate: Basic"), "{answer}");
        let wrong = head(operator, method, path, Some("Bearer operator-read-token-0123456780")).await?;
        assert_eq!(status(&wrong), 401, "{method} {path} with a wrong token: {wrong}");
    }
    let bearer = format!("Bearer {READ_TOKEN}");
    for path in ["/api/calls", "/api/events", "/dashboard", "/metrics"] {
        assert_eq!(status(&head(operator, "GET", path, Some(&bearer)).await?), 200, "{path} with the read token");
    }
    // A browser's Basic authentication, the token as the password.
    use base64::Engine;
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("ops:{READ_TOKEN}")));
    assert_eq!(status(&head(operator, "GET", "/dashboard", Some(&basic)).await?), 200);
    // The read token does not deploy; the admin token does both.
    assert_eq!(status(&head(operator, "GET", "/admin/components", Some(&bearer)).await?), 401);
    let admin = format!("Bearer {ADMIN_TOKEN}");
    assert_eq!(status(&head(operator, "GET", "/admin/components", Some(&admin)).await?), 200);
    assert_eq!(status(&head(operator, "GET", "/api/calls", Some(&admin)).await?), 200);
    // The typed client with the token, as `switchboard calls` uses it.
    assert!(host.operator(Some(READ_TOKEN))?.calls(&Default::default()).await?.is_empty());
    assert!(host.operator(None)?.calls(&Default::default()).await.is_err());
    Ok(())
}

/// The stored summary of the call whose `call.deadline` marker matches `deadline`.
async fn stored_deadline_call(host: &TestHost, deadline: &str) -> anyhow::Result<serde_json::Value> {
    let marker = host.marker("call.deadline", |m| m.shown("deadline").as_deref() == Some(deadline)).await?;
    host.marker("call.closed", |m| m.call == marker.call).await?;
    assert!(host.host().calls().flush(Duration::from_secs(10)), "the call store flushed");
    let stored: serde_json::Value = host.operator(None)?.get_json(&format!("/api/calls/{}", marker.call)).await?;
    Ok(stored["call"].clone())
}

#[tokio::test]
async fn callers_are_held_to_their_deadlines_while_other_calls_flow() -> anyhow::Result<()> {
    init_tracing();
    let host = TestHost::builder()
        .route("/echo", ComponentSpec::new("echo", guests::ECHO))
        .deadlines(Deadlines { first_message_ms: Some(400), idle_ms: Some(600), max_call_ms: Some(2_500) })
        .start()
        .await?;
    let url = host.url("/echo");
    let started = Instant::now();
    // Sends nothing at all.
    let mut mute = TestClient::connect(&url).await?;
    // Sends one message (`start`, say), then nothing.
    let mut stalled = TestClient::connect(&url).await?;
    stalled.send_text("start").await?;
    assert_eq!(stalled.next_text().await?, "start");
    // Talks every 100 ms, longer than the longest call.
    let chatty = TestClient::connect(&url).await?;
    let talker = tokio::spawn(async move {
        let mut chatty = chatty;
        let mut echoed = 0;
        loop {
            if chatty.send_text("media").await.is_err() {
                return (echoed, None);
            }
            match chatty.next_within(Duration::from_secs(10)).await {
                Ok(Some(Message::Close(Some(frame)))) => {
                    return (
                        echoed,
                        Some(switchboard_harness::client::Closed { code: frame.code.into(), reason: frame.reason.as_str().to_owned() }),
                    );
                }
                Ok(Some(Message::Text(_))) => echoed += 1,
                _ => return (echoed, None),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });

    let closed = mute.expect_close().await?;
    assert_eq!(closed.code, 1008, "{closed:?}");
    assert!(closed.reason.contains("first-message deadline"), "{closed:?}");
    let closed = stalled.expect_close().await?;
    assert_eq!(closed.code, 1008, "{closed:?}");
    assert!(closed.reason.contains("idle deadline"), "{closed:?}");
    let (echoed, closed) = talker.await?;
    let closed = closed.ok_or_else(|| anyhow::anyhow!("the long call got no close frame"))?;
    assert_eq!(closed.code, 1008, "{closed:?}");
    assert!(closed.reason.contains("longest call"), "{closed:?}");
    assert!(echoed >= 10, "the long call flowed until its limit ({echoed} round trips)");
    assert!(started.elapsed() >= Duration::from_millis(2_500), "not cut before the longest call");

    let mute = stored_deadline_call(&host, "first-message").await?;
    // The echo guest names no inbound leg: the caller is `caller`.
    assert_eq!((mute["outcome"].as_str(), mute["failing_leg"].as_str()), (Some("failed"), Some("caller")), "{mute:#}");
    assert!(mute["cause"].as_str().unwrap_or_default().contains("first-message deadline (400 ms)"), "{mute:#}");
    let stalled = stored_deadline_call(&host, "idle").await?;
    assert!(stalled["cause"].as_str().unwrap_or_default().contains("idle deadline (600 ms)"), "{stalled:#}");
    let long = stored_deadline_call(&host, "max-call").await?;
    assert_eq!(long["failing_leg"].as_str(), Some("policy"), "{long:#}");
    assert!(long["cause"].as_str().unwrap_or_default().contains("2500 ms"), "{long:#}");
    Ok(())
}

#[tokio::test]
async fn a_guest_that_ignores_a_deadline_is_stopped_and_its_slot_freed() -> anyhow::Result<()> {
    init_tracing();
    let host = TestHost::builder()
        .max_calls(1)
        .route("/hostile", ComponentSpec::new("hostile", guests::HOSTILE).setting("mode", "never-return"))
        .deadlines(Deadlines { first_message_ms: Some(200), ..Deadlines::default() })
        .start()
        .await?;
    let mut caller = TestClient::connect(&host.url("/hostile")).await?;
    assert_eq!(caller.expect_close().await?.code, 1008);
    let stopped = host.marker("guest.stopped", |_| true).await?;
    host.marker("call.closed", |m| m.call == stopped.call).await?;
    // The only call slot is free again.
    let deadline = Instant::now() + Duration::from_secs(10);
    while host.host().live_calls() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(host.host().live_calls(), 0);
    let mut next = TestClient::connect(&host.url("/hostile")).await?;
    assert_eq!(next.expect_close().await?.code, 1008, "a new call is served");
    Ok(())
}

#[tokio::test]
async fn a_guest_that_prints_ten_mib_does_not_trap_and_its_log_is_capped() -> anyhow::Result<()> {
    init_tracing();
    let host = TestHost::builder()
        .route("/hostile", ComponentSpec::new("hostile", guests::HOSTILE).setting("mode", "print").limit("log_bytes", 65_536))
        .start()
        .await?;
    let mut caller = TestClient::connect(&host.url("/hostile")).await?;
    assert_eq!(caller.next_text().await?, "printed", "print! never failed");
    caller.close(1000, "").await?;
    let output = host.marker("guest.output", |_| true).await?;
    let logged: u64 = output.shown("logged_bytes").as_deref().unwrap_or_default().parse()?;
    let dropped: u64 = output.shown("dropped_bytes").as_deref().unwrap_or_default().parse()?;
    assert!(logged <= 65_536, "{output:?}");
    assert_eq!(logged + dropped, 10 << 20, "every byte counted: {output:?}");
    assert!(host.timeline().find(|m| m.name == "guest.trap").is_empty(), "no trap");
    host.marker("guest.returned", |_| true).await?;
    Ok(())
}
