//! Turning the parsed file into a [`Config`]: every value range-checked, every file and
//! variable looked up, and the exposure rules applied (a listener that is not loopback
//! needs authentication), each refusal naming its key and how to fix it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::HeaderName;

use super::file::{FileComponent, FileConfig, FileLimits, FileOperator, FileRoute, FileTls};
use super::{
    Builtin, CallerDeadlines, ComponentConfig, ComponentSource, Config, ConfigError, DEFAULT_LISTEN, DatabaseUrl, InboundTls, Limits,
    MIN_TOKEN_CHARS, OperatorConfig, RESERVED_PATHS, Route, SecretText, StoreConfig,
};
use crate::policy::egress::EgressPolicy;
use crate::policy::secrets::{SecretHeader, SecretHeaders, SecretValue, TemplateError, expand_template};

pub(super) struct Validator<'a> {
    pub(super) origin: &'a str,
    pub(super) base: &'a Path,
    pub(super) lookup: &'a dyn Fn(&str) -> Option<String>,
}

/// Headers that carry credentials: never handed to a guest.
const NEVER_FORWARDED: &[&str] = &["authorization", "cookie", "proxy-authorization", "x-twilio-signature"];

/// Headers a route forwards when it names none.
fn default_forward_headers() -> Vec<HeaderName> {
    ["host", "user-agent", "origin", "x-forwarded-for", "x-forwarded-proto", "sec-websocket-protocol"]
        .into_iter()
        .map(HeaderName::from_static)
        .collect()
}

impl Validator<'_> {
    fn invalid(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid { origin: self.origin.to_owned(), key: key.into(), message: message.into() }
    }

    fn path(&self, path: &Path) -> PathBuf {
        if path.is_absolute() { path.to_owned() } else { self.base.join(path) }
    }

    fn existing_file(&self, key: &str, path: &Path) -> Result<PathBuf, ConfigError> {
        let resolved = self.path(path);
        if !resolved.is_file() {
            return Err(self.invalid(key, format!("file {} does not exist", resolved.display())));
        }
        Ok(resolved)
    }

    fn range(&self, key: &str, value: Option<u64>, default: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
        let value = value.unwrap_or(default);
        if (min..=max).contains(&value) {
            Ok(value)
        } else {
            Err(self.invalid(key, format!("{value} is out of range: expected {min} to {max}")))
        }
    }

    pub(super) fn config(&self, file: FileConfig) -> Result<Config, ConfigError> {
        if file.admin_token_env.is_some() {
            return Err(self
                .invalid("admin_token_env", "the deploy API moved to the operator listener: write `admin_token_env` under `[operator]`"));
        }
        let listen = match file.listen {
            Some(listen) => listen,
            None => DEFAULT_LISTEN.parse().map_err(|_| self.invalid("listen", "bad default"))?,
        };
        let max_concurrent_calls = self.range("max_concurrent_calls", file.max_concurrent_calls.map(u64::from), 1_000, 1, 100_000)? as u32;
        let tls = file.tls.as_ref().map(|tls| self.tls("tls", tls)).transpose()?;
        let mut components = BTreeMap::new();
        for (name, component) in file.components {
            let validated = self.component(&name, component)?;
            components.insert(name, validated);
        }
        let routes = self.routes(file.routes, &components, listen)?;
        let operator = self.operator(file.operator.unwrap_or_default(), listen)?;
        let data_dir = file.data_dir.map(|dir| self.path(&dir));
        let days = self.range("retention_days", file.retention_days, 7, 1, 3_650)?;
        let calls = self.range("retention_calls", file.retention_calls, 100_000, 1, 100_000_000)?;
        let retention = crate::observe::calls::Retention { max_age: Duration::from_secs(days * 86_400), max_calls: calls };
        let drain_timeout = Duration::from_millis(self.range("drain_timeout_ms", file.drain_timeout_ms, 30_000, 0, 3_600_000)?);
        let store = self.store()?;
        let perf_map = self.perf_map()?;
        Ok(Config { listen, max_concurrent_calls, tls, operator, routes, components, data_dir, retention, drain_timeout, store, perf_map })
    }

    /// Whether the engine writes a perf map: `SWITCHBOARD_PERF_MAP` set to `1` (or `0`, or unset).
    fn perf_map(&self) -> Result<bool, ConfigError> {
        match (self.lookup)(super::PERF_MAP_ENV).as_deref() {
            None | Some("" | "0") => Ok(false),
            Some("1") => Ok(true),
            Some(other) => Err(self.invalid(super::PERF_MAP_ENV, format!("{other:?}: set it to 1 to write a perf map, or 0"))),
        }
    }

    /// The call store and the replica's name, from the environment: a shared PostgreSQL
    /// database when `SWITCHBOARD_DATABASE_URL` is set, else SQLite in the data directory.
    fn store(&self) -> Result<StoreConfig, ConfigError> {
        let replica = match (self.lookup)(super::REPLICA_ENV).filter(|name| !name.is_empty()) {
            Some(name) => name,
            None => super::hostname(),
        };
        if replica.len() > 253 || !replica.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(self.invalid(
                super::REPLICA_ENV,
                format!("{replica:?} is not a replica name: use letters, digits, `-`, `_` and `.` (at most 253)"),
            ));
        }
        let Some(url) = (self.lookup)(super::DATABASE_URL_ENV).filter(|url| !url.is_empty()) else {
            return Ok(StoreConfig { database: None, replica });
        };
        let database_ca = match (self.lookup)(super::DATABASE_CA_ENV).filter(|path| !path.is_empty()) {
            Some(path) => Some(self.existing_file(super::DATABASE_CA_ENV, Path::new(&path))?),
            None => None,
        };
        if let Err(error) = url.parse::<postgres::Config>() {
            return Err(self.invalid(super::DATABASE_URL_ENV, format!("not a PostgreSQL connection string: {error}")));
        }
        let database = DatabaseUrl { url: SecretText(url), ca_file: database_ca };
        Ok(StoreConfig { database: Some(database), replica })
    }

    fn tls(&self, key: &str, tls: &FileTls) -> Result<InboundTls, ConfigError> {
        Ok(InboundTls {
            cert: self.existing_file(&format!("{key}.cert"), &tls.cert)?,
            key: self.existing_file(&format!("{key}.key"), &tls.key)?,
        })
    }

    /// A bearer token from the variable `var` names; `None` when the variable is unset.
    fn token(&self, key: &str, var: &str) -> Result<Option<SecretValue>, ConfigError> {
        match (self.lookup)(var).filter(|token| !token.is_empty()) {
            Some(token) if token.chars().count() < MIN_TOKEN_CHARS => {
                Err(self.invalid(key, format!("the token in `{var}` is shorter than {MIN_TOKEN_CHARS} characters")))
            }
            Some(token) => Ok(Some(SecretValue::new(&token).map_err(|e| self.invalid(key, e.to_string()))?)),
            None => Ok(None),
        }
    }

    fn operator(&self, operator: FileOperator, public: SocketAddr) -> Result<OperatorConfig, ConfigError> {
        let listen = operator.listen.unwrap_or_else(super::default_operator_listen);
        if listen.port() != 0
            && (listen == public || (listen.port() == public.port() && (listen.ip().is_unspecified() || public.ip().is_unspecified())))
        {
            return Err(self.invalid(
                "operator.listen",
                format!("{listen} is the public listener's address: give the operator listener a port of its own"),
            ));
        }
        let read_token = match &operator.token_env {
            Some(var) => self.token("operator.token_env", var)?,
            None => None,
        };
        let admin_token = match &operator.admin_token_env {
            Some(var) => {
                let token = self.token("operator.admin_token_env", var)?;
                if token.is_none() {
                    tracing::info!("deploy API off: `{var}` is not set");
                }
                token
            }
            None => None,
        };
        if !listen.ip().is_loopback() && read_token.is_none() {
            let var = operator.token_env.as_deref().unwrap_or(super::DEFAULT_OPERATOR_TOKEN_ENV);
            return Err(self.invalid(
                "operator.token_env",
                format!(
                    "the operator listener {listen} is not a loopback address, so reading calls, transcripts, live events and \
                     metrics there needs a token: set `token_env = \"{var}\"` under `[operator]` and put a token of at least \
                     {MIN_TOKEN_CHARS} characters in `{var}` (`openssl rand -hex 24` makes one), or listen on 127.0.0.1"
                ),
            ));
        }
        let tls = operator.tls.as_ref().map(|tls| self.tls("operator.tls", tls)).transpose()?;
        Ok(OperatorConfig { listen, read_token, admin_token, tls })
    }

    fn routes(
        &self,
        file: Vec<FileRoute>,
        components: &BTreeMap<String, ComponentConfig>,
        listen: SocketAddr,
    ) -> Result<Vec<Route>, ConfigError> {
        let mut routes: Vec<Route> = Vec::new();
        for (index, route) in file.into_iter().enumerate() {
            let key = format!("routes[{index}]");
            if !route.path.starts_with('/') {
                return Err(self.invalid(format!("{key}.path"), format!("{:?} must start with `/`", route.path)));
            }
            if RESERVED_PATHS.contains(&route.path.as_str()) {
                return Err(self.invalid(format!("{key}.path"), format!("{} is served by the host itself", route.path)));
            }
            if routes.iter().any(|r| r.path == route.path) {
                return Err(self.invalid(format!("{key}.path"), format!("{} is routed twice", route.path)));
            }
            if !components.contains_key(&route.component) {
                let known: Vec<&String> = components.keys().collect();
                return Err(
                    self.invalid(format!("{key}.component"), format!("no component named {:?}; defined: {known:?}", route.component))
                );
            }
            let forward_headers = match &route.forward_headers {
                None => default_forward_headers(),
                Some(names) => {
                    names.iter().map(|name| self.forwardable_header(&format!("{key}.forward_headers"), name)).collect::<Result<_, _>>()?
                }
            };
            let twilio_auth_token = match &route.twilio_auth_token_env {
                None => None,
                Some(var) => {
                    let token = (self.lookup)(var).filter(|t| !t.is_empty()).ok_or_else(|| {
                        self.invalid(format!("{key}.twilio_auth_token_env"), format!("environment variable `{var}` is not set"))
                    })?;
                    Some(SecretValue::new(&token).map_err(|e| self.invalid(format!("{key}.twilio_auth_token_env"), e.to_string()))?)
                }
            };
            if twilio_auth_token.is_none() && !route.allow_unsigned && !listen.ip().is_loopback() {
                return Err(self.invalid(
                    format!("{key}.twilio_auth_token_env"),
                    format!(
                        "the public listener {listen} is not a loopback address and route {} checks no Twilio signature, so \
                         anyone who reaches the port can start calls: set `twilio_auth_token_env = \"TWILIO_AUTH_TOKEN\"` on the \
                         route (with your Twilio account's auth token in that variable), or `allow_unsigned = true` if \
                         something in front of Switchboard authenticates callers",
                        route.path
                    ),
                ));
            }
            let deadlines = self.deadlines(&key, &route)?;
            routes.push(Route {
                path: route.path,
                component: route.component,
                forward_headers,
                twilio_auth_token,
                allow_unsigned: route.allow_unsigned,
                deadlines,
            });
        }
        if routes.is_empty() {
            return Err(
                self.invalid("routes", "at least one route is needed, e.g. [[routes]] path = \"/twilio/media\" component = \"...\"")
            );
        }
        Ok(routes)
    }

    fn deadlines(&self, key: &str, route: &FileRoute) -> Result<CallerDeadlines, ConfigError> {
        let defaults = CallerDeadlines::default();
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let first = self.range(
            &format!("{key}.first_message_timeout_ms"),
            route.first_message_timeout_ms,
            ms(defaults.first_message),
            100,
            600_000,
        )?;
        let idle = self.range(&format!("{key}.idle_timeout_ms"), route.idle_timeout_ms, ms(defaults.idle), 100, 86_400_000)?;
        let max_call = self.range(&format!("{key}.max_call_ms"), route.max_call_ms, ms(defaults.max_call), 1_000, 7 * 86_400_000)?;
        Ok(CallerDeadlines {
            first_message: Duration::from_millis(first),
            idle: Duration::from_millis(idle),
            max_call: Duration::from_millis(max_call),
        })
    }

    fn forwardable_header(&self, key: &str, name: &str) -> Result<HeaderName, ConfigError> {
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| self.invalid(key, format!("{name:?} is not a header name")))?;
        if NEVER_FORWARDED.contains(&header.as_str()) {
            return Err(self.invalid(key, format!("`{header}` carries credentials and is never forwarded to guests")));
        }
        Ok(header)
    }

    fn component(&self, name: &str, component: FileComponent) -> Result<ComponentConfig, ConfigError> {
        let key = |field: &str| format!("components.{name}.{field}");
        if component.watch && component.wasm.is_none() {
            return Err(self.invalid(key("watch"), "only a `wasm` file can be watched"));
        }
        let source = match (&component.wasm, &component.builtin, &component.oci) {
            (Some(path), None, None) => ComponentSource::File(self.existing_file(&key("wasm"), path)?),
            (None, None, Some(reference)) => {
                ComponentSource::Oci(super::oci::OciReference::parse(reference).map_err(|e| self.invalid(key("oci"), e.to_string()))?)
            }
            (None, Some(builtin), None) => {
                let found = Builtin::ALL.iter().find(|(n, _)| n == builtin).map(|(_, b)| *b);
                ComponentSource::Builtin(found.ok_or_else(|| {
                    let names: Vec<&str> = Builtin::ALL.iter().map(|(n, _)| *n).collect();
                    self.invalid(key("builtin"), format!("unknown built-in component {builtin:?}; known: {names:?}"))
                })?)
            }
            _ => {
                return Err(self.invalid(
                    format!("components.{name}"),
                    "set exactly one of `wasm = \"path/to/component.wasm\"`, `builtin = \"voice-pipeline\"` or \
                     `oci = \"oci://registry/repository:tag\"`",
                ));
            }
        };
        let egress = EgressPolicy::parse(&component.allow_outbound).map_err(|e| self.invalid(key("allow_outbound"), e.to_string()))?;
        let secret_headers = self.secret_headers(name, &component)?;
        let extra_ca_certs = component
            .extra_ca_certs
            .iter()
            .enumerate()
            .map(|(i, path)| self.existing_file(&key(&format!("extra_ca_certs[{i}]")), path))
            .collect::<Result<_, _>>()?;
        let limits = self.limits(name, &component.limits)?;
        Ok(ComponentConfig {
            name: name.to_owned(),
            source,
            egress,
            secret_headers,
            settings: component.settings,
            extra_ca_certs,
            limits,
            watch: component.watch,
        })
    }

    fn secret_headers(&self, name: &str, component: &FileComponent) -> Result<SecretHeaders, ConfigError> {
        let mut secret_headers = Vec::new();
        for (index, header) in component.secret_headers.iter().enumerate() {
            let key = format!("components.{name}.secret_headers[{index}]");
            let header_name = HeaderName::from_bytes(header.name.as_bytes())
                .map_err(|_| self.invalid(format!("{key}.name"), format!("{:?} is not a header name", header.name)))?;
            let host = header.host.to_ascii_lowercase();
            if host.is_empty() || host.contains(['/', ':']) && !host.starts_with('[') {
                return Err(self.invalid(format!("{key}.host"), "expected a bare host name, e.g. \"api.deepgram.com\""));
            }
            match expand_template(&header.value, self.lookup) {
                Ok(value) => secret_headers.push(SecretHeader { host, name: header_name, value }),
                Err(TemplateError::MissingVariable(var)) if header.optional => {
                    tracing::warn!(component = %name, header = %header_name, "environment variable {var} is not set: header not injected");
                }
                Err(error) => return Err(self.invalid(format!("{key}.value"), error.to_string())),
            }
        }
        Ok(SecretHeaders::new(secret_headers))
    }

    fn limits(&self, name: &str, file: &FileLimits) -> Result<Limits, ConfigError> {
        let defaults = Limits::default();
        let range = |field: &str, value: Option<u64>, default: u64, min: u64, max: u64| {
            self.range(&format!("components.{name}.limits.{field}"), value, default, min, max)
        };
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let memory_mb = range("memory_mb", file.memory_mb, (defaults.memory_bytes >> 20) as u64, 1, 4_096)?;
        let max_message = range("max_message_bytes", file.max_message_bytes, defaults.max_message_bytes as u64, 125, 64 << 20)?;
        let queue = range("send_queue_bytes", file.send_queue_bytes, defaults.send_queue_bytes as u64, 1_024, 256 << 20)?;
        let receive = range("receive_buffer_bytes", file.receive_buffer_bytes, defaults.receive_buffer_bytes as u64, 1_024, 256 << 20)?;
        let connect = range("connect_timeout_ms", file.connect_timeout_ms, ms(defaults.connect_timeout), 10, 600_000)?;
        let max_connect =
            range("max_connect_timeout_ms", file.max_connect_timeout_ms, ms(defaults.max_connect_timeout).max(connect), connect, 600_000)?;
        let connections = range(
            "max_outbound_connections",
            file.max_outbound_connections.map(u64::from),
            u64::from(defaults.max_outbound_connections),
            0,
            1_000,
        )?;
        let connects = range(
            "max_outbound_connects",
            file.max_outbound_connects.map(u64::from),
            u64::from(defaults.max_outbound_connects),
            0,
            1_000_000,
        )?;
        let count =
            |field: &str, value: Option<u32>, default: u32, max: u64| range(field, value.map(u64::from), u64::from(default), 0, max);
        let timeout =
            |field: &str, value: Option<u64>, default: Duration| range(field, value, ms(default), 10, 3_600_000).map(Duration::from_millis);
        let http_in_flight =
            count("max_http_requests_in_flight", file.max_http_requests_in_flight, defaults.max_http_requests_in_flight, 1_000)?;
        let http_requests = count("max_http_requests", file.max_http_requests, defaults.max_http_requests, 100_000_000)?;
        let http_connect = timeout("http_connect_timeout_ms", file.http_connect_timeout_ms, defaults.http_connect_timeout)?;
        let http_first_byte = timeout("http_first_byte_timeout_ms", file.http_first_byte_timeout_ms, defaults.http_first_byte_timeout)?;
        let http_between_bytes =
            timeout("http_between_bytes_timeout_ms", file.http_between_bytes_timeout_ms, defaults.http_between_bytes_timeout)?;
        let http_request_body =
            range("max_http_request_body_bytes", file.max_http_request_body_bytes, defaults.max_http_request_body_bytes, 0, 1 << 32)?;
        let http_response_body =
            range("max_http_response_body_bytes", file.max_http_response_body_bytes, defaults.max_http_response_body_bytes, 0, 1 << 34)?;
        let log_bytes = range("log_bytes", file.log_bytes, defaults.log_bytes as u64, 0, 1 << 30)?;
        let log_rate = range("log_bytes_per_second", file.log_bytes_per_second, defaults.log_bytes_per_second as u64, 1, 1 << 30)?;
        Ok(Limits {
            memory_bytes: (memory_mb as usize) << 20,
            cpu_burst: Duration::from_millis(range("cpu_burst_ms", file.cpu_burst_ms, ms(defaults.cpu_burst), 10, 600_000)?),
            cpu_total: Duration::from_millis(range("cpu_total_ms", file.cpu_total_ms, ms(defaults.cpu_total), 10, 86_400_000)?),
            max_outbound_connections: connections as u32,
            max_outbound_connects: connects as u32,
            max_message_bytes: max_message as usize,
            send_queue_bytes: queue as usize,
            receive_buffer_bytes: receive as usize,
            connect_timeout: Duration::from_millis(connect),
            max_connect_timeout: Duration::from_millis(max_connect),
            max_http_requests_in_flight: http_in_flight as u32,
            max_http_requests: http_requests as u32,
            http_connect_timeout: http_connect,
            http_first_byte_timeout: http_first_byte,
            http_between_bytes_timeout: http_between_bytes,
            max_http_request_body_bytes: http_request_body,
            max_http_response_body_bytes: http_response_body,
            log_bytes: log_bytes as usize,
            log_bytes_per_second: log_rate as usize,
        })
    }
}
