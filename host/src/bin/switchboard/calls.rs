//! `switchboard calls`: a line per call, or one call's timeline as a table with the cause
//! of a failure stated first, from a running host's operator listener or a call store on
//! disk (`--db`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use switchboard::http::client::CallQuery;
use switchboard::observe::calls::{CallFilter, CallStore, CallSummary, StoredMarker};

use crate::args::{CallsAction, OperatorArgs};

pub(crate) async fn run(
    operator: &OperatorArgs,
    db: Option<PathBuf>,
    outcome: Option<String>,
    leg: Option<String>,
    limit: u32,
    action: Option<CallsAction>,
) -> anyhow::Result<()> {
    let lines = match db {
        Some(path) => from_db(&path, outcome, leg, limit, action)?,
        None => {
            let client = operator.client(&operator.token_env)?;
            match action {
                None => list(&client.calls(&CallQuery { outcome, leg, limit: Some(limit) }).await?),
                Some(CallsAction::Show { key }) => match client.call(&key).await? {
                    Some(detail) => show(&detail.call, &detail.timeline),
                    None => vec![no_such_call(&key)],
                },
            }
        }
    };
    #[allow(clippy::print_stdout, reason = "the command's report")]
    for line in lines {
        println!("{line}");
    }
    Ok(())
}

fn seconds(ms: Option<i64>) -> String {
    ms.map_or("-".to_owned(), |ms| format!("{:.1}s", ms as f64 / 1e3))
}

fn when(ms: i64) -> String {
    let secs = ms / 1000;
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    format!("{h:02}:{m:02}:{s:02}Z")
}

fn line(call: &CallSummary) -> String {
    format!(
        "{:<24} {:<36} {:>9} {:>7}  {:<11} {:<9} {:<16} {}",
        call.call_id,
        call.references.first().map_or("-", |r| r.value.as_str()),
        when(call.started_ms),
        seconds(call.duration_ms),
        call.outcome,
        call.failing_leg.as_deref().unwrap_or("-"),
        call.replica.as_deref().unwrap_or("-"),
        call.cause.as_deref().unwrap_or(""),
    )
}

/// Recent calls, newest first: a header and a line each.
fn list(calls: &[CallSummary]) -> Vec<String> {
    let mut lines = vec![format!(
        "{:<24} {:<36} {:>9} {:>7}  {:<11} {:<9} {:<16} {}",
        "CALL", "REFERENCE", "STARTED", "LENGTH", "OUTCOME", "LEG", "REPLICA", "CAUSE"
    )];
    lines.extend(calls.iter().map(line));
    if calls.is_empty() {
        lines.push("(no calls)".to_owned());
    }
    lines
}

/// One call: the cause of a failure first, then its whole timeline.
fn show(call: &CallSummary, timeline: &[StoredMarker]) -> Vec<String> {
    let mut lines = Vec::new();
    match (&call.failing_leg, &call.cause) {
        (Some(leg), Some(cause)) => lines.push(format!("{} on the {leg} leg: {cause}", call.outcome.to_uppercase())),
        _ => lines.push(format!("{}: no failure recorded", call.outcome.to_uppercase())),
    }
    let references: Vec<String> = call.references.iter().map(|r| format!("{} {}", r.kind, r.value)).collect();
    lines.push(format!(
        "{}  {}  component {} v{}  closed {}  lasted {}",
        call.call_id,
        if references.is_empty() { "no references".to_owned() } else { references.join("  ") },
        call.component.as_deref().unwrap_or("-"),
        call.version.as_deref().unwrap_or("-"),
        call.close_code.map_or("-".to_owned(), |c| c.to_string()),
        seconds(call.duration_ms),
    ));
    lines.push(String::new());
    lines.push(format!("{:>10}  {:<8} {:<6} {:<26} {}", "OFFSET", "LEG", "BY", "MARKER", "ATTRIBUTES"));
    for marker in timeline {
        let attributes: Vec<String> = marker.attributes.iter().map(|(k, v)| format!("{k}={v}")).collect();
        lines.push(format!(
            "{:>8.1}ms  {:<8} {:<6} {:<26} {}",
            marker.offset_ms,
            marker.leg,
            marker.source,
            marker.name,
            attributes.join(" ")
        ));
    }
    lines
}

fn no_such_call(key: &str) -> String {
    format!("no call matches {key:?} (a call id or a reference such as a Twilio call SID)")
}

fn from_db(
    path: &Path,
    outcome: Option<String>,
    leg: Option<String>,
    limit: u32,
    action: Option<CallsAction>,
) -> anyhow::Result<Vec<String>> {
    let store = CallStore::open_read_only(path).with_context(|| format!("opening {}", path.display()))?;
    Ok(match action {
        None => list(&store.list(&CallFilter { outcome, leg, limit: Some(limit), ..Default::default() })?),
        Some(CallsAction::Show { key }) => match store.find(&key)? {
            Some(call) => {
                let timeline = store.timeline(&call)?;
                show(&call, &timeline)
            }
            None => vec![no_such_call(&key)],
        },
    })
}
