//! A real PostgreSQL server for tests: Debian's `postgresql` binaries, a cluster made by
//! `initdb` in a temporary directory, listening on a Unix socket only (no TCP port to
//! collide with), trusting local connections. It can be stopped and started again on the
//! same data, to test what a host does while its database is away.
//!
//! PostgreSQL refuses to run as root: when the tests do, the server runs as the
//! `postgres` user the Debian package creates.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

/// The port in the socket's name (no TCP port is opened).
const PORT: u16 = 5432;

/// A running PostgreSQL server; stopped when dropped.
#[derive(Debug)]
pub struct TestPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    run_as: Option<String>,
    server: Option<Child>,
}

/// The newest `/usr/lib/postgresql/<version>/bin`.
fn binaries() -> anyhow::Result<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| Some((entry.file_name().to_str()?.parse().ok()?, entry.path().join("bin"))))
        .filter(|(_, bin): &(u32, PathBuf)| bin.join("initdb").is_file())
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => Ok(bin),
        None => bail!("PostgreSQL is missing (no /usr/lib/postgresql/*/bin/initdb): run `scripts/setup.sh --tests`, which installs it"),
    }
}

fn output(command: &mut Command) -> anyhow::Result<String> {
    let out = command.output().with_context(|| format!("running {command:?}"))?;
    ensure!(out.status.success(), "{command:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

impl TestPostgres {
    /// Makes a cluster and starts the server; waits until it takes connections.
    pub fn start() -> anyhow::Result<Self> {
        let bin = binaries()?;
        let dir = tempfile::Builder::new().prefix("sb-pg").tempdir_in("/tmp").context("temp dir")?;
        let run_as = (output(Command::new("id").arg("-u"))? == "0").then(|| "postgres".to_owned());
        if let Some(user) = &run_as {
            let uid: u32 = output(Command::new("id").args(["-u", user]))?.parse()?;
            let gid: u32 = output(Command::new("id").args(["-g", user]))?.parse()?;
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).context("handing the directory to postgres")?;
        }
        let mut postgres = TestPostgres { dir, bin, run_as, server: None };
        let data = postgres.data().display().to_string();
        output(postgres.command("initdb").args(["-D", &data, "-U", "switchboard", "--auth=trust", "-E", "UTF8", "--no-sync"]))?;
        std::fs::create_dir_all(postgres.socket_dir()).context("socket directory")?;
        if let Some(user) = &postgres.run_as {
            output(Command::new("chown").args([user.as_str(), &postgres.socket_dir().display().to_string()]))?;
        }
        postgres.resume()?;
        Ok(postgres)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("socket")
    }

    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        match &self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(program);
                command
            }
            None => Command::new(program),
        }
    }

    /// The connection string hosts are given (`SWITCHBOARD_DATABASE_URL`).
    pub fn url(&self) -> String {
        format!("host={} port={PORT} user=switchboard dbname=postgres", self.socket_dir().display())
    }

    /// A client connection, for tests to look at the tables.
    pub fn client(&self) -> anyhow::Result<postgres::Client> {
        Ok(postgres::Client::connect(&self.url(), postgres::NoTls)?)
    }

    /// Whether the server is running.
    pub fn running(&self) -> bool {
        self.server.is_some()
    }

    /// Starts the server (again) on the same data; waits until it takes connections.
    pub fn resume(&mut self) -> anyhow::Result<()> {
        ensure!(self.server.is_none(), "PostgreSQL is already running");
        let data = self.data().display().to_string();
        let socket = self.socket_dir().display().to_string();
        let log = std::fs::File::create(self.dir.path().join("server.log"))?;
        let server = self
            .command("postgres")
            .args(["-D", &data, "-k", &socket, "-p", &PORT.to_string(), "-c", "listen_addresses=", "-c", "fsync=off"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting postgres")?;
        self.server = Some(server);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.client().is_ok() {
                return Ok(());
            }
            if let Some(server) = self.server.as_mut()
                && let Ok(Some(status)) = server.try_wait()
            {
                self.server = None;
                bail!("postgres exited with {status}: {}", self.log());
            }
            ensure!(Instant::now() < deadline, "postgres did not take connections within 30 s: {}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Stops the server (a fast shutdown: clients are disconnected at once) and waits
    /// until it is gone.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut server) = self.server.take() else { return Ok(()) };
        // The server runs as another user under `runuser`: signal it by its own pid file.
        let pid = std::fs::read_to_string(self.data().join("postmaster.pid"))
            .ok()
            .and_then(|text| text.lines().next().map(str::to_owned))
            .unwrap_or_else(|| server.id().to_string());
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while server.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
                let _ = server.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = server.wait();
        wait_gone(&self.socket_dir().join(format!(".s.PGSQL.{PORT}")));
        Ok(())
    }
}

fn wait_gone(socket: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while socket.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
