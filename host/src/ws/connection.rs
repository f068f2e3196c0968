//! The concrete type behind the `websocket.connection` resource.
//!
//! It never blocks: `send` puts a message on the pump's queue (or reports `would-block`
//! when the queue holds `send_queue_bytes`), `receive` takes from the pump's buffer. Its
//! [`Pollable`] implementation is readiness to receive; [`WritableSignal`] is readiness to
//! send.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message as WireMessage;
use wasmtime_wasi_io::poll::Pollable;

use super::pump::{CloseInfo, LinkState, PumpOptions, Received};
use crate::runtime::bindings::{CloseFrame, ErrorCode, Message};

/// What the guest asks the writer to do.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// Send a message of this many payload bytes.
    Message(WireMessage, usize),
    /// Send a close frame; nothing more is sent after it.
    Close(CloseFrame),
}

/// Releases an outbound-connection slot when the connection is dropped.
pub type SlotGuard = Box<dyn Send + Sync>;

/// A pumped WebSocket as the guest sees it.
pub struct Connection {
    incoming: mpsc::Receiver<Received>,
    /// A message taken off `incoming` by `ready` and not yet handed to `receive`.
    peeked: Option<Received>,
    /// True once `incoming` reported that the reader is done.
    drained: bool,
    outgoing: mpsc::UnboundedSender<Outgoing>,
    queued: Arc<watch::Sender<usize>>,
    queued_rx: watch::Receiver<usize>,
    link: Arc<LinkState>,
    send_queue_bytes: usize,
    max_message_bytes: usize,
    protocol: Option<String>,
    /// Held for its `Drop`: frees the instance's outbound-connection slot.
    _slot: Option<SlotGuard>,
    counters: Arc<crate::metrics::WireCounters>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("queued", &*self.queued_rx.borrow())
            .field("ended", &self.link.ended())
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

impl Connection {
    // The pump hands over each of its channel ends; a struct for them would only be
    // unpacked again here.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        incoming: mpsc::Receiver<Received>,
        outgoing: mpsc::UnboundedSender<Outgoing>,
        queued: Arc<watch::Sender<usize>>,
        queued_rx: watch::Receiver<usize>,
        link: Arc<LinkState>,
        options: &PumpOptions,
        protocol: Option<String>,
        counters: Arc<crate::metrics::WireCounters>,
    ) -> Self {
        Connection {
            incoming,
            peeked: None,
            drained: false,
            outgoing,
            queued,
            queued_rx,
            link,
            send_queue_bytes: options.send_queue_bytes,
            max_message_bytes: options.max_message_bytes,
            protocol,
            _slot: None,
            counters,
        }
    }

    /// Ties an outbound-connection slot to this connection's lifetime.
    pub fn hold_slot(&mut self, slot: SlotGuard) {
        self._slot = Some(slot);
    }

    fn closed_error(&self) -> ErrorCode {
        let info =
            self.link.ended().unwrap_or(CloseInfo { code: 1006, reason: "the connection ended".to_owned(), by: super::ClosedBy::Network });
        ErrorCode::Closed(CloseFrame { code: info.code, reason: info.reason })
    }

    /// Queues `message`; see the WIT `send`.
    pub fn send(&mut self, message: Message) -> Result<(), ErrorCode> {
        if self.link.ended().is_some() {
            return Err(self.closed_error());
        }
        if let Some(frame) = self.link.local_close() {
            return Err(ErrorCode::Closed(frame));
        }
        let (wire, bytes) = match message {
            Message::Text(text) => {
                let bytes = text.len();
                (WireMessage::text(text), bytes)
            }
            Message::Binary(data) => {
                let bytes = data.len();
                (WireMessage::binary(data), bytes)
            }
        };
        if bytes > self.max_message_bytes {
            return Err(ErrorCode::MessageTooLarge);
        }
        if *self.queued_rx.borrow() >= self.send_queue_bytes {
            self.counters.would_block.inc();
            return Err(ErrorCode::WouldBlock);
        }
        self.queued.send_modify(|queued| *queued += bytes);
        self.outgoing.send(Outgoing::Message(wire, bytes)).map_err(|_| self.closed_error())
    }

    /// Takes the next message; see the WIT `receive`.
    pub fn receive(&mut self) -> Result<Option<Message>, ErrorCode> {
        if let Some(received) = self.peeked.take() {
            return Ok(Some(received.message));
        }
        if self.drained {
            return Err(self.closed_error());
        }
        match self.incoming.try_recv() {
            Ok(received) => Ok(Some(received.message)),
            Err(mpsc::error::TryRecvError::Empty) => Ok(None),
            Err(mpsc::error::TryRecvError::Disconnected) => {
                self.drained = true;
                Err(self.closed_error())
            }
        }
    }

    /// Starts the close handshake; see the WIT `close`.
    pub fn close(&mut self, code: u16, reason: String) -> Result<(), ErrorCode> {
        if !is_sendable_close_code(code) {
            return Err(ErrorCode::InternalError(Some(format!(
                "close code {code} may not be sent: use 1000-1003, 1007-1014 or 3000-4999"
            ))));
        }
        if reason.len() > 123 {
            return Err(ErrorCode::InternalError(Some("a close reason is at most 123 bytes".to_owned())));
        }
        if self.link.ended().is_some() {
            return Err(self.closed_error());
        }
        let frame = CloseFrame { code, reason };
        if !self.link.mark_local_close(frame.clone()) {
            return Err(ErrorCode::Closed(self.link.local_close().unwrap_or(frame)));
        }
        self.outgoing.send(Outgoing::Close(frame)).map_err(|_| self.closed_error())
    }

    /// The negotiated subprotocol.
    pub fn protocol(&self) -> Option<String> {
        self.protocol.clone()
    }

    /// Bytes queued and not yet written.
    pub fn queued_bytes(&self) -> u64 {
        *self.queued_rx.borrow() as u64
    }

    /// The readiness signal behind the `writable` pollable.
    pub fn writable_signal(&self) -> WritableSignal {
        WritableSignal { queued: self.queued_rx.clone(), low_water: self.send_queue_bytes / 2 }
    }
}

/// Close codes an endpoint may put in a close frame (RFC 6455 section 7.4).
pub fn is_sendable_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

#[wasmtime_wasi_io::async_trait]
impl Pollable for Connection {
    async fn ready(&mut self) {
        if self.peeked.is_some() || self.drained {
            return;
        }
        match self.incoming.recv().await {
            Some(received) => self.peeked = Some(received),
            None => self.drained = true,
        }
    }
}

/// The concrete type behind a `writable` pollable: ready when the send queue has drained
/// to half its size, or the connection has ended.
pub struct WritableSignal {
    queued: watch::Receiver<usize>,
    low_water: usize,
}

#[wasmtime_wasi_io::async_trait]
impl Pollable for WritableSignal {
    async fn ready(&mut self) {
        let low_water = self.low_water;
        // An error means the pump is gone: the connection has ended, which is "ready".
        let _ = self.queued.wait_for(|queued| *queued <= low_water).await;
    }
}
