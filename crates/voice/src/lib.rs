//! The voice components' protocol logic, with no I/O and no wasm: Twilio Media Streams
//! and Deepgram messages, the audio ledger, utterances, backoff, and the listening state
//! machine. The bundled components (`voice-pipeline`, `voice-agent`) are thin glue over
//! it, so every rule here is tested on the native target.
//!
//! [`twilio`] and [`deepgram`] parse the wire messages, [`ledger`] tracks audio from
//! receipt to Deepgram's confirmation (the replay buffer), [`utterance`] assembles final
//! transcripts, [`backoff`] spaces reconnects, and [`pipeline`] is the state machine that
//! ties them together: Twilio's audio to Deepgram live speech-to-text, nothing lost across
//! a reconnect. [`settings`] are the pipeline's, read from `wasi:config/store`; the
//! Deepgram API key is injected by the host as a secret header and never seen here.

pub mod backoff;
pub mod deepgram;
pub mod ledger;
pub mod markers;
pub mod pipeline;
pub mod settings;
pub mod speak;
pub mod twilio;
pub mod utterance;
