//! The WebSocket settings of the harness's own sockets (callers and the fake Deepgram)
//! and of the native relay.
//!
//! tungstenite's default read buffer is 128 KiB, zeroed again before every read: at
//! thousands of sockets and 50 messages a second each, that memset alone was the largest
//! single cost of the load generator (and half the native relay's CPU, see
//! `docs/bench/profile-native.txt`). Frames here are a few hundred bytes, so a 4 KiB
//! buffer (what the systems under test use too) reads them in one go.

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// The configuration of every harness and native-relay socket: small reads, writes flushed as sent.
pub fn lean() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4 * 1024).write_buffer_size(0)
}
