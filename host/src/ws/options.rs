//! How big a pumped socket's buffers are, and the tungstenite settings that follow.

use std::time::Duration;

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Sizing for one pumped socket.
#[derive(Debug, Clone)]
pub struct PumpOptions {
    /// Largest message either way; a larger incoming one closes the socket with 1009.
    pub max_message_bytes: usize,
    /// Bytes the send queue holds before `send` reports `would-block`.
    pub send_queue_bytes: usize,
    /// Bytes of received messages buffered for the guest before the reader stops reading
    /// (so a peer cannot make the host hold more than this while the guest is busy).
    pub receive_buffer_bytes: usize,
    /// How long to wait for the peer's close frame after sending ours.
    pub close_grace: Duration,
}

impl PumpOptions {
    /// The tungstenite settings matching these options. Buffers start small (the
    /// default 128 KiB each would dominate a call's memory) and grow only as needed.
    pub fn websocket_config(&self) -> WebSocketConfig {
        WebSocketConfig::default()
            .read_buffer_size(4 * 1024)
            .write_buffer_size(0)
            .max_write_buffer_size(self.max_message_bytes.saturating_mul(2).max(64 * 1024))
            .max_message_size(Some(self.max_message_bytes))
            .max_frame_size(Some(self.max_message_bytes))
    }
}
