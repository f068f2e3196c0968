//! Twilio Media Streams messages, exactly as Twilio sends them, and the three a server
//! sends back on a bidirectional stream ([`media_message`], [`mark_message`],
//! [`clear_message`]).
//!
//! `sequenceNumber`, `chunk` and `timestamp` are strings; `sampleRate` and `channels` are
//! numbers; `connected` has no `sequenceNumber`. Anything that does not parse is a typed
//! [`TwilioError`], never a panic.

use std::borrow::Cow;
use std::collections::BTreeMap;

use base64::Engine;
use serde::Deserialize;

/// A message from Twilio.
#[derive(Debug, Clone, PartialEq)]
pub enum TwilioEvent {
    /// The socket is up.
    Connected {
        /// `protocol`, e.g. `Call`.
        protocol: String,
    },
    /// The stream started.
    Start(StartInfo),
    /// Caller audio.
    Media {
        /// `chunk`, from 1.
        chunk: u64,
        /// Milliseconds since the stream started.
        timestamp_ms: u64,
        /// Decoded mu-law bytes.
        audio: Vec<u8>,
    },
    /// A keypad press.
    Dtmf {
        /// The digit.
        digit: String,
    },
    /// Twilio played the audio before a mark we sent.
    Mark {
        /// The mark's name.
        name: String,
    },
    /// The stream ended.
    Stop,
}

/// What `start` tells about the call.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StartInfo {
    /// `streamSid`.
    pub stream_sid: String,
    /// `callSid`.
    pub call_sid: String,
    /// `accountSid`.
    pub account_sid: String,
    /// `tracks`.
    pub tracks: Vec<String>,
    /// `mediaFormat.encoding`.
    pub encoding: String,
    /// `mediaFormat.sampleRate`.
    pub sample_rate: u32,
    /// `mediaFormat.channels`.
    pub channels: u32,
    /// `customParameters` from `<Parameter>` elements.
    pub custom_parameters: BTreeMap<String, String>,
}

/// Why a message was not understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TwilioError {
    /// Not JSON, or a field of the wrong type.
    Malformed(String),
    /// An `event` this code does not know.
    UnknownEvent(String),
    /// The media payload is not base64.
    BadPayload(String),
}

impl std::fmt::Display for TwilioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TwilioError::Malformed(why) => write!(f, "malformed message: {why}"),
            TwilioError::UnknownEvent(event) => write!(f, "unknown event {event:?}"),
            TwilioError::BadPayload(why) => write!(f, "media payload is not base64: {why}"),
        }
    }
}

/// The first pass over every message: the event name, and for `media` (50 a second per
/// call) everything needed, borrowed from the text, so a media message is parsed once.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow, default)]
    media: Option<MediaBody<'a>>,
}

#[derive(Deserialize)]
struct ConnectedMsg {
    #[serde(default)]
    protocol: String,
}

#[derive(Deserialize)]
struct StartMsg {
    start: StartBody,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartBody {
    #[serde(default)]
    stream_sid: String,
    #[serde(default)]
    call_sid: String,
    #[serde(default)]
    account_sid: String,
    #[serde(default)]
    tracks: Vec<String>,
    media_format: Option<MediaFormat>,
    #[serde(default)]
    custom_parameters: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MediaFormat {
    encoding: String,
    sample_rate: u32,
    channels: u32,
}

#[derive(Deserialize)]
struct MediaBody<'a> {
    #[serde(borrow, default)]
    chunk: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow)]
    payload: Cow<'a, str>,
}

#[derive(Deserialize)]
struct DtmfMsg {
    dtmf: DtmfBody,
}

#[derive(Deserialize)]
struct DtmfBody {
    digit: String,
}

#[derive(Deserialize)]
struct MarkMsg {
    mark: MarkBody,
}

#[derive(Deserialize)]
struct MarkBody {
    name: String,
}

fn malformed(error: serde_json::Error) -> TwilioError {
    TwilioError::Malformed(error.to_string())
}

/// Parses one text message from Twilio.
pub fn parse(text: &str) -> Result<TwilioEvent, TwilioError> {
    let envelope: Envelope<'_> = serde_json::from_str(text).map_err(malformed)?;
    Ok(match envelope.event.as_ref() {
        "connected" => {
            let message: ConnectedMsg = serde_json::from_str(text).map_err(malformed)?;
            TwilioEvent::Connected { protocol: message.protocol }
        }
        "start" => {
            let StartMsg { start } = serde_json::from_str(text).map_err(malformed)?;
            let format = start.media_format.unwrap_or(MediaFormat { encoding: String::new(), sample_rate: 0, channels: 0 });
            TwilioEvent::Start(StartInfo {
                stream_sid: start.stream_sid,
                call_sid: start.call_sid,
                account_sid: start.account_sid,
                tracks: start.tracks,
                encoding: format.encoding,
                sample_rate: format.sample_rate,
                channels: format.channels,
                custom_parameters: start.custom_parameters,
            })
        }
        "media" => {
            let media = envelope.media.ok_or_else(|| TwilioError::Malformed("`media` message without a `media` object".to_owned()))?;
            let number = |field: Option<Cow<'_, str>>, name: &str| -> Result<u64, TwilioError> {
                match field {
                    None => Ok(0),
                    Some(text) => text.parse().map_err(|_| TwilioError::Malformed(format!("`{name}` is not a number: {text:?}"))),
                }
            };
            let audio = base64::engine::general_purpose::STANDARD
                .decode(media.payload.as_bytes())
                .map_err(|e| TwilioError::BadPayload(e.to_string()))?;
            TwilioEvent::Media { chunk: number(media.chunk, "chunk")?, timestamp_ms: number(media.timestamp, "timestamp")?, audio }
        }
        "dtmf" => {
            let DtmfMsg { dtmf } = serde_json::from_str(text).map_err(malformed)?;
            TwilioEvent::Dtmf { digit: dtmf.digit }
        }
        "mark" => {
            let MarkMsg { mark } = serde_json::from_str(text).map_err(malformed)?;
            TwilioEvent::Mark { name: mark.name }
        }
        "stop" => TwilioEvent::Stop,
        other => return Err(TwilioError::UnknownEvent(other.chars().take(64).collect())),
    })
}

/// Outbound audio for Twilio to play: `{"event":"media","streamSid":…,"media":{"payload":…}}`
/// with the mu-law bytes in base64 (no file header, no sequence number).
pub fn media_message(stream_sid: &str, audio: &[u8]) -> String {
    let payload = base64::engine::general_purpose::STANDARD.encode(audio);
    serde_json::json!({"event": "media", "streamSid": stream_sid, "media": {"payload": payload}}).to_string()
}

/// A mark after the audio sent so far: Twilio echoes it back once that audio has played
/// (or at once, when a `clear` empties the queue).
pub fn mark_message(stream_sid: &str, name: &str) -> String {
    serde_json::json!({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}}).to_string()
}

/// Empties Twilio's queue of outbound audio (barge-in); every pending mark is echoed.
pub fn clear_message(stream_sid: &str) -> String {
    serde_json::json!({"event": "clear", "streamSid": stream_sid}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbound_messages_have_twilios_shape() {
        let media: serde_json::Value = serde_json::from_str(&media_message("MZ1", &[0, 1, 2, 255])).expect("JSON");
        assert_eq!(media, serde_json::json!({"event": "media", "streamSid": "MZ1", "media": {"payload": "AAEC/w=="}}));
        let mark: serde_json::Value = serde_json::from_str(&mark_message("MZ1", "t1-s2")).expect("JSON");
        assert_eq!(mark, serde_json::json!({"event": "mark", "streamSid": "MZ1", "mark": {"name": "t1-s2"}}));
        let clear: serde_json::Value = serde_json::from_str(&clear_message("MZ\"1")).expect("JSON");
        assert_eq!(clear, serde_json::json!({"event": "clear", "streamSid": "MZ\"1"}));
    }

    #[test]
    fn parses_every_documented_message() {
        assert_eq!(
            parse(r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#),
            Ok(TwilioEvent::Connected { protocol: "Call".into() })
        );
        let start = parse(
            r#"{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC1","streamSid":"MZ1","callSid":"CA1","tracks":["inbound"],"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1},"customParameters":{"FirstName":"Jane"}},"streamSid":"MZ1"}"#,
        );
        let Ok(TwilioEvent::Start(info)) = start else { panic!("start: {start:?}") };
        assert_eq!((info.call_sid.as_str(), info.stream_sid.as_str(), info.sample_rate, info.channels), ("CA1", "MZ1", 8000, 1));
        assert_eq!(info.encoding, "audio/x-mulaw");
        assert_eq!(info.custom_parameters.get("FirstName").map(String::as_str), Some("Jane"));
        assert_eq!(
            parse(
                r#"{"event":"media","sequenceNumber":"4","media":{"track":"inbound","chunk":"2","timestamp":"5","payload":"AAEC/w=="},"streamSid":"MZ1"}"#
            ),
            Ok(TwilioEvent::Media { chunk: 2, timestamp_ms: 5, audio: vec![0, 1, 2, 255] })
        );
        assert_eq!(
            parse(r#"{"event":"dtmf","streamSid":"MZ1","sequenceNumber":"5","dtmf":{"track":"inbound_track","digit":"1"}}"#),
            Ok(TwilioEvent::Dtmf { digit: "1".into() })
        );
        assert_eq!(
            parse(r#"{"event":"mark","sequenceNumber":"4","streamSid":"MZ1","mark":{"name":"my label"}}"#),
            Ok(TwilioEvent::Mark { name: "my label".into() })
        );
        assert_eq!(
            parse(r#"{"event":"stop","sequenceNumber":"5","stop":{"accountSid":"AC1","callSid":"CA1"},"streamSid":"MZ1"}"#),
            Ok(TwilioEvent::Stop)
        );
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        assert!(matches!(parse("not json"), Err(TwilioError::Malformed(_))));
        assert!(matches!(parse(r#"{"no_event":1}"#), Err(TwilioError::Malformed(_))));
        assert_eq!(parse(r#"{"event":"party"}"#), Err(TwilioError::UnknownEvent("party".into())));
        assert!(matches!(parse(r#"{"event":"media","media":{"payload":"!!!"}}"#), Err(TwilioError::BadPayload(_))));
        assert!(matches!(parse(r#"{"event":"media","media":{"chunk":"x","payload":""}}"#), Err(TwilioError::Malformed(_))));
        assert!(matches!(parse(r#"{"event":"start","start":{"mediaFormat":{"sampleRate":"8000"}}}"#), Err(TwilioError::Malformed(_))));
    }
}
