//! The audio frames the bench callers send: 160 bytes of mu-law (20 ms) whose first 16
//! bytes carry the call, the frame's sequence number and its send time, so the fake
//! Deepgram can time each frame's trip and count what arrived without a shared table.
//!
//! The systems under test may split and join frames into binary messages as they like, so
//! the receiver cuts frames from each connection's byte stream.

use std::sync::OnceLock;
use std::time::Instant;

/// Bytes of audio per Twilio media message.
pub const FRAME_BYTES: usize = 160;

/// Mu-law silence, the rest of each frame.
const FILLER: u8 = 0xFF;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The call's index in its run.
    pub call: u32,
    /// The frame's number within the call, from 0.
    pub seq: u32,
    /// When the caller sent it, nanoseconds on [`now_ns`]'s clock.
    pub sent_ns: u64,
}

impl Stamp {
    /// The frame carrying this stamp.
    pub fn frame(&self) -> [u8; FRAME_BYTES] {
        let mut frame = [FILLER; FRAME_BYTES];
        frame[0..4].copy_from_slice(&self.call.to_le_bytes());
        frame[4..8].copy_from_slice(&self.seq.to_le_bytes());
        frame[8..16].copy_from_slice(&self.sent_ns.to_le_bytes());
        frame
    }

    /// The stamp at the start of `chunk`, if it is long enough to hold one.
    pub fn read(chunk: &[u8]) -> Option<Stamp> {
        let field = |range: std::ops::Range<usize>| chunk.get(range);
        Some(Stamp {
            call: u32::from_le_bytes(field(0..4)?.try_into().ok()?),
            seq: u32::from_le_bytes(field(4..8)?.try_into().ok()?),
            sent_ns: u64::from_le_bytes(field(8..16)?.try_into().ok()?),
        })
    }
}

/// Nanoseconds since the process's first call: the one clock callers and the fake
/// Deepgram share (they run in the same process).
pub fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_survives_its_frame() {
        let stamp = Stamp { call: 1234, seq: 99_999, sent_ns: 0x0102_0304_0506_0708 };
        let frame = stamp.frame();
        assert_eq!(Stamp::read(&frame), Some(stamp));
        assert!(frame[16..].iter().all(|&b| b == FILLER));
    }

    #[test]
    fn a_short_chunk_has_no_stamp() {
        assert_eq!(Stamp::read(&[0; 15]), None);
    }

    #[test]
    fn the_clock_moves_forward() {
        let a = now_ns();
        let b = now_ns();
        assert!(b >= a);
    }
}
