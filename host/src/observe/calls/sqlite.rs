//! The embedded SQLite store: schema (and its migrations), writes, queries and retention.
//!
//! Version 3 (`PRAGMA user_version`) names the replica that took each call; version 2
//! keeps a call's references in `call_refs` and typed marker attributes; older databases
//! (version 1: Twilio SIDs in `calls`, text attributes) are migrated in place when opened,
//! and their old rows read as they were.

use rusqlite::{Connection, ErrorCode, Row, Transaction, params};

use super::sink::{Sink, SinkError, Write};
use super::{CallFilter, CallSummary, Reference, Retention, StoredMarker, parse_call_id};
use crate::observe::marker::Marker;

/// The schema this code writes.
const VERSION: i64 = 3;

pub(super) fn create_or_migrate(connection: &Connection) -> rusqlite::Result<()> {
    connection.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    let version: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let has_calls: bool =
        connection.query_row("SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'calls'", [], |row| row.get(0))?;
    connection.execute_batch(
        "CREATE TABLE IF NOT EXISTS calls (
            call_id INTEGER PRIMARY KEY,
            replica TEXT,
            started_ms INTEGER NOT NULL,
            ended_ms INTEGER,
            path TEXT,
            component TEXT,
            version TEXT,
            close_code INTEGER,
            outcome TEXT NOT NULL DEFAULT 'live',
            failing_leg TEXT,
            cause TEXT
        );
        CREATE INDEX IF NOT EXISTS calls_started ON calls (started_ms);
        CREATE TABLE IF NOT EXISTS call_refs (
            call_id INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            kind TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (call_id, seq)
        );
        CREATE INDEX IF NOT EXISTS call_refs_value ON call_refs (value);
        CREATE TABLE IF NOT EXISTS markers (
            call_id INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            unix_ms INTEGER NOT NULL,
            offset_ms REAL NOT NULL,
            source TEXT NOT NULL,
            leg TEXT NOT NULL,
            name TEXT NOT NULL,
            attributes TEXT NOT NULL,
            PRIMARY KEY (call_id, seq)
        );",
    )?;
    if has_calls && version < 2 {
        // Version 1 kept Twilio's SIDs in columns of `calls`: they become references.
        connection.execute_batch(
            "INSERT OR IGNORE INTO call_refs (call_id, seq, kind, value)
               SELECT call_id, -2, 'call_sid', call_sid FROM calls WHERE call_sid IS NOT NULL;
             INSERT OR IGNORE INTO call_refs (call_id, seq, kind, value)
               SELECT call_id, -1, 'stream_sid', stream_sid FROM calls WHERE stream_sid IS NOT NULL;",
        )?;
    }
    let has_replica: bool =
        connection.query_row("SELECT COUNT(*) > 0 FROM pragma_table_info('calls') WHERE name = 'replica'", [], |row| row.get(0))?;
    if !has_replica {
        connection.execute_batch("ALTER TABLE calls ADD COLUMN replica TEXT")?;
    }
    connection.pragma_update(None, "user_version", VERSION)?;
    // A host that stopped mid-call left rows marked live: they are not live any more.
    connection.execute("UPDATE calls SET outcome = 'interrupted' WHERE outcome = 'live'", [])?;
    Ok(())
}

pub(super) fn attributes_json(marker: &Marker) -> String {
    serde_json::to_string(&marker.attributes).unwrap_or_else(|_| "[]".to_owned())
}

/// The embedded store's writer side.
pub(super) struct SqliteSink {
    pub(super) connection: Connection,
    pub(super) replica: String,
}

fn refused(error: rusqlite::Error) -> SinkError {
    match error.sqlite_error_code() {
        // The disk is full or the file is locked: the batch is kept and tried again.
        Some(ErrorCode::DiskFull | ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked | ErrorCode::SystemIoFailure) => {
            SinkError::Unavailable(error.to_string())
        }
        _ => SinkError::Refused(error.to_string()),
    }
}

impl Sink for SqliteSink {
    fn commit(&mut self, writes: &[Write]) -> Result<(), SinkError> {
        let transaction = self.connection.transaction().map_err(refused)?;
        for write in writes {
            apply(&transaction, &self.replica, write).map_err(refused)?;
        }
        transaction.commit().map_err(refused)
    }

    fn apply_retention(&mut self, retention: Retention, now_ms: i64) -> Result<(), SinkError> {
        apply_retention(&self.connection, retention, now_ms).map_err(refused)
    }
}

fn apply(transaction: &Transaction<'_>, replica: &str, write: &Write) -> rusqlite::Result<usize> {
    match write {
        Write::Marker { seq: Some(seq), marker } => transaction.execute(
            "INSERT OR REPLACE INTO markers (call_id, seq, unix_ms, offset_ms, source, leg, name, attributes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                marker.call.0 as i64,
                seq,
                marker.unix_ms as i64,
                marker.offset.as_secs_f64() * 1e3,
                marker.source.to_string(),
                marker.leg,
                marker.name,
                attributes_json(marker)
            ],
        ),
        Write::Marker { seq: None, marker } => transaction.execute(
            "INSERT INTO markers (call_id, seq, unix_ms, offset_ms, source, leg, name, attributes)
             SELECT ?1, COALESCE(MAX(seq), 0) + 1, ?2, ?3, ?4, ?5, ?6, ?7 FROM markers WHERE call_id = ?1",
            params![
                marker.call.0 as i64,
                marker.unix_ms as i64,
                marker.offset.as_secs_f64() * 1e3,
                marker.source.to_string(),
                marker.leg,
                marker.name,
                attributes_json(marker)
            ],
        ),
        Write::Call { id, started_ms, path, component } => transaction.execute(
            "INSERT OR IGNORE INTO calls (call_id, replica, started_ms, path, component, outcome) VALUES (?1, ?2, ?3, ?4, ?5, 'live')",
            params![*id as i64, replica, started_ms, path, component],
        ),
        Write::Reference { id, seq, kind, value } => transaction.execute(
            "INSERT OR REPLACE INTO call_refs (call_id, seq, kind, value) VALUES (?1, ?2, ?3, ?4)",
            params![*id as i64, seq, kind, value],
        ),
        Write::Summary { id, outcome, failing_leg, cause, version, close_code, ended_ms } => transaction.execute(
            "UPDATE calls SET outcome = ?2, failing_leg = ?3, cause = ?4, version = COALESCE(?5, version),
             close_code = COALESCE(?6, close_code), ended_ms = COALESCE(?7, ended_ms) WHERE call_id = ?1",
            params![*id as i64, outcome, failing_leg, cause, version, close_code, ended_ms],
        ),
    }
}

const SUMMARY_COLUMNS: &str = "call_id, started_ms, ended_ms, outcome, failing_leg, cause, component, version, close_code, replica";

fn summary(connection: &Connection, row: &Row<'_>, now_ms: i64) -> rusqlite::Result<CallSummary> {
    let call_id: i64 = row.get(0)?;
    let started: i64 = row.get(1)?;
    let ended: Option<i64> = row.get(2)?;
    let outcome: String = row.get(3)?;
    let duration = match (ended, outcome.as_str()) {
        (Some(ended), _) => Some(ended - started),
        (None, "live") => Some(now_ms - started),
        (None, _) => None,
    };
    Ok(CallSummary {
        call_id: format!("call-{call_id}"),
        references: references(connection, call_id)?,
        started_ms: started,
        duration_ms: duration,
        outcome,
        failing_leg: row.get(4)?,
        cause: row.get(5)?,
        component: row.get(6)?,
        version: row.get(7)?,
        close_code: row.get(8)?,
        replica: row.get(9)?,
    })
}

fn references(connection: &Connection, call_id: i64) -> rusqlite::Result<Vec<Reference>> {
    let mut statement = connection.prepare_cached("SELECT kind, value FROM call_refs WHERE call_id = ?1 ORDER BY seq")?;
    let rows = statement.query_map(params![call_id], |row| Ok(Reference { kind: row.get(0)?, value: row.get(1)? }))?;
    rows.collect()
}

pub(super) fn list(connection: &Connection, filter: &CallFilter, now_ms: i64) -> rusqlite::Result<Vec<CallSummary>> {
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS} FROM calls
         WHERE (?1 IS NULL OR outcome = ?1) AND (?2 IS NULL OR failing_leg = ?2)
           AND (?3 IS NULL OR started_ms >= ?3) AND (?4 IS NULL OR started_ms < ?4)
         ORDER BY started_ms DESC, call_id DESC LIMIT ?5"
    );
    let mut statement = connection.prepare_cached(&sql)?;
    let mut rows =
        statement.query(params![filter.outcome, filter.leg, filter.since_ms, filter.until_ms, filter.limit.unwrap_or(100).min(10_000)])?;
    let mut calls = Vec::new();
    while let Some(row) = rows.next()? {
        calls.push(summary(connection, row, now_ms)?);
    }
    Ok(calls)
}

pub(super) fn find(connection: &Connection, key: &str, now_ms: i64) -> rusqlite::Result<Option<CallSummary>> {
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS} FROM calls WHERE call_id = ?1 OR call_id IN (SELECT call_id FROM call_refs WHERE value = ?2)
         ORDER BY started_ms DESC LIMIT 1"
    );
    let mut statement = connection.prepare_cached(&sql)?;
    let mut rows = statement.query(params![parse_call_id(key).unwrap_or(-1), key])?;
    rows.next()?.map(|row| summary(connection, row, now_ms)).transpose()
}

pub(super) fn timeline(connection: &Connection, call: &CallSummary) -> rusqlite::Result<Vec<StoredMarker>> {
    let mut statement = connection
        .prepare_cached("SELECT offset_ms, unix_ms, source, leg, name, attributes FROM markers WHERE call_id = ?1 ORDER BY seq")?;
    let rows = statement.query_map(params![parse_call_id(&call.call_id).unwrap_or(-1)], |row| {
        let attributes: String = row.get(5)?;
        Ok(StoredMarker {
            offset_ms: row.get(0)?,
            unix_ms: row.get(1)?,
            source: row.get(2)?,
            leg: row.get(3)?,
            name: row.get(4)?,
            attributes: serde_json::from_str(&attributes).unwrap_or_default(),
        })
    })?;
    rows.collect()
}

pub(super) fn apply_retention(connection: &Connection, retention: Retention, now_ms: i64) -> rusqlite::Result<()> {
    let oldest = now_ms - retention.max_age.as_millis() as i64;
    connection.execute(
        "DELETE FROM calls WHERE started_ms < ?1 OR call_id IN
           (SELECT call_id FROM calls ORDER BY started_ms DESC LIMIT -1 OFFSET ?2)",
        params![oldest, retention.max_calls as i64],
    )?;
    connection.execute("DELETE FROM markers WHERE call_id NOT IN (SELECT call_id FROM calls)", [])?;
    connection.execute("DELETE FROM call_refs WHERE call_id NOT IN (SELECT call_id FROM calls)", [])?;
    Ok(())
}

/// Runs retention now (tests).
#[cfg(test)]
pub(super) fn retention_now(connection: &Connection, retention: Retention, now_ms: i64) -> rusqlite::Result<()> {
    apply_retention(connection, retention, now_ms)
}

/// Finds a call row by its id (tests).
#[cfg(test)]
pub(super) fn exists(connection: &Connection, call_id: i64) -> rusqlite::Result<bool> {
    use rusqlite::OptionalExtension;
    Ok(connection
        .query_row("SELECT call_id FROM calls WHERE call_id = ?1", params![call_id], |row| row.get::<_, i64>(0))
        .optional()?
        .is_some())
}
