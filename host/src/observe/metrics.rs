//! Prometheus metrics, served as text at `/metrics`.
//!
//! Most figures are derived from the call timeline (every marker passes through
//! [`Metrics::observe`]); frames, bytes and would-blocks are counted by the socket pumps
//! themselves ([`WireCounters`]), `wasi:http` requests by the runtime as they end
//! ([`Metrics::http_request`], since a call marks only its first requests), and gauges are
//! read when scraped.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::observe::marker::{Marker, MarkerSource};

/// Frames and bytes through one kind of socket, counted by its pumps.
#[derive(Debug, Clone, Default)]
pub struct WireCounters {
    /// Data messages received.
    pub rx_frames: Counter,
    /// Payload bytes received.
    pub rx_bytes: Counter,
    /// Data messages sent.
    pub tx_frames: Counter,
    /// Payload bytes sent.
    pub tx_bytes: Counter,
    /// `send` calls refused with `would-block`.
    pub would_block: Counter,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SocketLabels {
    socket: &'static str,
}

/// The per-socket families: one family per name, its `socket` label telling them apart.
#[derive(Debug, Default)]
struct WireFamilies {
    rx_frames: Family<SocketLabels, Counter>,
    rx_bytes: Family<SocketLabels, Counter>,
    tx_frames: Family<SocketLabels, Counter>,
    tx_bytes: Family<SocketLabels, Counter>,
    would_block: Family<SocketLabels, Counter>,
}

impl WireFamilies {
    /// The counters of one kind of socket (they share their values with the families).
    fn counters(&self, socket: &'static str) -> Arc<WireCounters> {
        let labels = SocketLabels { socket };
        Arc::new(WireCounters {
            rx_frames: self.rx_frames.get_or_create(&labels).clone(),
            rx_bytes: self.rx_bytes.get_or_create(&labels).clone(),
            tx_frames: self.tx_frames.get_or_create(&labels).clone(),
            tx_bytes: self.tx_bytes.get_or_create(&labels).clone(),
            would_block: self.would_block.get_or_create(&labels).clone(),
        })
    }

    fn register(&self, registry: &mut Registry) {
        registry.register("rx_frames", "WebSocket data messages received", self.rx_frames.clone());
        registry.register("rx_bytes", "WebSocket payload bytes received", self.rx_bytes.clone());
        registry.register("tx_frames", "WebSocket data messages sent", self.tx_frames.clone());
        registry.register("tx_bytes", "WebSocket payload bytes sent", self.tx_bytes.clone());
        registry.register("would_block", "sends refused with would-block", self.would_block.clone());
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectLabels {
    leg: String,
    result: String,
    cause: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    leg: String,
    target: String,
    result: String,
    cause: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    target: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FaultLabels {
    leg: String,
    impact: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CauseLabels {
    cause: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    component: String,
    version: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: String,
}

/// Distinct leg names the metrics label; later ones are counted as `other`.
pub const MAX_LEG_LABELS: usize = 32;
/// Distinct request targets the metrics label; later ones are counted as `other`.
pub const MAX_TARGET_LABELS: usize = 32;

/// Every metric of the host.
pub struct Metrics {
    registry: Registry,
    /// Inbound sockets' counters.
    pub inbound: Arc<WireCounters>,
    /// Outbound sockets' counters.
    pub outbound: Arc<WireCounters>,
    active_calls: Gauge,
    instances: Gauge,
    calls_by_version: Family<VersionLabels, Counter>,
    calls_accepted: Counter,
    calls_closed: Family<CodeLabels, Counter>,
    connects: Family<ConnectLabels, Counter>,
    handshake: Histogram,
    traps: Family<CauseLabels, Counter>,
    faults: Family<FaultLabels, Counter>,
    requests: Family<RequestLabels, Counter>,
    first_byte: Family<TargetLabels, Histogram>,
    /// Leg names seen so far: labels are bounded whatever guests call their legs.
    legs: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// Request targets seen so far, bounded the same way (a `*` rule allows any host).
    targets: std::sync::Mutex<std::collections::BTreeSet<String>>,
    store_dropped: Gauge,
    store_pending: Gauge,
    store_unavailable: Gauge,
}

/// The call store's state, as `/metrics` shows it.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreGauges {
    /// Markers dropped so far.
    pub dropped: u64,
    /// Markers waiting for the database.
    pub pending: u64,
    /// Whether the database is unavailable now.
    pub unavailable: bool,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("switchboard");
        let wire = WireFamilies::default();
        wire.register(&mut registry);
        let inbound = wire.counters("inbound");
        let outbound = wire.counters("outbound");
        let metrics = Metrics {
            inbound,
            outbound,
            active_calls: Gauge::default(),
            instances: Gauge::default(),
            calls_by_version: Family::default(),
            calls_accepted: Counter::default(),
            calls_closed: Family::default(),
            connects: Family::default(),
            handshake: Histogram::new([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            traps: Family::default(),
            faults: Family::default(),
            requests: Family::default(),
            first_byte: Family::new_with_constructor(|| {
                Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])
            }),
            legs: std::sync::Mutex::default(),
            targets: std::sync::Mutex::default(),
            store_dropped: Gauge::default(),
            store_pending: Gauge::default(),
            store_unavailable: Gauge::default(),
            registry,
        };
        metrics.register_rest()
    }

    fn register_rest(mut self) -> Self {
        let r = &mut self.registry;
        r.register("active_calls", "calls in progress", self.active_calls.clone());
        r.register("instances", "component instances alive", self.instances.clone());
        r.register("calls_accepted", "inbound WebSocket calls accepted", self.calls_accepted.clone());
        r.register("calls_started", "calls started, by component and the version serving them", self.calls_by_version.clone());
        r.register("calls_closed", "calls ended, by inbound close code", self.calls_closed.clone());
        r.register("outbound_connects", "outbound connects, by result and cause", self.connects.clone());
        r.register("outbound_handshake_seconds", "outbound handshake time (DNS, TCP, TLS, upgrade)", self.handshake.clone());
        r.register(
            "http_requests",
            "wasi:http requests, by leg, target, result (status class, failed, denied) and cause",
            self.requests.clone(),
        );
        r.register(
            "http_first_byte_seconds",
            "wasi:http time from sending a request to its response head, by target",
            self.first_byte.clone(),
        );
        r.register("guest_traps", "guest traps, by cause (cpu-budget is a CPU-budget kill)", self.traps.clone());
        r.register("guest_faults", "faults guests reported, by leg and impact (recovered or failed)", self.faults.clone());
        r.register(
            "store_markers_dropped",
            "markers the call store lost: it could not keep up, or the database was away longer than its buffer holds",
            self.store_dropped.clone(),
        );
        r.register("store_markers_pending", "markers waiting for the call store's database to come back", self.store_pending.clone());
        r.register("store_unavailable", "1 while the call store's database cannot be reached", self.store_unavailable.clone());
        self
    }

    /// Updates the figures a marker tells about.
    pub fn observe(&self, marker: &Marker) {
        let shown = |key: &str| marker.shown(key).unwrap_or_default();
        match (marker.source, marker.name.as_str()) {
            (MarkerSource::Host, "call.accepted") => {
                self.calls_accepted.inc();
            }
            (MarkerSource::Host, "call.closed") => {
                self.calls_closed.get_or_create(&CodeLabels { code: shown("code") }).inc();
            }
            (MarkerSource::Host, "instance.started") => {
                self.instances.inc();
                self.calls_by_version.get_or_create(&VersionLabels { component: shown("component"), version: shown("version") }).inc();
            }
            (MarkerSource::Host, "guest.returned" | "guest.stopped") => {
                self.instances.dec();
            }
            (MarkerSource::Host, "guest.trap") => {
                self.instances.dec();
                self.traps.get_or_create(&CauseLabels { cause: shown("cause") }).inc();
            }
            (MarkerSource::Host, "outbound.open") => {
                self.connect(marker, "open", String::new());
                if let Some(ms) = marker.number("handshake_ms") {
                    self.handshake.observe(ms / 1e3);
                }
            }
            (MarkerSource::Host, "outbound.failed") => self.connect(marker, "failed", shown("cause")),
            (MarkerSource::Host, "outbound.denied") => self.connect(marker, "denied", shown("cause")),
            (MarkerSource::Guest, "leg.fault") => {
                self.faults.get_or_create(&FaultLabels { leg: self.leg_label(&marker.leg), impact: shown("impact") }).inc();
            }
            _ => {}
        }
    }

    fn connect(&self, marker: &Marker, result: &str, cause: String) {
        self.connects.get_or_create(&ConnectLabels { leg: self.leg_label(&marker.leg), result: result.to_owned(), cause }).inc();
    }

    /// Counts one ended `wasi:http` request: `result` is its status class (`2xx` ...),
    /// `failed` or `denied`; `cause` says why for the last two.
    pub fn http_request(&self, leg: &str, target: &str, result: &str, cause: &str) {
        let labels = RequestLabels {
            leg: self.leg_label(leg),
            target: self.target_label(target),
            result: result.to_owned(),
            cause: cause.to_owned(),
        };
        self.requests.get_or_create(&labels).inc();
    }

    /// Records a request's time to its response head.
    pub fn http_first_byte(&self, target: &str, seconds: f64) {
        self.first_byte.get_or_create(&TargetLabels { target: self.target_label(target) }).observe(seconds);
    }

    /// `leg` as a label value: the first [`MAX_LEG_LABELS`] leg names seen keep theirs,
    /// later ones are `other`, so a guest naming legs at random cannot grow the page.
    fn leg_label(&self, leg: &str) -> String {
        bounded_label(&self.legs, leg, MAX_LEG_LABELS)
    }

    fn target_label(&self, target: &str) -> String {
        bounded_label(&self.targets, target, MAX_TARGET_LABELS)
    }

    /// The Prometheus text exposition, with gauges read now.
    pub fn render(&self, active_calls: usize, store: StoreGauges) -> String {
        self.active_calls.set(active_calls as i64);
        self.store_dropped.set(store.dropped as i64);
        self.store_pending.set(store.pending as i64);
        self.store_unavailable.set(i64::from(store.unavailable));
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.push_str("# encoding failed\n");
        }
        out
    }
}

/// `value` if it is among the first `max` distinct values seen, else `other`.
fn bounded_label(seen: &std::sync::Mutex<std::collections::BTreeSet<String>>, value: &str, max: usize) -> String {
    let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    if seen.contains(value) || seen.len() < max && seen.insert(value.to_owned()) { value.to_owned() } else { "other".to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker(name: &str, attrs: &[(&str, &str)]) -> Marker {
        crate::observe::marker::test_marker(1, name, attrs, 0)
    }

    #[test]
    fn markers_and_pump_counters_show_up_in_the_exposition() {
        let metrics = Metrics::new();
        metrics.observe(&marker("call.accepted", &[]));
        metrics.observe(&marker("instance.started", &[("component", "voice"), ("version", "3")]));
        metrics.observe(&marker("outbound.open", &[("handshake_ms", "3.5")]));
        metrics.observe(&marker("outbound.failed", &[("cause", "tls-error")]));
        metrics.observe(&marker("guest.trap", &[("cause", "cpu-budget")]));
        metrics.inbound.rx_frames.inc_by(3);
        metrics.outbound.tx_bytes.inc_by(320);
        let text = metrics.render(2, StoreGauges::default());
        for line in [
            "switchboard_active_calls 2",
            "switchboard_calls_accepted_total 1",
            "switchboard_calls_started_total{component=\"voice\",version=\"3\"} 1",
            "switchboard_instances 0", // started, then trapped
            "switchboard_outbound_connects_total{leg=\"host\",result=\"failed\",cause=\"tls-error\"} 1",
            "switchboard_guest_traps_total{cause=\"cpu-budget\"} 1",
            "switchboard_rx_frames_total{socket=\"inbound\"} 3",
            "switchboard_tx_bytes_total{socket=\"outbound\"} 320",
            "switchboard_outbound_handshake_seconds_count 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert_one_family_per_name(&text);
    }

    #[test]
    fn the_readme_lists_every_metric_and_only_those() {
        let readme = include_str!("../../../README.md");
        let start = readme.find("Metrics (`switchboard_` prefix):").expect("README lists the metrics");
        let paragraph = &readme[start..readme[start..].find("\n\n").map_or(readme.len(), |end| start + end)];
        let documented: std::collections::BTreeSet<String> = paragraph
            .split('`')
            .skip(1)
            .step_by(2)
            .map(|name| name.split('{').next().unwrap_or_default().to_owned())
            // Names only: not the label (`socket`), its values or the prefix.
            .filter(|name| name.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            .filter(|name| !["switchboard_", "socket"].contains(&name.as_str()))
            .collect();
        let text = Metrics::new().render(0, StoreGauges::default());
        let exposed: std::collections::BTreeSet<String> = text
            .lines()
            .filter_map(|line| line.strip_prefix("# TYPE switchboard_"))
            .map(|rest| {
                let mut parts = rest.split(' ');
                let (name, kind) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
                if kind == "counter" { format!("{name}_total") } else { name.to_owned() }
            })
            .collect();
        assert_eq!(documented, exposed, "README's metrics differ from /metrics");
    }

    /// The exposition rules a strict parser enforces: every family's `# TYPE` (and
    /// `# HELP`) once, its samples together, right after it, and `# EOF` last.
    fn assert_one_family_per_name(text: &str) {
        let mut families: Vec<String> = Vec::new();
        let mut current = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap_or_default().to_owned();
                assert!(!families.contains(&name), "family {name} declared twice:\n{text}");
                families.push(name.clone());
                current = name;
            } else if line.starts_with("# HELP ") || line == "# EOF" {
            } else {
                let sample = line.split(['{', ' ']).next().unwrap_or_default();
                let family = ["_total", "_bucket", "_count", "_sum", "_created"]
                    .iter()
                    .find_map(|suffix| sample.strip_suffix(suffix).filter(|base| *base == current))
                    .unwrap_or(sample);
                assert_eq!(family, current, "sample {line:?} outside its family's block:\n{text}");
            }
        }
        assert_eq!(text.lines().last(), Some("# EOF"));
    }
}
