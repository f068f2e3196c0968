//! Simulators of the two protocols a voice pipeline speaks, for the offline demo
//! (`switchboard demo`) and for tests:
//!
//! - [`twilio::TwilioCall`] plays mu-law audio into a WebSocket as the exact messages of
//!   Twilio Media Streams and records what comes back;
//! - [`deepgram::DeepgramSim`] is a server speaking Deepgram's live-STT protocol. It does
//!   **no speech recognition**: it finds speech by energy and reports each segment as
//!   `(speech 1.4 s)`. It records every byte and control message, confirms audio with
//!   final results, and can misbehave the way the real service does (idle close
//!   `NET-0001`, close on an empty frame, 1011 mid-stream, 401, a handshake that never
//!   answers).
//!
//! - [`speak::SpeakSim`] speaks Deepgram's text-to-speech socket: audio whose length
//!   follows the text, `Flushed`, `Cleared`, and faults;
//! - [`llm::LlmSim`] is an OpenAI-compatible chat-completions server that streams
//!   scripted answers token by token (tool calls, error statuses, stalls).
//!
//! [`mulaw`] has the G.711 mu-law codec they use; [`tls`] makes a throw-away CA so the
//! simulators can serve `wss://` and `https://`.

pub mod deepgram;
pub mod llm;
pub mod mulaw;
mod shared;
pub mod speak;
pub mod tls;
pub mod twilio;

/// The bundled caller audio: 13.2 s of synthetic speech, mu-law 8 kHz mono, as Twilio
/// carries it (`assets/README.md` says how it was made).
pub const CALLER_SPEECH: &[u8] = include_bytes!("../../../assets/caller.ulaw");
