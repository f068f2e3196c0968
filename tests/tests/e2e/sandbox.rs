//! The sandbox: hostile guests are stopped and contained; policy refuses what is not
//! allowed; secrets stay out of the guest's reach.

use std::time::{Duration, Instant};

use switchboard_harness::{ComponentSpec, FakeServer, TestClient, TestHost, guests};

use crate::init_tracing;

fn hostile(mode: &str) -> ComponentSpec {
    ComponentSpec::new("hostile", guests::HOSTILE).setting("mode", mode)
}

/// A host with the echo guest on `/echo` and `spec` on `/hostile`.
async fn host_with(spec: ComponentSpec) -> anyhow::Result<TestHost> {
    init_tracing();
    TestHost::builder()
        .env("SECRET_TOKEN", "do-not-leak-42")
        .route("/echo", ComponentSpec::new("echo", guests::ECHO))
        .route("/hostile", spec)
        .start()
        .await
}

/// Round trips on an echo call while `during` is in progress; returns how many completed.
pub(crate) async fn echo_round_trips(host: &TestHost, duration: Duration) -> anyhow::Result<usize> {
    let mut caller = TestClient::connect(&host.url("/echo")).await?;
    let until = Instant::now() + duration;
    let mut count = 0;
    while Instant::now() < until {
        caller.send_text("ping").await?;
        assert_eq!(caller.next_text().await?, "ping");
        count += 1;
    }
    Ok(count)
}

#[tokio::test]
async fn a_looping_guest_is_stopped_and_others_keep_flowing() -> anyhow::Result<()> {
    let host = host_with(hostile("loop").limit("cpu_burst_ms", 500)).await?;
    // Two looping calls: as many as this machine has cores.
    let mut loopers = Vec::new();
    for _ in 0..2 {
        loopers.push(TestClient::connect(&host.url("/hostile")).await?);
    }
    let trips = echo_round_trips(&host, Duration::from_millis(400)).await?;
    assert!(trips > 0, "an echo call got no round trip while two guests spun");
    for mut looper in loopers {
        let closed = looper.expect_close().await?;
        assert_eq!(closed.code, 1011, "{closed:?}");
    }
    let trap = host.marker("guest.trap", |_| true).await?;
    assert_eq!(trap.shown("cause").as_deref(), Some("cpu-budget"), "{trap:?}");
    assert!(trap.shown("detail").as_deref().unwrap_or_default().contains("without waiting"), "{trap:?}");
    assert!(echo_round_trips(&host, Duration::from_millis(50)).await? > 0, "the host still serves");
    Ok(())
}

#[tokio::test]
async fn a_memory_bomb_hits_the_memory_limit() -> anyhow::Result<()> {
    let host = host_with(hostile("memory-bomb").limit("memory_mb", 16)).await?;
    let mut bomb = TestClient::connect(&host.url("/hostile")).await?;
    assert_eq!(bomb.expect_close().await?.code, 1011);
    let trap = host.marker("guest.trap", |_| true).await?;
    assert_eq!(trap.shown("cause").as_deref(), Some("memory-limit"), "{trap:?}");
    assert!(echo_round_trips(&host, Duration::from_millis(50)).await? > 0);
    Ok(())
}

#[tokio::test]
async fn a_trap_closes_1011_and_frees_the_instance() -> anyhow::Result<()> {
    init_tracing();
    // One call slot: if the trapped instance were not freed, the next call would get 503.
    let host = TestHost::builder().max_calls(1).route("/hostile", hostile("trap")).start().await?;
    for _ in 0..3 {
        let mut caller = TestClient::connect(&host.url("/hostile")).await?;
        let closed = caller.expect_close().await?;
        assert_eq!(closed.code, 1011);
        host.timeline()
            .wait_for(switchboard_harness::PATIENCE, |m| m.name == "call.closed")
            .await
            .ok_or_else(|| anyhow::anyhow!("call did not close"))?;
        while host.host().live_calls() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let traps = host.timeline().find(|m| m.name == "guest.trap");
    assert_eq!(traps.len(), 3);
    assert!(traps.iter().all(|t| t.shown("cause").as_deref() == Some("trap")), "{traps:?}");
    Ok(())
}

#[tokio::test]
async fn a_target_not_on_the_allowlist_is_denied() -> anyhow::Result<()> {
    let upstream = FakeServer::echo().start().await?;
    let host = host_with(hostile("connect").setting("target", &upstream.url("/"))).await?;
    let mut caller = TestClient::connect(&host.url("/hostile")).await?;
    assert_eq!(caller.next_text().await?, "ErrorCode::Denied");
    assert_eq!(upstream.connections(), 0, "nothing reached the network");
    let denied = host.marker("outbound.denied", |_| true).await?;
    assert_eq!(denied.shown("cause").as_deref(), Some("not-allowed"));
    Ok(())
}

#[tokio::test]
async fn ws_is_denied_where_only_wss_is_allowed() -> anyhow::Result<()> {
    let upstream = FakeServer::echo().start().await?;
    let port = upstream.addr().port();
    let spec = hostile("connect").allow(&format!("wss://localhost:{port}")).setting("target", &format!("ws://localhost:{port}/"));
    let host = host_with(spec).await?;
    let mut caller = TestClient::connect(&host.url("/hostile")).await?;
    assert_eq!(caller.next_text().await?, "ErrorCode::Denied");
    assert_eq!(upstream.connections(), 0);
    Ok(())
}

#[tokio::test]
async fn a_connect_storm_hits_the_connection_limit() -> anyhow::Result<()> {
    let upstream = FakeServer::silent().start().await?;
    let spec = hostile("connect-storm")
        .allow(&upstream.origin())
        .setting("target", &upstream.url("/"))
        .setting("count", "200")
        .limit("max_outbound_connections", 4);
    let host = host_with(spec).await?;
    let mut caller = TestClient::connect(&host.url("/hostile")).await?;
    assert_eq!(caller.next_text().await?, "accepted=4 limited=196 other=0");
    Ok(())
}

#[tokio::test]
async fn the_guest_cannot_observe_an_injected_secret() -> anyhow::Result<()> {
    let upstream = FakeServer::echo().expect_token("do-not-leak-42").start().await?;
    let spec = hostile("snoop")
        .allow(&upstream.origin())
        .setting("target", &upstream.url("/"))
        .setting("innocent", "value")
        .setting("tcp_target", &upstream.addr().to_string())
        .secret_header("localhost", "Authorization", "Token ${SECRET_TOKEN}");
    let host = host_with(spec).await?;
    let mut caller = TestClient::connect(&host.url("/hostile")).await?;
    // A caller speaks first (the snoop takes longer than the first-message deadline).
    caller.send_text("connected").await?;
    let report = caller.next_text().await?;
    // The secret did its job on the wire ...
    let handshake = upstream.wait_for_handshake().await?;
    assert_eq!(handshake.header("authorization"), Some("Token do-not-leak-42"));
    assert!(report.contains("protocol=None"), "the connect succeeded: {report}");
    // ... and the guest saw none of it.
    assert!(!report.contains("do-not-leak-42"), "secret leaked: {report}");
    assert!(report.contains("\"innocent\""), "settings are visible: {report}");
    assert!(report.contains("env=[]"), "no environment: {report}");
    assert!(report.contains("files=Err"), "no filesystem: {report}");
    assert!(report.contains("tcp=Err"), "no sockets but the host's: {report}");
    assert_eq!(upstream.connections(), 1, "only the policy-checked connect reached the server");
    Ok(())
}

#[tokio::test]
async fn a_guest_that_does_not_read_holds_at_most_its_receive_buffer() -> anyhow::Result<()> {
    use futures_util::SinkExt;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio_tungstenite::tungstenite::Message;

    let host = host_with(hostile("ignore").limit("receive_buffer_bytes", 64 * 1024)).await?;
    let caller = TestClient::connect(&host.url("/hostile")).await?;
    host.marker("hostile.mode", |_| true).await?;
    let (mut sink, _stream) = caller.into_split();
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    // Offer 64 MiB; the host may hold 64 KiB plus what TCP buffers absorb.
    let flood = tokio::spawn(async move {
        for _ in 0..1024 {
            if sink.send(Message::binary(vec![0u8; 64 * 1024])).await.is_err() {
                break;
            }
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let accepted = sent.load(Ordering::Relaxed);
    assert!(accepted < 512, "the host kept reading for a guest that does not: {accepted} x 64 KiB accepted");
    flood.abort();
    Ok(())
}

#[tokio::test]
async fn a_trapped_guest_s_outbound_sockets_are_closed_cleanly() -> anyhow::Result<()> {
    let upstream = FakeServer::echo().start().await?;
    let spec = hostile("connect-then-trap").allow(&upstream.origin()).setting("target", &upstream.url("/"));
    let host = host_with(spec).await?;
    let mut caller = TestClient::connect(&host.url("/hostile")).await?;
    assert_eq!(caller.expect_close().await?.code, 1011);
    let connected = host.marker("hostile.connected", |_| true).await?;
    assert_eq!(connected.shown("ok").as_deref(), Some("true"));
    upstream.wait_until("a close frame from the host", |s| !s.closes().is_empty()).await?;
    assert_eq!(upstream.closes(), [1000]);
    let closed = host.marker("outbound.closed", |_| true).await?;
    assert_eq!(closed.shown("by").as_deref(), Some("local"));
    Ok(())
}

#[tokio::test]
async fn special_addresses_need_a_rule_that_names_them() -> anyhow::Result<()> {
    let upstream = FakeServer::echo().start().await?;
    let port = upstream.addr().port();
    for target in [format!("ws://127.0.0.1:{port}/"), format!("ws://[::ffff:127.0.0.1]:{port}/")] {
        // A wildcard rule lets the URL through, but not to a loopback address.
        let host = host_with(hostile("connect").allow("ws://*:*").setting("target", &target)).await?;
        let mut caller = TestClient::connect(&host.url("/hostile")).await?;
        assert_eq!(caller.next_text().await?, "ErrorCode::Denied", "{target}");
        let denied = host.marker("outbound.denied", |_| true).await?;
        assert_eq!(denied.shown("cause").as_deref(), Some("special-address"), "{denied:?}");
        assert!(denied.shown("detail").as_deref().unwrap_or_default().contains("127.0.0.1"), "{denied:?}");
        assert!(host.timeline().find(|m| m.name == "outbound.failed").is_empty(), "one marker for a refusal");
    }
    assert_eq!(upstream.connections(), 0, "nothing reached the loopback server");
    // A rule naming the address lets it through.
    let host = host_with(hostile("connect").allow("ws://127.0.0.1:*").setting("target", &format!("ws://127.0.0.1:{port}/"))).await?;
    let mut caller = TestClient::connect(&host.url("/hostile")).await?;
    assert_eq!(caller.next_text().await?, "ok");
    Ok(())
}

#[tokio::test]
async fn secrets_do_not_follow_the_guest_to_other_hosts_or_redirects() -> anyhow::Result<()> {
    // The secret is for `localhost`; a server on 127.0.0.1 that reflects the request shows
    // the guest everything it got, and a redirect from the secret host points there.
    let reflector = FakeServer::reflect().start().await?;
    let reflect_port = reflector.addr().port();
    let spec = hostile("snoop")
        .allow(&format!("ws://127.0.0.1:{reflect_port}"))
        .setting("target", &format!("ws://127.0.0.1:{reflect_port}/"))
        .secret_header("localhost", "Authorization", "Token ${SECRET_TOKEN}");
    let host = host_with(spec).await?;
    let mut caller = TestClient::connect(&host.url("/hostile")).await?;
    let report = caller.next_text().await?;
    assert!(report.contains("first-message=Ok(Some(Message::Text("), "the reflector answered: {report}");
    assert!(report.contains("guest-chosen"), "the guest's own header came back: {report}");
    assert!(!report.contains("do-not-leak-42"), "secret leaked to another host: {report}");

    let redirector = FakeServer::reject(302, &[("location", &format!("ws://127.0.0.1:{reflect_port}/"))], "").start().await?;
    let spec = hostile("connect")
        .allow(&redirector.origin())
        .allow(&format!("ws://127.0.0.1:{reflect_port}"))
        .setting("target", &redirector.url("/"))
        .secret_header("localhost", "Authorization", "Token ${SECRET_TOKEN}");
    let host = host_with(spec).await?;
    let before = reflector.connections();
    let mut caller = TestClient::connect(&host.url("/hostile")).await?;
    let report = caller.next_text().await?;
    assert!(report.contains("HandshakeRejected") && report.contains("status: 302"), "a redirect is not followed: {report}");
    assert_eq!(redirector.handshakes()[0].header("authorization"), Some("Token do-not-leak-42"));
    assert_eq!(reflector.connections(), before, "nothing followed the redirect");
    Ok(())
}
