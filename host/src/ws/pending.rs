//! The concrete type behind the `outbound.future-connection` resource.

use futures_util::FutureExt;
use tokio::task::JoinHandle;
use wasmtime_wasi_io::poll::Pollable;

use super::Connection;
use crate::runtime::bindings::ErrorCode;

/// An outbound handshake running on its own task. Dropping it abandons the handshake.
#[derive(Debug)]
pub struct PendingConnection {
    state: State,
}

#[derive(Debug)]
enum State {
    Running(JoinHandle<Result<Connection, ErrorCode>>),
    Done(Result<Connection, ErrorCode>),
    Taken,
}

impl PendingConnection {
    /// Wraps the task doing the handshake.
    pub fn new(task: JoinHandle<Result<Connection, ErrorCode>>) -> Self {
        PendingConnection { state: State::Running(task) }
    }

    /// A connect that failed before any network work.
    pub fn failed(error: ErrorCode) -> Self {
        PendingConnection { state: State::Done(Err(error)) }
    }

    fn joined(outcome: Result<Result<Connection, ErrorCode>, tokio::task::JoinError>) -> Result<Connection, ErrorCode> {
        outcome.unwrap_or_else(|join_error| Err(ErrorCode::InternalError(Some(format!("the connect task failed: {join_error}")))))
    }

    /// The outcome, once known; see the WIT `get`.
    pub fn take(&mut self) -> Option<Result<Connection, ErrorCode>> {
        if let State::Running(task) = &mut self.state {
            let outcome = task.now_or_never()?;
            self.state = State::Done(Self::joined(outcome));
        }
        match std::mem::replace(&mut self.state, State::Taken) {
            State::Done(outcome) => Some(outcome),
            State::Taken => {
                Some(Err(ErrorCode::InternalError(Some("the connection was already taken from this future-connection".to_owned()))))
            }
            State::Running(_) => None,
        }
    }
}

impl Drop for PendingConnection {
    fn drop(&mut self) {
        if let State::Running(task) = &self.state {
            task.abort();
        }
    }
}

#[wasmtime_wasi_io::async_trait]
impl Pollable for PendingConnection {
    async fn ready(&mut self) {
        if let State::Running(task) = &mut self.state {
            let outcome = task.await;
            self.state = State::Done(Self::joined(outcome));
        }
    }
}
