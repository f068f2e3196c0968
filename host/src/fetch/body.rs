//! The two bodies of an exchange: the guest's request body, counted and capped, and the
//! server's response body, capped, with a deadline between bytes, reporting how it ended.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::error::FetchError;
use super::pool::KeepAlive;

/// A request body that fails once more than `cap` bytes have passed through it.
pub struct RequestBody<B> {
    inner: B,
    cap: u64,
    sent: Arc<AtomicU64>,
}

impl<B> RequestBody<B> {
    /// Wraps `inner`; `sent` counts the bytes that passed.
    pub fn new(inner: B, cap: u64, sent: Arc<AtomicU64>) -> Self {
        RequestBody { inner, cap, sent }
    }
}

impl<B> Body for RequestBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    type Data = Bytes;
    type Error = FetchError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, FetchError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let total = self.sent.fetch_add(data.len() as u64, Ordering::Relaxed) + data.len() as u64;
                    if total > self.cap {
                        return Poll::Ready(Some(Err(FetchError::RequestBodyTooLarge(self.cap))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(FetchError::RequestBody(error.to_string())))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// How a response body ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyEnd {
    /// Read to its end.
    Finished {
        /// Body bytes delivered.
        received: u64,
    },
    /// Failed (a deadline, the cap, the connection); the bytes before it were delivered.
    Failed {
        /// Body bytes delivered.
        received: u64,
        /// Why.
        error: FetchError,
    },
    /// Dropped by its reader before the end.
    Dropped {
        /// Body bytes delivered.
        received: u64,
    },
}

/// What is told how the body ended, once.
pub type OnEnd = Box<dyn FnOnce(BodyEnd) + Send>;

/// A response body as the guest reads it.
pub struct ResponseBody {
    inner: Option<hyper::body::Incoming>,
    between_bytes: Duration,
    silence: Pin<Box<Sleep>>,
    cap: u64,
    received: u64,
    /// The error to give after the part of a frame that fitted under the cap.
    cut: Option<FetchError>,
    keep_alive: Option<KeepAlive>,
    on_end: Option<OnEnd>,
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody").field("received", &self.received).field("cap", &self.cap).finish_non_exhaustive()
    }
}

impl ResponseBody {
    pub(crate) fn new(inner: hyper::body::Incoming, between_bytes: Duration, cap: u64, keep_alive: KeepAlive) -> Self {
        ResponseBody {
            inner: Some(inner),
            between_bytes,
            silence: Box::pin(tokio::time::sleep(between_bytes)),
            cap,
            received: 0,
            cut: None,
            keep_alive: Some(keep_alive),
            on_end: None,
        }
    }

    /// Sets what is told how the body ended (replacing any earlier).
    pub fn on_end(&mut self, on_end: OnEnd) {
        self.on_end = Some(on_end);
    }

    fn end(&mut self, end: BodyEnd) {
        if let Some(on_end) = self.on_end.take() {
            on_end(end);
        }
    }

    fn fail(&mut self, error: FetchError) -> Poll<Option<Result<Frame<Bytes>, FetchError>>> {
        // The connection is in an unknown state: it is closed, not kept.
        self.inner = None;
        self.keep_alive = None;
        self.end(BodyEnd::Failed { received: self.received, error: error.clone() });
        Poll::Ready(Some(Err(error)))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = FetchError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, FetchError>>> {
        let this = &mut *self;
        if let Some(error) = this.cut.take() {
            return this.fail(error);
        }
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.inner = None;
                if let Some(keep_alive) = this.keep_alive.take() {
                    keep_alive.give_back();
                }
                this.end(BodyEnd::Finished { received: this.received });
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(frame))) => {
                this.silence.as_mut().reset(Instant::now() + this.between_bytes);
                let frame = match frame.into_data() {
                    Ok(mut data) => {
                        let room = this.cap - this.received;
                        if data.len() as u64 > room {
                            if room == 0 {
                                return this.fail(FetchError::ResponseBodyTooLarge(this.cap));
                            }
                            data.truncate(room as usize);
                            this.cut = Some(FetchError::ResponseBodyTooLarge(this.cap));
                        }
                        this.received += data.len() as u64;
                        Frame::data(data)
                    }
                    Err(frame) => frame,
                };
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => this.fail(FetchError::from_hyper(&error)),
            Poll::Pending => match this.silence.as_mut().poll(cx) {
                Poll::Ready(()) => this.fail(FetchError::BetweenBytesTimeout(this.between_bytes)),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.cut.is_none() && self.inner.as_ref().is_none_or(|inner| inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Some(inner) => {
                let hint = inner.size_hint();
                let mut capped = SizeHint::new();
                capped.set_lower(hint.lower().min(self.cap));
                if let Some(upper) = hint.upper() {
                    capped.set_upper(upper.min(self.cap));
                }
                capped
            }
            None => SizeHint::with_exact(0),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if self.on_end.is_some() {
            let received = self.received;
            self.end(BodyEnd::Dropped { received });
        }
    }
}
