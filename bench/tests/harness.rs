//! The bench harness measured against itself: a trial through the native relay delivers
//! and counts every frame, and the fake Deepgram's accounting catches what a relay gets
//! wrong (a missing frame, a duplicate, a wrong API key).

use std::path::PathBuf;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::ServerName;
use switchboard_bench::fake_deepgram::FakeDeepgram;
use switchboard_bench::stamp::{Stamp, now_ns};
use switchboard_bench::sut::{Environment, System};
use switchboard_bench::trial::{self, Phases};
use switchboard_sim::tls::TestCa;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const KEY: &str = "test-key";

#[tokio::test]
async fn a_trial_through_the_native_relay_delivers_and_counts_every_frame() -> anyhow::Result<()> {
    let ca = TestCa::new()?;
    let deepgram = FakeDeepgram::start(ca.server_config()?, KEY).await?;
    let work = tempfile::tempdir()?;
    let native = PathBuf::from(env!("CARGO_BIN_EXE_native-relay"));
    let environment = Environment {
        deepgram_url: deepgram.url(),
        deepgram_origin: deepgram.origin(),
        ca_pem: ca.pem_path().to_owned(),
        api_key: KEY.to_owned(),
        work_dir: work.path().to_owned(),
        bin_dir: native.parent().map(PathBuf::from).unwrap_or_default(),
        node_relay_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node-relay"),
        cpus: None,
        hostile_wasm: None,
    };
    let phases = Phases {
        ramp_per_call: Duration::from_millis(10),
        min_ramp: Duration::from_millis(200),
        warmup: Duration::from_millis(300),
        measure: Duration::from_secs(1),
    };
    let result = trial::run(System::Native, 20, &environment, &deepgram, phases).await?;
    assert!(result.passed, "{result:#?}");
    assert_eq!(result.failed_calls, 0, "{:?}", result.errors);
    assert!(result.frames_sent >= 20 * 75, "every call runs ramp + warm-up + window: {}", result.frames_sent);
    assert_eq!((result.frames_lost, result.frames_received, result.duplicates), (0, result.frames_sent, 0));
    assert_eq!(result.close_streams, 20, "every call ends with CloseStream");
    // About 50 frames per call per second of window.
    assert!((800..=1_200).contains(&result.latency.count), "{:?}", result.latency);
    assert!(result.latency.p50_us > 0 && result.latency.p50_us <= result.latency.p99_us);
    assert!(result.cpu_seconds > 0.0 && result.rss_idle_bytes > 0 && result.rss_loaded_bytes > 0);
    Ok(())
}

#[tokio::test]
async fn the_fake_deepgram_counts_gaps_and_duplicates_and_refuses_a_wrong_key() -> anyhow::Result<()> {
    let ca = TestCa::new()?;
    let deepgram = FakeDeepgram::start(ca.server_config()?, KEY).await?;
    let recorder = deepgram.record(0, u64::MAX);
    let tls = tokio_rustls::TlsConnector::from(ca.client_config()?);
    let dial = |key: &'static str| {
        let (tls, url) = (tls.clone(), deepgram.url());
        async move {
            let port = url.rsplit(':').next().and_then(|rest| rest.split('/').next()).unwrap_or_default().to_owned();
            let tcp = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}")).await?;
            let stream = tls.connect(ServerName::try_from("localhost")?, tcp).await?;
            let mut request = url.as_str().into_client_request()?;
            request.headers_mut().insert("authorization", format!("Token {key}").parse()?);
            anyhow::Ok(tokio_tungstenite::client_async(request, stream).await)
        }
    };

    let refused = dial("wrong").await?;
    let status = match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        other => anyhow::bail!("expected a refusal, got {:?}", other.map(|_| ())),
    };
    assert_eq!(status, 401);

    let (mut socket, _) = dial(KEY).await??;
    let frame = |seq| Stamp { call: 9, seq, sent_ns: now_ns() }.frame().to_vec();
    // Frames 0, 1 and 3 in one message, 1 again, 5 split across two messages (the second
    // carrying 6 as well), and 4 with a stray half frame.
    socket.send(Message::Binary([frame(0), frame(1), frame(3)].concat().into())).await?;
    socket.send(Message::Binary(frame(1).into())).await?;
    let five = frame(5);
    socket.send(Message::Binary(five[..100].to_vec().into())).await?;
    socket.send(Message::Binary([five[100..].to_vec(), frame(6)].concat().into())).await?;
    socket.send(Message::Binary([frame(4), vec![0; 80]].concat().into())).await?;
    socket.send(Message::Text(r#"{"type":"KeepAlive"}"#.into())).await?;
    socket.send(Message::Text(r#"{"type":"CloseStream"}"#.into())).await?;
    let mut replies = Vec::new();
    while let Some(Ok(message)) = socket.next().await {
        replies.push(message);
    }
    assert!(matches!(&replies[0], Message::Text(t) if t.contains("\"Metadata\"")), "{replies:?}");
    assert!(matches!(replies.last(), Some(Message::Close(Some(frame))) if u16::from(frame.code) == 1000));
    assert!(recorder.wait_closed(Duration::from_secs(5)).await);

    let seen = recorder.snapshot();
    assert_eq!(seen.frames.get(&9).map(|f| f.count()), Some(6), "frames 0, 1, 3, 4, 5, 6");
    assert_eq!((seen.duplicates, seen.stray_bytes, seen.keepalives, seen.close_streams), (1, 80, 1, 1));
    assert_eq!((seen.unauthorized, seen.connections), (1, 1));
    assert_eq!(seen.latency_us.len(), 7);
    Ok(())
}
