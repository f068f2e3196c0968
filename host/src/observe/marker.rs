//! What a timeline is made of: markers, their typed values, and the host's own vocabulary
//! of marker names (the only names the host ever matches on).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Identifies one call (one inbound connection) within a host process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "call-{}", self.0)
    }
}

/// Who recorded a marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerSource {
    /// The host runtime.
    Host,
    /// The guest component, through the `markers` and `legs` imports.
    Guest,
}

impl fmt::Display for MarkerSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MarkerSource::Host => "host",
            MarkerSource::Guest => "guest",
        })
    }
}

/// A marker attribute's value: a number is a number. Serialized as the JSON value itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// Yes or no.
    Flag(bool),
    /// A whole number.
    Integer(i64),
    /// A number with a fraction.
    Number(f64),
    /// Text.
    Text(String),
}

impl Value {
    /// The text, for a text value.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(text) => Some(text),
            _ => None,
        }
    }

    /// The number, for an integer or a number.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Value::Integer(n) => Some(*n as f64),
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Flag(flag) => write!(f, "{flag}"),
            Value::Integer(n) => write!(f, "{n}"),
            Value::Number(n) => write!(f, "{n}"),
            Value::Text(text) => f.write_str(text),
        }
    }
}

impl From<String> for Value {
    fn from(text: String) -> Self {
        Value::Text(text)
    }
}

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Value::Text(text.to_owned())
    }
}

impl From<bool> for Value {
    fn from(flag: bool) -> Self {
        Value::Flag(flag)
    }
}

impl From<f64> for Value {
    fn from(n: f64) -> Self {
        Value::Number(n)
    }
}

macro_rules! integer_values {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(n: $t) -> Self {
                Value::Integer(i64::try_from(n).unwrap_or(i64::MAX))
            }
        }
    )*};
}
integer_values!(u16, u32, u64, usize, i64);

impl From<Duration> for Value {
    /// Milliseconds, with their fraction.
    fn from(duration: Duration) -> Self {
        Value::Number(duration.as_secs_f64() * 1e3)
    }
}

/// One event on a call's timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    /// The call.
    pub call: CallId,
    /// Time since the call was accepted.
    pub offset: Duration,
    /// Wall-clock time, milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// Who recorded it.
    pub source: MarkerSource,
    /// The lane it is drawn on: a leg's name, or `host` / `guest`.
    pub leg: String,
    /// What happened, e.g. `outbound.open`.
    pub name: String,
    /// Details, e.g. `handshake_ms`.
    pub attributes: Vec<(String, Value)>,
}

impl Marker {
    /// The value of attribute `key`, if present.
    pub fn value(&self, key: &str) -> Option<&Value> {
        self.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The text of attribute `key`, if it is text.
    pub fn text(&self, key: &str) -> Option<&str> {
        self.value(key).and_then(Value::as_text)
    }

    /// The number of attribute `key`, if it is a number.
    pub fn number(&self, key: &str) -> Option<f64> {
        self.value(key).and_then(Value::as_number)
    }

    /// Attribute `key` as text, whatever its type (for display).
    pub fn shown(&self, key: &str) -> Option<String> {
        self.value(key).map(Value::to_string)
    }
}

/// Every marker the host records itself, with its attribute keys: the README's "Host
/// markers" table must list exactly these (a test compares them), and every host marker is
/// checked against this list in debug builds.
pub const HOST_MARKERS: &[(&str, &[&str])] = &[
    ("call.accepted", &["remote", "path", "component"]),
    ("call.rejected", &["remote", "path", "status", "reason"]),
    ("instance.started", &["component", "version", "digest", "instantiate_us"]),
    ("instance.failed", &["error"]),
    ("outbound.attempt", &["target", "path", "attempt"]),
    ("outbound.open", &["target", "peer", "handshake_ms", "protocol"]),
    ("outbound.failed", &["target", "cause", "detail", "status", "header", "body"]),
    ("outbound.denied", &["target", "cause", "detail"]),
    ("outbound.closed", &["target", "code", "reason", "by"]),
    ("http.response", &["target", "method", "path", "status", "first_byte_ms", "reused"]),
    ("http.complete", &["target", "status", "total_ms", "bytes_received", "bytes_sent", "end"]),
    ("http.failed", &["target", "method", "path", "status", "cause", "detail"]),
    ("http.denied", &["target", "method", "path", "cause", "detail"]),
    ("http.unmarked", &["limit"]),
    ("call.deadline", &["deadline", "limit_ms", "reason"]),
    ("call.draining", &["code"]),
    ("guest.returned", &["cpu_ms", "memory_kib"]),
    ("guest.trap", &["cause", "detail"]),
    ("guest.stopped", &["grace_ms"]),
    ("guest.output", &["logged_bytes", "dropped_bytes"]),
    ("markers.dropped", &["limit"]),
    ("markers.refused", &["name", "reason"]),
    ("call.closed", &["code", "reason", "by"]),
];

/// The markers the host records for a guest's typed reports (`legs` and `markers`
/// functions other than `emit`), with their attribute keys: listed in the README beside the
/// host's, and like them the host's own vocabulary.
pub const REPORT_MARKERS: &[(&str, &[&str])] = &[
    ("leg.inbound", &["leg"]),
    ("leg.declared", &["leg"]),
    ("leg.fault", &["impact", "cause", "detail"]),
    ("leg.complete", &[]),
    ("call.identified", &["kind", "value"]),
    ("transcript.entry", &["speaker", "text", "start_ms", "end_ms", "confidence"]),
];

/// Name prefixes (and names) a guest's `emit` may not use: they are the host's.
pub const RESERVED_NAMES: &[&str] = &["call.", "instance.", "guest.", "outbound.", "http.", "markers.", "leg.", "transcript.entry"];

/// Longest marker name kept from a guest, bytes.
pub const MAX_NAME_BYTES: usize = 128;
/// Most attributes kept per guest marker.
pub const MAX_ATTRIBUTES: usize = 32;
/// Longest attribute key or text value kept from a guest, bytes.
pub const MAX_VALUE_BYTES: usize = 1024;
/// Most guest markers kept per call; later ones are counted in `markers.dropped`.
pub const MAX_GUEST_MARKERS: u32 = 10_000;

/// Cuts `text` to at most `max` bytes on a character boundary.
pub fn truncate_utf8(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

/// A host marker for unit tests: call `call`, offset and wall clock `unix_ms` (ms), text
/// attributes (numbers given as text are stored as numbers).
#[cfg(test)]
pub(crate) fn test_marker(call: u64, name: &str, attributes: &[(&str, &str)], unix_ms: u64) -> Marker {
    Marker {
        call: CallId(call),
        offset: Duration::from_millis(unix_ms % 1000),
        unix_ms,
        source: MarkerSource::Host,
        leg: "host".to_owned(),
        name: name.to_owned(),
        attributes: attributes
            .iter()
            .map(|(k, v)| {
                let value = match (v.parse::<i64>(), v.parse::<f64>()) {
                    (Ok(n), _) => Value::Integer(n),
                    (_, Ok(n)) => Value::Number(n),
                    _ => Value::from(*v),
                };
                ((*k).to_owned(), value)
            })
            .collect(),
    }
}
