//! The writer's queue: bounded like `std::sync::mpsc::sync_channel`, but its memory grows
//! with what is queued. A `sync_channel` allocates every slot up front and writes each
//! one's stamp, so the call store's 100,000-marker queue allocated 12 MiB at start and an
//! idle host's resident memory was 9 MiB larger for it, busy or idle.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SendError, TrySendError};
use std::time::Duration;

/// The sending end.
#[derive(Debug)]
pub(super) struct Queue<T> {
    sender: mpsc::Sender<T>,
    queued: Arc<AtomicUsize>,
    capacity: usize,
}

/// The receiving end.
#[derive(Debug)]
pub(super) struct Jobs<T> {
    receiver: mpsc::Receiver<T>,
    queued: Arc<AtomicUsize>,
}

// Not derived: a derive would ask `T: Clone`.
impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue { sender: self.sender.clone(), queued: self.queued.clone(), capacity: self.capacity }
    }
}

/// A queue that holds at most `capacity` items for [`Queue::try_send`].
pub(super) fn bounded<T>(capacity: usize) -> (Queue<T>, Jobs<T>) {
    let (sender, receiver) = mpsc::channel();
    let queued = Arc::new(AtomicUsize::new(0));
    (Queue { sender, queued: queued.clone(), capacity }, Jobs { receiver, queued })
}

impl<T> Queue<T> {
    /// Queues `item` unless `capacity` items are waiting.
    pub(super) fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(TrySendError::Full(item));
        }
        self.enqueue(item).map_err(|SendError(item)| TrySendError::Disconnected(item))
    }

    /// Queues `item` whatever the queue holds (a flush request: one more never matters).
    pub(super) fn send(&self, item: T) -> Result<(), SendError<T>> {
        self.queued.fetch_add(1, Ordering::AcqRel);
        self.enqueue(item)
    }

    /// Sends an item already counted in `queued`.
    fn enqueue(&self, item: T) -> Result<(), SendError<T>> {
        self.sender.send(item).inspect_err(|_| {
            self.queued.fetch_sub(1, Ordering::AcqRel);
        })
    }
}

impl<T> Jobs<T> {
    /// The next item, waiting up to `timeout`.
    pub(super) fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        let item = self.receiver.recv_timeout(timeout)?;
        self.queued.fetch_sub(1, Ordering::AcqRel);
        Ok(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_at_most_its_capacity_and_frees_room_as_items_are_taken() {
        let (queue, jobs) = bounded(2);
        assert!(queue.try_send(1).is_ok());
        assert!(queue.try_send(2).is_ok());
        assert!(matches!(queue.try_send(3), Err(TrySendError::Full(3))));
        // `send` goes in even when full, and counts: taking it frees no room twice.
        assert!(queue.send(9).is_ok());
        assert_eq!(jobs.recv_timeout(Duration::ZERO), Ok(1));
        assert_eq!(jobs.recv_timeout(Duration::ZERO), Ok(2));
        assert_eq!(jobs.recv_timeout(Duration::ZERO), Ok(9));
        assert!(queue.try_send(3).is_ok());
        assert!(queue.try_send(4).is_ok());
        assert!(matches!(queue.try_send(5), Err(TrySendError::Full(5))));
        assert_eq!(jobs.recv_timeout(Duration::ZERO), Ok(3));
        assert_eq!(jobs.recv_timeout(Duration::ZERO), Ok(4));
        assert_eq!(jobs.recv_timeout(Duration::ZERO), Err(RecvTimeoutError::Timeout));
        drop(jobs);
        assert!(matches!(queue.try_send(6), Err(TrySendError::Disconnected(6))));
    }
}
