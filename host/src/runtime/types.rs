//! The concrete types behind this world's WIT resources, and the conversions between the
//! socket layer's values and the WIT's.

use futures_util::FutureExt;
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinHandle;
use wasmtime_wasi_io::poll::Pollable;

use super::bindings::{CloseFrame, ErrorCode, Message};
use crate::ws;

/// The concrete type behind the `websocket.connection` resource: a pumped socket, and for
/// an outbound one, the instance's permit for holding it.
#[derive(Debug)]
pub struct Connection {
    pub(crate) socket: ws::Socket,
    /// Held for its `Drop`: frees one of the instance's `max_outbound_connections`.
    _permit: Option<OwnedSemaphorePermit>,
}

impl Connection {
    /// The caller's socket.
    pub fn inbound(socket: ws::Socket) -> Self {
        Connection { socket, _permit: None }
    }

    /// An outbound socket holding one of the instance's connection permits.
    pub fn outbound(socket: ws::Socket, permit: OwnedSemaphorePermit) -> Self {
        Connection { socket, _permit: Some(permit) }
    }
}

#[wasmtime_wasi_io::async_trait]
impl Pollable for Connection {
    async fn ready(&mut self) {
        self.socket.readable().await;
    }
}

/// The concrete type behind a `writable` pollable.
#[derive(Debug)]
pub struct Writable(pub(crate) ws::WritableSignal);

#[wasmtime_wasi_io::async_trait]
impl Pollable for Writable {
    async fn ready(&mut self) {
        self.0.ready().await;
    }
}

/// The concrete type behind the `outbound.future-connection` resource: a handshake
/// running on its own task. Dropping it abandons the handshake.
#[derive(Debug)]
pub struct FutureConnection {
    state: Handshake,
}

#[derive(Debug)]
enum Handshake {
    Running(JoinHandle<Result<Connection, ErrorCode>>),
    Done(Result<Connection, ErrorCode>),
    Taken,
}

impl FutureConnection {
    /// Wraps the task doing the handshake.
    pub fn new(task: JoinHandle<Result<Connection, ErrorCode>>) -> Self {
        FutureConnection { state: Handshake::Running(task) }
    }

    fn joined(outcome: Result<Result<Connection, ErrorCode>, tokio::task::JoinError>) -> Result<Connection, ErrorCode> {
        outcome.unwrap_or_else(|join_error| Err(ErrorCode::InternalError(Some(format!("the connect task failed: {join_error}")))))
    }

    /// The outcome, once known; see the WIT `get`.
    pub fn take(&mut self) -> Option<Result<Connection, ErrorCode>> {
        if let Handshake::Running(task) = &mut self.state {
            let outcome = task.now_or_never()?;
            self.state = Handshake::Done(Self::joined(outcome));
        }
        match std::mem::replace(&mut self.state, Handshake::Taken) {
            Handshake::Done(outcome) => Some(outcome),
            Handshake::Taken => {
                Some(Err(ErrorCode::InternalError(Some("the connection was already taken from this future-connection".to_owned()))))
            }
            Handshake::Running(_) => None,
        }
    }
}

impl Drop for FutureConnection {
    fn drop(&mut self) {
        if let Handshake::Running(task) = &self.state {
            task.abort();
        }
    }
}

#[wasmtime_wasi_io::async_trait]
impl Pollable for FutureConnection {
    async fn ready(&mut self) {
        if let Handshake::Running(task) = &mut self.state {
            let outcome = task.await;
            self.state = Handshake::Done(Self::joined(outcome));
        }
    }
}

impl From<Message> for ws::Message {
    fn from(message: Message) -> Self {
        match message {
            Message::Text(text) => ws::Message::Text(text),
            Message::Binary(data) => ws::Message::Binary(data),
        }
    }
}

impl From<ws::Message> for Message {
    fn from(message: ws::Message) -> Self {
        match message {
            ws::Message::Text(text) => Message::Text(text),
            ws::Message::Binary(data) => Message::Binary(data),
        }
    }
}

impl From<ws::CloseFrame> for CloseFrame {
    fn from(frame: ws::CloseFrame) -> Self {
        CloseFrame { code: frame.code, reason: frame.reason }
    }
}

impl From<ws::SocketError> for ErrorCode {
    fn from(error: ws::SocketError) -> Self {
        match error {
            ws::SocketError::Closed(frame) => ErrorCode::Closed(frame.into()),
            ws::SocketError::WouldBlock => ErrorCode::WouldBlock,
            ws::SocketError::TooLarge => ErrorCode::MessageTooLarge,
            ws::SocketError::InvalidClose(reason) => ErrorCode::InternalError(Some(reason)),
        }
    }
}
