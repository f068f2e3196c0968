//! A Switchboard host started in-process on `127.0.0.1:0`, configured through the same
//! TOML the binary reads.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use switchboard::{Config, Switchboard, Timeline};
use tokio::sync::oneshot;

use switchboard_sim::tls::TestCa;

/// One component as a route serves it.
#[derive(Debug, Clone)]
pub struct ComponentSpec {
    name: String,
    wasm: PathBuf,
    allow: Vec<String>,
    settings: Vec<(String, String)>,
    secret_headers: Vec<(String, String, String)>,
    limits: Vec<(String, u64)>,
    extra_ca: Vec<PathBuf>,
    watch: bool,
}

impl ComponentSpec {
    /// Component `name` from the `.wasm` file at `wasm`.
    pub fn new(name: &str, wasm: impl AsRef<Path>) -> Self {
        ComponentSpec {
            name: name.to_owned(),
            wasm: wasm.as_ref().to_owned(),
            allow: Vec::new(),
            settings: Vec::new(),
            secret_headers: Vec::new(),
            limits: Vec::new(),
            extra_ca: Vec::new(),
            watch: false,
        }
    }

    /// Redeploys the component whenever its file changes.
    pub fn watch(mut self) -> Self {
        self.watch = true;
        self
    }

    /// Adds an allowlist rule, e.g. `wss://localhost:4433`.
    pub fn allow(mut self, rule: &str) -> Self {
        self.allow.push(rule.to_owned());
        self
    }

    /// Adds a `wasi:config/store` setting.
    pub fn setting(mut self, key: &str, value: &str) -> Self {
        self.settings.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Injects header `name: template` (with `${VAR}` from the host's env) for `host`.
    pub fn secret_header(mut self, host: &str, name: &str, template: &str) -> Self {
        self.secret_headers.push((host.to_owned(), name.to_owned(), template.to_owned()));
        self
    }

    /// Sets a `[limits]` key, e.g. `limit("memory_mb", 16)`.
    pub fn limit(mut self, key: &str, value: u64) -> Self {
        self.limits.push((key.to_owned(), value));
        self
    }

    /// Trusts `ca` for outbound TLS.
    pub fn trust(mut self, ca: &TestCa) -> Self {
        self.extra_ca.push(ca.pem_path().to_owned());
        self
    }

    fn toml(&self) -> String {
        let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
        let list = |items: &[String]| items.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ");
        let paths: Vec<String> = self.extra_ca.iter().map(|p| p.display().to_string()).collect();
        let mut out = format!(
            "[components.{name}]\nwasm = {wasm}\nallow_outbound = [{allow}]\nextra_ca_certs = [{cas}]\nwatch = {watch}\n",
            name = q(&self.name),
            wasm = q(&self.wasm.display().to_string()),
            allow = list(&self.allow),
            cas = list(&paths),
            watch = self.watch,
        );
        out.push_str(&format!("[components.{}.settings]\n", q(&self.name)));
        for (key, value) in &self.settings {
            out.push_str(&format!("{} = {}\n", q(key), q(value)));
        }
        out.push_str(&format!("[components.{}.limits]\n", q(&self.name)));
        for (key, value) in &self.limits {
            out.push_str(&format!("{key} = {value}\n"));
        }
        for (host, name, value) in &self.secret_headers {
            out.push_str(&format!(
                "[[components.{}.secret_headers]]\nhost = {}\nname = {}\nvalue = {}\n",
                q(&self.name),
                q(host),
                q(name),
                q(value)
            ));
        }
        out
    }
}

/// Builds a [`TestHost`].
#[derive(Debug, Default)]
pub struct HostBuilder {
    routes: Vec<(String, ComponentSpec)>,
    env: HashMap<String, String>,
    max_calls: Option<u32>,
    tls: Option<(PathBuf, PathBuf)>,
    data_dir: Option<PathBuf>,
    admin: bool,
    operator_token: bool,
    operator_tls: Option<(PathBuf, PathBuf)>,
    signed: bool,
    route_keys: Vec<(String, String)>,
    drain_ms: Option<u64>,
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
        self.max_calls = Some(calls);
        self
    }

    /// Keeps compiled components in `dir` (the artifact store).
    pub fn data_dir(mut self, dir: &Path) -> Self {
        self.data_dir = Some(dir.to_owned());
        self
    }

    /// Turns the deploy API on with `token` (at least 16 characters).
    pub fn admin_token(mut self, token: &str) -> Self {
        self.admin = true;
        self.env.insert("SWITCHBOARD_ADMIN_TOKEN".to_owned(), token.to_owned());
        self
    }

    /// Reading the operator listener (API, events, dashboard, metrics) needs `token`.
    pub fn operator_token(mut self, token: &str) -> Self {
        self.operator_token = true;
        self.env.insert("SWITCHBOARD_OPERATOR_TOKEN".to_owned(), token.to_owned());
        self
    }

    /// Serves the operator listener over `https://` with a certificate from `ca`.
    pub fn operator_tls(mut self, ca: &TestCa) -> anyhow::Result<Self> {
        self.operator_tls = Some(ca.write_server_files()?);
        Ok(self)
    }

    /// Sets a key on every route, e.g. `route_key("idle_timeout_ms", "500")` (the value
    /// is TOML).
    pub fn route_key(mut self, key: &str, toml_value: &str) -> Self {
        self.route_keys.push((key.to_owned(), toml_value.to_owned()));
        self
    }

    /// On shutdown, live calls get this long before they are closed (default 30 s).
    pub fn drain_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.drain_ms = Some(timeout.as_millis() as u64);
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
        self.tls = Some(ca.write_server_files()?);
        Ok(self)
    }

    /// The TOML this builder produces.
    pub fn toml(&self) -> String {
        let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
        let mut out = format!("listen = \"127.0.0.1:0\"\nmax_concurrent_calls = {}\n", self.max_calls.unwrap_or(64));
        if let Some(dir) = &self.data_dir {
            out.push_str(&format!("data_dir = {}\n", q(&dir.display().to_string())));
        }
        if let Some(ms) = self.drain_ms {
            out.push_str(&format!("drain_timeout_ms = {ms}\n"));
        }
        out.push_str("[operator]\n");
        if self.admin {
            out.push_str("admin_token_env = \"SWITCHBOARD_ADMIN_TOKEN\"\n");
        }
        if self.operator_token {
            out.push_str("token_env = \"SWITCHBOARD_OPERATOR_TOKEN\"\n");
        }
        if let Some((cert, key)) = &self.operator_tls {
            out.push_str(&format!("[operator.tls]\ncert = {}\nkey = {}\n", q(&cert.display().to_string()), q(&key.display().to_string())));
        }
        if let Some((cert, key)) = &self.tls {
            out.push_str(&format!("[tls]\ncert = {}\nkey = {}\n", q(&cert.display().to_string()), q(&key.display().to_string())));
        }
        for (path, spec) in &self.routes {
            out.push_str(&format!("[[routes]]\npath = {}\ncomponent = {}\n", q(path), q(&spec.name)));
            if self.signed {
                out.push_str("twilio_auth_token_env = \"TWILIO_AUTH_TOKEN\"\n");
            }
            for (key, value) in &self.route_keys {
                out.push_str(&format!("{key} = {value}\n"));
            }
        }
        let mut seen = Vec::new();
        for (_, spec) in &self.routes {
            if !seen.contains(&spec.name) {
                seen.push(spec.name.clone());
                out.push_str(&spec.toml());
            }
        }
        out
    }

    /// Validates the configuration, compiles the components and starts serving.
    pub async fn start(self) -> anyhow::Result<TestHost> {
        let toml = self.toml();
        let env = self.env.clone();
        let lookup = move |name: &str| env.get(name).cloned();
        let config = Config::parse(&toml, "test host", Path::new("."), &lookup)?;
        let tls = config.tls.is_some();
        let operator_tls = config.operator.tls.is_some();
        let host = tokio::task::spawn_blocking(move || Switchboard::new(config)).await??;
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
        Ok(TestHost { addr, operator, tls, operator_tls, host, timeline, stop: Some(stop), task: Some(task) })
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
