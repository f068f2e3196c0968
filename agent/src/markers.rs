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

#[cfg(test)]
mod tests {
    use super::*;

    const README: &str = include_str!("../../README.md");

    /// The rows of the README's table under `heading`: the backticked names of each row's
    /// first cell, with the backticked words of the second.
    fn readme_table(heading: &str) -> Vec<(String, Vec<String>)> {
        let start = README.find(heading).unwrap_or_else(|| panic!("README has no {heading:?}"));
        let table = README[start..].lines().skip(1).skip_while(|line| !line.starts_with('|')).take_while(|line| line.starts_with('|'));
        let backticked = |cell: &str| cell.split('`').skip(1).step_by(2).map(str::to_owned).collect::<Vec<_>>();
        table
            .skip(2)
            .flat_map(|row| {
                let cells: Vec<&str> = row.split('|').collect();
                let keys = backticked(cells.get(2).copied().unwrap_or_default());
                backticked(cells.get(1).copied().unwrap_or_default()).into_iter().map(move |name| (name, keys.clone()))
            })
            .collect()
    }

    #[test]
    fn the_readme_lists_exactly_the_markers_the_agent_records() {
        let documented = readme_table("### Voice agent markers");
        let listed: Vec<(String, Vec<String>)> =
            MARKERS.iter().map(|doc| (doc.name.to_owned(), doc.attributes.iter().map(|key| (*key).to_owned()).collect())).collect();
        assert_eq!(documented, listed, "README's voice agent markers differ from agent/src/markers.rs");
    }

    /// A settings lookup, as `from_lookup` takes it.
    type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

    #[test]
    fn the_readme_lists_every_agent_setting_and_only_those() {
        let read = |from: &dyn Fn(Lookup<'_>)| {
            let keys = std::cell::RefCell::new(std::collections::BTreeSet::new());
            from(&|key: &str| {
                keys.borrow_mut().insert(key.to_owned());
                None
            });
            keys.into_inner()
        };
        let agent = read(&|lookup| {
            let _ = crate::settings::AgentSettings::from_lookup(lookup);
        });
        let listen = read(&|lookup| {
            let _ = switchboard_voice::settings::Settings::from_lookup(lookup);
        });
        let own: std::collections::BTreeSet<String> = agent.difference(&listen).cloned().collect();
        let documented: std::collections::BTreeSet<String> =
            readme_table("Voice agent settings (").into_iter().map(|(name, _)| name).collect();
        assert_eq!(documented, own, "README's voice agent settings differ from what the agent reads");
    }
}
