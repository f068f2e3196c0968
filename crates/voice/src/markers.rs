//! Every marker the voice pipeline records, with its attribute keys: the list the README's
//! "Voice pipeline markers" table must match (a test compares them), and that every
//! marker the pipeline records is checked against in debug builds.

/// One documented marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkerDoc {
    /// The marker's name.
    pub name: &'static str,
    /// Its attribute keys (a key may repeat, e.g. `parameter`).
    pub attributes: &'static [&'static str],
}

const fn doc(name: &'static str, attributes: &'static [&'static str]) -> MarkerDoc {
    MarkerDoc { name, attributes }
}

/// Every marker of the voice pipeline, in the README's order.
pub const MARKERS: &[MarkerDoc] = &[
    doc("pipeline.started", &["connection_id"]),
    doc("pipeline.bad-setting", &["error"]),
    doc("twilio.connected", &["protocol"]),
    doc("twilio.start", &["call_sid", "stream_sid", "encoding", "sample_rate", "channels", "parameter"]),
    doc("twilio.unexpected-format", &["encoding"]),
    doc("twilio.first-media", &["bytes"]),
    doc("twilio.dtmf", &["digit"]),
    doc("twilio.mark", &["name"]),
    doc("twilio.stop", &["media_messages"]),
    doc("twilio.closed", &["code", "reason"]),
    doc("twilio.malformed", &["error", "message"]),
    doc("twilio.unknown-event", &["error", "message"]),
    doc("twilio.bad-payload", &["error", "message"]),
    doc("twilio.unexpected-binary", &["bytes"]),
    doc("audio.overflow", &["bytes", "buffer_ms"]),
    doc("deepgram.connecting", &["attempt"]),
    doc("deepgram.open", &["connect_ms", "session"]),
    doc("deepgram.replay", &["replay_bytes", "lost_bytes", "from_ms"]),
    doc("deepgram.connect-failed", &["cause", "detail"]),
    doc("deepgram.rejected", &["status", "dg_error", "body"]),
    doc("deepgram.first-result", &["ms_since_first_audio"]),
    doc("deepgram.speech-started", &["at"]),
    doc("deepgram.utterance-end", &["last_word_end"]),
    doc("deepgram.turn", &["event", "turn_index"]),
    doc("deepgram.metadata", &["request_id"]),
    doc("deepgram.other", &["type"]),
    doc("deepgram.malformed", &["error", "message"]),
    doc("transcript.final", &["text", "start", "end", "confidence", "call_sid", "from_finalize"]),
    doc("utterance", &["text", "start", "end", "confidence", "call_sid"]),
    doc("deepgram.closed", &["code", "reason"]),
    doc("deepgram.reconnect", &["attempt", "delay_ms", "unconfirmed_bytes"]),
    doc("deepgram.gave-up", &["why", "unsent_bytes"]),
    doc("deepgram.close-stream", &["audio_bytes"]),
    doc("deepgram.final-timeout", &["waited_ms"]),
    doc("pipeline.summary", &["audio_bytes", "media_messages", "replayed_bytes", "lost_bytes", "reconnects", "transcripts", "clean"]),
];

/// Whether `name` with these attribute keys is a documented marker.
pub fn is_documented<'a>(name: &str, mut keys: impl Iterator<Item = &'a str>) -> bool {
    MARKERS.iter().find(|doc| doc.name == name).is_some_and(|doc| keys.all(|key| doc.attributes.contains(&key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rows of the README's table under `heading`: (marker, attribute keys).
    fn readme_table(heading: &str) -> Vec<(String, Vec<String>)> {
        let readme = include_str!("../../../README.md");
        let start = readme.find(heading).unwrap_or_else(|| panic!("README has no {heading:?}"));
        let table = readme[start..].lines().skip(1).skip_while(|line| !line.starts_with('|')).take_while(|line| line.starts_with('|'));
        let backticked = |cell: &str| cell.split('`').skip(1).step_by(2).map(str::to_owned).collect::<Vec<_>>();
        table
            .skip(2)
            .filter_map(|row| {
                let cells: Vec<&str> = row.split('|').collect();
                let names = backticked(cells.get(1)?);
                let keys = backticked(cells.get(2)?);
                Some(names.into_iter().map(move |name| (name, keys.clone())))
            })
            .flatten()
            .collect()
    }

    #[test]
    fn the_readme_lists_exactly_the_markers_the_pipeline_records() {
        let documented = readme_table("### Voice pipeline markers");
        let listed: Vec<(String, Vec<String>)> =
            MARKERS.iter().map(|doc| (doc.name.to_owned(), doc.attributes.iter().map(|key| (*key).to_owned()).collect())).collect();
        for marker in &listed {
            assert!(documented.contains(marker), "the README does not list {marker:?} as the code records it:\n{documented:#?}");
        }
        for marker in &documented {
            assert!(listed.contains(marker), "the README lists {marker:?}, which the pipeline does not record");
        }
    }
}
