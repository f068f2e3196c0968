//! The agent's speech on its way to Twilio: audio cut into 20 ms `media` frames, sent no
//! further ahead of real time than a small lead, with a `mark` after each segment.
//!
//! Twilio buffers outbound audio and plays it in order, so audio sent early is audio that
//! a `clear` must take back. Keeping the lead small (the default is 100 ms) means
//! barge-in stops the speech within that lead, and after a `clear` nothing queued here
//! is sent at all. The playhead is the wall-clock moment when everything sent so far will
//! have played; a frame may go when the playhead is less than `lead_ms` ahead of now.

use std::collections::VecDeque;

/// Mu-law at 8 kHz: 8 bytes a millisecond.
pub const BYTES_PER_MS: usize = 8;
/// A Twilio media frame: 20 ms.
pub const FRAME_BYTES: usize = 160;

/// What is next for Twilio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// A frame of audio (a short one only at a segment's end).
    Media(Vec<u8>),
    /// A mark after the audio before it.
    Mark(String),
}

#[derive(Debug)]
enum Item {
    Frame(Vec<u8>),
    Mark(String),
}

/// The paced queue.
#[derive(Debug)]
pub struct Playback {
    lead_ms: u64,
    queue: VecDeque<Item>,
    partial: Vec<u8>,
    playhead_ms: u64,
    sent_bytes: u64,
}

/// How long `bytes` of audio play, in ms (rounded up).
pub fn audio_ms(bytes: usize) -> u64 {
    bytes.div_ceil(BYTES_PER_MS) as u64
}

impl Playback {
    /// An empty queue that runs at most `lead_ms` ahead of playback.
    pub fn new(lead_ms: u64) -> Self {
        Playback { lead_ms, queue: VecDeque::new(), partial: Vec::new(), playhead_ms: 0, sent_bytes: 0 }
    }

    /// Adds speech audio.
    pub fn push_audio(&mut self, mut bytes: &[u8]) {
        if !self.partial.is_empty() {
            let take = (FRAME_BYTES - self.partial.len()).min(bytes.len());
            self.partial.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.partial.len() == FRAME_BYTES {
                self.queue.push_back(Item::Frame(std::mem::take(&mut self.partial)));
            }
        }
        let mut frames = bytes.chunks_exact(FRAME_BYTES);
        for frame in frames.by_ref() {
            self.queue.push_back(Item::Frame(frame.to_vec()));
        }
        self.partial.extend_from_slice(frames.remainder());
    }

    /// Ends a segment: its last short frame, then `mark`.
    pub fn end_segment(&mut self, mark: String) {
        if !self.partial.is_empty() {
            self.queue.push_back(Item::Frame(std::mem::take(&mut self.partial)));
        }
        self.queue.push_back(Item::Mark(mark));
    }

    /// The next message for Twilio, if its time has come.
    pub fn next(&mut self, now_ms: u64) -> Option<Out> {
        match self.queue.front()? {
            Item::Mark(_) => {
                let Some(Item::Mark(name)) = self.queue.pop_front() else { unreachable!("front was a mark") };
                Some(Out::Mark(name))
            }
            Item::Frame(frame) => {
                if self.due_ms(frame.len(), now_ms) > now_ms {
                    return None;
                }
                let Some(Item::Frame(frame)) = self.queue.pop_front() else { unreachable!("front was a frame") };
                self.playhead_ms = self.playhead_ms.max(now_ms) + audio_ms(frame.len());
                self.sent_bytes += frame.len() as u64;
                Some(Out::Media(frame))
            }
        }
    }

    /// When [`Playback::next`] will have something (`None`: nothing queued).
    pub fn next_due(&self, now_ms: u64) -> Option<u64> {
        match self.queue.front()? {
            Item::Mark(_) => Some(now_ms),
            Item::Frame(frame) => Some(self.due_ms(frame.len(), now_ms)),
        }
    }

    fn due_ms(&self, frame_len: usize, now_ms: u64) -> u64 {
        // Sending at t puts the playhead at max(playhead, t) + frame, allowed while that
        // is within the lead of t (a lead shorter than a frame still lets one frame go).
        let frame_ms = audio_ms(frame_len);
        let lead = self.lead_ms.max(frame_ms);
        (self.playhead_ms + frame_ms).saturating_sub(lead).max(now_ms)
    }

    /// Drops everything not yet sent (barge-in); returns the audio dropped, in bytes. The
    /// playhead comes back to now: Twilio's own queue is emptied by the `clear`.
    pub fn clear(&mut self, now_ms: u64) -> u64 {
        let dropped =
            self.partial.len() + self.queue.iter().map(|item| if let Item::Frame(frame) = item { frame.len() } else { 0 }).sum::<usize>();
        self.queue.clear();
        self.partial.clear();
        self.playhead_ms = now_ms;
        dropped as u64
    }

    /// Nothing queued and everything sent has played by `now_ms`.
    pub fn is_quiet(&self, now_ms: u64) -> bool {
        self.queue.is_empty() && self.partial.is_empty() && self.playhead_ms <= now_ms
    }

    /// Nothing left to send (what was sent may still be playing).
    pub fn is_drained(&self) -> bool {
        self.queue.is_empty() && self.partial.is_empty()
    }

    /// When everything sent so far will have played, ms.
    pub fn playhead_ms(&self) -> u64 {
        self.playhead_ms
    }

    /// Audio sent so far, in bytes.
    pub fn sent_bytes(&self) -> u64 {
        self.sent_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the queue from `start` in 1 ms steps until it is empty; (time, message) pairs.
    fn drain(playback: &mut Playback, start: u64) -> Vec<(u64, Out)> {
        let mut out = Vec::new();
        let mut now = start;
        while let Some(due) = playback.next_due(now) {
            now = due;
            while let Some(message) = playback.next(now) {
                out.push((now, message));
            }
        }
        out
    }

    #[test]
    fn frames_are_20_ms_and_paced_to_real_time_within_the_lead() {
        let mut playback = Playback::new(100);
        playback.push_audio(&[7; 1000]);
        playback.push_audio(&[8; 300]);
        playback.end_segment("s1".into());
        let out = drain(&mut playback, 1_000);
        let frames: Vec<(u64, usize)> =
            out.iter().filter_map(|(at, message)| if let Out::Media(frame) = message { Some((*at, frame.len())) } else { None }).collect();
        assert_eq!(frames.iter().map(|(_, len)| len).sum::<usize>(), 1300);
        assert!(frames[..frames.len() - 1].iter().all(|(_, len)| *len == FRAME_BYTES), "{frames:?}");
        assert_eq!(frames.last().expect("frames").1, 1300 % FRAME_BYTES);
        // The first five frames (100 ms) go at once; then one every 20 ms.
        assert!(frames[..5].iter().all(|(at, _)| *at == 1_000), "{frames:?}");
        assert_eq!(frames[5].0, 1_020);
        assert_eq!(frames[6].0, 1_040);
        // The mark follows the segment's last frame at once.
        assert_eq!(out.last(), Some(&(frames.last().expect("frames").0, Out::Mark("s1".into()))));
        // Never more than the lead ahead: sent audio - elapsed <= 100 ms.
        let mut sent_ms = 0;
        for (at, len) in &frames {
            sent_ms += audio_ms(*len);
            assert!(sent_ms <= at - 1_000 + 100, "{sent_ms} ms sent by {at}");
        }
        assert!(!playback.is_quiet(1_100) && playback.is_drained() && playback.is_quiet(2_000));
    }

    #[test]
    fn a_gap_in_audio_restarts_the_pace_from_now() {
        let mut playback = Playback::new(40);
        playback.push_audio(&[0; 320]);
        assert_eq!(drain(&mut playback, 0).len(), 2);
        playback.push_audio(&[0; 480]);
        let out = drain(&mut playback, 5_000);
        let times: Vec<u64> = out.iter().map(|(at, _)| *at).collect();
        assert_eq!(times, vec![5_000, 5_000, 5_020]);
        assert_eq!(playback.sent_bytes(), 800);
    }

    #[test]
    fn clear_drops_what_was_not_sent() {
        let mut playback = Playback::new(20);
        playback.push_audio(&[1; 800]);
        playback.push_audio(&[1; 10]);
        playback.end_segment("s1".into());
        assert!(matches!(playback.next(0), Some(Out::Media(_))));
        assert_eq!(playback.next(0), None, "one frame of lead");
        assert_eq!(playback.clear(5), 650);
        assert_eq!(playback.next_due(5), None);
        assert!(playback.is_quiet(5));
        // After a clear the pace starts again at once.
        playback.push_audio(&[2; 160]);
        assert!(matches!(playback.next(5), Some(Out::Media(_))));
    }
}
