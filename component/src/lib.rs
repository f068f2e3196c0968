//! The voice-pipeline guest component: a Twilio Media Streams call to Deepgram live
//! speech-to-text, with nothing lost on either leg and every step on the call timeline.
//!
//! The protocol logic lives in `switchboard-voice` (shared with the voice agent) and is
//! re-exported here; `guest` (wasm only) is the thin glue to the host's imports.

pub use switchboard_voice::{backoff, deepgram, ledger, markers, pipeline, settings, twilio, utterance};

#[cfg(target_arch = "wasm32")]
mod guest;
