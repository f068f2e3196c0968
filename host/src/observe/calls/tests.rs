//! The call store against a real SQLite file.

use std::time::Duration;

use super::*;

use crate::observe::marker::{Marker, MarkerSource, test_marker as marker};

fn report(id: u64, leg: &str, name: &str, attributes: &[(&str, &str)], at: u64) -> Marker {
    let mut marker = marker(id, name, attributes, at);
    marker.source = MarkerSource::Guest;
    marker.leg = leg.to_owned();
    marker
}

fn sqlite_connection(store: &CallStore) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
    match &*store.reader {
        Reader::Sqlite { connection, .. } => connection.lock().expect("reader"),
        Reader::Postgres(_) => panic!("an SQLite store"),
    }
}

fn record_call(store: &CallStore, id: u64, started: u64, failing: bool) {
    store.record(&marker(id, "call.accepted", &[("path", "/twilio/media"), ("component", "voice")], started));
    store.record(&marker(id, "instance.started", &[("version", "2")], started + 1));
    store.record(&report(id, "guest", "call.identified", &[("kind", "call_sid"), ("value", &format!("CA{id}"))], started + 2));
    store.record(&report(id, "guest", "call.identified", &[("kind", "stream_sid"), ("value", &format!("MZ{id}"))], started + 2));
    if failing {
        let detail = "Deepgram rejected the connection: HTTP 401 Invalid credentials.";
        store.record(&report(id, "deepgram", "leg.fault", &[("impact", "failed"), ("cause", "rejected"), ("detail", detail)], started + 3));
    }
    store.record(&marker(id, "call.closed", &[("code", "1000")], started + 5));
    // A late marker must not reopen the call.
    store.record(&marker(id, "outbound.closed", &[("code", "1000")], started + 6));
}

#[test]
fn calls_are_stored_classified_and_found_by_id_or_sid() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = CallStore::open(&dir.path().join("calls.db"), Retention::default(), "test").expect("store opens");
    record_call(&store, 1, 1_000, false);
    record_call(&store, 2, 2_000, true);
    assert!(store.flush(Duration::from_secs(10)), "writer flushed");

    let all = store.list(&CallFilter::default()).expect("list");
    assert_eq!(all.iter().map(|c| c.call_id.as_str()).collect::<Vec<_>>(), ["call-2", "call-1"]);
    let failed = store.list(&CallFilter { outcome: Some("failed".into()), ..CallFilter::default() }).expect("list");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].failing_leg.as_deref(), Some("deepgram"));
    assert!(failed[0].cause.as_deref().unwrap_or_default().contains("401"));
    assert_eq!(failed[0].version.as_deref(), Some("2"));
    assert_eq!(failed[0].duration_ms, Some(5));

    let by_sid = store.find("CA1").expect("find").expect("call by sid");
    assert_eq!((by_sid.call_id.as_str(), by_sid.outcome.as_str()), ("call-1", "ok"));
    assert_eq!(store.find("MZ2").expect("find").map(|c| c.call_id), Some("call-2".to_owned()));
    let found = store.find("call-2").expect("find").expect("call by id");
    assert_eq!((found.reference("call_sid"), found.reference("stream_sid")), (Some("CA2"), Some("MZ2")));
    let timeline = store.timeline(&found).expect("timeline");
    assert_eq!(found.replica.as_deref(), Some("test"), "the replica that took it");
    assert_eq!(timeline.len(), 7);
    assert_eq!(timeline[4].leg, "deepgram");
    assert_eq!(timeline[6].name, "outbound.closed");
    assert_eq!(timeline[1].attributes[0].1, crate::observe::marker::Value::Integer(2), "numbers stay numbers");
}

#[test]
fn the_store_survives_a_restart_and_applies_retention() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("calls.db");
    {
        let store = CallStore::open(&path, Retention::default(), "test").expect("store opens");
        record_call(&store, 1, 1_000, false);
        store.record(&marker(2, "call.accepted", &[], 2_000)); // still live when the host stops
        assert!(store.flush(Duration::from_secs(10)));
    }
    let store = CallStore::open(&path, Retention::default(), "test").expect("store reopens");
    let calls = store.list(&CallFilter::default()).expect("list");
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].outcome, "interrupted", "a call cut off by the restart is not shown live");
    assert_eq!(calls[1].outcome, "ok");

    let connection = sqlite_connection(&store);
    sqlite::retention_now(&connection, Retention { max_age: Duration::from_secs(3600), max_calls: 1 }, 3_000).expect("retention");
    let kept: i64 = connection.query_row("SELECT COUNT(*) FROM calls", [], |r| r.get(0)).expect("count");
    let orphans: i64 = connection.query_row("SELECT COUNT(*) FROM markers WHERE call_id = 1", [], |r| r.get(0)).expect("count");
    assert_eq!((kept, orphans), (1, 0), "the oldest call and its markers went");
    sqlite::retention_now(&connection, Retention { max_age: Duration::from_millis(500), max_calls: 10 }, 3_000).expect("retention");
    let kept: i64 = connection.query_row("SELECT COUNT(*) FROM calls", [], |r| r.get(0)).expect("count");
    assert_eq!(kept, 0, "calls older than the age limit went");
}

#[test]
fn a_version_1_database_is_migrated_and_its_calls_found_by_sid() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("calls.db");
    {
        let old = rusqlite::Connection::open(&path).expect("open");
        old.execute_batch(
            "CREATE TABLE calls (call_id INTEGER PRIMARY KEY, started_ms INTEGER NOT NULL, ended_ms INTEGER, path TEXT, component TEXT,
               version TEXT, call_sid TEXT, stream_sid TEXT, close_code INTEGER, outcome TEXT NOT NULL DEFAULT 'live', failing_leg TEXT, cause TEXT);
             CREATE TABLE markers (call_id INTEGER NOT NULL, seq INTEGER NOT NULL, unix_ms INTEGER NOT NULL, offset_ms REAL NOT NULL,
               source TEXT NOT NULL, leg TEXT NOT NULL, name TEXT NOT NULL, attributes TEXT NOT NULL, PRIMARY KEY (call_id, seq));
             CREATE TABLE meta (flushes INTEGER NOT NULL);
             INSERT INTO calls VALUES (7, 1000, 2000, '/twilio/media', 'voice', '1', 'CAOLD', 'MZOLD', 1000, 'failed', 'deepgram', 'HTTP 401');
             INSERT INTO markers VALUES (7, 1, 1000, 0.0, 'host', 'host', 'call.closed', '[[\"code\",\"1000\"]]');",
        )
        .expect("a version 1 database");
    }
    let store = CallStore::open(&path, Retention::default(), "test").expect("opens and migrates");
    let call = store.find("CAOLD").expect("find").expect("found by its old call SID");
    assert_eq!(
        (call.call_id.as_str(), call.reference("stream_sid"), call.failing_leg.as_deref()),
        ("call-7", Some("MZOLD"), Some("deepgram"))
    );
    assert_eq!(call.references[0].kind, "call_sid", "the call SID first");
    let timeline = store.timeline(&call).expect("timeline");
    assert_eq!(timeline[0].attributes[0].1, crate::observe::marker::Value::Text("1000".to_owned()), "old text values read as they were");
    record_call(&store, 8, 3_000, false);
    assert!(store.flush(Duration::from_secs(10)));
    assert!(store.find("CA8").expect("find").is_some(), "and new calls are written");
    let connection = sqlite_connection(&store);
    assert!(sqlite::exists(&connection, 8).expect("query"));
}

fn postgres_store(server: &switchboard_harness::TestPostgres, replica: &str) -> CallStore {
    let tls = crate::net::tls::client_config(&[]).expect("tls");
    let database = postgres::Database::new(&server.url(), tls).expect("a connection string");
    CallStore::connect(database, Retention::default(), replica).expect("store")
}

/// Two replicas' stores on one real PostgreSQL server: each sees both replicas' calls,
/// with the replica that took each, even when both gave a call the same id.
#[test]
fn replicas_share_a_postgres_store() {
    let server = switchboard_harness::TestPostgres::start().expect("PostgreSQL starts");
    let (a, b) = (postgres_store(&server, "replica-a"), postgres_store(&server, "replica-b"));
    record_call(&a, 1, 1_000, false);
    record_call(&b, 1, 2_000, true);
    record_call(&b, 3, 3_000, false);
    assert!(a.flush(Duration::from_secs(20)) && b.flush(Duration::from_secs(20)), "both writers committed");

    for store in [&a, &b] {
        let calls = store.list(&CallFilter::default()).expect("list");
        let seen: Vec<(&str, Option<&str>, &str)> =
            calls.iter().map(|c| (c.call_id.as_str(), c.replica.as_deref(), c.outcome.as_str())).collect();
        assert_eq!(
            seen,
            [("call-3", Some("replica-b"), "ok"), ("call-1", Some("replica-b"), "failed"), ("call-1", Some("replica-a"), "ok")]
        );
    }
    let failed = a.find("CA1").expect("find").expect("by sid");
    assert_eq!(failed.replica.as_deref(), Some("replica-b"), "the newest call with that SID");
    assert_eq!(failed.failing_leg.as_deref(), Some("deepgram"));
    let timeline = a.timeline(&failed).expect("timeline");
    assert_eq!(timeline.len(), 7, "the markers of replica-b's call-1 only");
    assert_eq!(timeline[4].leg, "deepgram");
    let filtered = b.list(&CallFilter { outcome: Some("failed".into()), ..CallFilter::default() }).expect("list");
    assert_eq!(filtered.len(), 1);
}

/// The database stops: recording goes on without blocking, queries say the store is
/// unavailable, and what was recorded meanwhile is written once it is back.
#[test]
fn markers_wait_for_postgres_to_come_back() {
    let mut server = switchboard_harness::TestPostgres::start().expect("PostgreSQL starts");
    let store = postgres_store(&server, "replica-a");
    store.record(&marker(1, "call.accepted", &[("path", "/twilio/media")], 1_000));
    assert!(store.flush(Duration::from_secs(20)));
    server.stop().expect("PostgreSQL stops");

    store.record(&marker(1, "instance.started", &[("version", "1")], 1_001));
    store.record(&marker(1, "call.closed", &[("code", "1000")], 1_500));
    store.record(&marker(2, "call.accepted", &[], 1_600));
    assert!(!store.flush(Duration::from_secs(2)), "nothing can be committed while the database is down");
    assert_eq!(store.pending(), 3, "the markers wait in the writer's buffer");
    assert!(store.unavailable());
    assert!(matches!(store.list(&CallFilter::default()), Err(StoreError::Unavailable(_))), "queries say so");

    server.resume().expect("PostgreSQL starts again");
    assert!(store.flush(Duration::from_secs(20)), "the buffer is written once the database is back");
    assert_eq!((store.pending(), store.dropped(), store.unavailable()), (0, 0, false));
    let calls = store.list(&CallFilter::default()).expect("list");
    let seen: Vec<(&str, &str)> = calls.iter().map(|c| (c.call_id.as_str(), c.outcome.as_str())).collect();
    assert_eq!(seen, [("call-2", "live"), ("call-1", "ok")]);
    assert_eq!(store.timeline(&calls[1]).expect("timeline").len(), 3, "no marker lost");
    assert_eq!(calls[1].duration_ms, Some(500));
}
