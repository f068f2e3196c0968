//! Deepgram text-to-speech over WebSocket (`/v1/speak`): the client's messages (text
//! frames) and what the server answers besides its binary audio.

use serde::Deserialize;

/// `{"type":"Flush"}`: speak what was sent so far; the server answers `Flushed`.
pub const FLUSH: &str = r#"{"type":"Flush"}"#;
/// `{"type":"Clear"}`: drop what has not been spoken yet; the server answers `Cleared`.
pub const CLEAR: &str = r#"{"type":"Clear"}"#;
/// `{"type":"Close"}`: finish and close the socket.
pub const CLOSE: &str = r#"{"type":"Close"}"#;

/// `{"type":"Speak","text":…}`: text to turn into audio (spoken after a `Flush`).
pub fn speak_message(text: &str) -> String {
    serde_json::json!({"type": "Speak", "text": text}).to_string()
}

/// A text message from Deepgram's speak socket.
#[derive(Debug, Clone, PartialEq)]
pub enum SpeakMessage {
    /// The audio of everything before a `Flush` has been sent.
    Flushed {
        /// Counts flushes on this socket, from 0.
        sequence_id: u64,
    },
    /// A `Clear` took effect: no audio of earlier text follows.
    Cleared {
        /// Counts clears on this socket, from 0.
        sequence_id: u64,
    },
    /// Stream metadata (request id, model).
    Metadata {
        /// Deepgram's request id.
        request_id: String,
    },
    /// Something Deepgram wants the client to know, e.g. too many flushes.
    Warning {
        /// The warning's code.
        code: String,
        /// Its description.
        description: String,
    },
    /// A type this code does not handle (kept for the timeline).
    Other(String),
}

#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    sequence_id: u64,
    #[serde(default)]
    request_id: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    description: String,
}

/// Parses one text message from the speak socket.
pub fn parse(text: &str) -> Result<SpeakMessage, String> {
    let raw: Raw = serde_json::from_str(text).map_err(|e| e.to_string())?;
    Ok(match raw.kind.as_str() {
        "Flushed" => SpeakMessage::Flushed { sequence_id: raw.sequence_id },
        "Cleared" => SpeakMessage::Cleared { sequence_id: raw.sequence_id },
        "Metadata" => SpeakMessage::Metadata { request_id: raw.request_id },
        "Warning" => SpeakMessage::Warning { code: raw.code, description: raw.description },
        other => SpeakMessage::Other(other.chars().take(64).collect()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_and_server_messages() {
        let speak: serde_json::Value = serde_json::from_str(&speak_message("Hi \"there\".")).expect("JSON");
        assert_eq!(speak, serde_json::json!({"type": "Speak", "text": "Hi \"there\"."}));
        assert_eq!(parse(r#"{"type":"Flushed","sequence_id":3}"#), Ok(SpeakMessage::Flushed { sequence_id: 3 }));
        assert_eq!(parse(r#"{"type":"Cleared","sequence_id":0}"#), Ok(SpeakMessage::Cleared { sequence_id: 0 }));
        assert_eq!(
            parse(r#"{"type":"Metadata","request_id":"r1","model_name":"aura-2-thalia-en"}"#),
            Ok(SpeakMessage::Metadata { request_id: "r1".into() })
        );
        assert_eq!(
            parse(r#"{"type":"Warning","description":"Too many flushes","code":"FLUSH_LIMIT"}"#),
            Ok(SpeakMessage::Warning { code: "FLUSH_LIMIT".into(), description: "Too many flushes".into() })
        );
        assert_eq!(parse(r#"{"type":"Surprise"}"#), Ok(SpeakMessage::Other("Surprise".into())));
        assert!(parse("[1,2]").is_err());
    }
}
