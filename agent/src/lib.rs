//! The voice-agent guest component: the caller talks, an LLM answers, the answer is
//! spoken back into the call, and the caller can interrupt.
//!
//! Built like the voice pipeline: the logic is plain Rust with no I/O, tested on the
//! native target, and `guest` (wasm only) is the thin glue to the host's imports. The
//! listening half is the pipeline's own state machine (`switchboard_voice::pipeline`:
//! KeepAlive, pacing, reconnect with replay); [`chat`] is the LLM's wire format,
//! [`sentences`] cuts its tokens into sentences for speech, and [`playback`] paces the
//! speech into Twilio with marks.

pub mod agent;
pub mod chat;
pub mod markers;
pub mod playback;
pub mod sentences;
pub mod settings;

#[cfg(target_arch = "wasm32")]
mod guest;
