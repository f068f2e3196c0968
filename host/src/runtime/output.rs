//! A guest's stdout and stderr, streamed to the host's log line by line while the call
//! runs (target `switchboard::guest`, with the call id and the stream).
//!
//! Writes never fail: whatever the guest prints is accepted, so `print!` cannot trap a
//! call. What reaches the log is bounded twice: a per-call byte cap (`log_bytes`) and a
//! rate (`log_bytes_per_second`, after a burst of [`BURST_BYTES`]). Lines past either are
//! counted and dropped; the call's `guest.output` marker states both counts.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::observe::timeline::CallId;

/// Bytes the rate limit lets through at once before the per-second rate applies.
pub const BURST_BYTES: usize = 64 * 1024;
/// A line longer than this is logged in pieces of this size.
pub const MAX_LINE_BYTES: usize = 4 * 1024;
/// What `check-write` offers the guest per write.
const WRITE_PERMIT: usize = 64 * 1024;

/// What a call's output came to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutputTotals {
    /// Bytes written to the log.
    pub logged: u64,
    /// Bytes dropped by the cap or the rate limit.
    pub dropped: u64,
}

/// The log of one call's guest output, shared by its stdout and stderr.
#[derive(Debug, Clone)]
pub struct OutputLog {
    inner: Arc<Mutex<LogState>>,
}

#[derive(Debug)]
struct LogState {
    call: CallId,
    cap: u64,
    rate: f64,
    tokens: f64,
    refilled: Instant,
    totals: OutputTotals,
    /// Partial lines, per stream.
    pending: [Vec<u8>; 2],
}

/// Which stream a write came on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// `wasi:cli/stdout`.
    Stdout,
    /// `wasi:cli/stderr`.
    Stderr,
}

impl Stream {
    fn index(self) -> usize {
        self as usize
    }

    fn label(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

impl OutputLog {
    /// A log for `call` that keeps at most `cap` bytes, at `rate` bytes a second after the burst.
    pub fn new(call: CallId, cap: usize, rate: usize) -> Self {
        OutputLog {
            inner: Arc::new(Mutex::new(LogState {
                call,
                cap: cap as u64,
                rate: rate.max(1) as f64,
                tokens: BURST_BYTES as f64,
                refilled: Instant::now(),
                totals: OutputTotals::default(),
                pending: [Vec::new(), Vec::new()],
            })),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, LogState> {
        // Every update leaves the state consistent, so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The guest-facing stream for `stream`.
    pub fn stream(&self, stream: Stream) -> GuestOutput {
        GuestOutput { log: self.clone(), stream }
    }

    /// Takes bytes the guest wrote on `stream`.
    pub fn write(&self, stream: Stream, bytes: &[u8]) {
        let mut state = self.state();
        for piece in bytes.split_inclusive(|b| *b == b'\n') {
            let mut rest = piece;
            while !rest.is_empty() {
                let buffer = &mut state.pending[stream.index()];
                let room = MAX_LINE_BYTES - buffer.len();
                let (take, after) = rest.split_at(rest.len().min(room));
                buffer.extend_from_slice(take);
                rest = after;
                let full = buffer.len() >= MAX_LINE_BYTES || buffer.last() == Some(&b'\n');
                if full {
                    let line = std::mem::take(&mut state.pending[stream.index()]);
                    state.emit(stream, &line);
                }
            }
        }
    }

    /// Logs what is left of partial lines and returns the totals (at the end of the call).
    pub fn finish(&self) -> OutputTotals {
        let mut state = self.state();
        for stream in [Stream::Stdout, Stream::Stderr] {
            let line = std::mem::take(&mut state.pending[stream.index()]);
            if !line.is_empty() {
                state.emit(stream, &line);
            }
        }
        state.totals
    }
}

impl LogState {
    fn emit(&mut self, stream: Stream, line: &[u8]) {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.refilled).as_secs_f64() * self.rate).min(BURST_BYTES as f64);
        self.refilled = now;
        let size = line.len() as u64;
        if self.totals.logged + size > self.cap || self.tokens < size as f64 {
            self.totals.dropped += size;
            return;
        }
        self.tokens -= size as f64;
        self.totals.logged += size;
        let text = String::from_utf8_lossy(line);
        tracing::info!(target: "switchboard::guest", call = %self.call, stream = stream.label(), "{}", text.trim_end_matches(['\n', '\r']));
    }
}

/// The concrete type behind the guest's `wasi:cli` stdout and stderr output streams.
#[derive(Debug, Clone)]
pub struct GuestOutput {
    log: OutputLog,
    stream: Stream,
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.log.write(self.stream, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for GuestOutput {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, bytes: &[u8]) -> Poll<std::io::Result<usize>> {
        self.log.write(self.stream, bytes);
        Poll::Ready(Ok(bytes.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_capped_and_counted() {
        let log = OutputLog::new(CallId(1), 10_000, 1 << 20);
        log.write(Stream::Stdout, b"hello\nwor");
        log.write(Stream::Stdout, b"ld\n");
        log.write(Stream::Stderr, &vec![b'x'; MAX_LINE_BYTES * 3]);
        let totals = log.finish();
        // 6 + 6 bytes of lines, then two whole 4 KiB pieces fit the cap and the third not.
        assert_eq!(totals.logged, 12 + 2 * MAX_LINE_BYTES as u64);
        assert_eq!(totals.dropped, MAX_LINE_BYTES as u64);
    }

    #[test]
    fn the_rate_limit_drops_past_the_burst() {
        let log = OutputLog::new(CallId(2), 1 << 30, 1);
        let line = vec![b'y'; 1_000];
        for _ in 0..100 {
            log.write(Stream::Stdout, &line);
            log.write(Stream::Stdout, b"\n");
        }
        let totals = log.finish();
        assert!(totals.logged <= BURST_BYTES as u64 + 1_001, "{totals:?}");
        assert_eq!(totals.logged + totals.dropped, 100 * 1_001);
    }
}
