//! The persistent call store: every marker of every call in an embedded SQLite database,
//! with a row per call saying how it went and which leg failed.
//!
//! Recording never waits on the disk: markers go through a bounded channel to a writer
//! thread that commits them in batches (every [`FLUSH_INTERVAL`] or [`BATCH`] markers)
//! and applies retention (age and call count) once a minute. If the writer falls behind
//! by more than the channel holds, markers are dropped and counted, never blocking a call.
//! Calls are keyed by the host's call id and, once known, the Twilio call and stream SIDs.

pub mod classify;
mod schema;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

use crate::observe::timeline::{CallId, Marker};
use classify::{Verdict, classify, leg_of};

/// How often pending markers are committed.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(200);
/// Most markers committed in one transaction.
pub const BATCH: usize = 2_000;
/// Markers waiting for the writer at most; beyond that they are dropped and counted.
pub const QUEUE: usize = 100_000;

/// Why the store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused.
    #[error("call store {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
}

/// How long and how much to keep.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Calls older than this are deleted.
    pub max_age: Duration,
    /// At most this many calls are kept (the oldest go first).
    pub max_calls: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention { max_age: Duration::from_secs(7 * 24 * 3600), max_calls: 100_000 }
    }
}

/// One call, as listed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CallSummary {
    /// The host's id, e.g. `call-17954…`.
    pub call_id: String,
    /// Twilio's call SID, once known.
    pub call_sid: Option<String>,
    /// Twilio's stream SID, once known.
    pub stream_sid: Option<String>,
    /// When the call was accepted, ms since the Unix epoch.
    pub started_ms: i64,
    /// How long it lasted (so far, when live), ms.
    pub duration_ms: Option<i64>,
    /// `live`, `ok`, `degraded` or `failed`.
    pub outcome: String,
    /// The leg that failed, if any.
    pub failing_leg: Option<String>,
    /// The cause, if any.
    pub cause: Option<String>,
    /// The component and version that served it.
    pub component: Option<String>,
    /// The version number.
    pub version: Option<String>,
    /// The inbound close code.
    pub close_code: Option<i64>,
}

/// One marker of a call's timeline, as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredMarker {
    /// Time since the call was accepted, ms.
    pub offset_ms: f64,
    /// Wall clock, ms since the Unix epoch.
    pub unix_ms: i64,
    /// `host` or `guest`.
    pub source: String,
    /// Lane: `host`, `twilio`, `deepgram`, `outbound` or `guest`.
    pub leg: String,
    /// Marker name.
    pub name: String,
    /// Attributes.
    pub attributes: Vec<(String, String)>,
}

/// Filters for [`CallStore::list`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CallFilter {
    /// Only this outcome.
    pub outcome: Option<String>,
    /// Only this failing leg.
    pub leg: Option<String>,
    /// Started at or after, ms since the Unix epoch.
    pub since_ms: Option<i64>,
    /// Started before, ms since the Unix epoch.
    pub until_ms: Option<i64>,
    /// At most this many (newest first); default 100.
    pub limit: Option<u32>,
}

/// The store: a reader connection for queries and a writer thread fed by [`CallStore::record`].
#[derive(Clone)]
pub struct CallStore {
    path: PathBuf,
    reader: Arc<Mutex<Connection>>,
    /// None for a read-only store (the `switchboard calls` CLI).
    sender: Option<SyncSender<Marker>>,
    dropped: Arc<AtomicU64>,
    /// For a store without a data directory: deleted with the last clone.
    _temporary: Option<Arc<tempfile::TempDir>>,
}

impl std::fmt::Debug for CallStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallStore").field("path", &self.path).finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl CallStore {
    /// Opens (or creates) the database at `path` and starts its writer thread.
    pub fn open(path: &Path, retention: Retention) -> Result<Self, StoreError> {
        let error = |source| StoreError::Sqlite { path: path.to_owned(), source };
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let writer = Connection::open(path).map_err(error)?;
        schema::create_or_migrate(&writer).map_err(error)?;
        let reader = Connection::open(path).map_err(error)?;
        reader.busy_timeout(Duration::from_secs(5)).map_err(error)?;
        let (sender, receiver) = std::sync::mpsc::sync_channel(QUEUE);
        let thread_path = path.to_owned();
        std::thread::Builder::new()
            .name("switchboard-store".to_owned())
            .spawn(move || write_loop(writer, receiver, retention, &thread_path))
            .map_err(|e| error(rusqlite::Error::ToSqlConversionFailure(Box::new(e))))?;
        Ok(CallStore {
            path: path.to_owned(),
            reader: Arc::new(Mutex::new(reader)),
            sender: Some(sender),
            dropped: Arc::default(),
            _temporary: None,
        })
    }

    /// Opens an existing database for queries only (safe beside a running host).
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        let error = |source| StoreError::Sqlite { path: path.to_owned(), source };
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let reader = Connection::open_with_flags(path, flags).map_err(error)?;
        reader.busy_timeout(Duration::from_secs(5)).map_err(error)?;
        Ok(CallStore {
            path: path.to_owned(),
            reader: Arc::new(Mutex::new(reader)),
            sender: None,
            dropped: Arc::default(),
            _temporary: None,
        })
    }

    /// A store in a temporary directory, deleted when the store is dropped (a host
    /// without a data directory keeps its calls only while it runs).
    pub fn open_temporary(retention: Retention) -> Result<Self, StoreError> {
        let dir = tempfile::tempdir()
            .map_err(|e| StoreError::Sqlite { path: std::env::temp_dir(), source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)) })?;
        let mut store = Self::open(&dir.path().join("calls.db"), retention)?;
        store._temporary = Some(Arc::new(dir));
        Ok(store)
    }

    /// Queues a marker for writing; never blocks.
    pub fn record(&self, marker: &Marker) {
        let Some(sender) = &self.sender else { return };
        match sender.try_send(marker.clone()) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Markers dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read<T>(&self, query: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let connection = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        query(&connection).map_err(|source| StoreError::Sqlite { path: self.path.clone(), source })
    }

    /// Recent calls, newest first.
    pub fn list(&self, filter: &CallFilter) -> Result<Vec<CallSummary>, StoreError> {
        self.read(|c| schema::list(c, filter, now_ms()))
    }

    /// A call by id (`call-N` or `N`) or by Twilio call or stream SID.
    pub fn find(&self, key: &str) -> Result<Option<CallSummary>, StoreError> {
        self.read(|c| schema::find(c, key, now_ms()))
    }

    /// A call's timeline.
    pub fn timeline(&self, call_id: &str) -> Result<Vec<StoredMarker>, StoreError> {
        self.read(|c| schema::timeline(c, call_id))
    }

    /// Waits until everything recorded so far is committed (tests, shutdown).
    pub fn flush(&self, timeout: Duration) -> bool {
        let marker = Marker {
            call: CallId(0),
            offset: Duration::ZERO,
            unix_ms: 0,
            source: crate::observe::timeline::MarkerSource::Host,
            name: FLUSH_PROBE.to_owned(),
            attributes: Vec::new(),
        };
        let before = self.read(schema::flushes).unwrap_or(0);
        let Some(sender) = &self.sender else {
            return true;
        };
        if sender.send(marker).is_err() {
            return false;
        }
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.read(schema::flushes).unwrap_or(0) > before {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }
}

/// A marker name the writer treats as "commit and count a flush".
const FLUSH_PROBE: &str = "__switchboard.flush";

/// What the writer remembers of a live call.
#[derive(Default)]
struct OpenCall {
    markers: Vec<Marker>,
    seq: i64,
}

/// Calls whose summary is final, remembered so late markers do not reopen them.
#[derive(Default)]
struct Finished {
    ids: std::collections::HashSet<u64>,
    order: std::collections::VecDeque<u64>,
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

fn write_loop(mut connection: Connection, receiver: Receiver<Marker>, retention: Retention, path: &Path) {
    let mut live: HashMap<u64, OpenCall> = HashMap::new();
    let mut finished = Finished::default();
    let mut last_retention = Instant::now();
    loop {
        let first = match receiver.recv_timeout(Duration::from_secs(1)) {
            Ok(marker) => Some(marker),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut batch: Vec<Marker> = first.into_iter().collect();
        let deadline = Instant::now() + FLUSH_INTERVAL;
        while batch.len() < BATCH && !batch.is_empty() {
            match receiver.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(marker) => {
                    let probe = marker.name == FLUSH_PROBE;
                    batch.push(marker);
                    if probe {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        if !batch.is_empty()
            && let Err(error) = commit(&mut connection, &mut live, &mut finished, &batch)
        {
            tracing::error!(path = %path.display(), "call store: could not write {} markers: {error}", batch.len());
        }
        if last_retention.elapsed() > Duration::from_secs(60) {
            last_retention = Instant::now();
            if let Err(error) = schema::apply_retention(&connection, retention, now_ms()) {
                tracing::warn!("call store retention: {error}");
            }
        }
    }
}

fn commit(
    connection: &mut Connection,
    live: &mut HashMap<u64, OpenCall>,
    finished: &mut Finished,
    batch: &[Marker],
) -> rusqlite::Result<()> {
    let transaction = connection.transaction()?;
    let mut touched: Vec<u64> = Vec::new();
    for marker in batch {
        if marker.name == FLUSH_PROBE {
            transaction.execute("UPDATE meta SET flushes = flushes + 1", [])?;
            continue;
        }
        let id = marker.call.0;
        if finished.ids.contains(&id) {
            // A late marker (an outbound socket closing after the call): keep it, but the
            // call's summary is final.
            transaction.execute(
                "INSERT INTO markers (call_id, seq, unix_ms, offset_ms, source, leg, name, attributes)
                 SELECT ?1, COALESCE(MAX(seq), 0) + 1, ?2, ?3, ?4, ?5, ?6, ?7 FROM markers WHERE call_id = ?1",
                params![
                    id as i64,
                    marker.unix_ms as i64,
                    marker.offset.as_secs_f64() * 1e3,
                    marker.source.to_string(),
                    leg_of(&marker.name),
                    marker.name,
                    serde_json::to_string(&marker.attributes).unwrap_or_default()
                ],
            )?;
            continue;
        }
        let call = live.entry(id).or_default();
        call.seq += 1;
        let attributes = serde_json::to_string(&marker.attributes).unwrap_or_else(|_| "[]".to_owned());
        transaction.execute(
            "INSERT OR REPLACE INTO markers (call_id, seq, unix_ms, offset_ms, source, leg, name, attributes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                id as i64,
                call.seq,
                marker.unix_ms as i64,
                marker.offset.as_secs_f64() * 1e3,
                marker.source.to_string(),
                leg_of(&marker.name),
                marker.name,
                attributes
            ],
        )?;
        if marker.name == "call.accepted" || marker.name == "call.rejected" {
            transaction.execute(
                "INSERT OR IGNORE INTO calls (call_id, started_ms, path, component, outcome) VALUES (?1, ?2, ?3, ?4, 'live')",
                params![id as i64, marker.unix_ms as i64, marker.attr("path"), marker.attr("component")],
            )?;
        }
        call.markers.push(marker.clone());
        if !touched.contains(&id) {
            touched.push(id);
        }
    }
    for id in touched {
        let Some(call) = live.get(&id) else { continue };
        let Verdict { outcome, failing_leg, cause } = classify(&call.markers);
        let find = |name: &str, key: &str| call.markers.iter().find(|m| m.name == name).and_then(|m| m.attr(key).map(str::to_owned));
        let closed = call.markers.iter().find(|m| m.name == "call.closed" || m.name == "call.rejected");
        transaction.execute(
            "UPDATE calls SET outcome = ?2, failing_leg = ?3, cause = ?4, call_sid = COALESCE(?5, call_sid), stream_sid = COALESCE(?6, stream_sid),
             version = COALESCE(?7, version), close_code = COALESCE(?8, close_code), ended_ms = COALESCE(?9, ended_ms) WHERE call_id = ?1",
            params![
                id as i64,
                outcome,
                failing_leg,
                cause,
                find("twilio.start", "call_sid"),
                find("twilio.start", "stream_sid"),
                find("instance.started", "version"),
                closed.and_then(|m| m.attr("code").or(m.attr("status"))).and_then(|c| c.parse::<i64>().ok()),
                closed.map(|m| m.unix_ms as i64),
            ],
        )?;
        if closed.is_some() {
            live.remove(&id);
            finished.insert(id);
        }
    }
    transaction.commit()
}

/// Parses `call-N` or `N`.
pub fn parse_call_id(key: &str) -> Option<i64> {
    key.strip_prefix("call-").unwrap_or(key).parse().ok()
}

#[cfg(test)]
mod tests;
