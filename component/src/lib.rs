//! The voice-pipeline guest component: a Twilio Media Streams call to Deepgram live
//! speech-to-text, with nothing lost on either leg and every step on the call timeline.
//!
//! The protocol logic is plain Rust, tested on the native target:
//! [`twilio`] and [`deepgram`] parse the wire messages, [`ledger`] tracks audio from
//! receipt to Deepgram's confirmation (the replay buffer), [`utterance`] assembles final
//! transcripts, [`backoff`] spaces reconnects, and [`pipeline`] is the state machine that
//! ties them together. `guest` (wasm only) is the thin glue to the host's imports.
//!
//! Settings come from `wasi:config/store` (see [`settings`]); the Deepgram API key is
//! injected by the host as a secret header and never seen here.

pub mod backoff;
pub mod deepgram;
pub mod ledger;
pub mod markers;
pub mod pipeline;
pub mod settings;
pub mod twilio;
pub mod utterance;

#[cfg(target_arch = "wasm32")]
mod guest;
