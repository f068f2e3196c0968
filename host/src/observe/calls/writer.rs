//! The call store's writer thread: markers in batches, each touched call classified again,
//! the batch's writes committed to the [`Sink`] in one transaction, retention once a
//! minute, and flushes answered once everything before them is committed.
//!
//! When the database is unavailable, batches wait in a bounded buffer and are committed,
//! in order, once it is back (tried again every [`Sink::retry_after`]). Past
//! [`PENDING_MARKERS`] buffered markers, the markers of further batches are dropped and
//! counted, but their calls' rows and summaries are still kept, so a call that ended
//! during the outage is shown with its outcome when the database returns.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use super::classify::{Verdict, classify};
use super::queue::{self, Jobs, Queue};
use super::sink::{Sink, SinkError, Write};
use super::{BATCH, FLUSH_INTERVAL, QUEUE, Retention, now_ms};
use crate::observe::marker::Marker;

/// What the writer is asked to do.
pub(super) enum Job {
    /// Store a marker.
    Record(Marker),
    /// Answer once everything before is committed.
    Flush(SyncSender<()>),
}

/// How often retention runs.
const RETENTION_EVERY: Duration = Duration::from_secs(60);
/// Most markers kept waiting for an unavailable database.
pub const PENDING_MARKERS: usize = QUEUE;
/// Most other writes (call rows, references, summaries) kept waiting.
const PENDING_WRITES: usize = 4 * QUEUE;

/// The writer's counters, shared with the store.
#[derive(Debug, Default)]
pub(super) struct Counters {
    /// Markers lost: the queue was full, the buffer was full, or the database refused them.
    pub dropped: AtomicU64,
    /// Markers waiting for the database.
    pub pending: AtomicU64,
    /// Whether the last commit failed because the database was unavailable.
    pub unavailable: std::sync::atomic::AtomicBool,
}

/// Starts the writer on `sink`; the sender feeds it.
pub(super) fn start(sink: Box<dyn Sink>, retention: Retention, counters: Arc<Counters>) -> std::io::Result<Queue<Job>> {
    let (sender, receiver) = queue::bounded(QUEUE);
    std::thread::Builder::new().name("switchboard-store".to_owned()).spawn(move || Writer::new(sink, retention, counters).run(receiver))?;
    Ok(sender)
}

/// What the writer remembers of a call that has not closed.
#[derive(Default)]
struct OpenCall {
    markers: Vec<Marker>,
    seq: i64,
}

/// Calls whose summary is final, remembered so late markers do not reopen them.
#[derive(Default)]
struct Finished {
    ids: HashSet<u64>,
    order: VecDeque<u64>,
}

impl Finished {
    const CAPACITY: usize = 100_000;

    fn insert(&mut self, id: u64) {
        if self.ids.insert(id) {
            self.order.push_back(id);
            if self.order.len() > Self::CAPACITY
                && let Some(old) = self.order.pop_front()
            {
                self.ids.remove(&old);
            }
        }
    }
}

/// The calls the writer is keeping track of.
#[derive(Default)]
struct Calls {
    open: HashMap<u64, OpenCall>,
    finished: Finished,
}

/// Batches not yet committed, oldest first.
#[derive(Default)]
struct Pending {
    batches: VecDeque<Vec<Write>>,
    markers: usize,
    writes: usize,
}

struct Writer {
    sink: Box<dyn Sink>,
    retention: Retention,
    calls: Calls,
    pending: Pending,
    waiting: Vec<SyncSender<()>>,
    retry_at: Option<Instant>,
    counters: Arc<Counters>,
}

impl Writer {
    fn new(sink: Box<dyn Sink>, retention: Retention, counters: Arc<Counters>) -> Self {
        Writer { sink, retention, calls: Calls::default(), pending: Pending::default(), waiting: Vec::new(), retry_at: None, counters }
    }

    fn run(mut self, receiver: Jobs<Job>) {
        let mut last_retention = Instant::now();
        loop {
            let (batch, flushes) = match receiver.recv_timeout(Duration::from_secs(1)) {
                Ok(first) => collect(first, &receiver),
                Err(RecvTimeoutError::Timeout) => (Vec::new(), Vec::new()),
                Err(RecvTimeoutError::Disconnected) => {
                    self.drain();
                    return;
                }
            };
            if !batch.is_empty() {
                let writes = self.calls.writes(&batch);
                self.keep(writes);
            }
            self.waiting.extend(flushes);
            self.drain();
            if self.pending.batches.is_empty() {
                for done in self.waiting.drain(..) {
                    let _ = done.send(());
                }
                if last_retention.elapsed() > RETENTION_EVERY {
                    last_retention = Instant::now();
                    if let Err(error) = self.sink.apply_retention(self.retention, now_ms()) {
                        tracing::warn!("call store retention: {error}");
                    }
                }
            }
        }
    }

    /// Adds a batch's writes to the buffer, dropping (and counting) its markers when the
    /// buffer is full.
    fn keep(&mut self, mut writes: Vec<Write>) {
        let markers = writes.iter().filter(|w| w.is_marker()).count();
        if self.pending.markers + markers > PENDING_MARKERS {
            writes.retain(|w| !w.is_marker());
            self.counters.dropped.fetch_add(markers as u64, Ordering::Relaxed);
            if self.pending.writes + writes.len() > PENDING_WRITES {
                return;
            }
            self.pending.writes += writes.len();
            self.pending.batches.push_back(writes);
            return;
        }
        self.pending.markers += markers;
        self.pending.writes += writes.len() - markers;
        self.pending.batches.push_back(writes);
        self.counters.pending.store(self.pending.markers as u64, Ordering::Relaxed);
    }

    /// Commits buffered batches in order until one fails.
    fn drain(&mut self) {
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            return;
        }
        let was_unavailable = self.retry_at.take().is_some();
        let mut recovered = 0;
        while let Some(writes) = self.pending.batches.front() {
            let markers = writes.iter().filter(|w| w.is_marker()).count();
            match self.sink.commit(writes) {
                Ok(()) => recovered += markers,
                Err(SinkError::Unavailable(reason)) => {
                    if !was_unavailable {
                        tracing::warn!("call store: {reason}; keeping markers (at most {PENDING_MARKERS}) until it is back, calls go on");
                    }
                    self.counters.unavailable.store(true, Ordering::Relaxed);
                    self.retry_at = Some(Instant::now() + self.sink.retry_after());
                    break;
                }
                Err(error @ SinkError::Refused(_)) => {
                    tracing::error!("call store: could not write {markers} markers: {error}");
                    self.counters.dropped.fetch_add(markers as u64, Ordering::Relaxed);
                }
            }
            self.pending.markers -= markers;
            self.pending.writes -= writes.len() - markers;
            self.pending.batches.pop_front();
        }
        self.counters.pending.store(self.pending.markers as u64, Ordering::Relaxed);
        if self.retry_at.is_none() {
            self.counters.unavailable.store(false, Ordering::Relaxed);
            if was_unavailable {
                tracing::info!("call store: the database is back; wrote {recovered} buffered markers");
            }
        }
    }
}

impl Calls {
    /// The writes a batch makes: its markers numbered, calls and references added, and
    /// every touched call classified again.
    fn writes(&mut self, batch: &[Marker]) -> Vec<Write> {
        let mut writes = Vec::with_capacity(batch.len() + 8);
        let mut touched: Vec<u64> = Vec::new();
        for marker in batch {
            let id = marker.call.0;
            if self.finished.ids.contains(&id) {
                // A late marker (an outbound socket closing after the call): kept, but the
                // call's summary is final.
                writes.push(Write::Marker { seq: None, marker: marker.clone() });
                continue;
            }
            let call = self.open.entry(id).or_default();
            call.seq += 1;
            writes.push(Write::Marker { seq: Some(call.seq), marker: marker.clone() });
            match marker.name.as_str() {
                "call.accepted" | "call.rejected" => writes.push(Write::Call {
                    id,
                    started_ms: marker.unix_ms as i64,
                    path: marker.text("path").map(str::to_owned),
                    component: marker.text("component").map(str::to_owned),
                }),
                "call.identified" => {
                    if let (Some(kind), Some(value)) = (marker.text("kind"), marker.text("value")) {
                        writes.push(Write::Reference { id, seq: call.seq, kind: kind.to_owned(), value: value.to_owned() });
                    }
                }
                _ => {}
            }
            call.markers.push(marker.clone());
            if !touched.contains(&id) {
                touched.push(id);
            }
        }
        for id in touched {
            if let Some(summary) = self.summarize(id) {
                writes.push(summary);
            }
        }
        writes
    }

    /// Classifies call `id` again; a closed call is final.
    fn summarize(&mut self, id: u64) -> Option<Write> {
        let call = self.open.get(&id)?;
        let Verdict { outcome, failing_leg, cause } = classify(&call.markers);
        let version = call.markers.iter().find(|m| m.name == "instance.started").and_then(|m| m.shown("version"));
        let closed = call.markers.iter().find(|m| m.name == "call.closed" || m.name == "call.rejected");
        let close_code = closed.and_then(|m| m.number("code").or(m.number("status"))).map(|code| code as i64);
        let ended_ms = closed.map(|m| m.unix_ms as i64);
        if closed.is_some() {
            self.open.remove(&id);
            self.finished.insert(id);
        }
        Some(Write::Summary { id, outcome, failing_leg, cause, version, close_code, ended_ms })
    }
}

/// The batch that starts with `first`: up to [`BATCH`] markers arriving within
/// [`FLUSH_INTERVAL`], cut short by a flush; and the flushes to answer after it.
fn collect(first: Job, receiver: &Jobs<Job>) -> (Vec<Marker>, Vec<SyncSender<()>>) {
    let mut batch = Vec::new();
    let mut flushes = Vec::new();
    let deadline = Instant::now() + FLUSH_INTERVAL;
    let mut next = Some(first);
    while let Some(job) = next.take() {
        match job {
            Job::Record(marker) => batch.push(marker),
            Job::Flush(done) => {
                flushes.push(done);
                break;
            }
        }
        if batch.len() >= BATCH {
            break;
        }
        next = receiver.recv_timeout(deadline.saturating_duration_since(Instant::now())).ok();
    }
    (batch, flushes)
}
