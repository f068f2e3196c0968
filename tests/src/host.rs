//! A Switchboard host started in-process on `127.0.0.1:0`, configured through the same
//! file value the binary reads from TOML, and validated the same way.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;

use switchboard::config::{FileComponent, FileConfig, FileOperator, FileRoute, FileSecretHeader, FileTls};
use switchboard::{Config, Switchboard, Timeline};
use tokio::sync::oneshot;

use switchboard_sim::tls::TestCa;

/// One component as a route serves it.
#[derive(Debug, Clone)]
pub struct ComponentSpec {
    name: String,
    file: FileComponent,
}

impl ComponentSpec {
    /// Component `name` from the `.wasm` file at `wasm`.
    pub fn new(name: &str, wasm: impl AsRef<Path>) -> Self {
        ComponentSpec { name: name.to_owned(), file: FileComponent { wasm: Some(wasm.as_ref().to_owned()), ..FileComponent::default() } }
    }

    /// Redeploys the component whenever its file changes.
    pub fn watch(mut self) -> Self {
        self.file.watch = true;
        self
    }

    /// Adds an allowlist rule, e.g. `wss://localhost:4433`.
    pub fn allow(mut self, rule: &str) -> Self {
        self.file.allow_outbound.push(rule.to_owned());
        self
    }

    /// Adds a `wasi:config/store` setting.
    pub fn setting(mut self, key: &str, value: &str) -> Self {
        self.file.settings.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Injects header `name: template` (with `${VAR}` from the host's env) for `host`.
    pub fn secret_header(mut self, host: &str, name: &str, template: &str) -> Self {
        self.file.secret_headers.push(FileSecretHeader {
            host: host.to_owned(),
            name: name.to_owned(),
            value: template.to_owned(),
            optional: false,
        });
        self
    }

    /// Sets a `[limits]` key, e.g. `limit("memory_mb", 16)`.
    ///
    /// # Panics
    ///
    /// When `key` is not a limit (a test's own mistake).
    pub fn limit(mut self, key: &str, value: u64) -> Self {
        if let Err(error) = self.file.limits.set(key, value) {
            panic!("limit {key}: {error}");
        }
        self
    }

    /// Trusts `ca` for outbound TLS.
    pub fn trust(mut self, ca: &TestCa) -> Self {
        self.file.extra_ca_certs.push(ca.pem_path().to_owned());
        self
    }
}

/// The deadlines a route holds its callers to, ms (`None`: the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct Deadlines {
    /// The first message must come within this long.
    pub first_message_ms: Option<u64>,
    /// No gap between messages longer than this.
    pub idle_ms: Option<u64>,
    /// No call longer than this.
    pub max_call_ms: Option<u64>,
}

/// Builds a [`TestHost`].
#[derive(Debug, Default)]
pub struct HostBuilder {
    routes: Vec<(String, ComponentSpec)>,
    env: HashMap<String, String>,
    file: FileConfig,
    signed: bool,
    deadlines: Deadlines,
    compiled_cache: Option<std::path::PathBuf>,
}

impl HostBuilder {
    /// Serves `spec` on `path`.
    pub fn route(mut self, path: &str, spec: ComponentSpec) -> Self {
        self.routes.push((path.to_owned(), spec));
        self
    }

    /// Sets an environment variable as the host's config loader sees it (secrets).
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.insert(name.to_owned(), value.to_owned());
        self
    }

    /// Caps concurrent calls (default 64, which keeps the instance pool small).
    pub fn max_calls(mut self, calls: u32) -> Self {
        self.file.max_concurrent_calls = Some(calls);
        self
    }

    /// Keeps compiled components in `dir` (the artifact store).
    pub fn data_dir(mut self, dir: &Path) -> Self {
        self.file.data_dir = Some(dir.to_owned());
        self
    }

    /// Shares compiled components with every other test host that asks for it, through
    /// [`guests::compiled_cache`](crate::guests::compiled_cache): a TypeScript or Python
    /// component (many megabytes, seconds to compile) is compiled once per test run, and
    /// each host loads it from its own artifact store. Gives the host a data directory of
    /// its own when it has none.
    pub fn share_compiled(mut self) -> Self {
        self.compiled_cache = Some(crate::guests::compiled_cache());
        self
    }

    fn operator(&mut self) -> &mut FileOperator {
        self.file.operator.get_or_insert_with(FileOperator::default)
    }

    /// Turns the deploy API on with `token` (at least 16 characters).
    pub fn admin_token(mut self, token: &str) -> Self {
        self.operator().admin_token_env = Some("SWITCHBOARD_ADMIN_TOKEN".to_owned());
        self.env.insert("SWITCHBOARD_ADMIN_TOKEN".to_owned(), token.to_owned());
        self
    }

    /// Reading the operator listener (API, events, dashboard, metrics) needs `token`.
    pub fn operator_token(mut self, token: &str) -> Self {
        self.operator().token_env = Some("SWITCHBOARD_OPERATOR_TOKEN".to_owned());
        self.env.insert("SWITCHBOARD_OPERATOR_TOKEN".to_owned(), token.to_owned());
        self
    }

    /// Serves the operator listener over `https://` with a certificate from `ca`.
    pub fn operator_tls(mut self, ca: &TestCa) -> anyhow::Result<Self> {
        let (cert, key) = ca.write_server_files()?;
        self.operator().tls = Some(FileTls { cert, key });
        Ok(self)
    }

    /// Holds every route's callers to `deadlines`.
    pub fn deadlines(mut self, deadlines: Deadlines) -> Self {
        self.deadlines = deadlines;
        self
    }

    /// On shutdown, live calls get this long before they are closed (default 30 s).
    pub fn drain_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.file.drain_timeout_ms = Some(timeout.as_millis() as u64);
        self
    }

    /// Every route demands a valid `X-Twilio-Signature` made with `auth_token`.
    pub fn twilio_auth_token(mut self, auth_token: &str) -> Self {
        self.signed = true;
        self.env.insert("TWILIO_AUTH_TOKEN".to_owned(), auth_token.to_owned());
        self
    }

    /// Serves `wss://` with a certificate from `ca`.
    pub fn tls(mut self, ca: &TestCa) -> anyhow::Result<Self> {
        let (cert, key) = ca.write_server_files()?;
        self.file.tls = Some(FileTls { cert, key });
        Ok(self)
    }

    /// The configuration this builder produces, as the file value the host validates.
    pub fn file(&self) -> FileConfig {
        let mut file = self.file.clone();
        file.listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        file.max_concurrent_calls = file.max_concurrent_calls.or(Some(64));
        for (path, spec) in &self.routes {
            file.routes.push(FileRoute {
                path: path.clone(),
                component: spec.name.clone(),
                twilio_auth_token_env: self.signed.then(|| "TWILIO_AUTH_TOKEN".to_owned()),
                first_message_timeout_ms: self.deadlines.first_message_ms,
                idle_timeout_ms: self.deadlines.idle_ms,
                max_call_ms: self.deadlines.max_call_ms,
                ..FileRoute::default()
            });
            file.components.entry(spec.name.clone()).or_insert_with(|| spec.file.clone());
        }
        file
    }

    /// The TOML this builder produces (what `switchboard serve --config` would read).
    pub fn toml(&self) -> String {
        self.file().to_toml()
    }

    /// Validates the configuration, compiles the components and starts serving.
    pub async fn start(self) -> anyhow::Result<TestHost> {
        let env = self.env.clone();
        let lookup = move |name: &str| env.get(name).cloned();
        let mut file = self.file();
        let data = match (&self.compiled_cache, &file.data_dir) {
            (Some(_), None) => {
                let dir = tempfile::tempdir()?;
                file.data_dir = Some(dir.path().to_owned());
                Some(dir)
            }
            _ => None,
        };
        let config = Config::from_file(file, "test host", Path::new("."), &lookup)?;
        let tls = config.tls.is_some();
        let operator_tls = config.operator.tls.is_some();
        let host = match (self.compiled_cache, config.data_dir.clone()) {
            (Some(cache), Some(data_dir)) => {
                tokio::task::spawn_blocking(move || crate::compiled::start_sharing(&cache, &data_dir, move || Switchboard::new(config)))
                    .await???
            }
            _ => tokio::task::spawn_blocking(move || Switchboard::new(config)).await??,
        };
        let listeners = switchboard::Listeners::ephemeral().await?;
        let addr = listeners.public.local_addr()?;
        let operator = listeners.operator.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let timeline = host.timeline();
        let serving = host.clone();
        let task = tokio::spawn(async move {
            let _ = serving
                .serve(listeners, async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(TestHost { addr, operator, tls, operator_tls, host, timeline, stop: Some(stop), task: Some(task), _data: data })
    }
}

/// A running host; stops accepting when dropped.
pub struct TestHost {
    addr: SocketAddr,
    operator: SocketAddr,
    tls: bool,
    operator_tls: bool,
    host: Switchboard,
    timeline: Timeline,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// The data directory [`HostBuilder::share_compiled`] made, removed with the host.
    _data: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for TestHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestHost").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl TestHost {
    /// Starts describing a host.
    pub fn builder() -> HostBuilder {
        HostBuilder::default()
    }

    /// Shuts the host down as SIGTERM does (stop accepting, drain, close what is left)
    /// and waits until `serve` has returned.
    pub async fn shut_down(&mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await?;
        }
        Ok(())
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://127.0.0.1:PORT/path` (or `wss://localhost:PORT/path` with TLS).
    pub fn url(&self, path: &str) -> String {
        if self.tls { format!("wss://localhost:{}{path}", self.addr.port()) } else { format!("ws://{}{path}", self.addr) }
    }

    /// `http://127.0.0.1:PORT/path` on the public listener.
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The operator listener's address.
    pub fn operator_addr(&self) -> SocketAddr {
        self.operator
    }

    /// `http://127.0.0.1:PORT/path` (or `https://localhost:PORT/path`) on the operator
    /// listener.
    pub fn operator_url(&self, path: &str) -> String {
        if self.operator_tls {
            format!("https://localhost:{}{path}", self.operator.port())
        } else {
            format!("http://{}{path}", self.operator)
        }
    }

    /// A client of the operator listener, with `token` when given.
    pub fn operator(&self, token: Option<&str>) -> anyhow::Result<switchboard::http::client::OperatorClient> {
        let client = switchboard::http::client::OperatorClient::new(&self.operator_url(""))?;
        Ok(match token {
            Some(token) => client.token(token),
            None => client,
        })
    }

    /// Every call's markers.
    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    /// The host itself.
    pub fn host(&self) -> &Switchboard {
        &self.host
    }

    /// Waits for a marker called `name` matching `filter`; fails after the harness's patience.
    pub async fn marker(&self, name: &str, filter: impl Fn(&switchboard::Marker) -> bool) -> anyhow::Result<switchboard::Marker> {
        self.timeline.wait_for(crate::PATIENCE, |m| m.name == name && filter(m)).await.ok_or_else(|| {
            anyhow::anyhow!("no `{name}` marker within {:?}; timeline: {:#?}", crate::PATIENCE, self.timeline.find(|_| true))
        })
    }
}
