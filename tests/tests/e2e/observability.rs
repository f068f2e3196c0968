//! Observability: every call in the store with its outcome and failing leg, the query
//! API, metrics that match what a scripted call did, the store surviving a restart, and
//! the dashboard rendered by a real headless Chromium.

use std::time::Duration;

use switchboard_harness::sim::deepgram::DeepgramSim;
use switchboard_harness::sim::twilio::{Ending, TwilioCall};
use switchboard_harness::{ComponentSpec, FakeServer, TestClient, TestHost, caller_speech, guests};

use crate::init_tracing;

async fn get_json(host: &TestHost, path: &str) -> anyhow::Result<serde_json::Value> {
    Ok(host.operator(None)?.get_json(path).await?)
}

fn flush(host: &TestHost) {
    assert!(host.host().calls().flush(Duration::from_secs(10)), "the call store flushed");
}

/// A host whose voice pipeline talks to a plain-ws simulator that wants `key`, given
/// `given` as the injected key.
async fn voice_host(
    sim: DeepgramSim,
    given: &str,
    data: Option<&std::path::Path>,
) -> anyhow::Result<(TestHost, switchboard_harness::sim::deepgram::RunningSim)> {
    init_tracing();
    let deepgram = sim.expect_token("right-key").start().await?;
    let spec = ComponentSpec::new("voice", guests::VOICE_PIPELINE)
        .allow(&deepgram.origin())
        .setting("deepgram_url", &deepgram.listen_url())
        .setting("reconnect_base_ms", "100")
        .secret_header("localhost", "Authorization", "Token ${DEEPGRAM_API_KEY}");
    let mut builder = TestHost::builder()
        .env("DEEPGRAM_API_KEY", given)
        .route("/twilio/media", spec)
        .route("/echo", ComponentSpec::new("echo", guests::ECHO))
        .route("/hostile", ComponentSpec::new("hostile", guests::HOSTILE).setting("mode", "trap"));
    if let Some(dir) = data {
        builder = builder.data_dir(dir);
    }
    Ok((builder.start().await?, deepgram))
}

fn speech(seconds: f64) -> Vec<u8> {
    caller_speech()[..(seconds * 8000.0) as usize].to_vec()
}

#[tokio::test]
async fn every_fault_shows_up_with_its_failing_leg_and_cause() -> anyhow::Result<()> {
    let (host, _deepgram) = voice_host(DeepgramSim::new().close_after_audio(Duration::from_millis(800), 1), "wrong-key", None).await?;
    let url = host.url("/twilio/media");
    // 401 from Deepgram.
    TwilioCall::new(&url).audio(speech(1.0)).sids("CA401", "MZ401").run().await?;
    // The caller vanishes (on a host whose Deepgram key is right, so nothing else fails).
    let (healthy, _sim) = voice_host(DeepgramSim::new(), "right-key", None).await?;
    TwilioCall::new(&healthy.url("/twilio/media")).audio(speech(0.5)).sids("CAGONE", "MZGONE").ending(Ending::Vanish).run().await?;
    healthy.marker("call.closed", |_| true).await?;
    flush(&healthy);
    let gone = get_json(&healthy, "/api/calls/CAGONE").await?;
    assert_eq!(gone["call"]["failing_leg"], "twilio", "{gone:#}");
    assert_eq!(gone["call"]["outcome"], "failed");
    // A guest trap.
    let mut trapped = TestClient::connect(&host.url("/hostile")).await?;
    trapped.expect_close().await?;
    host.marker("call.closed", |m| m.shown("code").as_deref() == Some("1011")).await?;
    host.timeline()
        .wait_for(Duration::from_secs(20), |m| m.name == "pipeline.summary" && m.shown("lost_bytes").as_deref() != Some("0"))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    flush(&host);

    let deepgram_failures = get_json(&host, "/api/calls?outcome=failed&leg=deepgram").await?;
    let rejected = deepgram_failures.as_array().and_then(|calls| calls.iter().find(|c| c["references"][0]["value"] == "CA401")).cloned();
    let rejected = rejected.ok_or_else(|| anyhow::anyhow!("401 call not listed: {deepgram_failures:#}"))?;
    assert!(rejected["cause"].as_str().unwrap_or_default().contains("HTTP 401 Invalid credentials."), "{rejected:#}");

    let trap = get_json(&host, "/api/calls?leg=guest").await?;
    assert!(trap[0]["cause"].as_str().unwrap_or_default().contains("guest trap"), "{trap:#}");

    // A call's timeline and its stream SID lookup.
    let by_stream = get_json(&host, "/api/calls/MZ401").await?;
    assert_eq!(by_stream["call"]["references"][0], serde_json::json!({ "kind": "call_sid", "value": "CA401" }));
    let names: Vec<&str> =
        by_stream["timeline"].as_array().map(|t| t.iter().filter_map(|m| m["name"].as_str()).collect()).unwrap_or_default();
    for expected in ["call.accepted", "twilio.start", "outbound.failed", "deepgram.rejected", "call.closed"] {
        assert!(names.contains(&expected), "{expected} missing from {names:?}");
    }
    Ok(())
}

#[tokio::test]
async fn a_recovered_reconnect_is_degraded_with_a_transcript() -> anyhow::Result<()> {
    let sim = DeepgramSim::new().close_after_audio(Duration::from_millis(1_500), 1).transcripts(&["hello there"]);
    let (host, _deepgram) = voice_host(sim, "right-key", None).await?;
    TwilioCall::new(&host.url("/twilio/media")).audio(speech(3.0)).sids("CARECOVER", "MZRECOVER").run().await?;
    host.marker("call.closed", |_| true).await?;
    flush(&host);
    let call = get_json(&host, "/api/calls/CARECOVER").await?;
    assert_eq!(call["call"]["outcome"], "degraded", "{:#}", call["call"]);
    assert_eq!(call["call"]["failing_leg"], "deepgram");
    assert!(call["call"]["cause"].as_str().unwrap_or_default().contains("1011"));
    let transcript = get_json(&host, "/api/calls/CARECOVER/transcript").await?;
    assert_eq!(
        (transcript[0]["speaker"].as_str(), transcript[0]["text"].as_str()),
        (Some("caller"), Some("hello there")),
        "{transcript:#}"
    );
    assert!(transcript[0]["end_ms"].as_u64() > transcript[0]["start_ms"].as_u64(), "times are numbers: {transcript:#}");
    Ok(())
}

#[tokio::test]
async fn the_store_survives_a_restart() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let call_sid;
    {
        let (host, _deepgram) = voice_host(DeepgramSim::new(), "right-key", Some(data.path())).await?;
        call_sid = "CAPERSIST";
        TwilioCall::new(&host.url("/twilio/media")).audio(speech(1.0)).sids(call_sid, "MZPERSIST").run().await?;
        host.marker("call.closed", |_| true).await?;
        flush(&host);
    }
    let (host, _deepgram) = voice_host(DeepgramSim::new(), "right-key", Some(data.path())).await?;
    let call = get_json(&host, &format!("/api/calls/{call_sid}")).await?;
    assert_eq!(call["call"]["outcome"], "ok", "{call:#}");
    assert!(call["timeline"].as_array().map_or(0, Vec::len) > 5);
    Ok(())
}

/// Reads a counter's value from the exposition.
fn metric(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find(|line| line.starts_with(line_start))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(-1.0)
}

#[tokio::test]
async fn metrics_match_a_scripted_call() -> anyhow::Result<()> {
    init_tracing();
    let upstream = FakeServer::echo().start().await?;
    let relay = ComponentSpec::new("relay", guests::RELAY).allow(&upstream.origin()).setting("target", &upstream.url("/"));
    let host = TestHost::builder()
        .route("/relay", relay)
        .route(
            "/denied",
            ComponentSpec::new("hostile", guests::HOSTILE).setting("mode", "connect").setting("target", "wss://example.invalid/"),
        )
        .start()
        .await?;
    let mut caller = TestClient::connect(&host.url("/relay")).await?;
    for index in 0..5 {
        caller.send_binary(vec![index; 100]).await?;
        caller.next_data().await?;
    }
    caller.close(1000, "").await?;
    caller.expect_close().await?;
    let mut denied = TestClient::connect(&host.url("/denied")).await?;
    denied.next_text().await?;
    denied.close(1000, "").await?;
    host.marker("call.closed", |m| m.shown("by").as_deref() == Some("peer")).await?;
    host.timeline().wait_for(Duration::from_secs(20), |m| m.name == "outbound.closed").await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let text = host.operator(None)?.get_text("/metrics").await?;
    assert_eq!(metric(&text, "switchboard_calls_accepted_total"), 2.0, "{text}");
    assert_eq!(metric(&text, "switchboard_rx_frames_total{socket=\"inbound\"}"), 5.0, "{text}");
    assert_eq!(metric(&text, "switchboard_rx_bytes_total{socket=\"inbound\"}"), 500.0, "{text}");
    // Out to the upstream, back from it, and back to the caller (plus the denied call's report).
    assert_eq!(metric(&text, "switchboard_tx_frames_total{socket=\"outbound\"}"), 5.0, "{text}");
    assert_eq!(metric(&text, "switchboard_rx_frames_total{socket=\"outbound\"}"), 5.0, "{text}");
    assert_eq!(metric(&text, "switchboard_tx_frames_total{socket=\"inbound\"}"), 6.0, "{text}");
    assert_eq!(metric(&text, "switchboard_outbound_connects_total{leg=\"outbound\",result=\"open\",cause=\"\"}"), 1.0, "{text}");
    assert_eq!(
        metric(&text, "switchboard_outbound_connects_total{leg=\"outbound\",result=\"denied\",cause=\"not-allowed\"}"),
        1.0,
        "{text}"
    );
    assert_eq!(metric(&text, "switchboard_outbound_handshake_seconds_count"), 1.0, "{text}");
    assert_strict_openmetrics(&text).await
}

/// Parses the exposition with the Prometheus client's strict OpenMetrics parser (what
/// Prometheus negotiates when it scrapes), which rejects the whole page on a repeated
/// family, a sample outside its family or a missing `# EOF`.
async fn assert_strict_openmetrics(text: &str) -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;
    let script = "import sys\nfrom prometheus_client.openmetrics.parser import text_string_to_metric_families\n\
                  families = list(text_string_to_metric_families(sys.stdin.read()))\nprint(len(families))\n";
    let mut child = tokio::process::Command::new(switchboard_harness::python()?)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().ok_or_else(|| anyhow::anyhow!("no stdin"))?;
    stdin.write_all(text.as_bytes()).await?;
    drop(stdin);
    let output = child.wait_with_output().await?;
    anyhow::ensure!(
        output.status.success(),
        "the strict OpenMetrics parser refused the page: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    let families: usize = String::from_utf8_lossy(&output.stdout).trim().parse()?;
    assert!(families >= 10, "{families} families parsed");
    Ok(())
}

#[tokio::test]
async fn the_dashboard_shows_a_failed_call_in_headless_chromium() -> anyhow::Result<()> {
    let chromium =
        ["chromium", "chromium-browser"].into_iter().find(|name| std::process::Command::new(name).arg("--version").output().is_ok());
    let chromium = chromium.ok_or_else(|| anyhow::anyhow!("Chromium is not installed: ./test.sh installs Debian's `chromium` package"))?;
    let (host, _deepgram) = voice_host(DeepgramSim::new(), "wrong-key", None).await?;
    TwilioCall::new(&host.url("/twilio/media")).audio(speech(1.0)).sids("CADASH", "MZDASH").run().await?;
    host.marker("call.closed", |_| true).await?;
    flush(&host);
    let call = get_json(&host, "/api/calls/CADASH").await?;
    let call_id = call["call"]["call_id"].as_str().unwrap_or_default().to_owned();
    // A snapshot (`live=0`): an open event stream would keep headless Chromium's virtual
    // time from advancing. The live stream is tested on its own below.
    let url = host.operator_url(&format!("/dashboard?live=0#{call_id}"));
    let profile = tempfile::tempdir()?;
    let shot = profile.path().join("dashboard.png");
    let run = |extra: Vec<String>| {
        let mut command = tokio::process::Command::new(chromium);
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--window-size=1280,900",
                "--virtual-time-budget=4000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(&url)
            .kill_on_drop(true);
        async move { tokio::time::timeout(Duration::from_secs(90), command.output()).await }
    };
    let dom = run(vec!["--dump-dom".to_owned()]).await??;
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(dom.contains("CADASH"), "the call is listed: {dom}");
    assert!(dom.contains("deepgram leg: Deepgram rejected the connection: HTTP 401"), "the cause is stated first: {dom}");
    assert!(dom.contains("deepgram.rejected"), "the timeline lists the failure: {dom}");

    run(vec![format!("--screenshot={}", shot.display())]).await??;
    if let Ok(keep) = std::env::var("SWITCHBOARD_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep)?;
    }
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot)?));
    let mut reader = decoder.read_info()?;
    let mut pixels = vec![0; reader.output_buffer_size().unwrap_or(0)];
    let info = reader.next_frame(&mut pixels)?;
    let channels = info.color_type.samples();
    let red = pixels[..info.buffer_size()]
        .chunks(channels)
        .filter(|p| (p[0] as i32 - 207).abs() < 12 && (p[1] as i32 - 34).abs() < 12 && (p[2] as i32 - 46).abs() < 12)
        .count();
    assert!(red > 200, "failures are drawn in red ({red} red pixels)");
    Ok(())
}

#[tokio::test]
async fn the_event_stream_carries_markers_live() -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    init_tracing();
    let host = TestHost::builder().route("/echo", ComponentSpec::new("echo", guests::ECHO)).start().await?;
    let mut stream = tokio::net::TcpStream::connect(host.operator_addr()).await?;
    stream.write_all(b"GET /api/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n").await?;
    let mut caller = TestClient::connect(&host.url("/echo")).await?;
    caller.send_text("hi").await?;
    caller.next_text().await?;
    let mut seen = String::new();
    let mut buffer = vec![0u8; 8192];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !seen.contains("echo.started") {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await??;
        anyhow::ensure!(n > 0, "the event stream ended: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
    }
    assert!(seen.contains("text/event-stream"), "{seen}");
    assert!(seen.contains("event: marker"), "{seen}");
    assert!(seen.contains("\"leg\":\"host\"") && seen.contains("call.accepted"), "{seen}");
    Ok(())
}
