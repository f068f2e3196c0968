//! The `switchboard` binary: configuration errors are reported before any port is bound,
//! and `check` names what is wrong.

use std::process::Command;

fn switchboard(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_switchboard")).args(args).env_remove("RUST_LOG").output().expect("the switchboard binary runs")
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("temp file");
    path.display().to_string()
}

#[test]
fn check_accepts_the_builtin_defaults() {
    let output = switchboard(&["check"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.contains("component `voice-pipeline`: ok"), "{stdout}");
}

#[test]
fn serve_refuses_an_unknown_key_before_listening() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The port is held by this test: if serve bound before validating, it would report
    // "address in use" instead of the bad key.
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let config = write(
        &dir,
        "bad.toml",
        &format!(
            "listen = \"{}\"\n[[routes]]\npath = \"/x\"\ncomponent = \"c\"\n[components.c]\nbuiltin = \"voice-pipeline\"\nmemory_mb = 5\n",
            held.local_addr().expect("addr")
        ),
    );
    let output = switchboard(&["serve", "--config", &config]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("unknown field `memory_mb`"), "{stderr}");
    assert!(stderr.contains("bad.toml"), "the file is named: {stderr}");
    assert!(!stderr.contains("in use"), "{stderr}");
}

#[test]
fn check_names_a_bad_value_and_its_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write(
        &dir,
        "limits.toml",
        "[[routes]]\npath = \"/x\"\ncomponent = \"c\"\n[components.c]\nbuiltin = \"voice-pipeline\"\nallow_outbound = [\"ftp://api.deepgram.com\"]\n",
    );
    let output = switchboard(&["check", "--config", &config]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("components.c.allow_outbound"), "{stderr}");
    assert!(stderr.contains("not an outbound scheme"), "{stderr}");
}

#[test]
fn check_reports_a_component_file_that_is_not_a_component() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(&dir, "junk.wasm", "not wasm at all");
    let config = write(&dir, "junk.toml", "[[routes]]\npath = \"/x\"\ncomponent = \"c\"\n[components.c]\nwasm = \"junk.wasm\"\n");
    let output = switchboard(&["check", "--config", &config]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("component `c`: not a valid WebAssembly component"), "{stderr}");
}

#[test]
fn the_demo_runs_a_whole_call_offline_and_loses_nothing() {
    let output = switchboard(&["demo", "--speed", "8", "--drop-deepgram-after", "1"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    for expected in [
        "does no speech recognition",
        "twilio.start",
        "outbound.open",
        "deepgram.reconnect",
        "deepgram.replay",
        "utterance",
        "exactly the caller's audio",
        "Deepgram sessions       2",
        "transcript.entry",
        "call store says         degraded on the deepgram leg",
        "call closed with        1000",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?} in:\n{stdout}");
    }
}

#[test]
fn the_agent_demo_holds_a_conversation_with_an_interruption_and_hangs_up() {
    let output = switchboard(&["demo", "--agent"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    for expected in [
        "no recognition and no synthesis",
        "agent.turn",
        "llm.first-token",
        "agent.barge-in",
        "agent.hangup-phrase",
        "agent.hangup",
        "Turns (ms from the caller's end of speech",
        "(interrupted) ",
        "We open at seven every morning, except on Mondays.",
        "call closed with        1000",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?} in:\n{stdout}");
    }
}

fn switchboard_with_env(args: &[&str], env: (&str, &str)) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(args)
        .env_remove("RUST_LOG")
        .env(env.0, env.1)
        .output()
        .expect("the switchboard binary runs")
}

/// Starts a host in-process from `toml` (with `env` as its environment) on ephemeral
/// listeners; returns it and the public and operator addresses.
async fn start_host(toml: &str, env: &[(&str, &str)]) -> (switchboard::Switchboard, std::net::SocketAddr, std::net::SocketAddr) {
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let lookup = move |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let config = switchboard::Config::parse(toml, "test", std::path::Path::new("."), &lookup).expect("config");
    let host = tokio::task::spawn_blocking(move || switchboard::Switchboard::new(config)).await.expect("join").expect("host");
    let listeners = switchboard::Listeners::ephemeral().await.expect("bind");
    let public = listeners.public.local_addr().expect("addr");
    let operator = listeners.operator.local_addr().expect("addr");
    tokio::spawn(host.clone().serve(listeners, std::future::pending()));
    (host, public, operator)
}

#[tokio::test]
async fn deploy_lists_uploads_and_rolls_back_over_https_on_the_operator_listener() {
    const TOKEN: &str = "cli-admin-token-0123456789";
    let ca = switchboard_sim::tls::TestCa::new().expect("test CA");
    let (cert, key) = ca.write_server_files().expect("server files");
    let toml = format!(
        "[operator]\nadmin_token_env = \"CLI_ADMIN\"\n[operator.tls]\ncert = {cert:?}\nkey = {key:?}\n[[routes]]\npath = \"/x\"\ncomponent = \"voice\"\n[components.voice]\nbuiltin = \"voice-pipeline\"\n",
        cert = cert.display().to_string(),
        key = key.display().to_string(),
    );
    let (_host, _, operator) = start_host(&toml, &[("CLI_ADMIN", TOKEN)]).await;
    let base = format!("https://localhost:{}", operator.port());
    let ca_file = ca.pem_path().display().to_string();

    let dir = tempfile::tempdir().expect("temp dir");
    let wasm = dir.path().join("voice.wasm");
    std::fs::write(&wasm, switchboard::config::Builtin::VoicePipeline.wasm()).expect("write wasm");
    let wasm = wasm.display().to_string();
    let run = move |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            switchboard_with_env(&args, ("CLI_ADMIN", TOKEN))
        })
    };
    let deploy = |rest: &[&str]| {
        let mut args = vec!["deploy", "--operator", &base, "--ca-cert", &ca_file, "--admin-token-env", "CLI_ADMIN"]
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>();
        args.extend(rest.iter().map(|s| (*s).to_owned()));
        args
    };

    // Without the CA, the operator's certificate is not trusted.
    let untrusted =
        run(vec!["deploy".into(), "--operator".into(), base.clone(), "--admin-token-env".into(), "CLI_ADMIN".into(), "list".into()])
            .await
            .expect("join");
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert!(!untrusted.status.success() && stderr.contains("TLS"), "{stderr}");

    let uploaded = run(deploy(&["upload", "voice", &wasm])).await.expect("join");
    let stdout = String::from_utf8_lossy(&uploaded.stdout);
    assert!(uploaded.status.success(), "{:?} {stdout}{}", uploaded.status, String::from_utf8_lossy(&uploaded.stderr));
    assert!(stdout.contains("\"number\": 2"), "{stdout}");

    let listed = run(deploy(&["list"])).await.expect("join");
    let stdout = String::from_utf8_lossy(&listed.stdout);
    assert!(stdout.contains("\"component\": \"voice\""), "{stdout}");

    let rolled = run(deploy(&["rollback", "voice"])).await.expect("join");
    let stdout = String::from_utf8_lossy(&rolled.stdout);
    assert!(rolled.status.success() && stdout.contains("\"number\": 1"), "{stdout}{}", String::from_utf8_lossy(&rolled.stderr));

    let refused = run(deploy(&["upload", "nope", &wasm])).await.expect("join");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("404") && stderr.contains("no component named"), "{stderr}");
}

#[test]
fn compile_fills_the_artifact_store_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write(
        &dir,
        "compile.toml",
        // The server's secrets are not in a build machine's environment: compiling needs none.
        "data_dir = \"store\"\n[operator]\ntoken_env = \"UNSET_OPERATOR_TOKEN\"\n[[routes]]\npath = \"/x\"\ncomponent = \"voice\"\ntwilio_auth_token_env = \"UNSET_TWILIO\"\n\
         [components.voice]\nbuiltin = \"voice-pipeline\"\n[[components.voice.secret_headers]]\nhost = \"a\"\nname = \"b\"\nvalue = \"${UNSET_KEY}\"\n",
    );
    let first = switchboard(&["compile", "--config", &config]);
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(first.status.success(), "{stdout}{}", String::from_utf8_lossy(&first.stderr));
    assert!(stdout.contains("voice:") && stdout.contains("Fresh"), "{stdout}");
    let second = switchboard(&["compile", "--config", &config]);
    assert!(String::from_utf8_lossy(&second.stdout).contains("Cached"));
    assert!(dir.path().join("store/compiled").read_dir().expect("compiled dir").count() >= 1);
}

#[tokio::test]
async fn calls_lists_and_shows_stored_calls_with_the_cause_first() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = switchboard_sim::deepgram::DeepgramSim::new().expect_token("right").start().await.expect("sim");
    let toml = format!(
        "data_dir = {data:?}\n[[routes]]\npath = \"/twilio/media\"\ncomponent = \"voice\"\n[components.voice]\nbuiltin = \"voice-pipeline\"\nallow_outbound = [{origin:?}]\n[components.voice.settings]\ndeepgram_url = {url:?}\n[[components.voice.secret_headers]]\nhost = \"localhost\"\nname = \"Authorization\"\nvalue = \"Token wrong\"\n",
        data = dir.path().join("data").display().to_string(),
        origin = sim.origin(),
        url = sim.listen_url(),
    );
    let (host, public, operator) = start_host(&toml, &[]).await;
    let url = format!("ws://{public}/twilio/media");
    let audio = switchboard_sim::mulaw::tone(500, 440.0);
    switchboard_sim::twilio::TwilioCall::new(&url).audio(audio).sids("CACLI", "MZCLI").run().await.expect("call");
    host.timeline().wait_for(std::time::Duration::from_secs(20), |m| m.name == "call.closed").await.expect("call closed");
    assert!(host.calls().flush(std::time::Duration::from_secs(10)));

    let db = dir.path().join("data/calls.db").display().to_string();
    let listed = tokio::task::spawn_blocking({
        let db = db.clone();
        move || switchboard(&["calls", "--db", &db])
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success(), "{stdout}{}", String::from_utf8_lossy(&listed.stderr));
    assert!(stdout.contains("CACLI") && stdout.contains("failed") && stdout.contains("deepgram"), "{stdout}");

    let shown = tokio::task::spawn_blocking({
        let db = db.clone();
        move || switchboard(&["calls", "--db", &db, "show", "CACLI"])
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&shown.stdout);
    let first = stdout.lines().next().unwrap_or_default();
    assert_eq!(first, "FAILED on the deepgram leg: Deepgram rejected the connection: HTTP 401 Invalid credentials.", "{stdout}");
    assert!(stdout.contains("deepgram.rejected") && stdout.contains("call.closed"), "{stdout}");

    // From the server's configuration file, in a shell without any of its secrets.
    let server_toml = write(
        &dir,
        "server.toml",
        &format!(
            "[operator]\nlisten = \"{operator}\"\n[[routes]]\npath = \"/x\"\ncomponent = \"v\"\ntwilio_auth_token_env = \"NOT_SET_HERE\"\n[components.v]\nbuiltin = \"voice-pipeline\"\n[[components.v.secret_headers]]\nhost = \"a\"\nname = \"b\"\nvalue = \"${{NOR_HERE}}\"\n"
        ),
    );
    let by_config = tokio::task::spawn_blocking(move || switchboard(&["calls", "--config", &server_toml])).await.expect("join");
    let by_config_out = String::from_utf8_lossy(&by_config.stdout);
    assert!(by_config.status.success() && by_config_out.contains("CACLI"), "{by_config_out}{}", String::from_utf8_lossy(&by_config.stderr));

    // The same through the operator listener, as an operator on another machine would.
    let base = format!("http://{operator}");
    let remote = tokio::task::spawn_blocking(move || switchboard(&["calls", "--operator", &base, "show", "MZCLI"])).await.expect("join");
    let remote_out = String::from_utf8_lossy(&remote.stdout);
    assert!(remote.status.success(), "{remote_out}{}", String::from_utf8_lossy(&remote.stderr));
    assert_eq!(remote_out.lines().next(), Some(first), "{remote_out}");
}

/// One raw HTTP/1.1 GET; the whole answer as text.
async fn http_get(address: impl tokio::net::ToSocketAddrs, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(address).await.expect("connect");
    tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), tcp.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// SIGTERM on the real process, mid-call: new calls get 503 and `/readyz` fails, the live call gets
/// the drain deadline, then its caller is closed with 1001, Deepgram gets `CloseStream`
/// and finalizes everything it received, the store records zero lost bytes, and the
/// process exits cleanly.
#[tokio::test]
async fn sigterm_mid_call_drains_closes_1001_and_loses_nothing() {
    use std::time::Duration;
    use switchboard_sim::deepgram::DeepgramSim;
    use switchboard_sim::tls::TestCa;
    use switchboard_sim::twilio::TwilioCall;

    let ca = TestCa::new().expect("test CA");
    let deepgram =
        DeepgramSim::new().tls(ca.server_config().expect("server TLS")).expect_token("term-key").start().await.expect("Deepgram simulator");
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let dir = tempfile::tempdir().expect("temp dir");
    let quote = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
    let config = write(
        &dir,
        "serve.toml",
        &format!(
            "listen = \"127.0.0.1:{port}\"\ndrain_timeout_ms = 500\ndata_dir = {data}\n[operator]\nlisten = \"127.0.0.1:0\"\n\
             [[routes]]\npath = \"/twilio/media\"\ncomponent = \"voice\"\n\
             [components.voice]\nbuiltin = \"voice-pipeline\"\nallow_outbound = [{origin}]\nextra_ca_certs = [{ca}]\n\
             [components.voice.settings]\ndeepgram_url = {url}\n\
             [[components.voice.secret_headers]]\nhost = \"localhost\"\nname = \"Authorization\"\nvalue = \"Token ${{TERM_KEY}}\"\n",
            data = quote(&dir.path().join("data").display().to_string()),
            origin = quote(&deepgram.origin()),
            ca = quote(&ca.pem_path().display().to_string()),
            url = quote(&deepgram.listen_url()),
        ),
    );
    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["serve", "--config", &config])
        .env("TERM_KEY", "term-key")
        .env_remove("RUST_LOG")
        .kill_on_drop(true)
        .spawn()
        .expect("switchboard serve starts");
    let url = format!("ws://127.0.0.1:{port}/twilio/media");
    let mut listening = false;
    for _ in 0..600 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            listening = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(listening, "serve listens");

    // A 13 s call, cut short by SIGTERM once audio flows.
    let call = tokio::spawn(TwilioCall::new(&url).audio(switchboard_sim::CALLER_SPEECH.to_vec()).sids("CATERM", "MZTERM").run());
    deepgram
        .wait_until(Duration::from_secs(30), "audio flowing", |d| d.sessions().first().is_some_and(|s| s.audio.len() > 8_000))
        .await
        .expect("audio reaches Deepgram");
    let pid = server.id().expect("pid").to_string();
    let killed = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
    assert!(killed.success());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(TwilioCall::new(&url).audio(vec![0xFF; 160]).run().await.is_err(), "new calls are refused while draining");
    let readiness = http_get(("127.0.0.1", port), "/readyz").await;
    assert!(readiness.starts_with("HTTP/1.1 503"), "readiness fails while draining: {readiness}");

    // The simulated caller reports the close as an error: it was still sending.
    let _ = call.await.expect("join");
    let status = tokio::time::timeout(Duration::from_secs(30), server.wait()).await.expect("exits in time").expect("wait");
    assert!(status.success(), "{status:?}");

    let session = &deepgram.sessions()[0];
    assert_eq!(session.controls.last().map(String::as_str), Some("CloseStream"), "{:?}", session.controls);
    assert_eq!(session.finalized, session.audio.len(), "everything Deepgram got was finalized");
    assert_eq!(session.audio, switchboard_sim::CALLER_SPEECH[..session.audio.len()], "in order, unaltered");
    let db = dir.path().join("data/calls.db").display().to_string();
    let shown = switchboard(&["calls", "--db", &db, "show", "CATERM"]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("lost_bytes=0") && shown.contains("code=1001"), "{shown}");
}

#[test]
fn serve_refuses_an_unsigned_route_on_a_public_address_and_says_how_to_fix_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let held = std::net::TcpListener::bind("0.0.0.0:0").expect("bind");
    let port = held.local_addr().expect("addr").port();
    let config = write(
        &dir,
        "open.toml",
        &format!(
            "listen = \"0.0.0.0:{port}\"\n[operator]\nlisten = \"127.0.0.1:0\"\n[[routes]]\npath = \"/twilio/media\"\ncomponent = \"c\"\n[components.c]\nbuiltin = \"voice-pipeline\"\n"
        ),
    );
    let output = switchboard(&["serve", "--config", &config]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("routes[0].twilio_auth_token_env"), "{stderr}");
    assert!(stderr.contains("anyone who reaches the port can start calls") && stderr.contains("allow_unsigned = true"), "{stderr}");
    assert!(!stderr.contains("in use"), "refused before binding: {stderr}");
    // The built-in defaults on a public address are refused the same way.
    let output = switchboard(&["serve", "--listen", &format!("0.0.0.0:{port}"), "--operator-listen", "127.0.0.1:0"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("twilio_auth_token_env"), "{stderr}");
}

#[test]
fn serve_refuses_a_public_operator_listener_without_a_token() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write(
        &dir,
        "operator.toml",
        "[operator]\nlisten = \"0.0.0.0:0\"\n[[routes]]\npath = \"/x\"\ncomponent = \"c\"\n[components.c]\nbuiltin = \"voice-pipeline\"\n",
    );
    let output = switchboard(&["serve", "--config", &config]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("operator.token_env") && stderr.contains("not a loopback address"), "{stderr}");
    assert!(stderr.contains("SWITCHBOARD_OPERATOR_TOKEN") && stderr.contains("or listen on 127.0.0.1"), "{stderr}");
}

/// The real `serve` process with a guest that prints 10 MiB: the guest does not trap, its
/// output reaches the log line by line, and the log holds at most the configured cap.
#[tokio::test]
async fn a_guest_printing_ten_mib_logs_at_most_its_cap() {
    use std::time::Duration;
    use tokio::io::AsyncReadExt;

    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write(
        &dir,
        "print.toml",
        &format!(
            "listen = \"127.0.0.1:{port}\"\ndrain_timeout_ms = 0\n[operator]\nlisten = \"127.0.0.1:0\"\n[[routes]]\npath = \"/print\"\ncomponent = \"p\"\n\
             [components.p]\nwasm = {wasm:?}\n[components.p.settings]\nmode = \"print\"\n[components.p.limits]\nlog_bytes = 65536\n",
            wasm = switchboard_harness::guests::HOSTILE,
        ),
    );
    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["serve", "--config", &config])
        .env_remove("RUST_LOG")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("switchboard serve starts");
    let mut stderr = server.stderr.take().expect("stderr");
    let log = tokio::spawn(async move {
        let mut text = Vec::new();
        let _ = stderr.read_to_end(&mut text).await;
        String::from_utf8_lossy(&text).into_owned()
    });
    let url = format!("ws://127.0.0.1:{port}/print");
    let mut caller = None;
    for _ in 0..600 {
        if let Ok(client) = switchboard_harness::TestClient::connect(&url).await {
            caller = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut caller = caller.expect("serve listens");
    assert_eq!(caller.next_text().await.expect("the guest reports"), "printed");
    caller.close(1000, "").await.expect("close");
    let _ = caller.expect_close().await;
    let pid = server.id().expect("pid").to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs").success());
    let status = tokio::time::timeout(Duration::from_secs(30), server.wait()).await.expect("exits in time").expect("wait");
    assert!(status.success(), "{status:?}");
    let log = log.await.expect("join");
    let guest_lines: Vec<&str> = log.lines().filter(|line| line.contains("switchboard::guest")).collect();
    let logged: usize = guest_lines.iter().map(|line| line.matches('x').count()).sum();
    assert!(!guest_lines.is_empty(), "the output reached the log: {log}");
    assert!(logged <= 65_536, "the log holds at most the cap: {logged} bytes of output");
    assert!(
        guest_lines.iter().any(|line| line.contains("stream=\"stderr\"")),
        "both streams are logged: {:?}",
        &guest_lines[..guest_lines.len().min(3)]
    );
    assert!(!log.contains("guest.trap") && log.contains("guest.output"), "{}", &log[log.len().saturating_sub(3000)..]);
}

/// `serve --ready-file` tells a harness in any language which ports port 0 got.
#[tokio::test]
async fn serve_writes_its_bound_addresses_to_the_ready_file() {
    use std::time::Duration;
    let dir = tempfile::tempdir().expect("temp dir");
    let ready = dir.path().join("ready.json");
    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["serve", "--listen", "127.0.0.1:0", "--operator-listen", "127.0.0.1:0", "--ready-file"])
        .arg(&ready)
        .env("XDG_CACHE_HOME", dir.path())
        .env_remove("RUST_LOG")
        .kill_on_drop(true)
        .spawn()
        .expect("switchboard serve starts");
    let mut text = None;
    for _ in 0..1200 {
        if let Ok(found) = std::fs::read_to_string(&ready) {
            text = Some(found);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = text.expect("serve wrote the ready file");
    let addresses: serde_json::Value = serde_json::from_str(&text).expect("the ready file is JSON");
    let public = addresses["public"].as_str().expect("a public address");
    let operator = addresses["operator"].as_str().expect("an operator address");
    assert!(!public.ends_with(":0") && !operator.ends_with(":0"), "{text}");
    assert!(http_get(public, "/healthz").await.starts_with("HTTP/1.1 200"), "the public listener answers on {public}");
    assert!(http_get(operator, "/metrics").await.starts_with("HTTP/1.1 200"), "the operator listener answers on {operator}");
    server.start_kill().expect("kill");
}

#[test]
fn new_writes_a_project_for_each_language_and_refuses_bad_names() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (lang, files) in [
        (
            "rust",
            &[
                "Cargo.toml",
                "Cargo.lock",
                "rust-toolchain.toml",
                "component/src/lib.rs",
                "tests/tests/component.rs",
                "switchboard.toml",
                "README.md",
            ][..],
        ),
        (
            "ts",
            &[
                "package.json",
                "package-lock.json",
                "src/component.ts",
                "test/component.test.mjs",
                "switchboard/src/index.ts",
                "wit/world.wit",
            ][..],
        ),
        ("python", &["app.py", "test_app.py", "test.sh", "switchboard_guest/__init__.py", "wit/world.wit", "requirements.txt"][..]),
    ] {
        let project = dir.path().join(lang);
        let made = switchboard(&["new", "call-relay", "--lang", lang, "--dir", project.to_str().expect("utf-8 path")]);
        assert!(made.status.success(), "{lang}: {}", String::from_utf8_lossy(&made.stderr));
        for file in files {
            assert!(project.join(file).is_file(), "{lang}: {file} missing");
        }
        let config = std::fs::read_to_string(project.join("switchboard.toml")).expect("switchboard.toml");
        assert!(config.contains("[components.call-relay]"), "{config}");
        for (file, text) in project_files(&project) {
            assert!(!text.contains("{{"), "{lang}: a placeholder is left in {}", file.display());
            // Every module the copied SDKs import was copied too.
            for line in text.lines() {
                let module = line
                    .split_once("from './")
                    .and_then(|(_, rest)| rest.split_once(".js'"))
                    .map(|(name, _)| format!("{name}.ts"))
                    .or_else(|| {
                        line.trim().strip_prefix("from .").and_then(|rest| rest.split_once(' ')).map(|(name, _)| format!("{name}.py"))
                    });
                if let (Some(module), Some(dir)) = (module, file.parent()) {
                    assert!(dir.join(&module).is_file(), "{lang}: {} imports {module}, which is missing", file.display());
                }
            }
        }
        let again = switchboard(&["new", "call-relay", "--lang", lang, "--dir", project.to_str().expect("utf-8 path")]);
        assert!(!again.status.success(), "{lang}: a non-empty directory is refused");
        assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
    }
    let lock: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("ts/package-lock.json")).expect("lock")).expect("JSON lock");
    assert_eq!(lock["packages"][""]["name"], "call-relay");
    for bad in ["Bad", "9lives", "call", "trailing-", "has_underscore"] {
        let refused = switchboard(&["new", bad, "--lang", "ts", "--dir", dir.path().join("x").to_str().expect("utf-8 path")]);
        assert!(!refused.status.success(), "`{bad}` is refused");
    }
}

/// Every text file of a project, with its contents.
fn project_files(dir: &std::path::Path) -> Vec<(std::path::PathBuf, String)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("project directory") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files.extend(project_files(&path));
        } else if let Ok(text) = std::fs::read_to_string(&path) {
            files.push((path, text));
        }
    }
    files
}
