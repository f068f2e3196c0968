//! The audio ledger: what the caller sent, what Deepgram has confirmed, and the bounded
//! replay buffer in between, so that after a reconnect Deepgram hears exactly the audio it
//! had not finalized.
//!
//! Offsets count bytes of caller audio since the call began (mu-law, 8 bytes per ms).
//! Deepgram confirms audio through final results (`start + duration` seconds into its
//! stream); everything after that point is kept, up to the buffer's size, and replayed on
//! the next connection. What overflows the buffer is counted to the byte.

use std::collections::VecDeque;

use crate::settings::BYTES_PER_MS;

/// Caller audio, from receipt to confirmation.
#[derive(Debug)]
pub struct AudioLedger {
    /// Bytes kept for replay: offsets `buffer_start .. received`.
    buffer: VecDeque<u8>,
    buffer_start: u64,
    capacity: usize,
    /// Total caller audio received.
    received: u64,
    /// Audio handed to the current connection, up to this offset.
    sent: u64,
    /// Audio Deepgram has finalized, up to this offset.
    confirmed: u64,
    /// Where the current Deepgram stream's time zero lies in the caller's audio.
    session_start: u64,
    /// Audio that overflowed the buffer before it was confirmed: lost if replay was needed.
    overflowed: u64,
    /// Audio replayed after reconnects (sent twice).
    replayed: u64,
}

impl AudioLedger {
    /// A ledger whose replay buffer holds `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        AudioLedger {
            buffer: VecDeque::new(),
            buffer_start: 0,
            capacity: capacity.max(1),
            received: 0,
            sent: 0,
            confirmed: 0,
            session_start: 0,
            overflowed: 0,
            replayed: 0,
        }
    }

    /// Records caller audio. Returns the bytes that overflowed the buffer unconfirmed.
    pub fn push(&mut self, audio: &[u8]) -> u64 {
        self.buffer.extend(audio);
        self.received += audio.len() as u64;
        let excess = self.buffer.len().saturating_sub(self.capacity);
        if excess == 0 {
            return 0;
        }
        self.buffer.drain(..excess);
        self.buffer_start += excess as u64;
        // Only bytes past the confirmed point are a loss (confirmed ones needed no replay).
        let lost = self.buffer_start.saturating_sub(self.confirmed.max(self.buffer_start - excess as u64));
        self.overflowed += lost;
        if self.sent < self.buffer_start {
            // Never sent and no longer held: skip them.
            self.sent = self.buffer_start;
        }
        lost
    }

    /// The next frame to send: up to `max` unsent bytes, only once at least `min` are
    /// waiting (use `min = 1` to flush). Marks them sent.
    pub fn next_frame(&mut self, min: usize, max: usize) -> Option<Vec<u8>> {
        let unsent = (self.received - self.sent) as usize;
        if unsent == 0 || unsent < min.max(1) {
            return None;
        }
        let take = unsent.min(max.max(1));
        let from = (self.sent - self.buffer_start) as usize;
        let frame: Vec<u8> = self.buffer.range(from..from + take).copied().collect();
        self.sent += take as u64;
        Some(frame)
    }

    /// Deepgram finalized its stream up to `seconds` (relative to the current session).
    pub fn confirm(&mut self, seconds: f64) {
        if !seconds.is_finite() || seconds <= 0.0 {
            return;
        }
        let bytes = (seconds * 1000.0 * BYTES_PER_MS as f64).round() as u64;
        let offset = (self.session_start + bytes).min(self.sent);
        if offset > self.confirmed {
            self.confirmed = offset;
            // Confirmed audio needs no replay.
            let drop = (self.confirmed.saturating_sub(self.buffer_start) as usize).min(self.buffer.len());
            self.buffer.drain(..drop);
            self.buffer_start += drop as u64;
        }
    }

    /// A new Deepgram stream starts: everything not confirmed and still held is sent
    /// again, and the new stream's time zero is where the replay begins. Returns the bytes
    /// that will be replayed and the bytes of unconfirmed audio that are gone.
    pub fn restart_session(&mut self) -> (u64, u64) {
        let replay_from = self.buffer_start.max(self.confirmed);
        let gone = replay_from.saturating_sub(self.confirmed);
        let replay = self.sent.saturating_sub(replay_from);
        self.replayed += replay;
        self.sent = replay_from;
        self.session_start = replay_from;
        self.confirmed = replay_from;
        (replay, gone)
    }

    /// Seconds to add to the current stream's timestamps to get call time.
    pub fn session_offset_seconds(&self) -> f64 {
        self.session_start as f64 / (1000.0 * BYTES_PER_MS as f64)
    }

    /// Caller audio received.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Audio sent on the current connection, as an offset.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Audio finalized by Deepgram, as an offset.
    pub fn confirmed(&self) -> u64 {
        self.confirmed
    }

    /// Audio received but not yet sent.
    pub fn unsent(&self) -> u64 {
        self.received - self.sent
    }

    /// Unconfirmed audio that overflowed the buffer.
    pub fn overflowed(&self) -> u64 {
        self.overflowed
    }

    /// Audio sent twice because of reconnects.
    pub fn replayed(&self) -> u64 {
        self.replayed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(range: std::ops::Range<u32>) -> Vec<u8> {
        range.map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn frames_wait_for_a_full_batch_unless_flushed() {
        let mut ledger = AudioLedger::new(10_000);
        ledger.push(&bytes(0..300));
        assert_eq!(ledger.next_frame(320, 320), None);
        ledger.push(&bytes(300..700));
        assert_eq!(ledger.next_frame(320, 320), Some(bytes(0..320)));
        assert_eq!(ledger.next_frame(320, 320), Some(bytes(320..640)));
        assert_eq!(ledger.next_frame(320, 320), None);
        assert_eq!(ledger.next_frame(1, 320), Some(bytes(640..700)));
        assert_eq!(ledger.next_frame(1, 320), None, "never an empty frame");
    }

    #[test]
    fn a_reconnect_replays_exactly_the_unconfirmed_audio() {
        let mut ledger = AudioLedger::new(100_000);
        ledger.push(&bytes(0..16_000)); // 2 s
        while ledger.next_frame(1, 800).is_some() {}
        ledger.confirm(1.0); // Deepgram finalized the first second
        assert_eq!(ledger.confirmed(), 8_000);
        ledger.push(&bytes(16_000..17_000)); // arrives while disconnected
        let (replay, gone) = ledger.restart_session();
        assert_eq!((replay, gone), (8_000, 0));
        assert!((ledger.session_offset_seconds() - 1.0).abs() < 1e-9);
        let mut resent = Vec::new();
        while let Some(frame) = ledger.next_frame(1, 800) {
            resent.extend(frame);
        }
        assert_eq!(resent, bytes(8_000..17_000), "the unconfirmed second, then the new audio");
        // Times in the new session are offset: 0.5 s in the new stream = 1.5 s of the call.
        ledger.confirm(0.5);
        assert_eq!(ledger.confirmed(), 12_000);
    }

    #[test]
    fn overflow_is_counted_to_the_byte() {
        let mut ledger = AudioLedger::new(1_000);
        ledger.push(&bytes(0..800));
        while ledger.next_frame(1, 800).is_some() {}
        assert_eq!(ledger.push(&bytes(800..1_500)), 500, "500 unconfirmed bytes pushed out");
        assert_eq!(ledger.overflowed(), 500);
        let (replay, gone) = ledger.restart_session();
        assert_eq!(gone, 500);
        assert_eq!(replay, 300, "bytes 500..800 were sent and are still held");
        let mut resent = Vec::new();
        while let Some(frame) = ledger.next_frame(1, 4_000) {
            resent.extend(frame);
        }
        assert_eq!(resent, bytes(500..1_500));
    }

    #[test]
    fn confirmed_audio_is_not_an_overflow() {
        let mut ledger = AudioLedger::new(1_000);
        ledger.push(&bytes(0..1_000));
        while ledger.next_frame(1, 1_000).is_some() {}
        ledger.confirm(0.125); // all 1000 bytes
        assert_eq!(ledger.push(&bytes(1_000..2_000)), 0);
        assert_eq!(ledger.overflowed(), 0);
    }
}
