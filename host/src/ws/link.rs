//! The state one pumped socket shares between its pump, its [`Socket`](super::Socket)
//! and the host's [`Control`](super::Control): how it ended, the close frame we sent, and
//! what the peer has sent so far.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::OwnedSemaphorePermit;

use super::message::{CloseFrame, Message};

/// Which side ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClosedBy {
    /// The host or guest sent the first close frame.
    Local,
    /// The peer sent the first close frame.
    Peer,
    /// No close handshake: the connection failed or the peer vanished.
    Network,
}

impl ClosedBy {
    /// A short label for markers.
    pub fn label(self) -> &'static str {
        match self {
            ClosedBy::Local => "local",
            ClosedBy::Peer => "peer",
            ClosedBy::Network => "network",
        }
    }
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    /// The close code (1006 when no close frame was exchanged).
    pub code: u16,
    /// The close reason, or a description of the failure.
    pub reason: String,
    /// Who ended it.
    pub by: ClosedBy,
}

impl CloseInfo {
    /// The connection ended without a close handshake (1006), for `reason`.
    pub fn network(reason: &str) -> Self {
        CloseInfo { code: 1006, reason: reason.to_owned(), by: ClosedBy::Network }
    }

    /// Our close frame `frame` ended it.
    pub fn local(frame: &CloseFrame) -> Self {
        CloseInfo { code: frame.code, reason: frame.reason.clone(), by: ClosedBy::Local }
    }

    /// The close frame as a guest sees it.
    pub fn frame(&self) -> CloseFrame {
        CloseFrame { code: self.code, reason: self.reason.clone() }
    }
}

/// State shared by the pump, the socket and the host's control handle.
#[derive(Debug)]
pub(crate) struct LinkState {
    /// Set once, when the connection has ended (by the reader as soon as it sees the end).
    ended: OnceLock<CloseInfo>,
    /// The first close frame we sent (so a second `close` is refused).
    local_close: OnceLock<CloseFrame>,
    /// When the pump started.
    created: Instant,
    /// Data messages received from the peer.
    received: AtomicU64,
    /// When the last data message arrived, microseconds after `created`.
    last_received_us: AtomicU64,
}

impl LinkState {
    pub(crate) fn new() -> Self {
        LinkState {
            ended: OnceLock::new(),
            local_close: OnceLock::new(),
            created: Instant::now(),
            received: AtomicU64::new(0),
            last_received_us: AtomicU64::new(0),
        }
    }

    /// How the connection ended, once it has.
    pub(crate) fn ended(&self) -> Option<CloseInfo> {
        self.ended.get().cloned()
    }

    /// Records the end; the first record wins.
    pub(crate) fn end(&self, info: CloseInfo) {
        let _ = self.ended.set(info);
    }

    /// The close frame we sent first, if any.
    pub(crate) fn local_close(&self) -> Option<CloseFrame> {
        self.local_close.get().cloned()
    }

    /// Records a local close; false if one was already sent.
    pub(crate) fn mark_local_close(&self, frame: CloseFrame) -> bool {
        self.local_close.set(frame).is_ok()
    }

    pub(crate) fn note_received(&self) {
        let micros = u64::try_from(self.created.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.last_received_us.store(micros, Ordering::Relaxed);
        self.received.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the peer has sent so far, for the host's deadlines on callers.
#[derive(Debug, Clone)]
pub struct Activity(pub(crate) std::sync::Arc<LinkState>);

impl Activity {
    /// Data messages received.
    pub fn messages(&self) -> u64 {
        self.0.received.load(Ordering::Relaxed)
    }

    /// When the last data message arrived (the pump's start when none has).
    pub fn last_received(&self) -> Instant {
        self.0.created + Duration::from_micros(self.0.last_received_us.load(Ordering::Relaxed))
    }

    /// Whether the connection has ended.
    pub fn ended(&self) -> bool {
        self.0.ended.get().is_some()
    }
}

/// A received message and its share of the receive budget, returned when it is taken.
#[derive(Debug)]
pub(crate) struct Received {
    pub(crate) message: Message,
    pub(crate) _budget: OwnedSemaphorePermit,
}
