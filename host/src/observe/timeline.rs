//! The call timeline: markers recorded by the host and by guests, per call.
//!
//! Every marker is written as a structured log line (target `switchboard::timeline`),
//! kept in memory for the most recent calls (where tests and the in-process API read them;
//! the HTTP API reads the call store) and handed to observers (metrics, the call store).
//! [`Timeline::subscribe`] streams markers as they are recorded.
//!
//! A [`CallTimeline`] records one call's markers: the host's own ([`CallTimeline::host`],
//! [`CallTimeline::host_on`]), a guest's ([`CallTimeline::guest`]) and a guest's typed
//! reports about its legs, references and transcript ([`CallTimeline::report`]).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::broadcast;

use super::legs::{CallLegs, GUEST_LEG, HOST_LEG, LegError};
pub use super::marker::{CallId, Marker, MarkerSource, Value, truncate_utf8};
use super::marker::{HOST_MARKERS, MAX_ATTRIBUTES, MAX_GUEST_MARKERS, MAX_NAME_BYTES, MAX_VALUE_BYTES, REPORT_MARKERS, RESERVED_NAMES};

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

impl std::fmt::Debug for Timeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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
                reference: OnceLock::new(),
                identities: AtomicU32::new(0),
                legs: Mutex::new(CallLegs::default()),
            }),
        }
    }

    fn record(&self, marker: Marker, reference: &str) {
        tracing::info!(
            target: "switchboard::timeline",
            call = %marker.call,
            reference,
            source = %marker.source,
            leg = %marker.leg,
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

/// Most references a call keeps.
pub const MAX_REFERENCES: u32 = 8;
/// Longest reference kind or value kept, bytes.
pub const MAX_REFERENCE_BYTES: usize = 128;

#[derive(Debug)]
struct CallInner {
    call: CallId,
    started: Instant,
    timeline: Timeline,
    guest_markers: AtomicU32,
    /// The call's first reference (a Twilio call SID, say), for log lines.
    reference: OnceLock<String>,
    /// References recorded so far.
    identities: AtomicU32,
    /// The call's legs, as the guest named them.
    legs: Mutex<CallLegs>,
}

/// How a fault left a call, as a guest reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impact {
    /// The guest recovered: the call is degraded.
    Recovered,
    /// The leg failed: the call failed.
    Failed,
}

impl Impact {
    fn label(self) -> &'static str {
        match self {
            Impact::Recovered => "recovered",
            Impact::Failed => "failed",
        }
    }
}

/// One line of a call's transcript.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscriptEntry {
    /// Who spoke.
    pub speaker: String,
    /// What was said.
    pub text: String,
    /// Where in the call it starts, ms.
    pub start_ms: Option<u64>,
    /// Where in the call it ends, ms.
    pub end_ms: Option<u64>,
    /// How sure the recognizer was.
    pub confidence: Option<f64>,
}

/// A guest's typed report about its call.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// The inbound connection's leg is called this.
    NameInbound(String),
    /// The call has this leg.
    Declare(String),
    /// Something went wrong on a leg.
    Fault {
        /// The leg.
        leg: String,
        /// What it did to the call.
        impact: Impact,
        /// A short label.
        cause: String,
        /// The sentence operators read.
        detail: String,
    },
    /// A leg has done its part.
    Complete(String),
    /// The call is known elsewhere as `value`.
    Identify {
        /// Whose name it is.
        kind: String,
        /// The name.
        value: String,
    },
    /// A line of the conversation.
    Transcript(TranscriptEntry),
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

    /// The call's first reference (empty before the guest gives one).
    pub fn reference(&self) -> &str {
        self.inner.reference.get().map_or("", String::as_str)
    }

    /// Time since the call was accepted.
    pub fn elapsed(&self) -> Duration {
        self.inner.started.elapsed()
    }

    fn legs(&self) -> MutexGuard<'_, CallLegs> {
        // Every update is a single assignment or push: a poisoned lock is still usable.
        self.inner.legs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The inbound connection's leg (`caller` until the guest names it).
    pub fn inbound_leg(&self) -> String {
        self.legs().inbound().to_owned()
    }

    /// The leg of an outbound connection or request the guest labelled `label` (checked
    /// and added to the call's legs; `default` when unlabelled), or why the label is refused.
    pub fn connection_leg(&self, label: Option<&str>, default: &str) -> Result<String, LegError> {
        let name = label.unwrap_or(default);
        self.legs().add(name)?;
        Ok(name.to_owned())
    }

    fn marker(&self, source: MarkerSource, leg: String, name: String, attributes: Vec<(String, Value)>) -> Marker {
        let unix_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)).unwrap_or(0);
        Marker { call: self.inner.call, offset: self.elapsed(), unix_ms, source, leg, name, attributes }
    }

    fn record(&self, marker: Marker) {
        self.inner.timeline.record(marker, self.reference());
    }

    /// Records a host marker (one of [`HOST_MARKERS`]) on the host's lane.
    pub fn host(&self, name: &str, attributes: &[(&str, Value)]) {
        self.host_on(HOST_LEG, name, attributes);
    }

    /// Records a host marker on `leg`'s lane (an outbound connection's events).
    pub fn host_on(&self, leg: &str, name: &str, attributes: &[(&str, Value)]) {
        debug_assert!(
            HOST_MARKERS.iter().any(|(known, keys)| *known == name && attributes.iter().all(|(key, _)| keys.contains(key))),
            "undocumented host marker {name} {attributes:?}"
        );
        let attributes = attributes.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        let marker = self.marker(MarkerSource::Host, leg.to_owned(), name.to_owned(), attributes);
        self.record(marker);
    }

    /// Whether the guest may record another marker; the first one over the cap is
    /// recorded as `markers.dropped`.
    fn admit_guest_marker(&self) -> bool {
        let count = self.inner.guest_markers.fetch_add(1, Ordering::Relaxed);
        if count == MAX_GUEST_MARKERS {
            self.host("markers.dropped", &[("limit", MAX_GUEST_MARKERS.into())]);
        }
        count < MAX_GUEST_MARKERS
    }

    fn refuse(&self, name: &str, reason: String) {
        let mut name = name.to_owned();
        truncate_utf8(&mut name, MAX_NAME_BYTES);
        self.host("markers.refused", &[("name", name.into()), ("reason", reason.into())]);
    }

    /// Records a guest marker (from `markers.emit`), truncating oversize names and values
    /// and enforcing the per-call cap. A name in the host's namespaces is refused.
    pub fn guest(&self, name: String, mut attributes: Vec<(String, Value)>) {
        if !self.admit_guest_marker() {
            return;
        }
        if RESERVED_NAMES.iter().any(|reserved| name.starts_with(reserved)) {
            self.refuse(&name, "the name is in one of the host's namespaces".to_owned());
            return;
        }
        attributes.truncate(MAX_ATTRIBUTES);
        for (key, value) in &mut attributes {
            truncate_utf8(key, MAX_VALUE_BYTES);
            if let Value::Text(text) = value {
                truncate_utf8(text, MAX_VALUE_BYTES);
            }
        }
        let mut name = name;
        truncate_utf8(&mut name, MAX_NAME_BYTES);
        let lane = self.legs().lane_of(&name);
        let marker = self.marker(MarkerSource::Guest, lane, name, attributes);
        self.record(marker);
    }

    /// Records a guest's typed report as the host's `leg.*`, `call.identified` or
    /// `transcript.entry` marker (see [`REPORT_MARKERS`]).
    pub fn report(&self, report: Report) {
        if !self.admit_guest_marker() {
            return;
        }
        let text = |mut value: String| {
            truncate_utf8(&mut value, MAX_VALUE_BYTES);
            Value::Text(value)
        };
        let checked = |leg: &str, result: Result<(), LegError>| result.map(|()| leg.to_owned());
        let (leg, name, attributes): (Result<String, LegError>, &str, Vec<(&str, Value)>) = match report {
            Report::NameInbound(leg) => (checked(&leg, self.legs().name_inbound(&leg)), "leg.inbound", vec![("leg", leg.into())]),
            Report::Declare(leg) => (checked(&leg, self.legs().add(&leg)), "leg.declared", vec![("leg", leg.into())]),
            Report::Fault { leg, impact, cause, detail } => (
                checked(&leg, self.legs().add(&leg)),
                "leg.fault",
                vec![("impact", impact.label().into()), ("cause", text(cause)), ("detail", text(detail))],
            ),
            Report::Complete(leg) => (checked(&leg, self.legs().add(&leg)), "leg.complete", vec![]),
            Report::Identify { mut kind, mut value } => {
                if self.inner.identities.fetch_add(1, Ordering::Relaxed) >= MAX_REFERENCES {
                    self.refuse("call.identified", format!("a call keeps at most {MAX_REFERENCES} references"));
                    return;
                }
                truncate_utf8(&mut kind, MAX_REFERENCE_BYTES);
                truncate_utf8(&mut value, MAX_REFERENCE_BYTES);
                let _ = self.inner.reference.set(value.clone());
                (Ok(GUEST_LEG.to_owned()), "call.identified", vec![("kind", kind.into()), ("value", value.into())])
            }
            Report::Transcript(entry) => {
                let mut attributes = vec![("speaker", text(entry.speaker)), ("text", text(entry.text))];
                attributes.extend(entry.start_ms.map(|ms| ("start_ms", ms.into())));
                attributes.extend(entry.end_ms.map(|ms| ("end_ms", ms.into())));
                attributes.extend(entry.confidence.map(|c| ("confidence", c.into())));
                (Ok(GUEST_LEG.to_owned()), "transcript.entry", attributes)
            }
        };
        debug_assert!(REPORT_MARKERS.iter().any(|(known, keys)| *known == name && attributes.iter().all(|(key, _)| keys.contains(key))));
        match leg {
            Ok(leg) => {
                let attributes = attributes.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
                let marker = self.marker(MarkerSource::Guest, leg, name.to_owned(), attributes);
                self.record(marker);
            }
            Err(error) => self.refuse(name, error.to_string()),
        }
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
        call.guest(long.clone(), (0..50).map(|i| (format!("k{i}"), Value::from(long.clone()))).collect());
        let markers = timeline.markers(CallId(1));
        assert_eq!(markers.len(), 1);
        assert!(markers[0].name.len() <= MAX_NAME_BYTES);
        assert_eq!(markers[0].attributes.len(), MAX_ATTRIBUTES);
        assert!(markers[0].attributes[0].1.as_text().is_some_and(|text| text.len() <= MAX_VALUE_BYTES));
        for _ in 0..MAX_GUEST_MARKERS + 5 {
            call.guest("x".into(), Vec::new());
        }
        let markers = timeline.markers(CallId(1));
        assert_eq!(markers.iter().filter(|m| m.source == MarkerSource::Guest).count(), MAX_GUEST_MARKERS as usize);
        assert_eq!(markers.iter().filter(|m| m.name == "markers.dropped").count(), 1);
    }

    #[test]
    fn reports_name_legs_give_lanes_and_refuse_what_breaks_the_rules() {
        let timeline = Timeline::new(10);
        let call = timeline.start_call(CallId(2));
        call.report(Report::NameInbound("twilio".into()));
        assert_eq!(call.connection_leg(Some("deepgram"), "outbound"), Ok("deepgram".to_owned()));
        call.guest("deepgram.open".into(), vec![("session".into(), Value::from(1u32))]);
        call.guest("twilio.start".into(), Vec::new());
        call.guest("utterance".into(), Vec::new());
        call.guest("call.closed".into(), Vec::new());
        call.report(Report::Fault { leg: "Bad Leg".into(), impact: Impact::Failed, cause: "x".into(), detail: "y".into() });
        call.report(Report::Identify { kind: "call_sid".into(), value: "CA1".into() });
        call.report(Report::Fault { leg: "deepgram".into(), impact: Impact::Recovered, cause: "closed".into(), detail: "1011".into() });
        let lanes: Vec<(String, String)> = timeline.markers(CallId(2)).into_iter().map(|m| (m.name, m.leg)).collect();
        let expect = |name: &str, leg: &str| assert!(lanes.contains(&(name.to_owned(), leg.to_owned())), "{name} on {leg}: {lanes:?}");
        expect("leg.inbound", "twilio");
        expect("deepgram.open", "deepgram");
        expect("twilio.start", "twilio");
        expect("utterance", "guest");
        expect("leg.fault", "deepgram");
        expect("call.identified", "guest");
        assert_eq!(lanes.iter().filter(|(name, _)| name == "markers.refused").count(), 2, "the reserved name and the bad leg: {lanes:?}");
        assert_eq!(call.reference(), "CA1");
        assert_eq!(call.inbound_leg(), "twilio");
    }

    /// The rows of the README table after `heading`: (marker, attribute keys).
    fn readme_table(heading: &str) -> Vec<(String, Vec<String>)> {
        let readme = include_str!("../../../README.md");
        let start = readme.find(heading).unwrap_or_else(|| panic!("README has {heading:?}"));
        let rows = readme[start..].lines().skip_while(|line| !line.starts_with('|')).skip(2).take_while(|line| line.starts_with('|'));
        let backticked = |cell: &str| cell.split('`').skip(1).step_by(2).map(str::to_owned).collect::<Vec<String>>();
        rows.map(|row| {
            let cells: Vec<&str> = row.split('|').collect();
            (backticked(cells[1]).concat(), backticked(cells[2]))
        })
        .collect()
    }

    fn listed(markers: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        markers.iter().map(|(name, keys)| ((*name).to_owned(), keys.iter().map(|k| (*k).to_owned()).collect())).collect()
    }

    #[test]
    fn the_readme_lists_exactly_the_host_s_markers() {
        assert_eq!(readme_table("Host markers:"), listed(HOST_MARKERS), "README's host markers differ from HOST_MARKERS");
        assert_eq!(readme_table("Report markers:"), listed(REPORT_MARKERS), "README's report markers differ from REPORT_MARKERS");
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
            later.host("call.closed", &[("code", 1000u16.into())]);
        });
        let second = timeline.wait_for(Duration::from_secs(5), |m| m.name == "call.closed").await;
        assert_eq!(second.and_then(|m| m.number("code")), Some(1000.0));
        assert!(timeline.wait_for(Duration::from_millis(10), |m| m.name == "never").await.is_none());
    }
}
