//! A call that sends ten thousand `wasi:http` requests holds no growing memory: measured
//! on a `switchboard serve` process of its own, so other tests cannot move the figure.

use std::time::Duration;

use switchboard_harness::{ComponentSpec, FakeHttpServer, Reply, TestCa, TestClient, TestHost, guests};

/// Resident memory of process `pid`, bytes.
fn resident_bytes(pid: u32) -> u64 {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0) * 4096
}

async fn ask(caller: &mut TestClient, command: &str) -> String {
    caller.send_text(command).await.expect("send");
    caller.next_text().await.expect("answer")
}

#[tokio::test]
async fn ten_thousand_requests_in_a_call_hold_no_growing_memory() {
    let ca = TestCa::new().expect("test CA");
    let api = FakeHttpServer::new().route("/ping", Reply::text("pong")).tls(&ca).start().await.expect("server");
    let spec = ComponentSpec::new("fetch", guests::FETCH)
        .trust(&ca)
        .allow(&api.origin())
        .limit("max_http_requests", 20_000)
        // Back-to-back requests on loopback never wait a millisecond: without this the
        // burst budget would stop the guest on a slow machine.
        .limit("cpu_burst_ms", 60_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("serve.toml");
    std::fs::write(&config, TestHost::builder().route("/fetch", spec).toml()).expect("config");
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let listen = format!("127.0.0.1:{port}");
    let server = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["serve", "--config", &config.display().to_string(), "--listen", &listen, "--operator-listen", "127.0.0.1:0"])
        .env_remove("RUST_LOG")
        .kill_on_drop(true)
        .spawn()
        .expect("switchboard serve starts");
    let pid = server.id().expect("pid");
    let url = format!("ws://{listen}/fetch");
    let mut caller = None;
    for _ in 0..600 {
        if let Ok(client) = TestClient::connect(&url).await {
            caller = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut caller = caller.expect("serve accepts the call");
    // Each request carries request-options, which wasmtime-wasi-http 48 would leave in
    // the call's resource table (48 bytes a request) without the host's `handle`.
    let ping = format!("{} first_byte_ms=10000", api.url("/ping"));
    assert_eq!(ask(&mut caller, &format!("many 1000 {ping}")).await, "many ok=1000 failed=0 last=");
    let warm = resident_bytes(pid);
    assert!(warm > 0, "/proc/{pid}/statm is readable");
    assert_eq!(ask(&mut caller, &format!("many 9000 {ping}")).await, "many ok=9000 failed=0 last=");
    let grown = resident_bytes(pid).saturating_sub(warm);
    // A leak of 48 bytes a request would be 432 KiB here.
    assert!(grown < 256 << 10, "9,000 more requests grew the host by {} KiB", grown >> 10);
    assert!(api.connections() <= 4, "kept-alive connections were not reused: {} connections", api.connections());
}
