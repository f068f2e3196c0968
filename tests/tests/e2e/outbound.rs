//! Outbound connections from inside the sandbox: wss through a test CA, secrets, and a
//! typed error for every way a connect can fail.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};

use switchboard_harness::{ComponentSpec, FakeServer, RunningServer, TestCa, TestClient, TestHost, guests};
use tokio_tungstenite::tungstenite::Message;

use crate::init_tracing;

/// A host whose `/relay` route relays to `target`, allowed to reach `allow`.
fn relay(target: &str, allow: &str) -> ComponentSpec {
    ComponentSpec::new("relay", guests::RELAY).allow(allow).setting("target", target)
}

async fn start(spec: ComponentSpec) -> anyhow::Result<TestHost> {
    init_tracing();
    TestHost::builder().env("UPSTREAM_KEY", "sk-test-123").route("/relay", spec).start().await
}

/// Calls the relay and returns what it reported about a failed connect.
async fn connect_failure(host: &TestHost) -> anyhow::Result<String> {
    let mut caller = TestClient::connect(&host.url("/relay")).await?;
    let report = caller.next_text().await?;
    let closed = caller.expect_close().await?;
    assert_eq!(closed.code, 1011, "the relay closes 1011 after a failed connect");
    Ok(report)
}

#[tokio::test]
async fn relays_over_wss_with_injected_secret_headers() -> anyhow::Result<()> {
    let ca = TestCa::new()?;
    let upstream = FakeServer::echo().tls(&ca).expect_token("sk-test-123").select_protocol("stt").start().await?;
    let spec = relay(&upstream.url("/v1/listen?model=nova-3&encoding=mulaw"), &upstream.origin())
        .trust(&ca)
        .setting("subprotocols", "stt")
        .setting("header.x-guest", "hello")
        .secret_header("localhost", "Authorization", "Token ${UPSTREAM_KEY}");
    let host = start(spec).await?;

    let mut caller = TestClient::connect(&host.url("/relay")).await?;
    caller.send_text("to upstream").await?;
    assert_eq!(caller.next_text().await?, "to upstream");
    caller.send_binary(vec![0xff; 160]).await?;
    assert_eq!(caller.next_data().await?, Message::binary(vec![0xff; 160]));

    let handshake = upstream.wait_for_handshake().await?;
    assert_eq!(handshake.path, "/v1/listen");
    assert_eq!(handshake.query.as_deref(), Some("model=nova-3&encoding=mulaw"));
    assert_eq!(handshake.header("authorization"), Some("Token sk-test-123"));
    assert_eq!(handshake.header("x-guest"), Some("hello"));
    assert_eq!(handshake.header("sec-websocket-protocol"), Some("stt"));

    let open = host.marker("outbound.open", |_| true).await?;
    assert!(open.shown("handshake_ms").as_deref().and_then(|ms| ms.parse::<f64>().ok()).is_some(), "{open:?}");
    assert_eq!(open.shown("protocol").as_deref(), Some("stt"));
    let connected = host.marker("relay.connected", |_| true).await?;
    assert_eq!(connected.shown("protocol").as_deref(), Some("stt"));

    // Closing the caller closes the upstream leg too.
    caller.close(1000, "bye").await?;
    assert_eq!(caller.expect_close().await?.code, 1000);
    let closed = host.marker("outbound.closed", |_| true).await?;
    assert_eq!(closed.shown("code").as_deref(), Some("1000"));
    assert_eq!(closed.shown("by").as_deref(), Some("local"));
    Ok(())
}

#[tokio::test]
async fn a_secret_replaces_a_guest_header_of_the_same_name() -> anyhow::Result<()> {
    let upstream = FakeServer::echo().start().await?;
    let spec = relay(&upstream.url("/"), &upstream.origin()).setting("header.authorization", "Token guest-chosen").secret_header(
        "localhost",
        "Authorization",
        "Token ${UPSTREAM_KEY}",
    );
    let host = start(spec).await?;
    let mut caller = TestClient::connect(&host.url("/relay")).await?;
    caller.send_text("x").await?;
    caller.next_text().await?;
    let handshake = upstream.wait_for_handshake().await?;
    let values: Vec<&str> = handshake.headers.iter().filter(|(n, _)| n == "authorization").map(|(_, v)| v.as_str()).collect();
    assert_eq!(values, ["Token sk-test-123"]);
    Ok(())
}

#[tokio::test]
async fn an_unknown_ca_is_a_tls_error() -> anyhow::Result<()> {
    let ca = TestCa::new()?;
    let upstream = FakeServer::echo().tls(&ca).start().await?;
    let host = start(relay(&upstream.url("/"), &upstream.origin())).await?;
    let report = connect_failure(&host).await?;
    assert!(report.contains("TlsError"), "{report}");
    assert!(report.contains("UnknownIssuer"), "the reason names the cause: {report}");
    let failed = host.marker("outbound.failed", |_| true).await?;
    assert_eq!(failed.shown("cause").as_deref(), Some("tls-error"));
    assert!(upstream.handshakes().is_empty(), "no WebSocket handshake over an untrusted TLS session");
    Ok(())
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_at_the_deadline() -> anyhow::Result<()> {
    let upstream = FakeServer::blackhole().start().await?;
    let host = start(relay(&upstream.url("/"), &upstream.origin()).limit("connect_timeout_ms", 400)).await?;
    let started = Instant::now();
    let report = connect_failure(&host).await?;
    assert!(report.contains("ConnectTimeout"), "{report}");
    assert!(started.elapsed() >= Duration::from_millis(400), "not before the deadline");
    assert_eq!(upstream.connections(), 1, "the TCP connection was made");
    let failed = host.marker("outbound.failed", |_| true).await?;
    assert_eq!(failed.shown("cause").as_deref(), Some("connect-timeout"));
    Ok(())
}

#[tokio::test]
async fn a_guest_may_ask_for_a_shorter_deadline() -> anyhow::Result<()> {
    let upstream = FakeServer::blackhole().start().await?;
    let host = start(relay(&upstream.url("/"), &upstream.origin()).setting("timeout_ms", "200")).await?;
    let report = connect_failure(&host).await?;
    assert!(report.contains("ConnectTimeout"), "{report}");
    Ok(())
}

#[tokio::test]
async fn a_401_is_handshake_rejected_with_status_and_headers() -> anyhow::Result<()> {
    let upstream = FakeServer::echo().expect_token("right-key").start().await?;
    let spec = relay(&upstream.url("/v1/listen"), &upstream.origin()).secret_header("localhost", "Authorization", "Token ${UPSTREAM_KEY}");
    let host = start(spec).await?;
    let report = connect_failure(&host).await?;
    assert!(report.contains("HandshakeRejected"), "{report}");
    assert!(report.contains("status: 401"), "{report}");
    assert!(report.contains("dg-error"), "{report}");
    assert!(report.contains("INVALID_AUTH"), "the body excerpt is included: {report}");
    assert!(!report.contains("sk-test-123"), "the secret is not echoed to the guest: {report}");
    let failed = host.marker("outbound.failed", |_| true).await?;
    assert_eq!(failed.shown("cause").as_deref(), Some("handshake-rejected"));
    assert_eq!(failed.shown("status").as_deref(), Some("401"));
    assert_eq!(failed.shown("header").as_deref(), Some("dg-error: Invalid credentials."));
    Ok(())
}

#[tokio::test]
async fn a_closed_port_is_connection_refused() -> anyhow::Result<()> {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.local_addr()?.port()
    };
    let target = format!("ws://localhost:{port}");
    let host = start(relay(&format!("{target}/"), &target)).await?;
    let report = connect_failure(&host).await?;
    assert!(report.contains("ConnectionRefused"), "{report}");
    Ok(())
}

#[tokio::test]
async fn an_unknown_host_is_a_dns_error() -> anyhow::Result<()> {
    let host = start(relay("wss://no-such-host.invalid/", "wss://no-such-host.invalid")).await?;
    let report = connect_failure(&host).await?;
    assert!(report.contains("DnsError"), "{report}");
    let failed = host.marker("outbound.failed", |_| true).await?;
    assert_eq!(failed.shown("cause").as_deref(), Some("dns-error"));
    Ok(())
}

#[tokio::test]
async fn an_upstream_close_reaches_the_guest_with_its_code() -> anyhow::Result<()> {
    let upstream = FakeServer::echo().start().await?;
    let host = start(relay(&upstream.url("/"), &upstream.origin())).await?;
    let mut caller = TestClient::connect(&host.url("/relay")).await?;
    caller.send_text("x").await?;
    caller.next_text().await?;
    upstream.vanish(); // the upstream's sockets drop without a close frame
    let closed = caller.expect_close().await?;
    assert_eq!(closed.code, 1011, "1006 from upstream is passed on as 1011: {closed:?}");
    let marker = host.marker("outbound.closed", |_| true).await?;
    assert_eq!(marker.shown("code").as_deref(), Some("1006"));
    assert_eq!(marker.shown("by").as_deref(), Some("network"));
    Ok(())
}

#[tokio::test]
async fn a_slow_reader_stalls_only_its_own_direction() -> anyhow::Result<()> {
    // Upstream never reads but keeps sending: the caller -> upstream direction fills up
    // while upstream -> caller must keep flowing, with the host's queue bounded.
    let upstream: RunningServer = FakeServer::send_without_reading(Duration::from_millis(20), 100, 64).start().await?;
    let queue_limit = 64 * 1024;
    let spec = relay(&upstream.url("/"), &upstream.origin()).limit("send_queue_bytes", queue_limit);
    let host = start(spec).await?;
    let caller = TestClient::connect(&host.url("/relay")).await?;
    let (mut sink, mut stream) = caller.into_split();
    let sent = Arc::new(AtomicUsize::new(0));
    let sent_by_flood = sent.clone();
    // Offer 64 MiB caller -> upstream, far beyond every buffer on the way.
    let flood = tokio::spawn(async move {
        for _ in 0..4096 {
            if sink.send(Message::binary(vec![1u8; 16 * 1024])).await.is_err() {
                break;
            }
            sent_by_flood.fetch_add(1, Ordering::Relaxed);
        }
    });
    let mut received = 0usize;
    while received < 50 {
        let next = tokio::time::timeout(Duration::from_secs(30), stream.next()).await?;
        match next {
            Some(Ok(Message::Binary(data))) => {
                assert_eq!(data.len(), 64);
                received += 1;
            }
            Some(Ok(_)) => {}
            other => anyhow::bail!("the upstream -> caller direction stopped: {other:?}"),
        }
    }
    let accepted = sent.load(Ordering::Relaxed);
    assert!(accepted < 4096, "the caller was pushed back: {accepted} chunks accepted");
    flood.abort();
    let backpressure = host.marker("relay.backpressure", |_| true).await?;
    let queued: u64 = backpressure.shown("queued").as_deref().unwrap_or("0").parse()?;
    assert!(queued <= queue_limit + 16 * 1024, "the send queue stays bounded: {queued} bytes");
    Ok(())
}
