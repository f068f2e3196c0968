//! The SQL: schema, queries and retention.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{CallFilter, CallSummary, Retention, StoredMarker, parse_call_id};

pub(super) fn create_or_migrate(connection: &Connection) -> rusqlite::Result<()> {
    connection.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.execute_batch(
        "CREATE TABLE IF NOT EXISTS calls (
            call_id INTEGER PRIMARY KEY,
            started_ms INTEGER NOT NULL,
            ended_ms INTEGER,
            path TEXT,
            component TEXT,
            version TEXT,
            call_sid TEXT,
            stream_sid TEXT,
            close_code INTEGER,
            outcome TEXT NOT NULL DEFAULT 'live',
            failing_leg TEXT,
            cause TEXT
        );
        CREATE INDEX IF NOT EXISTS calls_started ON calls (started_ms);
        CREATE INDEX IF NOT EXISTS calls_call_sid ON calls (call_sid);
        CREATE INDEX IF NOT EXISTS calls_stream_sid ON calls (stream_sid);
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
        );
        CREATE TABLE IF NOT EXISTS meta (flushes INTEGER NOT NULL);
        INSERT INTO meta (flushes) SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM meta);",
    )?;
    // A host that stopped mid-call left rows marked live: they are not live any more.
    connection.execute("UPDATE calls SET outcome = 'interrupted' WHERE outcome = 'live'", [])?;
    Ok(())
}

const SUMMARY_COLUMNS: &str =
    "call_id, call_sid, stream_sid, started_ms, ended_ms, outcome, failing_leg, cause, component, version, close_code";

fn summary(row: &Row<'_>, now_ms: i64) -> rusqlite::Result<CallSummary> {
    let started: i64 = row.get(3)?;
    let ended: Option<i64> = row.get(4)?;
    let outcome: String = row.get(5)?;
    let duration = match (ended, outcome.as_str()) {
        (Some(ended), _) => Some(ended - started),
        (None, "live") => Some(now_ms - started),
        (None, _) => None,
    };
    Ok(CallSummary {
        call_id: format!("call-{}", row.get::<_, i64>(0)?),
        call_sid: row.get(1)?,
        stream_sid: row.get(2)?,
        started_ms: started,
        duration_ms: duration,
        outcome,
        failing_leg: row.get(6)?,
        cause: row.get(7)?,
        component: row.get(8)?,
        version: row.get(9)?,
        close_code: row.get(10)?,
    })
}

pub(super) fn list(connection: &Connection, filter: &CallFilter, now_ms: i64) -> rusqlite::Result<Vec<CallSummary>> {
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS} FROM calls
         WHERE (?1 IS NULL OR outcome = ?1) AND (?2 IS NULL OR failing_leg = ?2)
           AND (?3 IS NULL OR started_ms >= ?3) AND (?4 IS NULL OR started_ms < ?4)
         ORDER BY started_ms DESC, call_id DESC LIMIT ?5"
    );
    let mut statement = connection.prepare_cached(&sql)?;
    let rows = statement.query_map(
        params![filter.outcome, filter.leg, filter.since_ms, filter.until_ms, filter.limit.unwrap_or(100).min(10_000)],
        |row| summary(row, now_ms),
    )?;
    rows.collect()
}

pub(super) fn find(connection: &Connection, key: &str, now_ms: i64) -> rusqlite::Result<Option<CallSummary>> {
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS} FROM calls WHERE call_id = ?1 OR call_sid = ?2 OR stream_sid = ?2 ORDER BY started_ms DESC LIMIT 1"
    );
    connection.query_row(&sql, params![parse_call_id(key).unwrap_or(-1), key], |row| summary(row, now_ms)).optional()
}

pub(super) fn timeline(connection: &Connection, call_id: &str) -> rusqlite::Result<Vec<StoredMarker>> {
    let mut statement = connection
        .prepare_cached("SELECT offset_ms, unix_ms, source, leg, name, attributes FROM markers WHERE call_id = ?1 ORDER BY seq")?;
    let rows = statement.query_map(params![parse_call_id(call_id).unwrap_or(-1)], |row| {
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

pub(super) fn flushes(connection: &Connection) -> rusqlite::Result<i64> {
    connection.query_row("SELECT flushes FROM meta", [], |row| row.get(0))
}

pub(super) fn apply_retention(connection: &Connection, retention: Retention, now_ms: i64) -> rusqlite::Result<()> {
    let oldest = now_ms - retention.max_age.as_millis() as i64;
    connection.execute(
        "DELETE FROM calls WHERE started_ms < ?1 OR call_id IN
           (SELECT call_id FROM calls ORDER BY started_ms DESC LIMIT -1 OFFSET ?2)",
        params![oldest, retention.max_calls as i64],
    )?;
    connection.execute("DELETE FROM markers WHERE call_id NOT IN (SELECT call_id FROM calls)", [])?;
    Ok(())
}

/// Runs retention now (tests).
#[cfg(test)]
pub(super) fn retention_now(connection: &Connection, retention: Retention, now_ms: i64) -> rusqlite::Result<()> {
    apply_retention(connection, retention, now_ms)
}
