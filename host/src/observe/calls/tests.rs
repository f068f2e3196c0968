//! The call store against a real SQLite file.

use std::time::Duration;

use super::*;

use crate::observe::timeline::test_marker as marker;

fn record_call(store: &CallStore, id: u64, started: u64, failing: bool) {
    store.record(&marker(id, "call.accepted", &[("path", "/twilio/media"), ("component", "voice")], started));
    store.record(&marker(id, "instance.started", &[("version", "2")], started + 1));
    store.record(&marker(id, "twilio.start", &[("call_sid", &format!("CA{id}")), ("stream_sid", &format!("MZ{id}"))], started + 2));
    if failing {
        store.record(&marker(id, "deepgram.rejected", &[("status", "401"), ("detail", "Invalid credentials.")], started + 3));
    }
    store.record(&marker(id, "twilio.stop", &[], started + 4));
    store.record(&marker(id, "call.closed", &[("code", "1000")], started + 5));
    // A late marker must not reopen the call.
    store.record(&marker(id, "outbound.closed", &[("code", "1000")], started + 6));
}

#[test]
fn calls_are_stored_classified_and_found_by_id_or_sid() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = CallStore::open(&dir.path().join("calls.db"), Retention::default()).expect("store opens");
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
    assert_eq!(store.find("call-2").expect("find").and_then(|c| c.call_sid), Some("CA2".to_owned()));
    let timeline = store.timeline("call-2").expect("timeline");
    assert_eq!(timeline.len(), 7);
    assert_eq!(timeline[3].leg, "deepgram");
    assert_eq!(timeline[6].name, "outbound.closed");
}

#[test]
fn the_store_survives_a_restart_and_applies_retention() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("calls.db");
    {
        let store = CallStore::open(&path, Retention::default()).expect("store opens");
        record_call(&store, 1, 1_000, false);
        store.record(&marker(2, "call.accepted", &[], 2_000)); // still live when the host stops
        assert!(store.flush(Duration::from_secs(10)));
    }
    let store = CallStore::open(&path, Retention::default()).expect("store reopens");
    let calls = store.list(&CallFilter::default()).expect("list");
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].outcome, "interrupted", "a call cut off by the restart is not shown live");
    assert_eq!(calls[1].outcome, "ok");

    let connection = store.reader.lock().expect("reader");
    schema::retention_now(&connection, Retention { max_age: Duration::from_secs(3600), max_calls: 1 }, 3_000).expect("retention");
    let kept: i64 = connection.query_row("SELECT COUNT(*) FROM calls", [], |r| r.get(0)).expect("count");
    let orphans: i64 = connection.query_row("SELECT COUNT(*) FROM markers WHERE call_id = 1", [], |r| r.get(0)).expect("count");
    assert_eq!((kept, orphans), (1, 0), "the oldest call and its markers went");
    schema::retention_now(&connection, Retention { max_age: Duration::from_millis(500), max_calls: 10 }, 3_000).expect("retention");
    let kept: i64 = connection.query_row("SELECT COUNT(*) FROM calls", [], |r| r.get(0)).expect("count");
    assert_eq!(kept, 0, "calls older than the age limit went");
}
