//! Picks the `event` name out of a Twilio Media Streams message.

/// The value of the top-level `"event"` field, if the message has one. Placeholder logic:
/// the voice-pipeline issue replaces it with a full parser.
pub fn event_name(message: &str) -> Option<&str> {
    let start = message.find("\"event\"")? + "\"event\"".len();
    let rest = message[start..].trim_start().strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    let end = rest.find('"')?;
    Some(&rest[..end])
}

#[cfg(test)]
mod tests {
    use super::event_name;

    #[test]
    fn finds_event_names() {
        assert_eq!(event_name(r#"{"event":"connected","protocol":"Call"}"#), Some("connected"));
        assert_eq!(event_name(r#"{"sequenceNumber":"1", "event" : "start"}"#), Some("start"));
        assert_eq!(event_name(r#"{"type":"Results"}"#), None);
        assert_eq!(event_name("not json"), None);
    }
}
