//! What the writer thread asks of a database: the writes one batch of markers makes,
//! committed in one transaction, and retention. The writer decides the writes (sequence
//! numbers, classification, which calls are final) once, so SQLite and PostgreSQL store
//! the same rows, and a batch that could not be committed is replayed as it was.

use std::time::Duration;

use super::Retention;
use crate::observe::marker::Marker;

/// One row written (or updated) by a batch.
#[derive(Debug, Clone)]
pub(super) enum Write {
    /// A call's row, from its `call.accepted` or `call.rejected` marker.
    Call { id: u64, started_ms: i64, path: Option<String>, component: Option<String> },
    /// A marker, numbered within its call; `seq: None` appends it after the call's last
    /// one (a marker that arrives after the call's summary is final).
    Marker { seq: Option<i64>, marker: Marker },
    /// A name the call is known by elsewhere (`call.identified`).
    Reference { id: u64, seq: i64, kind: String, value: String },
    /// The call's outcome as classified from every marker so far.
    Summary {
        id: u64,
        outcome: &'static str,
        failing_leg: Option<String>,
        cause: Option<String>,
        version: Option<String>,
        close_code: Option<i64>,
        ended_ms: Option<i64>,
    },
}

impl Write {
    /// Whether this write stores a marker (what overflow drops first, and counts).
    pub(super) fn is_marker(&self) -> bool {
        matches!(self, Write::Marker { .. })
    }
}

/// Why a batch was not committed.
#[derive(Debug, thiserror::Error)]
pub(super) enum SinkError {
    /// The database cannot be reached (or is shutting down): the batch is kept and tried
    /// again.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The database refused the batch itself: trying again would not help.
    #[error("the database refused the batch: {0}")]
    Refused(String),
}

/// A database the writer commits to.
pub(super) trait Sink: Send {
    /// Commits `writes` in one transaction: all of them or none.
    fn commit(&mut self, writes: &[Write]) -> Result<(), SinkError>;
    /// Deletes calls older than the retention's age and beyond its count.
    fn apply_retention(&mut self, retention: Retention, now_ms: i64) -> Result<(), SinkError>;
    /// How long to wait before trying an unavailable database again.
    fn retry_after(&self) -> Duration {
        Duration::from_secs(1)
    }
}
