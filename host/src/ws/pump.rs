//! Drives one WebSocket: a reader that hands messages to the guest's buffer and a writer
//! that drains the guest's send queue, run side by side.
//!
//! The two never wait on each other: a peer that stops reading stalls only the writer
//! (and the guest sees `would-block`), while the reader keeps answering pings and
//! delivering messages. The pump ends when the close handshake completes, when the peer
//! vanishes, or, after our close frame, when the peer does not answer within
//! [`PumpOptions::close_grace`].

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::Either;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::CloseFrame as WireCloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WireMessage};

use super::link::{Activity, CloseInfo, ClosedBy, LinkState, Received};
use super::message::{CloseFrame, MAX_CLOSE_REASON_BYTES, Message};
use super::options::PumpOptions;
use super::socket::{Channels, Outgoing, Socket};
use crate::observe::metrics::WireCounters;

/// The host's handle on a pumped socket, independent of the guest's resource: it can
/// close the socket after the guest is gone and learn how it ended.
#[derive(Debug)]
pub struct Control {
    outgoing: mpsc::UnboundedSender<Outgoing>,
    link: Arc<LinkState>,
    finished: oneshot::Receiver<CloseInfo>,
}

/// Closes a pumped socket from elsewhere (a host draining for shutdown), without keeping
/// the writer alive: it holds the queue only weakly.
#[derive(Debug, Clone)]
pub struct Closer {
    outgoing: mpsc::WeakUnboundedSender<Outgoing>,
    link: Arc<LinkState>,
}

impl Closer {
    /// Starts the close handshake unless the connection is closing or closed already.
    pub fn close(&self, code: u16, reason: &str) {
        if let Some(outgoing) = self.outgoing.upgrade() {
            close_link(&outgoing, &self.link, code, reason);
        }
    }
}

fn close_link(outgoing: &mpsc::UnboundedSender<Outgoing>, link: &LinkState, code: u16, reason: &str) {
    let frame = CloseFrame { code, reason: reason.to_owned() };
    if link.ended().is_none() && link.mark_local_close(frame.clone()) {
        let _ = outgoing.send(Outgoing::Close(frame));
    }
}

impl Control {
    /// Starts the close handshake unless the connection is closing or closed already.
    pub fn close(&self, code: u16, reason: &str) {
        close_link(&self.outgoing, &self.link, code, reason);
    }

    /// What the peer has sent so far.
    pub fn activity(&self) -> Activity {
        Activity(self.link.clone())
    }

    /// A handle that can close the socket from another task.
    pub fn closer(&self) -> Closer {
        Closer { outgoing: self.outgoing.downgrade(), link: self.link.clone() }
    }

    /// Waits up to `timeout` for the pump to end and returns how the connection ended.
    /// On time-out the socket is dropped (the pump task is detached and ends on its own
    /// grace timer).
    pub async fn finished(self, timeout: Duration) -> CloseInfo {
        let Control { outgoing, link, finished } = self;
        drop(outgoing);
        match tokio::time::timeout(timeout, finished).await {
            Ok(Ok(info)) => info,
            _ => link.ended().unwrap_or_else(|| CloseInfo::network("the close handshake did not finish in time")),
        }
    }
}

/// Starts pumping `socket` and returns the user's handle and the host's control handle.
/// `on_end` runs once, when the connection has ended.
pub fn spawn<S>(
    socket: WebSocketStream<S>,
    options: &PumpOptions,
    protocol: Option<String>,
    counters: Arc<WireCounters>,
    on_end: impl FnOnce(&CloseInfo) + Send + 'static,
) -> (Socket, Control)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Bounded by bytes through `budget`; the message count bound only caps tiny messages.
    let (incoming_tx, incoming_rx) = mpsc::channel(RECEIVE_BUFFER_MESSAGES);
    let budget = Arc::new(Semaphore::new(options.receive_buffer_bytes.max(1)));
    let (outgoing_tx, outgoing_rx) = mpsc::unbounded_channel();
    let (queued_tx, queued_rx) = watch::channel(0usize);
    let queued_tx = Arc::new(queued_tx);
    let link = Arc::new(LinkState::new());
    let (finished_tx, finished_rx) = oneshot::channel();

    let channels =
        Channels { incoming: incoming_rx, outgoing: outgoing_tx.clone(), queued: queued_tx.clone(), queued_rx, link: link.clone() };
    let socket_handle = Socket::new(channels, options, protocol, counters.clone());
    let control = Control { outgoing: outgoing_tx.clone(), link: link.clone(), finished: finished_rx };
    let weak_outgoing = outgoing_tx.downgrade();
    drop(outgoing_tx);

    let close_grace = options.close_grace;
    tokio::spawn(async move {
        let (sink, stream) = socket.split();
        // The reader only needs the queue to send a close frame after bad input; a weak
        // handle lets the writer see the queue end when the guest and host drop theirs.
        let reader = read_loop(stream, incoming_tx, budget, weak_outgoing, link.clone(), counters.clone()).map(Half::Reader);
        let writer = write_loop(sink, outgoing_rx, queued_tx.clone(), link.clone(), counters).map(|()| Half::Writer);
        // Each half is polled only when its own waker fires: a message queued for the
        // writer does not also poll the reader (a TLS and tungstenite read that finds
        // nothing), as one future awaiting both would on every wake.
        let mut halves: FuturesUnordered<Either<_, _>> = [Either::Left(reader), Either::Right(writer)].into_iter().collect();
        let info = match halves.next().await {
            Some(Half::Reader(info)) => {
                if info.by == ClosedBy::Local {
                    // The reader refused the peer's input (too large, malformed) and queued
                    // a close frame: let the writer send it before the socket is dropped.
                    let _ = tokio::time::timeout(close_grace, halves.next()).await;
                }
                info
            }
            // We sent our close frame (or could not write): wait for the peer's answer.
            Some(Half::Writer) | None => match tokio::time::timeout(close_grace, halves.next()).await {
                Ok(Some(Half::Reader(info))) => info,
                _ => match link.local_close() {
                    Some(frame) => CloseInfo {
                        code: frame.code,
                        reason: format!("{} (the peer did not answer the close frame)", frame.reason),
                        by: ClosedBy::Local,
                    },
                    None => CloseInfo::network("the socket failed while writing"),
                },
            },
        };
        link.end(info.clone());
        // Wake a guest waiting on `writable`: sends now fail with `closed`.
        queued_tx.send_replace(0);
        on_end(&info);
        let _ = finished_tx.send(info);
    });
    (socket_handle, control)
}

/// Which half of a pump ended.
enum Half {
    /// The reader, with how the connection ended.
    Reader(CloseInfo),
    /// The writer: our close frame went out, or writing failed.
    Writer,
}

/// Reads until the connection ends; returns how it ended, after recording it in `link`
/// (so the guest sees the end as soon as its buffer is drained).
async fn read_loop<S>(
    mut stream: futures_util::stream::SplitStream<WebSocketStream<S>>,
    incoming: mpsc::Sender<Received>,
    budget: Arc<Semaphore>,
    outgoing: mpsc::WeakUnboundedSender<Outgoing>,
    link: Arc<LinkState>,
    counters: Arc<WireCounters>,
) -> CloseInfo
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Once the guest has dropped its connection, messages are read and discarded, so the
    // peer's close frame is still seen.
    let mut guest_listening = true;
    let budget_size = budget.available_permits().min(u32::MAX as usize);
    let info = loop {
        let message = match stream.next().await {
            Some(Ok(WireMessage::Text(text))) => Message::Text(text.as_str().to_owned()),
            Some(Ok(WireMessage::Binary(data))) => Message::Binary(data.to_vec()),
            Some(Ok(WireMessage::Ping(_) | WireMessage::Pong(_) | WireMessage::Frame(_))) => {
                continue;
            }
            Some(Ok(WireMessage::Close(frame))) => {
                // If our close frame went first, this is the peer's answer to it.
                let info = match (link.local_close(), frame) {
                    (Some(ours), _) => CloseInfo::local(&ours),
                    (None, Some(frame)) => {
                        CloseInfo { code: frame.code.into(), reason: frame.reason.as_str().to_owned(), by: ClosedBy::Peer }
                    }
                    (None, None) => CloseInfo { code: 1005, reason: String::new(), by: ClosedBy::Peer },
                };
                link.end(info.clone());
                drop(incoming);
                // Keep polling so tungstenite flushes its close reply, until the peer hangs up.
                let _ = tokio::time::timeout(Duration::from_secs(2), async { while stream.next().await.is_some() {} }).await;
                return info;
            }
            Some(Err(error)) => {
                if let Some(ours) = link.local_close() {
                    // We had closed; the peer hung up instead of answering. Our close stands.
                    break CloseInfo::local(&ours);
                }
                let info = failure_info(&error);
                if matches!(info.code, 1009 | 1002 | 1007) {
                    // Tell the peer why, as RFC 6455 asks.
                    if let Some(outgoing) = outgoing.upgrade() {
                        let _ = outgoing.send(Outgoing::Close(info.frame()));
                    }
                }
                break info;
            }
            None => {
                if let Some(ours) = link.local_close() {
                    break CloseInfo::local(&ours);
                }
                break CloseInfo::network("the connection ended without a close frame");
            }
        };
        link.note_received();
        counters.rx_frames.inc();
        counters.rx_bytes.inc_by(message.len() as u64);
        if guest_listening {
            // A message larger than the whole budget waits for the buffer to empty.
            let cost = message.len().clamp(1, budget_size);
            let Ok(permit) = budget.clone().acquire_many_owned(cost as u32).await else {
                continue;
            };
            if incoming.send(Received { message, _budget: permit }).await.is_err() {
                guest_listening = false;
            }
        }
    };
    link.end(info.clone());
    info
}

/// Messages buffered for the guest at most, however small.
const RECEIVE_BUFFER_MESSAGES: usize = 1024;

/// Maps a read error to the close the guest and the markers see.
fn failure_info(error: &WsError) -> CloseInfo {
    let (code, by, reason) = match error {
        WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
            (1009, ClosedBy::Local, format!("message of {size} bytes exceeds the limit of {max_size}"))
        }
        WsError::Capacity(other) => (1009, ClosedBy::Local, other.to_string()),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            (1006, ClosedBy::Network, "the peer hung up without a close frame".to_owned())
        }
        WsError::Protocol(protocol) => (1002, ClosedBy::Local, format!("protocol error: {protocol}")),
        WsError::Utf8(_) => (1007, ClosedBy::Local, "invalid UTF-8 in a text message".to_owned()),
        other => (1006, ClosedBy::Network, other.to_string()),
    };
    let mut reason = reason;
    crate::observe::timeline::truncate_utf8(&mut reason, MAX_CLOSE_REASON_BYTES);
    CloseInfo { code, reason, by }
}

/// Writes queued messages until a close frame is sent, the queue's senders are all gone
/// (then it closes with 1000), or the socket fails.
async fn write_loop<S>(
    mut sink: futures_util::stream::SplitSink<WebSocketStream<S>, WireMessage>,
    mut outgoing: mpsc::UnboundedReceiver<Outgoing>,
    queued: Arc<watch::Sender<usize>>,
    link: Arc<LinkState>,
    counters: Arc<WireCounters>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// Messages written before one flush, when the guest queued several.
    const BATCH: usize = 64;
    loop {
        let Some(first) = outgoing.recv().await else {
            let frame = CloseFrame { code: 1000, reason: String::new() };
            if link.mark_local_close(frame.clone()) {
                let _ = sink.send(wire_close(&frame)).await;
            }
            return;
        };
        let mut batch_bytes = 0;
        let mut next = Some(first);
        let mut written = 0;
        while let Some(item) = next.take() {
            match item {
                Outgoing::Message(message, bytes) => {
                    if sink.feed(message).await.is_err() {
                        return;
                    }
                    batch_bytes += bytes;
                    counters.tx_frames.inc();
                    counters.tx_bytes.inc_by(bytes as u64);
                }
                Outgoing::Close(frame) => {
                    let _ = sink.send(wire_close(&frame)).await;
                    return;
                }
            }
            written += 1;
            if written < BATCH {
                next = outgoing.try_recv().ok();
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
        queued.send_modify(|q| *q = q.saturating_sub(batch_bytes));
    }
}

fn wire_close(frame: &CloseFrame) -> WireMessage {
    WireMessage::Close(Some(WireCloseFrame { code: CloseCode::from(frame.code), reason: frame.reason.clone().into() }))
}
