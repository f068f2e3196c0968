//! The call timeline: markers recorded by the host and by guests, per call.
//!
//! Every marker is written as a structured log line (target `switchboard::timeline`) and
//! kept in memory for the most recent calls, where tests and the in-process API read
//! them (the HTTP API reads the call store). [`Timeline::subscribe`] streams markers as they are recorded.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::broadcast;

/// Identifies one call (one inbound connection) within a host process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "call-{}", self.0)
    }
}

/// Who recorded a marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerSource {
    /// The host runtime.
    Host,
    /// The guest component, through the `markers` import.
    Guest,
}

impl fmt::Display for MarkerSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MarkerSource::Host => "host",
            MarkerSource::Guest => "guest",
        })
    }
}

/// One event on a call's timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    /// The call.
    pub call: CallId,
    /// Time since the call was accepted.
    pub offset: Duration,
    /// Wall-clock time, milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// Who recorded it.
    pub source: MarkerSource,
    /// What happened, e.g. `outbound.open`.
    pub name: String,
    /// Details, e.g. `handshake_ms`.
    pub attributes: Vec<(String, String)>,
}

impl Marker {
    /// The value of attribute `key`, if present.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Every marker the host records, with its attribute keys: the README's "Host markers"
/// table must list exactly these (a test compares them), and every host marker is checked
/// against this list in debug builds.
pub const HOST_MARKERS: &[(&str, &[&str])] = &[
    ("call.accepted", &["remote", "path", "component"]),
    ("call.rejected", &["remote", "path", "status", "reason"]),
    ("instance.started", &["component", "version", "digest", "instantiate_us"]),
    ("instance.failed", &["error"]),
    ("outbound.attempt", &["target", "path", "attempt"]),
    ("outbound.open", &["target", "peer", "handshake_ms", "protocol"]),
    ("outbound.failed", &["target", "cause", "detail", "status", "header", "body"]),
    ("outbound.denied", &["target", "cause", "detail"]),
    ("outbound.closed", &["target", "code", "reason", "by"]),
    ("call.deadline", &["deadline", "limit_ms", "reason"]),
    ("call.draining", &["code"]),
    ("guest.returned", &["cpu_ms", "memory_kib"]),
    ("guest.trap", &["cause", "detail"]),
    ("guest.stopped", &["grace_ms"]),
    ("guest.output", &["logged_bytes", "dropped_bytes"]),
    ("markers.dropped", &["limit"]),
    ("call.closed", &["code", "reason", "by"]),
];

/// Longest marker name kept from a guest, bytes.
pub const MAX_NAME_BYTES: usize = 128;
/// Most attributes kept per guest marker.
pub const MAX_ATTRIBUTES: usize = 32;
/// Longest attribute key or value kept from a guest, bytes.
pub const MAX_VALUE_BYTES: usize = 1024;
/// Most guest markers kept per call; later ones are counted in `markers.dropped`.
pub const MAX_GUEST_MARKERS: u32 = 10_000;

#[derive(Debug)]
struct Retained {
    calls: HashMap<CallId, Vec<Marker>>,
    order: VecDeque<CallId>,
    retained_calls: usize,
}

/// Something told of every marker as it is recorded (metrics, the call store).
pub type Observer = Box<dyn Fn(&Marker) + Send + Sync>;

/// The host's timeline of every call. Cheap to clone.
#[derive(Clone)]
pub struct Timeline {
    retained: Arc<Mutex<Retained>>,
    live: broadcast::Sender<Marker>,
    observers: Arc<std::sync::RwLock<Vec<Observer>>>,
}

impl fmt::Debug for Timeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeline").finish_non_exhaustive()
    }
}

impl Timeline {
    /// A timeline that keeps the markers of the last `retained_calls` calls in memory.
    pub fn new(retained_calls: usize) -> Self {
        let (live, _) = broadcast::channel(4_096);
        Timeline {
            retained: Arc::new(Mutex::new(Retained {
                calls: HashMap::new(),
                order: VecDeque::new(),
                retained_calls: retained_calls.max(1),
            })),
            live,
            observers: Arc::default(),
        }
    }

    /// Adds an observer, told of every marker from now on (synchronously: keep it cheap).
    pub fn observe(&self, observer: Observer) {
        self.observers.write().unwrap_or_else(|p| p.into_inner()).push(observer);
    }

    fn lock(&self) -> MutexGuard<'_, Retained> {
        // A panic while holding this lock cannot leave the retained markers inconsistent (every
        // update is a single push), so a poisoned lock is still usable.
        self.retained.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts recording a new call.
    pub fn start_call(&self, call: CallId) -> CallTimeline {
        {
            let mut retained = self.lock();
            retained.calls.insert(call, Vec::new());
            retained.order.push_back(call);
            while retained.order.len() > retained.retained_calls {
                if let Some(old) = retained.order.pop_front() {
                    retained.calls.remove(&old);
                }
            }
        }
        CallTimeline {
            inner: Arc::new(CallInner {
                call,
                started: Instant::now(),
                timeline: self.clone(),
                guest_markers: AtomicU32::new(0),
                call_sid: std::sync::OnceLock::new(),
            }),
        }
    }

    fn record(&self, marker: Marker, call_sid: &str) {
        tracing::info!(
            target: "switchboard::timeline",
            call = %marker.call,
            call_sid,
            source = %marker.source,
            offset_ms = marker.offset.as_secs_f64() * 1e3,
            attributes = ?marker.attributes,
            "{}", marker.name
        );
        if let Some(markers) = self.lock().calls.get_mut(&marker.call) {
            markers.push(marker.clone());
        }
        for observer in self.observers.read().unwrap_or_else(|p| p.into_inner()).iter() {
            observer(&marker);
        }
        // Nobody listening is fine.
        let _ = self.live.send(marker);
    }

    /// The markers of one call, oldest first (empty when unknown or evicted).
    pub fn markers(&self, call: CallId) -> Vec<Marker> {
        self.lock().calls.get(&call).cloned().unwrap_or_default()
    }

    /// The calls whose markers are retained, oldest first.
    pub fn calls(&self) -> Vec<CallId> {
        self.lock().order.iter().copied().collect()
    }

    /// Every retained marker matching `filter`, in call order.
    pub fn find(&self, filter: impl Fn(&Marker) -> bool) -> Vec<Marker> {
        let retained = self.lock();
        retained.order.iter().filter_map(|call| retained.calls.get(call)).flatten().filter(|m| filter(m)).cloned().collect()
    }

    /// Markers as they are recorded.
    pub fn subscribe(&self) -> broadcast::Receiver<Marker> {
        self.live.subscribe()
    }

    /// Waits up to `timeout` for a marker matching `filter`, already recorded or future.
    pub async fn wait_for(&self, timeout: Duration, filter: impl Fn(&Marker) -> bool) -> Option<Marker> {
        let mut live = self.subscribe();
        if let Some(found) = self.find(&filter).into_iter().next() {
            return Some(found);
        }
        tokio::time::timeout(timeout, async {
            loop {
                match live.recv().await {
                    Ok(marker) if filter(&marker) => return Some(marker),
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        if let Some(found) = self.find(&filter).into_iter().next() {
                            return Some(found);
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .await
        .ok()
        .flatten()
    }
}

#[derive(Debug)]
struct CallInner {
    call: CallId,
    started: Instant,
    timeline: Timeline,
    guest_markers: AtomicU32,
    /// The Twilio call SID, once a guest reported it (`twilio.start`), for log lines.
    call_sid: std::sync::OnceLock<String>,
}

/// Records markers for one call. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CallTimeline {
    inner: Arc<CallInner>,
}

impl CallTimeline {
    /// The call.
    pub fn call(&self) -> CallId {
        self.inner.call
    }

    /// The Twilio call SID, once known (empty before).
    pub fn call_sid(&self) -> &str {
        self.inner.call_sid.get().map_or("", String::as_str)
    }

    /// Time since the call was accepted.
    pub fn elapsed(&self) -> Duration {
        self.inner.started.elapsed()
    }

    fn marker(&self, source: MarkerSource, name: String, attributes: Vec<(String, String)>) -> Marker {
        let unix_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)).unwrap_or(0);
        Marker { call: self.inner.call, offset: self.elapsed(), unix_ms, source, name, attributes }
    }

    /// Records a host marker (one of [`HOST_MARKERS`]).
    pub fn host(&self, name: &str, attributes: &[(&str, String)]) {
        debug_assert!(
            HOST_MARKERS.iter().any(|(known, keys)| *known == name && attributes.iter().all(|(key, _)| keys.contains(key))),
            "undocumented host marker {name} {attributes:?}"
        );
        let attributes = attributes.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        let marker = self.marker(MarkerSource::Host, name.to_owned(), attributes);
        self.inner.timeline.record(marker, self.call_sid());
    }

    /// Records a guest marker, truncating oversize names and values and enforcing the
    /// per-call cap (the first marker over the cap is recorded as `markers.dropped`).
    pub fn guest(&self, name: String, mut attributes: Vec<(String, String)>) {
        let count = self.inner.guest_markers.fetch_add(1, Ordering::Relaxed);
        if count >= MAX_GUEST_MARKERS {
            if count == MAX_GUEST_MARKERS {
                self.host("markers.dropped", &[("limit", MAX_GUEST_MARKERS.to_string())]);
            }
            return;
        }
        attributes.truncate(MAX_ATTRIBUTES);
        for (key, value) in &mut attributes {
            truncate_utf8(key, MAX_VALUE_BYTES);
            truncate_utf8(value, MAX_VALUE_BYTES);
        }
        let mut name = name;
        truncate_utf8(&mut name, MAX_NAME_BYTES);
        let marker = self.marker(MarkerSource::Guest, name, attributes);
        if marker.name == "twilio.start"
            && let Some(sid) = marker.attr("call_sid")
        {
            let _ = self.inner.call_sid.set(sid.to_owned());
        }
        self.inner.timeline.record(marker, self.call_sid());
    }
}

/// A host marker for unit tests: call `call`, offset and wall clock `unix_ms` (ms).
#[cfg(test)]
pub(crate) fn test_marker(call: u64, name: &str, attributes: &[(&str, &str)], unix_ms: u64) -> Marker {
    Marker {
        call: CallId(call),
        offset: Duration::from_millis(unix_ms % 1000),
        unix_ms,
        source: MarkerSource::Host,
        name: name.to_owned(),
        attributes: attributes.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
    }
}

/// Cuts `text` to at most `max` bytes on a character boundary.
pub fn truncate_utf8(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_markers_are_bounded() {
        let timeline = Timeline::new(10);
        let call = timeline.start_call(CallId(1));
        let long = "é".repeat(2_000);
        call.guest(long.clone(), (0..50).map(|i| (format!("k{i}"), long.clone())).collect());
        let markers = timeline.markers(CallId(1));
        assert_eq!(markers.len(), 1);
        assert!(markers[0].name.len() <= MAX_NAME_BYTES);
        assert_eq!(markers[0].attributes.len(), MAX_ATTRIBUTES);
        assert!(markers[0].attributes[0].1.len() <= MAX_VALUE_BYTES);
        for _ in 0..MAX_GUEST_MARKERS + 5 {
            call.guest("x".into(), Vec::new());
        }
        let markers = timeline.markers(CallId(1));
        assert_eq!(markers.iter().filter(|m| m.source == MarkerSource::Guest).count(), MAX_GUEST_MARKERS as usize);
        assert_eq!(markers.iter().filter(|m| m.name == "markers.dropped").count(), 1);
    }

    #[test]
    fn the_readme_lists_exactly_the_host_markers() {
        let readme = include_str!("../../../README.md");
        let start = readme.find("Host markers:").expect("README has the host markers table");
        let rows = readme[start..].lines().skip_while(|line| !line.starts_with('|')).skip(2).take_while(|line| line.starts_with('|'));
        let backticked = |cell: &str| cell.split('`').skip(1).step_by(2).map(str::to_owned).collect::<Vec<String>>();
        let documented: Vec<(String, Vec<String>)> = rows
            .map(|row| {
                let cells: Vec<&str> = row.split('|').collect();
                (backticked(cells[1]).concat(), backticked(cells[2]))
            })
            .collect();
        let listed: Vec<(String, Vec<String>)> =
            HOST_MARKERS.iter().map(|(name, keys)| ((*name).to_owned(), keys.iter().map(|k| (*k).to_owned()).collect())).collect();
        assert_eq!(documented, listed, "README's host markers differ from HOST_MARKERS");
    }

    #[test]
    fn old_calls_are_evicted() {
        let timeline = Timeline::new(2);
        for id in 0..3 {
            timeline.start_call(CallId(id)).host("call.accepted", &[]);
        }
        assert_eq!(timeline.calls(), vec![CallId(1), CallId(2)]);
        assert!(timeline.markers(CallId(0)).is_empty());
    }

    #[tokio::test]
    async fn wait_for_sees_past_and_future_markers() {
        let timeline = Timeline::new(10);
        let call = timeline.start_call(CallId(7));
        call.host("call.accepted", &[]);
        assert!(timeline.wait_for(Duration::from_secs(1), |m| m.name == "call.accepted").await.is_some());
        let later = call.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            later.host("call.closed", &[("code", "1000".into())]);
        });
        let second = timeline.wait_for(Duration::from_secs(5), |m| m.name == "call.closed").await;
        assert_eq!(second.and_then(|m| m.attr("code").map(str::to_owned)).as_deref(), Some("1000"));
        assert!(timeline.wait_for(Duration::from_millis(10), |m| m.name == "never").await.is_none());
    }
}
