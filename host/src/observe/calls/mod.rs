//! The persistent call store: every marker of every call, with a row per call saying how
//! it went and which leg failed, in an embedded SQLite database ([`sqlite`]) or in a
//! PostgreSQL database shared by a fleet of replicas ([`postgres`]), each call with the
//! replica that took it.
//!
//! Recording never waits on the database: markers go through a bounded channel to a
//! writer thread ([`writer`]) that commits them in batches (every [`FLUSH_INTERVAL`] or
//! [`BATCH`] markers) and applies retention (age and call count) once a minute. If the
//! writer falls behind by more than the channel holds, or the database is away for longer
//! than the writer's buffer holds, markers are dropped and counted, never blocking a call.
//! Calls are keyed by the host's call id and by the references the guest gave (a Twilio
//! call or stream SID, say); [`classify`] decides their outcome.

pub mod classify;
pub mod postgres;
mod queue;
mod sink;
mod sqlite;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::TrySendError;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use crate::observe::marker::{Marker, Value};
use postgres::{Database, PostgresReader, PostgresSink};
use writer::{Counters, Job};

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
    /// PostgreSQL refused a query.
    #[error("call store: {0}")]
    Postgres(String),
    /// The database cannot be reached now (queries answer 503; recording goes on).
    #[error("the call store is unavailable: {0}")]
    Unavailable(String),
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

/// A name a call is known by elsewhere (`markers.identify`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Reference {
    /// Whose name it is, e.g. `call_sid`.
    pub kind: String,
    /// The name, e.g. a Twilio call SID.
    pub value: String,
}

/// One call, as listed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CallSummary {
    /// The host's id, e.g. `call-17954…`.
    pub call_id: String,
    /// The names the call is known by elsewhere, in the order the guest gave them.
    pub references: Vec<Reference>,
    /// When the call was accepted, ms since the Unix epoch.
    pub started_ms: i64,
    /// How long it lasted (so far, when live), ms.
    pub duration_ms: Option<i64>,
    /// `live`, `ok`, `degraded`, `failed` or `interrupted` (the host stopped mid-call).
    pub outcome: String,
    /// The leg that went wrong, if any.
    pub failing_leg: Option<String>,
    /// The cause, if any.
    pub cause: Option<String>,
    /// The component that served it.
    pub component: Option<String>,
    /// The version number.
    pub version: Option<String>,
    /// The inbound close code.
    pub close_code: Option<i64>,
    /// The replica that took the call (`SWITCHBOARD_REPLICA`); none for calls stored
    /// before replicas were recorded.
    #[serde(default)]
    pub replica: Option<String>,
}

impl CallSummary {
    /// The reference of `kind`, if the guest gave one.
    pub fn reference(&self, kind: &str) -> Option<&str> {
        self.references.iter().find(|r| r.kind == kind).map(|r| r.value.as_str())
    }
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
    /// Lane: a leg's name, or `host` / `guest`.
    pub leg: String,
    /// Marker name.
    pub name: String,
    /// Attributes, typed.
    pub attributes: Vec<(String, Value)>,
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

/// Where queries go.
enum Reader {
    Sqlite { path: PathBuf, connection: Mutex<Connection> },
    Postgres(Box<PostgresReader>),
}

/// The store: a reader for queries and a writer thread fed by [`CallStore::record`].
#[derive(Clone)]
pub struct CallStore {
    reader: Arc<Reader>,
    /// None for a read-only store (the `switchboard calls --db` CLI).
    sender: Option<queue::Queue<Job>>,
    counters: Arc<Counters>,
    /// For a store without a data directory: deleted with the last clone.
    _temporary: Option<Arc<tempfile::TempDir>>,
}

impl std::fmt::Debug for CallStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallStore").field("where", &self.describe()).finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl CallStore {
    /// Opens (or creates) the SQLite database at `path` and starts its writer thread;
    /// calls are recorded as taken by `replica`.
    pub fn open(path: &Path, retention: Retention, replica: &str) -> Result<Self, StoreError> {
        let error = |source| StoreError::Sqlite { path: path.to_owned(), source };
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let connection = Connection::open(path).map_err(error)?;
        sqlite::create_or_migrate(&connection).map_err(error)?;
        let reader = Connection::open(path).map_err(error)?;
        reader.busy_timeout(Duration::from_secs(5)).map_err(error)?;
        let counters = Arc::new(Counters::default());
        let sink = Box::new(sqlite::SqliteSink { connection, replica: replica.to_owned() });
        let sender =
            writer::start(sink, retention, counters.clone()).map_err(|e| error(rusqlite::Error::ToSqlConversionFailure(Box::new(e))))?;
        Ok(CallStore {
            reader: Arc::new(Reader::Sqlite { path: path.to_owned(), connection: Mutex::new(reader) }),
            sender: Some(sender),
            counters,
            _temporary: None,
        })
    }

    /// The PostgreSQL store shared by a fleet. Never waits for the database: the writer
    /// connects (and creates the schema) when it can, and queries answer
    /// [`StoreError::Unavailable`] until then.
    pub fn connect(database: Database, retention: Retention, replica: &str) -> Result<Self, StoreError> {
        let counters = Arc::new(Counters::default());
        let sink = Box::new(PostgresSink::new(database.clone(), replica.to_owned()));
        let sender = writer::start(sink, retention, counters.clone()).map_err(|e| StoreError::Postgres(e.to_string()))?;
        Ok(CallStore {
            reader: Arc::new(Reader::Postgres(Box::new(PostgresReader::new(database)))),
            sender: Some(sender),
            counters,
            _temporary: None,
        })
    }

    /// Opens an existing SQLite database for queries only (safe beside a running host).
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        let error = |source| StoreError::Sqlite { path: path.to_owned(), source };
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let reader = Connection::open_with_flags(path, flags).map_err(error)?;
        reader.busy_timeout(Duration::from_secs(5)).map_err(error)?;
        Ok(CallStore {
            reader: Arc::new(Reader::Sqlite { path: path.to_owned(), connection: Mutex::new(reader) }),
            sender: None,
            counters: Arc::default(),
            _temporary: None,
        })
    }

    /// A store in a temporary directory, deleted when the store is dropped (a host
    /// without a data directory keeps its calls only while it runs).
    pub fn open_temporary(retention: Retention, replica: &str) -> Result<Self, StoreError> {
        let dir = tempfile::tempdir()
            .map_err(|e| StoreError::Sqlite { path: std::env::temp_dir(), source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)) })?;
        let mut store = Self::open(&dir.path().join("calls.db"), retention, replica)?;
        store._temporary = Some(Arc::new(dir));
        Ok(store)
    }

    /// Queues a marker for writing; never blocks.
    pub fn record(&self, marker: &Marker) {
        let Some(sender) = &self.sender else { return };
        match sender.try_send(Job::Record(marker.clone())) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Markers lost: the writer fell behind, the database was away for longer than the
    /// writer's buffer holds, or it refused them.
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Markers waiting in the writer's buffer for the database to come back.
    pub fn pending(&self) -> u64 {
        self.counters.pending.load(Ordering::Relaxed)
    }

    /// Whether the writer's last attempt found the database unavailable.
    pub fn unavailable(&self) -> bool {
        self.counters.unavailable.load(Ordering::Relaxed)
    }

    /// Where the calls are kept, for messages: a file, or a PostgreSQL host and database.
    pub fn describe(&self) -> String {
        match &*self.reader {
            Reader::Sqlite { path, .. } => path.display().to_string(),
            Reader::Postgres(reader) => reader.describe(),
        }
    }

    fn sqlite<T>(
        path: &Path,
        connection: &Mutex<Connection>,
        query: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let connection = connection.lock().unwrap_or_else(|p| p.into_inner());
        query(&connection).map_err(|source| StoreError::Sqlite { path: path.to_owned(), source })
    }

    /// Recent calls, newest first (of every replica, with a shared database).
    pub fn list(&self, filter: &CallFilter) -> Result<Vec<CallSummary>, StoreError> {
        match &*self.reader {
            Reader::Sqlite { path, connection } => Self::sqlite(path, connection, |c| sqlite::list(c, filter, now_ms())),
            Reader::Postgres(reader) => reader.list(filter, now_ms()),
        }
    }

    /// A call by id (`call-N` or `N`) or by any of its references; the newest if several
    /// replicas have one.
    pub fn find(&self, key: &str) -> Result<Option<CallSummary>, StoreError> {
        match &*self.reader {
            Reader::Sqlite { path, connection } => Self::sqlite(path, connection, |c| sqlite::find(c, key, now_ms())),
            Reader::Postgres(reader) => reader.find(key, now_ms()),
        }
    }

    /// A call's timeline.
    pub fn timeline(&self, call: &CallSummary) -> Result<Vec<StoredMarker>, StoreError> {
        match &*self.reader {
            Reader::Sqlite { path, connection } => Self::sqlite(path, connection, |c| sqlite::timeline(c, call)),
            Reader::Postgres(reader) => reader.timeline(call),
        }
    }

    /// Waits up to `timeout` until everything recorded so far is committed (tests,
    /// shutdown); false on time-out (the database is away, say) or when the writer is
    /// gone.
    pub fn flush(&self, timeout: Duration) -> bool {
        let Some(sender) = &self.sender else { return true };
        let (done, committed) = std::sync::mpsc::sync_channel(1);
        sender.send(Job::Flush(done)).is_ok() && committed.recv_timeout(timeout).is_ok()
    }
}

/// Parses `call-N` or `N`.
pub fn parse_call_id(key: &str) -> Option<i64> {
    key.strip_prefix("call-").unwrap_or(key).parse().ok()
}

#[cfg(test)]
mod tests;
