//! Waiting helpers over `wasi:io/poll` and `wasi:clocks`.

use crate::bindings::wasi::clocks::monotonic_clock;
use crate::bindings::wasi::io::poll::{self, Pollable};
use crate::outbound::FutureConnection;
use crate::{Connection, ErrorCode};

/// Blocks until at least one pollable is ready; returns the indexes of the ready ones.
pub fn wait_any(pollables: &[&Pollable]) -> Vec<u32> {
    poll::poll(pollables)
}

/// A pollable that becomes ready after `millis` milliseconds.
pub fn timer_ms(millis: u64) -> Pollable {
    monotonic_clock::subscribe_duration(millis.saturating_mul(1_000_000))
}

/// Milliseconds on the monotonic clock; only differences are meaningful.
pub fn now_ms() -> u64 {
    monotonic_clock::now() / 1_000_000
}

/// Waits for an outbound handshake to finish and returns its outcome.
pub fn finish_connect(future: &FutureConnection) -> Result<Connection, ErrorCode> {
    loop {
        if let Some(outcome) = future.get() {
            return outcome;
        }
        let ready = future.subscribe();
        ready.block();
    }
}

/// Sends `message`, waiting on `writable` while the queue is full.
pub fn send_blocking(connection: &Connection, message: &crate::Message) -> Result<(), ErrorCode> {
    loop {
        match connection.send(message) {
            Err(ErrorCode::WouldBlock) => connection.writable().block(),
            other => return other,
        }
    }
}
