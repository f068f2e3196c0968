//! A pumped WebSocket as its user (the runtime, for a guest) holds it: a plain handle
//! that never blocks.
//!
//! `send` puts a message on the pump's queue (or reports [`SocketError::WouldBlock`] when
//! the queue holds `send_queue_bytes`), `receive` takes from the pump's buffer;
//! [`Socket::readable`] and [`WritableSignal::ready`] wait for readiness.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message as WireMessage;

use super::link::{CloseInfo, LinkState, Received};
use super::message::{CloseFrame, MAX_CLOSE_REASON_BYTES, Message, is_sendable_close_code};
use super::options::PumpOptions;
use crate::observe::metrics::WireCounters;

/// What the socket's user asks the writer to do.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// Send a message of this many payload bytes.
    Message(WireMessage, usize),
    /// Send a close frame; nothing more is sent after it.
    Close(CloseFrame),
}

/// Why an operation on a socket failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SocketError {
    /// The connection has ended (or our close frame went out); the frame says how.
    #[error("closed with {}", .0.code)]
    Closed(CloseFrame),
    /// The send queue is full: wait for [`WritableSignal::ready`].
    #[error("the send queue is full")]
    WouldBlock,
    /// The message is larger than the socket's limit.
    #[error("the message is larger than the limit")]
    TooLarge,
    /// A close code or reason that may not be sent.
    #[error("{0}")]
    InvalidClose(String),
}

/// The channel ends the pump hands a socket.
pub(crate) struct Channels {
    pub(crate) incoming: mpsc::Receiver<Received>,
    pub(crate) outgoing: mpsc::UnboundedSender<Outgoing>,
    pub(crate) queued: Arc<watch::Sender<usize>>,
    pub(crate) queued_rx: watch::Receiver<usize>,
    pub(crate) link: Arc<LinkState>,
}

/// A pumped WebSocket.
pub struct Socket {
    incoming: mpsc::Receiver<Received>,
    /// A message taken off `incoming` by `readable` and not yet handed to `receive`.
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
    counters: Arc<WireCounters>,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("queued", &*self.queued_rx.borrow())
            .field("ended", &self.link.ended())
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

impl Socket {
    pub(crate) fn new(channels: Channels, options: &PumpOptions, protocol: Option<String>, counters: Arc<WireCounters>) -> Self {
        let Channels { incoming, outgoing, queued, queued_rx, link } = channels;
        Socket {
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
            counters,
        }
    }

    fn closed(&self) -> SocketError {
        SocketError::Closed(self.link.ended().unwrap_or_else(|| CloseInfo::network("the connection ended")).frame())
    }

    /// Queues `message` for the writer.
    pub fn send(&mut self, message: Message) -> Result<(), SocketError> {
        if self.link.ended().is_some() {
            return Err(self.closed());
        }
        if let Some(frame) = self.link.local_close() {
            return Err(SocketError::Closed(frame));
        }
        let bytes = message.len();
        if bytes > self.max_message_bytes {
            return Err(SocketError::TooLarge);
        }
        if *self.queued_rx.borrow() >= self.send_queue_bytes {
            self.counters.would_block.inc();
            return Err(SocketError::WouldBlock);
        }
        let wire = match message {
            Message::Text(text) => WireMessage::text(text),
            Message::Binary(data) => WireMessage::binary(data),
        };
        self.queued.send_modify(|queued| *queued += bytes);
        self.outgoing.send(Outgoing::Message(wire, bytes)).map_err(|_| self.closed())
    }

    /// Takes the next message: `None` when nothing is buffered; `Closed` once the
    /// connection has ended and everything before the end was taken.
    pub fn receive(&mut self) -> Result<Option<Message>, SocketError> {
        if let Some(received) = self.peeked.take() {
            return Ok(Some(received.message));
        }
        if self.drained {
            return Err(self.closed());
        }
        match self.incoming.try_recv() {
            Ok(received) => Ok(Some(received.message)),
            Err(mpsc::error::TryRecvError::Empty) => Ok(None),
            Err(mpsc::error::TryRecvError::Disconnected) => {
                self.drained = true;
                Err(self.closed())
            }
        }
    }

    /// Waits until `receive` has something to return: a message or the end.
    pub async fn readable(&mut self) {
        if self.peeked.is_some() || self.drained {
            return;
        }
        match self.incoming.recv().await {
            Some(received) => self.peeked = Some(received),
            None => self.drained = true,
        }
    }

    /// Starts the close handshake; messages queued before go first.
    pub fn close(&mut self, code: u16, reason: String) -> Result<(), SocketError> {
        if !is_sendable_close_code(code) {
            return Err(SocketError::InvalidClose(format!("close code {code} may not be sent: use 1000-1003, 1007-1014 or 3000-4999")));
        }
        if reason.len() > MAX_CLOSE_REASON_BYTES {
            return Err(SocketError::InvalidClose(format!("a close reason is at most {MAX_CLOSE_REASON_BYTES} bytes")));
        }
        if self.link.ended().is_some() {
            return Err(self.closed());
        }
        let frame = CloseFrame { code, reason };
        if !self.link.mark_local_close(frame.clone()) {
            return Err(SocketError::Closed(self.link.local_close().unwrap_or(frame)));
        }
        self.outgoing.send(Outgoing::Close(frame)).map_err(|_| self.closed())
    }

    /// The negotiated subprotocol.
    pub fn protocol(&self) -> Option<String> {
        self.protocol.clone()
    }

    /// Bytes queued and not yet written.
    pub fn queued_bytes(&self) -> u64 {
        *self.queued_rx.borrow() as u64
    }

    /// Readiness to send again.
    pub fn writable_signal(&self) -> WritableSignal {
        WritableSignal { queued: self.queued_rx.clone(), low_water: self.send_queue_bytes / 2 }
    }
}

/// Ready when a socket's send queue has drained to half its size, or the socket ended.
#[derive(Debug)]
pub struct WritableSignal {
    queued: watch::Receiver<usize>,
    low_water: usize,
}

impl WritableSignal {
    /// Waits for room in the queue (or the end of the connection).
    pub async fn ready(&mut self) {
        let low_water = self.low_water;
        // An error means the pump is gone: the connection has ended, which is "ready".
        let _ = self.queued.wait_for(|queued| *queued <= low_water).await;
    }
}
