//! Assembles utterances from Deepgram's final results: the `is_final` pieces up to a
//! `speech_final`, or up to an `UtteranceEnd` when no `speech_final` came.

/// One finished utterance, in call time (seconds since the call's audio began).
#[derive(Debug, Clone, PartialEq)]
pub struct Utterance {
    /// The pieces' transcripts joined by spaces.
    pub text: String,
    /// Start of the first piece.
    pub start: f64,
    /// End of the last piece.
    pub end: f64,
    /// Mean confidence of the pieces.
    pub confidence: f64,
}

/// Collects final pieces until an utterance ends.
#[derive(Debug, Default)]
pub struct UtteranceAssembler {
    pieces: Vec<(String, f64, f64, f64)>,
}

impl UtteranceAssembler {
    /// Adds a final piece (call-time start and end); returns the utterance if
    /// `speech_final` ends it.
    pub fn final_piece(&mut self, text: &str, start: f64, end: f64, confidence: f64, speech_final: bool) -> Option<Utterance> {
        if !text.trim().is_empty() {
            self.pieces.push((text.trim().to_owned(), start, end, confidence));
        }
        if speech_final { self.finish() } else { None }
    }

    /// An `UtteranceEnd` (or the end of the call): whatever is pending is an utterance.
    pub fn finish(&mut self) -> Option<Utterance> {
        if self.pieces.is_empty() {
            return None;
        }
        let pieces = std::mem::take(&mut self.pieces);
        let text = pieces.iter().map(|p| p.0.as_str()).collect::<Vec<_>>().join(" ");
        let confidence = pieces.iter().map(|p| p.3).sum::<f64>() / pieces.len() as f64;
        Some(Utterance { text, start: pieces[0].1, end: pieces[pieces.len() - 1].2, confidence })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speech_final_ends_an_utterance() {
        let mut assembler = UtteranceAssembler::default();
        assert_eq!(assembler.final_piece("This is", 1.0, 1.5, 0.9, false), None);
        let utterance = assembler.final_piece("a test.", 1.5, 2.0, 0.7, true).expect("utterance");
        assert_eq!(utterance.text, "This is a test.");
        assert_eq!((utterance.start, utterance.end), (1.0, 2.0));
        assert!((utterance.confidence - 0.8).abs() < 1e-9);
        assert_eq!(assembler.finish(), None);
    }

    #[test]
    fn utterance_end_flushes_and_empty_pieces_are_skipped() {
        let mut assembler = UtteranceAssembler::default();
        assert_eq!(assembler.final_piece("", 0.0, 1.0, 0.0, true), None, "silence is no utterance");
        assembler.final_piece("hello", 3.0, 3.4, 1.0, false);
        assert_eq!(assembler.finish().map(|u| u.text), Some("hello".to_owned()));
    }
}
