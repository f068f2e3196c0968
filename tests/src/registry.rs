//! A real OCI registry for tests: Debian's `docker-registry` (the CNCF distribution
//! registry, v2), on loopback with TLS from a [`TestCa`], storing in a temporary directory.
//! It can be stopped and started again on the same storage and port, to test a host whose
//! registry is down.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

use crate::TestCa;

const BINARY: &str = "/usr/bin/docker-registry";

/// A running registry; stopped when dropped.
#[derive(Debug)]
pub struct TestRegistry {
    dir: tempfile::TempDir,
    port: u16,
    config: PathBuf,
    server: Option<Child>,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl TestRegistry {
    /// Starts a registry serving HTTPS with a certificate from `ca`.
    pub fn start(ca: &TestCa) -> anyhow::Result<Self> {
        ensure!(
            std::path::Path::new(BINARY).is_file(),
            "{BINARY} is missing: run `scripts/setup.sh --tests`, which installs docker-registry"
        );
        let dir = tempfile::tempdir().context("temp dir")?;
        let (cert, key) = ca.write_server_files()?;
        let config = dir.path().join("config.yml");
        let mut last = None;
        // The port is picked free and released before the registry binds it: another
        // process may take it in between, so a few attempts.
        for _ in 0..5 {
            let port = free_port()?;
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n\
                     http:\n  addr: 127.0.0.1:{port}\n  tls:\n    certificate: {cert}\n    key: {key}\n",
                    storage = dir.path().join("storage").display(),
                    cert = cert.display(),
                    key = key.display(),
                ),
            )?;
            match launch(&config, &dir.path().join("registry.log"), port) {
                Ok(server) => return Ok(TestRegistry { dir, port, config, server: Some(server) }),
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("the registry did not start")))
    }

    /// `host:port`, as references name the registry.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `oci://127.0.0.1:port/<repository>`.
    pub fn reference(&self, repository: &str) -> String {
        format!("oci://{}/{repository}", self.address())
    }

    /// Starts the registry again on the same storage and port.
    pub fn resume(&mut self) -> anyhow::Result<()> {
        ensure!(self.server.is_none(), "the registry is already running");
        self.server = Some(launch(&self.config, &self.dir.path().join("registry.log"), self.port)?);
        Ok(())
    }

    /// The registry's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Stops the registry and waits until it is gone.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            server.wait()?;
        }
        Ok(())
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Starts `docker-registry serve config`; waits until it listens on `port`.
fn launch(config: &Path, log_path: &Path, port: u16) -> anyhow::Result<Child> {
    let log = std::fs::File::create(log_path)?;
    let mut server = Command::new(BINARY)
        .arg("serve")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting docker-registry")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(server);
        }
        if let Ok(Some(status)) = server.try_wait() {
            bail!("docker-registry exited with {status}: {}", std::fs::read_to_string(log_path).unwrap_or_default());
        }
        if Instant::now() > deadline {
            let _ = server.kill();
            bail!("docker-registry did not listen within 20 s: {}", std::fs::read_to_string(log_path).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
