//! The call store's writer thread: markers in batches, each touched call classified again,
//! retention once a minute, and flushes answered once their batch is committed.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use rusqlite::{Connection, Transaction, params};

use super::classify::{Verdict, classify};
use super::{BATCH, FLUSH_INTERVAL, QUEUE, Retention, now_ms, schema};
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

/// Starts the writer on `connection`; the sender feeds it.
pub(super) fn start(connection: Connection, retention: Retention, path: &Path) -> std::io::Result<SyncSender<Job>> {
    let (sender, receiver) = std::sync::mpsc::sync_channel(QUEUE);
    let path = path.to_owned();
    std::thread::Builder::new()
        .name("switchboard-store".to_owned())
        .spawn(move || Writer::new(connection, retention, path).run(receiver))?;
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

struct Writer {
    connection: Connection,
    retention: Retention,
    path: PathBuf,
    calls: Calls,
}

/// The calls the writer is keeping track of.
#[derive(Default)]
struct Calls {
    open: HashMap<u64, OpenCall>,
    finished: Finished,
}

impl Writer {
    fn new(connection: Connection, retention: Retention, path: PathBuf) -> Self {
        Writer { connection, retention, path, calls: Calls::default() }
    }

    fn run(mut self, receiver: Receiver<Job>) {
        let mut last_retention = Instant::now();
        loop {
            let (batch, flushes) = match receiver.recv_timeout(Duration::from_secs(1)) {
                Ok(first) => collect(first, &receiver),
                Err(RecvTimeoutError::Timeout) => (Vec::new(), Vec::new()),
                Err(RecvTimeoutError::Disconnected) => return,
            };
            if !batch.is_empty()
                && let Err(error) = self.commit(&batch)
            {
                tracing::error!(path = %self.path.display(), "call store: could not write {} markers: {error}", batch.len());
            }
            for done in flushes {
                let _ = done.send(());
            }
            if last_retention.elapsed() > RETENTION_EVERY {
                last_retention = Instant::now();
                if let Err(error) = schema::apply_retention(&self.connection, self.retention, now_ms()) {
                    tracing::warn!("call store retention: {error}");
                }
            }
        }
    }

    fn commit(&mut self, batch: &[Marker]) -> rusqlite::Result<()> {
        let transaction = self.connection.transaction()?;
        let mut touched: Vec<u64> = Vec::new();
        for marker in batch {
            let id = marker.call.0;
            if self.calls.finished.ids.contains(&id) {
                // A late marker (an outbound socket closing after the call): kept, but the
                // call's summary is final.
                schema::append_late_marker(&transaction, marker)?;
                continue;
            }
            let call = self.calls.open.entry(id).or_default();
            call.seq += 1;
            schema::insert_marker(&transaction, marker, call.seq)?;
            match marker.name.as_str() {
                "call.accepted" | "call.rejected" => schema::insert_call(&transaction, marker)?,
                "call.identified" => schema::insert_reference(&transaction, marker, call.seq)?,
                _ => {}
            }
            call.markers.push(marker.clone());
            if !touched.contains(&id) {
                touched.push(id);
            }
        }
        for id in touched {
            self.calls.summarize(&transaction, id)?;
        }
        transaction.commit()
    }
}

impl Calls {
    /// Classifies call `id` again and writes its summary; a closed call is final.
    fn summarize(&mut self, transaction: &Transaction<'_>, id: u64) -> rusqlite::Result<()> {
        let Some(call) = self.open.get(&id) else { return Ok(()) };
        let Verdict { outcome, failing_leg, cause } = classify(&call.markers);
        let version = call.markers.iter().find(|m| m.name == "instance.started").and_then(|m| m.shown("version"));
        let closed = call.markers.iter().find(|m| m.name == "call.closed" || m.name == "call.rejected");
        let close_code = closed.and_then(|m| m.number("code").or(m.number("status"))).map(|code| code as i64);
        transaction.execute(
            "UPDATE calls SET outcome = ?2, failing_leg = ?3, cause = ?4, version = COALESCE(?5, version),
             close_code = COALESCE(?6, close_code), ended_ms = COALESCE(?7, ended_ms) WHERE call_id = ?1",
            params![id as i64, outcome, failing_leg, cause, version, close_code, closed.map(|m| m.unix_ms as i64)],
        )?;
        if closed.is_some() {
            self.open.remove(&id);
            self.finished.insert(id);
        }
        Ok(())
    }
}

/// The batch that starts with `first`: up to [`BATCH`] markers arriving within
/// [`FLUSH_INTERVAL`], cut short by a flush; and the flushes to answer after it.
fn collect(first: Job, receiver: &Receiver<Job>) -> (Vec<Marker>, Vec<SyncSender<()>>) {
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
