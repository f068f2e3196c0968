//! Deepgram live speech-to-text messages: what the server sends, and the client's control
//! messages (always text frames). Flux (`/v2/listen`) sends `Connected` and `TurnInfo`
//! instead of `Results`.

use serde::Deserialize;

/// `{"type":"KeepAlive"}`: keeps an idle stream open (no reply).
pub const KEEP_ALIVE: &str = r#"{"type":"KeepAlive"}"#;
/// `{"type":"Finalize"}`: flushes pending audio into final results.
pub const FINALIZE: &str = r#"{"type":"Finalize"}"#;
/// `{"type":"CloseStream"}`: final results, metadata, then a normal close.
pub const CLOSE_STREAM: &str = r#"{"type":"CloseStream"}"#;

/// A message from Deepgram.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerMessage {
    /// A transcript, interim or final.
    Results(Results),
    /// Stream metadata, sent before close.
    Metadata {
        /// Deepgram's request id.
        request_id: String,
    },
    /// No speech for `utterance_end_ms` after the last word.
    UtteranceEnd {
        /// End time of the last word, seconds.
        last_word_end: f64,
    },
    /// Voice activity began.
    SpeechStarted {
        /// Seconds into the stream.
        timestamp: f64,
    },
    /// Flux: the stream is open.
    Connected {
        /// Deepgram's request id.
        request_id: String,
    },
    /// Flux: the state of the current turn.
    TurnInfo(TurnInfo),
    /// A type this code does not handle (kept for the timeline).
    Other(String),
}

/// What a Flux `TurnInfo` says.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnInfo {
    /// `StartOfTurn`, `Update`, `EagerEndOfTurn`, `TurnResumed` or `EndOfTurn`.
    pub event: String,
    /// Counts turns, from 0; rises after each `EndOfTurn`.
    pub turn_index: u64,
    /// The turn's transcript so far.
    pub transcript: String,
    /// Where the turn's audio starts, seconds since this stream began.
    pub audio_window_start: f64,
    /// How far the audio is transcribed, seconds since this stream began.
    pub audio_window_end: f64,
    /// How sure Flux is the turn has ended.
    pub end_of_turn_confidence: f64,
}

/// A `Results` message's useful part.
#[derive(Debug, Clone, PartialEq)]
pub struct Results {
    /// Start of the audio covered, seconds since this stream began.
    pub start: f64,
    /// Length of the audio covered, seconds.
    pub duration: f64,
    /// Final for this stretch of audio.
    pub is_final: bool,
    /// Deepgram detected the end of an utterance.
    pub speech_final: bool,
    /// Produced by a `Finalize`.
    pub from_finalize: bool,
    /// The best alternative's transcript (may be empty during silence).
    pub transcript: String,
    /// Its confidence.
    pub confidence: f64,
}

#[derive(Deserialize)]
struct Typed {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct RawResults {
    #[serde(default)]
    start: f64,
    #[serde(default)]
    duration: f64,
    #[serde(default)]
    is_final: bool,
    #[serde(default)]
    speech_final: bool,
    #[serde(default)]
    from_finalize: bool,
    channel: RawChannel,
}

#[derive(Deserialize)]
struct RawChannel {
    #[serde(default)]
    alternatives: Vec<RawAlternative>,
}

#[derive(Deserialize)]
struct RawAlternative {
    #[serde(default)]
    transcript: String,
    #[serde(default)]
    confidence: f64,
}

#[derive(Deserialize)]
struct RawMetadata {
    #[serde(default)]
    request_id: String,
}

#[derive(Deserialize)]
struct RawUtteranceEnd {
    #[serde(default)]
    last_word_end: f64,
}

#[derive(Deserialize)]
struct RawTurnInfo {
    #[serde(default)]
    event: String,
    #[serde(default)]
    turn_index: u64,
    #[serde(default)]
    transcript: String,
    #[serde(default)]
    audio_window_start: f64,
    #[serde(default)]
    audio_window_end: f64,
    #[serde(default)]
    end_of_turn_confidence: f64,
}

#[derive(Deserialize)]
struct RawSpeechStarted {
    #[serde(default)]
    timestamp: f64,
}

/// Parses one text message from Deepgram.
pub fn parse(text: &str) -> Result<ServerMessage, String> {
    let typed: Typed = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let parsed = match typed.kind.as_str() {
        "Results" => {
            let raw: RawResults = serde_json::from_str(text).map_err(|e| e.to_string())?;
            let best = raw.channel.alternatives.into_iter().next();
            ServerMessage::Results(Results {
                start: raw.start,
                duration: raw.duration,
                is_final: raw.is_final,
                speech_final: raw.speech_final,
                from_finalize: raw.from_finalize,
                transcript: best.as_ref().map(|a| a.transcript.clone()).unwrap_or_default(),
                confidence: best.map(|a| a.confidence).unwrap_or_default(),
            })
        }
        "Metadata" => {
            let raw: RawMetadata = serde_json::from_str(text).map_err(|e| e.to_string())?;
            ServerMessage::Metadata { request_id: raw.request_id }
        }
        "UtteranceEnd" => {
            let raw: RawUtteranceEnd = serde_json::from_str(text).map_err(|e| e.to_string())?;
            ServerMessage::UtteranceEnd { last_word_end: raw.last_word_end }
        }
        "SpeechStarted" => {
            let raw: RawSpeechStarted = serde_json::from_str(text).map_err(|e| e.to_string())?;
            ServerMessage::SpeechStarted { timestamp: raw.timestamp }
        }
        "Connected" => {
            let raw: RawMetadata = serde_json::from_str(text).map_err(|e| e.to_string())?;
            ServerMessage::Connected { request_id: raw.request_id }
        }
        "TurnInfo" => {
            let raw: RawTurnInfo = serde_json::from_str(text).map_err(|e| e.to_string())?;
            ServerMessage::TurnInfo(TurnInfo {
                event: raw.event,
                turn_index: raw.turn_index,
                transcript: raw.transcript,
                audio_window_start: raw.audio_window_start,
                audio_window_end: raw.audio_window_end,
                end_of_turn_confidence: raw.end_of_turn_confidence,
            })
        }
        other => ServerMessage::Other(other.chars().take(64).collect()),
    };
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documented_messages() {
        let results = parse(
            r#"{"type":"Results","channel_index":[0,1],"duration":3.12,"start":12.08,"is_final":true,"speech_final":false,"from_finalize":false,"channel":{"alternatives":[{"transcript":"This is the","confidence":0.957,"words":[]}]},"metadata":{"request_id":"uuid"}}"#,
        );
        let Ok(ServerMessage::Results(results)) = results else { panic!("{results:?}") };
        assert_eq!((results.start, results.duration, results.is_final), (12.08, 3.12, true));
        assert_eq!(results.transcript, "This is the");
        assert_eq!(
            parse(r#"{"type":"UtteranceEnd","channel":[0,1],"last_word_end":16.58}"#),
            Ok(ServerMessage::UtteranceEnd { last_word_end: 16.58 })
        );
        assert_eq!(
            parse(r#"{"type":"SpeechStarted","channel":[0,1],"timestamp":12.08}"#),
            Ok(ServerMessage::SpeechStarted { timestamp: 12.08 })
        );
        assert_eq!(
            parse(r#"{"type":"Metadata","request_id":"r1","duration":44.26}"#),
            Ok(ServerMessage::Metadata { request_id: "r1".into() })
        );
        assert_eq!(parse(r#"{"type":"Warning"}"#), Ok(ServerMessage::Other("Warning".into())));
        assert_eq!(
            parse(r#"{"type":"Connected","request_id":"r2","sequence_id":0}"#),
            Ok(ServerMessage::Connected { request_id: "r2".into() })
        );
        let turn = parse(
            r#"{"type":"TurnInfo","event":"EndOfTurn","turn_index":2,"audio_window_start":1.5,"audio_window_end":3.25,"transcript":"hello there","words":[{"word":"hello","confidence":0.9}],"end_of_turn_confidence":0.82}"#,
        );
        let Ok(ServerMessage::TurnInfo(turn)) = turn else { panic!("{turn:?}") };
        assert_eq!((turn.event.as_str(), turn.turn_index, turn.transcript.as_str()), ("EndOfTurn", 2, "hello there"));
        assert_eq!((turn.audio_window_start, turn.audio_window_end, turn.end_of_turn_confidence), (1.5, 3.25, 0.82));
        assert!(parse("garbage").is_err());
        assert!(parse(r#"{"type":"Results","channel":7}"#).is_err());
    }
}
