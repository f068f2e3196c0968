//! Every marker the voice agent records itself, with its attribute keys (listening
//! records the voice pipeline's markers besides these). Every marker the agent records is
//! checked against this list in debug builds.

pub use switchboard_voice::markers::MarkerDoc;

const fn doc(name: &'static str, attributes: &'static [&'static str]) -> MarkerDoc {
    MarkerDoc { name, attributes }
}

/// Every marker of the agent, in the order of a call.
pub const MARKERS: &[MarkerDoc] = &[
    doc("agent.started", &["barge_in", "llm_model"]),
    doc("agent.bad-setting", &["error"]),
    doc("agent.turn", &["turn", "kind", "text"]),
    doc("llm.request", &["turn", "messages", "to_final_ms"]),
    doc("llm.response", &["turn", "status"]),
    doc("llm.first-token", &["turn", "ms"]),
    doc("llm.tool-call", &["turn", "name", "known"]),
    doc("llm.complete", &["turn", "tokens"]),
    doc("llm.malformed", &["turn", "error"]),
    doc("llm.failed", &["turn", "cause", "detail"]),
    doc("speak.connecting", &["attempt"]),
    doc("speak.open", &["connect_ms"]),
    doc("speak.first-audio", &["turn", "ms"]),
    doc("speak.warning", &["code", "description"]),
    doc("speak.metadata", &["request_id"]),
    doc("speak.malformed", &["error"]),
    doc("speak.stalled", &["waited_ms"]),
    doc("speak.closed", &["code", "reason"]),
    doc("speak.reconnect", &["attempt", "delay_ms"]),
    doc("speak.gave-up", &["why"]),
    doc("agent.first-media", &["turn", "ms"]),
    doc("agent.heard", &["turn", "segment", "ms"]),
    doc("agent.echo-missing", &["turn"]),
    doc("agent.barge-in", &["turn", "trigger", "heard_segments", "unheard_segments", "dropped_bytes", "reaction_ms"]),
    doc("agent.dtmf", &["digits"]),
    doc(
        "agent.turn-summary",
        &[
            "turn",
            "kind",
            "to_final_ms",
            "to_first_token_ms",
            "to_first_audio_ms",
            "to_first_media_ms",
            "to_first_echo_ms",
            "segments",
            "heard_segments",
            "tokens",
            "interrupted",
            "heard",
        ],
    ),
    doc("agent.hangup-phrase", &[]),
    doc("agent.hangup", &["rest"]),
    doc("twilio-rest.response", &["status"]),
    doc("agent.caller-left", &["turn"]),
    doc("agent.summary", &["turns", "barge_ins", "llm_failures", "speak_reconnects", "media_frames", "dropped_audio_bytes"]),
];

/// Whether `name` with these attribute keys is a documented marker.
pub fn is_documented<'a>(name: &str, mut keys: impl Iterator<Item = &'a str>) -> bool {
    MARKERS.iter().find(|doc| doc.name == name).is_some_and(|doc| keys.all(|key| doc.attributes.contains(&key)))
}
