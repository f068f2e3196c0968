//! Hot swap: new versions under load without dropping a call or a byte, rollback, refusal
//! of bad components, the admin API's authentication, the artifact store, file watching.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use switchboard_harness::{ComponentSpec, TestClient, TestHost, guests};
use tokio_tungstenite::tungstenite::Message;

use crate::init_tracing;

const TOKEN: &str = "test-admin-token-0123456789";

fn admin(host: &TestHost) -> anyhow::Result<switchboard::http::client::OperatorClient> {
    host.operator(Some(TOKEN))
}

async fn upload(host: &TestHost, file: &str) -> anyhow::Result<serde_json::Value> {
    Ok(admin(host)?.upload("app", std::fs::read(file)?).await?)
}

/// One caller: reads the version banner, streams `frames` 160-byte frames at 20 ms and
/// checks every one comes back; returns (version, bytes sent, bytes echoed).
async fn caller(url: String, frames: usize) -> anyhow::Result<(String, usize, usize)> {
    let client = TestClient::connect(&url).await?;
    let (mut sink, mut stream) = client.into_split();
    let banner = match tokio::time::timeout(Duration::from_secs(20), stream.next()).await? {
        Some(Ok(Message::Text(text))) => text.as_str().to_owned(),
        other => anyhow::bail!("no version banner: {other:?}"),
    };
    let reader = tokio::spawn(async move {
        let mut echoed = Vec::new();
        while let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_secs(20), stream.next()).await {
            match message {
                Message::Binary(data) => echoed.extend_from_slice(&data),
                Message::Close(_) => break,
                _ => {}
            }
        }
        echoed
    });
    let mut sent = Vec::new();
    for index in 0..frames {
        let frame: Vec<u8> = (0..160).map(|i| ((index * 31 + i) % 256) as u8).collect();
        sent.extend_from_slice(&frame);
        sink.send(Message::binary(frame)).await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Give the last echoes a moment, then close.
    tokio::time::sleep(Duration::from_millis(200)).await;
    sink.send(Message::Close(None)).await?;
    let echoed = reader.await?;
    anyhow::ensure!(echoed == sent, "echo differs: sent {} bytes, got {} back", sent.len(), echoed.len());
    Ok((banner.trim_start_matches("version:").to_owned(), sent.len(), echoed.len()))
}

fn wave(host: &TestHost, calls: usize) -> Vec<tokio::task::JoinHandle<anyhow::Result<(String, usize, usize)>>> {
    (0..calls).map(|_| tokio::spawn(caller(host.url("/call"), 100))).collect()
}

async fn wait_live(host: &TestHost, at_least: usize) {
    while host.host().live_calls() < at_least {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn swaps_under_load_drop_no_call_and_lose_no_byte() -> anyhow::Result<()> {
    init_tracing();
    let data = tempfile::tempdir()?;
    let host = TestHost::builder()
        .admin_token(TOKEN)
        .data_dir(data.path())
        .route("/call", ComponentSpec::new("app", guests::VERSIONED_V1))
        .start()
        .await?;

    let mut waves = Vec::new();
    waves.push(("v1", wave(&host, 13)));
    wait_live(&host, 13).await;
    let first = upload(&host, guests::VERSIONED_V2).await?;
    assert_eq!(first["version"]["number"], 2);
    waves.push(("v2", wave(&host, 12)));
    wait_live(&host, 25).await;

    // Refused while serving: corrupt bytes, and a component importing what the host lacks.
    let corrupt = admin(&host)?.upload("app", b"\0asm garbage".to_vec()).await;
    assert!(format!("{:#}", corrupt.expect_err("corrupt upload refused")).contains("422"));
    // A file cut short at a section boundary is itself a valid component: it is refused
    // for exporting nothing, and with the client's digest, for being cut short.
    let whole = std::fs::read(guests::VOICE_PIPELINE)?;
    let cut = whole[..1_000].to_vec();
    let (status, body) = admin(&host)?.send(http::Method::PUT, "/admin/components/app", cut.clone(), "application/wasm").await?;
    assert_eq!(status, 422);
    assert!(String::from_utf8_lossy(&body).contains("exports nothing at all"), "{}", String::from_utf8_lossy(&body));
    use base64::Engine;
    use sha2::Digest;
    let digest = format!("sha-256=:{}:", base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&whole)));
    let (status, body) = admin(&host)?
        .send_with(http::Method::PUT, "/admin/components/app", cut, "application/wasm", &[("content-digest", &digest)])
        .await?;
    assert_eq!(status, 422);
    assert!(String::from_utf8_lossy(&body).contains("cut short"), "{}", String::from_utf8_lossy(&body));
    let missing = wat::parse_str(r#"(component (import "acme:telephony/dialer@1.0.0" (instance (export "dial" (func)))))"#)?;
    let refused = admin(&host)?.upload("app", missing).await;
    let refused = format!("{:#}", refused.expect_err("missing import refused"));
    assert!(refused.contains("acme:telephony/dialer@1.0.0"), "{refused}");

    let second = upload(&host, guests::VERSIONED_V1).await?;
    assert_eq!(second["version"]["number"], 3);
    waves.push(("v1", wave(&host, 13)));
    wait_live(&host, 38).await;
    let rolled = admin(&host)?.rollback("app", None).await?;
    assert_eq!(rolled["version"]["number"], 2, "rollback returns to the version before the current");
    waves.push(("v2", wave(&host, 12)));

    let mut calls = 0;
    for (expected, handles) in waves {
        for handle in handles {
            let (version, sent, echoed) = handle.await??;
            assert_eq!(version, expected, "a call started after a swap runs the new version");
            assert_eq!(sent, echoed);
            calls += 1;
        }
    }
    assert_eq!(calls, 50, "zero calls dropped");

    // Each call's timeline names its version, and old versions are freed once their calls end.
    let started = host.timeline().find(|m| m.name == "instance.started");
    let per_version = |n: &str| started.iter().filter(|m| m.shown("version").as_deref() == Some(n)).count();
    assert_eq!((per_version("1"), per_version("2"), per_version("3")), (13, 24, 13));
    // A caller sees its close a moment before the host records `call.closed`.
    let mut closed = Vec::new();
    for _ in 0..100 {
        closed = host.timeline().find(|m| m.name == "call.closed");
        if closed.len() >= 50 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(closed.len(), 50);
    let mut versions = Vec::new();
    for _ in 0..100 {
        versions = admin(&host)?.components().await?.as_array().cloned().unwrap_or_default();
        if versions.iter().all(|v| v["live_calls"] == 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let loaded: Vec<(u64, bool, bool)> = versions
        .iter()
        .map(|v| (v["number"].as_u64().unwrap_or(0), v["current"].as_bool().unwrap_or(false), v["loaded"].as_bool().unwrap_or(true)))
        .collect();
    assert_eq!(loaded, [(1, false, false), (2, true, true), (3, false, false)], "{versions:#?}");
    Ok(())
}

#[tokio::test]
async fn the_admin_api_needs_its_token_and_is_off_without_one() -> anyhow::Result<()> {
    init_tracing();
    let host = TestHost::builder().admin_token(TOKEN).route("/call", ComponentSpec::new("app", guests::VERSIONED_V1)).start().await?;
    let wrong = host.operator(Some("not-the-token-at-all"))?.components().await;
    assert!(format!("{:#}", wrong.expect_err("wrong token refused")).contains("401"));
    let listed = admin(&host)?.components().await?;
    assert_eq!(listed[0]["component"], "app");

    let closed = TestHost::builder().route("/call", ComponentSpec::new("app", guests::VERSIONED_V1)).start().await?;
    let off = admin(&closed)?.components().await;
    assert!(format!("{:#}", off.expect_err("admin off")).contains("404"));
    Ok(())
}

#[tokio::test]
async fn a_restart_and_a_rollback_use_the_artifact_store() -> anyhow::Result<()> {
    init_tracing();
    let data = tempfile::tempdir()?;
    let start = || {
        TestHost::builder().admin_token(TOKEN).data_dir(data.path()).route("/call", ComponentSpec::new("app", guests::VERSIONED_V1)).start()
    };
    let first = start().await?;
    let listed = admin(&first)?.components().await?;
    assert_eq!(listed[0]["compiled"], "compiled");
    let deployed = upload(&first, guests::VERSIONED_V2).await?;
    assert_eq!(deployed["compiled"], "compiled");
    drop(first);

    let second = start().await?;
    let listed = admin(&second)?.components().await?;
    assert_eq!(listed[0]["compiled"], "cached", "a restart does not recompile");
    let redeployed = upload(&second, guests::VERSIONED_V2).await?;
    assert_eq!(redeployed["compiled"], "cached", "a known component is not compiled again");
    let rolled = admin(&second)?.rollback("app", Some(1)).await?;
    assert_eq!(rolled["version"]["number"], 1);
    let mut caller = TestClient::connect(&second.url("/call")).await?;
    assert_eq!(caller.next_text().await?, "version:v1");
    Ok(())
}

#[tokio::test]
async fn a_watched_file_is_redeployed_when_it_changes() -> anyhow::Result<()> {
    init_tracing();
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("app.wasm");
    std::fs::copy(guests::VERSIONED_V1, &file)?;
    let host = TestHost::builder().route("/call", ComponentSpec::new("app", &file).watch()).start().await?;
    let mut caller = TestClient::connect(&host.url("/call")).await?;
    assert_eq!(caller.next_text().await?, "version:v1");
    std::fs::copy(guests::VERSIONED_V2, &file)?;
    let versions = host.host().versions().clone();
    tokio::time::timeout(Duration::from_secs(30), async {
        while versions.current("app").map(|v| v.number) != Some(2) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await?;
    let mut next = TestClient::connect(&host.url("/call")).await?;
    assert_eq!(next.next_text().await?, "version:v2");
    // The call that started on v1 is still on v1.
    caller.send_text("still here").await?;
    assert_eq!(caller.next_text().await?, "still here");
    Ok(())
}
