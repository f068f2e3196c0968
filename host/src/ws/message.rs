//! What travels over a pumped socket, in the socket layer's own terms (the runtime maps
//! these to and from the WIT types).

/// One complete WebSocket data message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message (valid UTF-8).
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
}

impl Message {
    /// Payload bytes.
    pub fn len(&self) -> usize {
        match self {
            Message::Text(text) => text.len(),
            Message::Binary(data) => data.len(),
        }
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The code and reason of a close handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// The close status code.
    pub code: u16,
    /// The reason, at most 123 bytes.
    pub reason: String,
}

/// Close codes an endpoint may put in a close frame (RFC 6455 section 7.4).
pub fn is_sendable_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// The longest close reason, bytes (a control frame's payload is at most 125 bytes).
pub const MAX_CLOSE_REASON_BYTES: usize = 123;
