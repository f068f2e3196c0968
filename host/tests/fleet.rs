//! Two real `switchboard serve` replicas sharing a real PostgreSQL (Debian's) and a real
//! OCI registry (Debian's `docker-registry`), on loopback: components pushed with
//! `switchboard push` and pulled by digest, a deploy through one replica reaching both,
//! calls of both listed by either with their replica, one replica drained mid-call with
//! nothing lost while the other serves, the database stopped mid-call with no audio lost
//! and its markers written when it returns, and a wrong digest refused.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use switchboard_harness::{TestClient, TestPostgres, TestRegistry};
use switchboard_sim::deepgram::DeepgramSim;
use switchboard_sim::tls::TestCa;
use switchboard_sim::twilio::TwilioCall;
use tokio::process::{Child, Command};

const ADMIN_TOKEN: &str = "fleet-admin-token-0123456789";
const PATIENCE: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port()
}

/// `switchboard ARGS` with the registry's CA trusted; stdout, or the failure.
async fn switchboard(ca: &TestCa, args: &[&str]) -> Result<String, String> {
    let output = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(args)
        .env("SWITCHBOARD_REGISTRY_CA_FILE", ca.pem_path())
        .env("SWITCHBOARD_ADMIN_TOKEN", ADMIN_TOKEN)
        .env_remove("RUST_LOG")
        .output()
        .await
        .expect("the switchboard binary runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned());
    if output.status.success() { Ok(stdout) } else { Err(format!("{stdout}{stderr}")) }
}

/// One raw HTTP/1.1 GET; status code and body.
async fn http_get(port: u16, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    (status, body)
}

struct Replica {
    name: &'static str,
    public: u16,
    operator: u16,
    process: Child,
    log: std::path::PathBuf,
}

impl Replica {
    async fn start(
        name: &'static str,
        dir: &Path,
        reference: &str,
        deepgram: &switchboard_sim::deepgram::RunningSim,
        ca: &TestCa,
        postgres: Option<&TestPostgres>,
    ) -> Replica {
        Self::try_start(name, dir, reference, deepgram, ca, postgres).await.unwrap_or_else(|log| panic!("{name} did not start: {log}"))
    }

    /// Starts a replica; its log when it exits instead of listening.
    async fn try_start(
        name: &'static str,
        dir: &Path,
        reference: &str,
        deepgram: &switchboard_sim::deepgram::RunningSim,
        ca: &TestCa,
        postgres: Option<&TestPostgres>,
    ) -> Result<Replica, String> {
        let (public, operator) = (free_port(), free_port());
        let quote = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:{public}\"\ndrain_timeout_ms = 60000\ndata_dir = {data}\n\
                 [operator]\nlisten = \"127.0.0.1:{operator}\"\nadmin_token_env = \"SWITCHBOARD_ADMIN_TOKEN\"\n\
                 [[routes]]\npath = \"/twilio/media\"\ncomponent = \"voice\"\n\
                 [[routes]]\npath = \"/v\"\ncomponent = \"versioned\"\n\
                 [components.versioned]\noci = {reference}\n\
                 [components.voice]\nbuiltin = \"voice-pipeline\"\nallow_outbound = [{origin}]\nextra_ca_certs = [{ca}]\n\
                 [components.voice.settings]\ndeepgram_url = {url}\n\
                 [[components.voice.secret_headers]]\nhost = \"localhost\"\nname = \"Authorization\"\nvalue = \"Token fleet-key\"\n",
                data = quote(&dir.join(name).display().to_string()),
                reference = quote(reference),
                origin = quote(&deepgram.origin()),
                ca = quote(&ca.pem_path().display().to_string()),
                url = quote(&deepgram.listen_url()),
            ),
        )
        .expect("config");
        let log = dir.join(format!("{name}.log"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard"));
        if let Some(postgres) = postgres {
            command.env("SWITCHBOARD_DATABASE_URL", postgres.url());
        }
        let process = command
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .env("SWITCHBOARD_REPLICA", name)
            .env("SWITCHBOARD_REGISTRY_CA_FILE", ca.pem_path())
            .env("SWITCHBOARD_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .kill_on_drop(true)
            .spawn()
            .expect("switchboard serve starts");
        let mut replica = Replica { name, public, operator, process, log };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while tokio::net::TcpStream::connect(("127.0.0.1", public)).await.is_err() {
            if tokio::time::Instant::now() > deadline || replica.process.try_wait().ok().flatten().is_some() {
                return Err(replica.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(replica)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn media(&self) -> String {
        format!("ws://127.0.0.1:{}/twilio/media", self.public)
    }

    /// The version a new call of `/v` gets.
    async fn version(&self) -> String {
        let mut client = TestClient::connect(&format!("ws://127.0.0.1:{}/v", self.public)).await.expect("connects");
        client.next_text().await.expect("announces its version")
    }

    async fn wait_for_version(&self, version: &str) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let now = self.version().await;
            if now == format!("version:{version}") {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "{} still serves {now}: {}", self.name, self.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn calls(&self) -> (u16, serde_json::Value) {
        let (status, body) = http_get(self.operator, "/api/calls?limit=50").await;
        (status, serde_json::from_str(&body).unwrap_or(serde_json::Value::Null))
    }

    /// Waits until the call with `sid` is listed by this replica with `outcome`; returns it.
    async fn wait_for_call(&self, sid: &str, outcome: &str) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let (_, calls) = self.calls().await;
            let found =
                calls.as_array().into_iter().flatten().find(|call| {
                    call["references"].as_array().into_iter().flatten().any(|r| r["value"] == sid) && call["outcome"] == outcome
                });
            if let Some(call) = found {
                return call.clone();
            }
            assert!(tokio::time::Instant::now() < deadline, "{} never listed {sid} as {outcome}: {calls}", self.name);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn heard_everything(deepgram: &switchboard_sim::deepgram::RunningSim) -> bool {
    deepgram.sessions().iter().any(|s| s.audio == switchboard_sim::CALLER_SPEECH && s.finalized == s.audio.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_a_registry_and_a_database() {
    let ca = TestCa::new().expect("test CA");
    let registry = TestRegistry::start(&ca).expect("docker-registry starts");
    let mut postgres = tokio::task::block_in_place(TestPostgres::start).expect("PostgreSQL starts");
    let deepgram = DeepgramSim::new().tls(ca.server_config().expect("TLS")).expect_token("fleet-key").start().await.expect("Deepgram");
    let dir = tempfile::tempdir().expect("temp dir");

    // Publish both versions; each push prints its pinned reference.
    let repository = registry.reference("acme/versioned");
    let v1 = switchboard(&ca, &["push", switchboard_harness::guests::VERSIONED_V1, &format!("{repository}:v1")]).await.expect("push v1");
    let v2 = switchboard(&ca, &["push", switchboard_harness::guests::VERSIONED_V2, &format!("{repository}:v2")]).await.expect("push v2");
    let (v1, v2) = (v1.trim().to_owned(), v2.trim().to_owned());
    assert!(v1.starts_with(&format!("{repository}:v1@sha256:")), "{v1}");

    // Both replicas start on the v1 tag.
    let mut a = Replica::start("replica-a", dir.path(), &format!("{repository}:v1"), &deepgram, &ca, Some(&postgres)).await;
    let b = Replica::start("replica-b", dir.path(), &format!("{repository}:v1"), &deepgram, &ca, Some(&postgres)).await;
    assert_eq!((a.version().await, b.version().await), ("version:v1".to_owned(), "version:v1".to_owned()));

    // A deploy of v2 by reference through replica A reaches B too.
    let operator_a = format!("http://127.0.0.1:{}", a.operator);
    let deployed = switchboard(&ca, &["deploy", "--operator", &operator_a, "ref", "versioned", &v2]).await.expect("deploy ref");
    let deployed: serde_json::Value = serde_json::from_str(&deployed).expect("JSON");
    assert_eq!(deployed["fleet"]["published"], true, "{deployed}");
    assert_eq!(deployed["version"]["source"], v2.as_str(), "the pinned reference is recorded");
    a.wait_for_version("v2").await;
    b.wait_for_version("v2").await;

    // A digest that is not the registry's is refused, and v2 keeps serving.
    let wrong = format!("{repository}:v2@sha256:{}", "0".repeat(64));
    let refused = switchboard(&ca, &["deploy", "--operator", &operator_a, "ref", "versioned", &wrong]).await.expect_err("refused");
    assert!(refused.contains("not in the registry") || refused.contains("digest"), "{refused}");
    // A fleet row whose digest is not that of what its reference holds is refused by
    // every replica.
    tokio::task::block_in_place(|| {
        let mut client = postgres.client().expect("client");
        client.batch_execute(&format!(
            "UPDATE deployments SET reference = '{v1}', digest = '{}' WHERE component = 'versioned'; NOTIFY switchboard_deployments",
            "ab".repeat(32)
        ))
    })
    .expect("tamper");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !b.log().contains("fleet deploy refused") {
        assert!(tokio::time::Instant::now() < deadline, "B did not refuse the row: {}", b.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(b.version().await, "version:v2", "the refused row changed nothing");

    // Calls on both replicas are listed by either, each with its replica.
    let short = || vec![0xFF; 8_000];
    TwilioCall::new(&a.media()).audio(short()).sids("CAONA", "MZONA").run().await.expect("call on A");
    TwilioCall::new(&b.media()).audio(short()).sids("CAONB", "MZONB").run().await.expect("call on B");
    for replica in [&a, &b] {
        assert_eq!(replica.wait_for_call("CAONA", "ok").await["replica"], "replica-a");
        assert_eq!(replica.wait_for_call("CAONB", "ok").await["replica"], "replica-b");
    }

    // A is drained mid-call: its call finishes with nothing lost while B keeps serving.
    let long = tokio::spawn(
        TwilioCall::new(&a.media()).audio(switchboard_sim::CALLER_SPEECH.to_vec()).speed(2.0).sids("CADRAIN", "MZDRAIN").run(),
    );
    deepgram
        .wait_until(PATIENCE, "audio flowing", |d| d.sessions().iter().any(|s| s.audio.len() > 8_000 && s.audio.len() < 50_000))
        .await
        .expect("audio reaches Deepgram");
    let pid = a.process.id().expect("pid").to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(http_get(a.public, "/readyz").await.0, 503, "A's readiness fails while it drains");
    TwilioCall::new(&b.media()).audio(short()).sids("CADURING", "MZDURING").run().await.expect("B serves while A drains");
    long.await.expect("join").expect("the drained call completes");
    let status = tokio::time::timeout(Duration::from_secs(60), a.process.wait()).await.expect("A exits").expect("wait");
    assert!(status.success(), "{status:?}: {}", a.log());
    assert!(heard_everything(&deepgram), "every byte of the drained call reached Deepgram and was finalized");
    assert_eq!(b.wait_for_call("CADRAIN", "ok").await["replica"], "replica-a", "B lists A's drained call");

    // The database stops mid-call on B: no audio is lost, B keeps serving, queries say
    // the store is unavailable, and the markers are written when it returns.
    let sessions_before = deepgram.sessions().len();
    let long = tokio::spawn(
        TwilioCall::new(&b.media()).audio(switchboard_sim::CALLER_SPEECH.to_vec()).speed(2.0).sids("CADBDOWN", "MZDBDOWN").run(),
    );
    deepgram
        .wait_until(PATIENCE, "audio flowing", |d| {
            d.sessions().len() > sessions_before && d.sessions().last().is_some_and(|s| s.audio.len() > 8_000)
        })
        .await
        .expect("audio reaches Deepgram");
    tokio::task::block_in_place(|| postgres.stop()).expect("PostgreSQL stops");
    TwilioCall::new(&b.media()).audio(short()).sids("CAWHILEDOWN", "MZWHILEDOWN").run().await.expect("B takes calls without its database");
    let (status, _) = b.calls().await;
    assert_eq!(status, 503, "queries answer 503 while the database is down");
    long.await.expect("join").expect("the call completes without its database");
    let session = deepgram.sessions().into_iter().skip(sessions_before).find(|s| s.audio.len() > 8_000).expect("the long call's session");
    assert_eq!(session.audio, switchboard_sim::CALLER_SPEECH, "no call audio lost while the database was down");
    let (_, metrics) = http_get(b.operator, "/metrics").await;
    assert!(metrics.contains("switchboard_store_unavailable 1"), "{metrics}");
    tokio::task::block_in_place(|| postgres.resume()).expect("PostgreSQL starts again");
    let call = b.wait_for_call("CADBDOWN", "ok").await;
    assert_eq!(call["replica"], "replica-b");
    b.wait_for_call("CAWHILEDOWN", "ok").await;
    let (_, detail) = http_get(b.operator, "/api/calls/CADBDOWN").await;
    let detail: serde_json::Value = serde_json::from_str(&detail).expect("JSON");
    let names: Vec<&str> = detail["timeline"].as_array().into_iter().flatten().filter_map(|m| m["name"].as_str()).collect();
    assert!(names.contains(&"call.accepted") && names.contains(&"call.closed"), "every marker recorded after the outage: {names:?}");
    let (_, metrics) = http_get(b.operator, "/metrics").await;
    assert!(metrics.contains("switchboard_store_markers_dropped 0"), "nothing dropped: {metrics}");
}

/// What a host pulled is kept in its data directory: restarted with the registry down, it
/// serves the same component from a pinned reference, and from a tag it resolved before;
/// a reference it never pulled fails the start with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_does_not_pull_again() {
    let ca = TestCa::new().expect("test CA");
    let mut registry = TestRegistry::start(&ca).expect("docker-registry starts");
    let deepgram = DeepgramSim::new().tls(ca.server_config().expect("TLS")).start().await.expect("Deepgram");
    let dir = tempfile::tempdir().expect("temp dir");
    let repository = registry.reference("acme/versioned");
    let pinned = switchboard(&ca, &["push", switchboard_harness::guests::VERSIONED_V2, &format!("{repository}:v2")]).await.expect("push");
    let pinned = pinned.trim().to_owned();
    let tag = format!("{repository}:v2");

    for reference in [&pinned, &tag] {
        let mut host = Replica::start("single", dir.path(), reference, &deepgram, &ca, None).await;
        assert_eq!(host.version().await, "version:v2");
        host.process.kill().await.expect("stop");
    }
    registry.stop().expect("the registry stops");
    for reference in [&pinned, &tag] {
        let mut host = Replica::start("single", dir.path(), reference, &deepgram, &ca, None).await;
        assert_eq!(host.version().await, "version:v2", "{reference} served from the data directory with the registry down");
        host.process.kill().await.expect("stop");
    }
    let never = format!("{repository}:never-pulled");
    let log = Replica::try_start("other", dir.path(), &never, &deepgram, &ca, None).await.err().expect("refuses to start");
    assert!(log.contains("cannot reach the registry") && log.contains("never-pulled"), "{log}");
}
