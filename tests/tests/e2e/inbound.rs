//! The inbound side: routing, upgrades, echo, ping, size limit, close codes, TLS.

use std::time::Duration;

use switchboard_harness::{ComponentSpec, TestCa, TestClient, TestHost, guests};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

use crate::{echo_host, init_tracing};

/// Sends a raw HTTP/1.1 request and returns the status line.
async fn http_status(host: &TestHost, request: &str) -> anyhow::Result<String> {
    let mut tcp = tokio::net::TcpStream::connect(host.addr()).await?;
    tcp.write_all(request.as_bytes()).await?;
    let mut response = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut response)).await??;
    let text = String::from_utf8_lossy(&response[..n]).into_owned();
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn echoes_text_and_binary_and_answers_pings() -> anyhow::Result<()> {
    let host = echo_host().await?;
    let mut caller = TestClient::connect(&host.url("/echo")).await?;
    caller.send_text("hello").await?;
    assert_eq!(caller.next_text().await?, "hello");
    caller.send_binary(vec![0, 1, 2, 255]).await?;
    assert_eq!(caller.next_data().await?, Message::binary(vec![0, 1, 2, 255]));
    caller.send(Message::Ping(b"are you there".to_vec().into())).await?;
    let pong = caller.next_within(Duration::from_secs(10)).await?;
    assert_eq!(pong, Some(Message::Pong(b"are you there".to_vec().into())));

    caller.close(1000, "done").await?;
    let closed = caller.expect_close().await?;
    assert_eq!(closed.code, 1000);
    let marker = host.marker("call.closed", |_| true).await?;
    assert_eq!(marker.shown("code").as_deref(), Some("1000"));
    assert_eq!(marker.shown("by").as_deref(), Some("peer"));
    Ok(())
}

#[tokio::test]
async fn healthz_404_and_426() -> anyhow::Result<()> {
    let host = echo_host().await?;
    let ok = http_status(&host, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await?;
    assert!(ok.contains("200"), "{ok}");
    let missing = http_status(&host, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n").await?;
    assert!(missing.contains("404"), "{missing}");
    let plain = http_status(&host, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n").await?;
    assert!(plain.contains("426"), "{plain}");
    assert!(host.timeline().calls().is_empty(), "no call starts without an upgrade");
    Ok(())
}

#[tokio::test]
async fn a_guest_that_returns_gets_its_socket_closed_with_1000() -> anyhow::Result<()> {
    let host = echo_host().await?;
    let mut caller = TestClient::connect(&host.url("/echo")).await?;
    caller.send_text("bye").await?;
    let closed = caller.expect_close().await?;
    assert_eq!(closed.code, 1000);
    host.marker("guest.returned", |_| true).await?;
    let marker = host.marker("call.closed", |_| true).await?;
    assert_eq!(marker.shown("by").as_deref(), Some("local"));
    let names: Vec<String> = host.timeline().markers(marker.call).into_iter().map(|m| m.name).collect();
    let expected = ["call.accepted", "instance.started", "echo.started", "guest.returned", "call.closed"];
    assert_eq!(names, expected, "the call's timeline in order");
    Ok(())
}

#[tokio::test]
async fn an_oversize_message_closes_with_1009() -> anyhow::Result<()> {
    init_tracing();
    let host =
        TestHost::builder().route("/echo", ComponentSpec::new("echo", guests::ECHO).limit("max_message_bytes", 1024)).start().await?;
    let mut caller = TestClient::connect(&host.url("/echo")).await?;
    caller.send_binary(vec![7; 1024]).await?;
    assert_eq!(caller.next_data().await?.len(), 1024, "a message at the limit passes");
    caller.send_binary(vec![7; 1025]).await?;
    let closed = caller.expect_close().await?;
    assert_eq!(closed.code, 1009, "{closed:?}");
    let marker = host.marker("call.closed", |_| true).await?;
    assert_eq!(marker.shown("code").as_deref(), Some("1009"));
    Ok(())
}

#[tokio::test]
async fn a_caller_that_vanishes_ends_the_call() -> anyhow::Result<()> {
    let host = echo_host().await?;
    let caller = TestClient::connect(&host.url("/echo")).await?;
    drop(caller); // TCP closes without a close frame
    let marker = host.marker("call.closed", |_| true).await?;
    assert_eq!(marker.shown("code").as_deref(), Some("1006"), "{marker:?}");
    let echo = host.marker("echo.peer-closed", |_| true).await?;
    assert_eq!(echo.shown("code").as_deref(), Some("1006"));
    Ok(())
}

#[tokio::test]
async fn serves_wss_with_its_own_certificate() -> anyhow::Result<()> {
    init_tracing();
    let ca = TestCa::new()?;
    let host = TestHost::builder().tls(&ca)?.route("/echo", ComponentSpec::new("echo", guests::ECHO)).start().await?;
    let mut caller = TestClient::connect_tls(&host.url("/echo"), ca.client_config()?).await?;
    caller.send_text("over tls").await?;
    assert_eq!(caller.next_text().await?, "over tls");
    Ok(())
}

#[tokio::test]
async fn calls_beyond_the_limit_get_503() -> anyhow::Result<()> {
    init_tracing();
    let host = TestHost::builder().max_calls(1).route("/echo", ComponentSpec::new("echo", guests::ECHO)).start().await?;
    let mut first = TestClient::connect(&host.url("/echo")).await?;
    first.send_text("x").await?;
    first.next_text().await?;
    let second = TestClient::connect(&host.url("/echo")).await;
    let error = format!("{:#}", second.expect_err("the second call must be refused"));
    assert!(error.contains("503"), "{error}");
    Ok(())
}

#[tokio::test]
async fn twilio_signatures_are_checked_before_the_upgrade() -> anyhow::Result<()> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    init_tracing();
    const TOKEN: &str = "0123456789abcdef0123456789abcdef";
    let host =
        TestHost::builder().twilio_auth_token(TOKEN).route("/twilio/media", ComponentSpec::new("echo", guests::ECHO)).start().await?;
    let connect = |headers: Vec<(&'static str, String)>| {
        let url = host.url("/twilio/media");
        async move {
            let mut request = url.as_str().into_client_request()?;
            for (name, value) in headers {
                request.headers_mut().insert(name, http::HeaderValue::from_str(&value)?);
            }
            anyhow::Ok(tokio_tungstenite::connect_async(request).await)
        }
    };

    // Unsigned and wrongly signed upgrades get 403 before any guest runs.
    let unsigned = connect(Vec::new()).await?;
    assert!(format!("{:?}", unsigned.err()).contains("403"));
    let forged = connect(vec![("x-twilio-signature", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=".to_owned())]).await?;
    assert!(format!("{:?}", forged.err()).contains("403"));
    let rejected = host.marker("call.rejected", |_| true).await?;
    assert_eq!(rejected.shown("reason").as_deref(), Some("no X-Twilio-Signature header"));
    assert!(host.timeline().find(|m| m.name == "instance.started").is_empty());

    // Signed for the URL the client used.
    let direct = switchboard_harness::sim::twilio::signature(TOKEN, &host.url("/twilio/media"));
    let (mut socket, _) = connect(vec![("x-twilio-signature", direct)]).await??;
    use futures_util::{SinkExt, StreamExt};
    socket.send(Message::text("signed")).await?;
    assert!(matches!(socket.next().await, Some(Ok(Message::Text(t))) if t.as_str() == "signed"));

    // Behind a TLS-terminating proxy: the public wss:// URL is what Twilio signed (the
    // vector is the official SDK's, from tests/fixtures/twilio_signatures.json).
    let proxied = vec![
        ("host", "voice.example.com".to_owned()),
        ("x-forwarded-proto", "https".to_owned()),
        ("x-twilio-signature", "3Wv0T80qzAY3OCARW9y1gnUJZtE=".to_owned()),
    ];
    assert!(connect(proxied).await?.is_ok(), "the SDK's signature for wss://voice.example.com/twilio/media is accepted");

    assert!(host.host().calls().flush(Duration::from_secs(10)));
    let failed = host.host().calls().list(&switchboard::observe::calls::CallFilter { leg: Some("twilio".into()), ..Default::default() })?;
    assert_eq!(failed.len(), 2, "both refusals are stored, blamed on the twilio leg");
    assert!(failed.iter().all(|c| c.outcome == "failed" && c.close_code == Some(403)), "{failed:?}");
    Ok(())
}

#[tokio::test]
async fn oversize_headers_and_slow_clients_are_cut_off() -> anyhow::Result<()> {
    let host = echo_host().await?;
    // A request head over 16 KiB is refused, and the host stays up.
    let huge = format!("GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(64 * 1024));
    let mut tcp = tokio::net::TcpStream::connect(host.addr()).await?;
    let _ = tcp.write_all(huge.as_bytes()).await;
    let mut response = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut response)).await?.unwrap_or(0);
    let head = String::from_utf8_lossy(&response[..n]);
    assert!(n == 0 || head.starts_with("HTTP/1.1 431"), "oversize head not refused: {head}");
    // A client that never finishes its request head is dropped after the header timeout.
    let mut slow = tokio::net::TcpStream::connect(host.addr()).await?;
    slow.write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\n").await?;
    let mut buffer = [0u8; 256];
    let ended = tokio::time::timeout(Duration::from_secs(30), slow.read(&mut buffer)).await?;
    assert!(matches!(ended, Ok(n) if n == 0 || String::from_utf8_lossy(&buffer[..n]).contains("408")) || ended.is_err(), "{ended:?}");
    assert!(http_status(&host, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await?.contains("200"));
    Ok(())
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_at_once() -> anyhow::Result<()> {
    init_tracing();
    // One call slot: the cap is the floor of 16 open connections.
    let host = TestHost::builder().max_calls(1).route("/echo", ComponentSpec::new("echo", guests::ECHO)).start().await?;
    let mut idle = Vec::new();
    for _ in 0..16 {
        idle.push(tokio::net::TcpStream::connect(host.addr()).await?);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = tokio::net::TcpStream::connect(host.addr()).await?;
    let _ = extra.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), extra.read(&mut buffer)).await?;
    assert!(matches!(read, Ok(0) | Err(_)), "the 17th connection was served: {read:?}");
    drop(idle);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(http_status(&host, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await?.contains("200"), "slots free again");
    Ok(())
}
