//! One turn of the agent's speech: the answer as it streams from the LLM, cut into
//! segments (the sentences between two `Flush`es of the speak socket, each followed by a
//! `mark` to Twilio), and the moments that time it.

use switchboard_guest::sse;

use crate::sentences::Splitter;

/// Why the agent speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The greeting on `start` (no LLM).
    Greeting,
    /// An answer from the LLM.
    Reply,
    /// The farewell before hanging up (no LLM).
    Farewell,
}

impl Kind {
    /// The kind's name on markers.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Greeting => "greeting",
            Kind::Reply => "reply",
            Kind::Farewell => "farewell",
        }
    }
}

/// Where the LLM request of a turn is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Llm {
    /// This turn asks no LLM.
    Unused,
    /// Sent; no response head yet.
    Waiting,
    /// A 2xx head came; tokens stream.
    Streaming,
    /// An error status came; its body is being read for the message.
    Refused {
        /// The HTTP status.
        status: u16,
    },
    /// The answer is complete.
    Done,
    /// Failed, or cancelled by a barge-in.
    Over,
}

impl Llm {
    /// The request is still open.
    pub fn open(self) -> bool {
        matches!(self, Llm::Waiting | Llm::Streaming | Llm::Refused { .. })
    }
}

/// Sentences spoken together: one `Flush`, one `mark`.
#[derive(Debug, Clone, Default)]
pub struct Segment {
    /// The sentences, in order.
    pub sentences: Vec<String>,
    /// How many were sent to the speak socket (on the current connection).
    pub sent: usize,
    /// No more sentences join it; it is to be flushed.
    pub closed: bool,
    /// `Flush` was sent on the current connection.
    pub flush_sent: bool,
    /// `Flushed` came: all its audio is in the playback queue, its mark after it.
    pub audio_done: bool,
    /// Twilio echoed its mark: the caller heard it.
    pub echoed: bool,
    /// Audio received for it, bytes.
    pub audio_bytes: u64,
}

impl Segment {
    /// Its text, as heard.
    pub fn text(&self) -> String {
        self.sentences.join(" ")
    }
}

/// A turn of speech.
#[derive(Debug)]
pub struct Turn {
    /// Counts turns in the call, from 0 (the greeting, when there is one).
    pub index: u32,
    /// Why the agent speaks.
    pub kind: Kind,
    /// The LLM request.
    pub llm: Llm,
    /// The server-sent events of the LLM's answer.
    pub events: sse::Parser,
    /// An error answer's body (its start).
    pub error_body: Vec<u8>,
    /// The answer's text not yet in a sentence.
    pub splitter: Splitter,
    /// The segments, in order.
    pub segments: Vec<Segment>,
    /// The model asked to hang up after this answer.
    pub end_call: bool,
    /// The caller interrupted; nothing more of this turn is spoken.
    pub interrupted: bool,
    /// Tokens received.
    pub tokens: u32,
    /// When the caller's last word arrived (replies only), ms.
    pub speech_end_ms: Option<u64>,
    /// When the turn began (the final transcript, the greeting), ms.
    pub began_ms: u64,
    /// The LLM's first token, ms.
    pub first_token_ms: Option<u64>,
    /// The speak socket's first audio, ms.
    pub first_audio_ms: Option<u64>,
    /// The first media message to Twilio, ms.
    pub first_media_ms: Option<u64>,
    /// Twilio's first mark echo, ms.
    pub first_echo_ms: Option<u64>,
    /// When everything was sent and had played, by the playhead (for a missing echo), ms.
    pub quiet_since_ms: Option<u64>,
}

impl Turn {
    /// A turn that speaks `text` (the greeting, the farewell) without the LLM.
    pub fn scripted(index: u32, kind: Kind, text: &str, min_chars: usize, now_ms: u64) -> Turn {
        let mut turn = Turn::new(index, kind, Llm::Unused, min_chars, now_ms);
        let mut sentences = turn.splitter.push(text);
        sentences.extend(turn.splitter.finish());
        // The first sentence goes alone, so speech starts as soon as it is synthesized.
        for (n, sentence) in sentences.into_iter().enumerate() {
            turn.add_sentence(sentence);
            if n == 0
                && let Some(first) = turn.segments.first_mut()
            {
                first.closed = true;
            }
        }
        turn
    }

    /// A turn whose words come from the LLM.
    pub fn new(index: u32, kind: Kind, llm: Llm, min_chars: usize, now_ms: u64) -> Turn {
        Turn {
            index,
            kind,
            llm,
            events: sse::Parser::new(),
            error_body: Vec::new(),
            splitter: Splitter::new(min_chars),
            segments: Vec::new(),
            end_call: false,
            interrupted: false,
            tokens: 0,
            speech_end_ms: None,
            began_ms: now_ms,
            first_token_ms: None,
            first_audio_ms: None,
            first_media_ms: None,
            first_echo_ms: None,
            quiet_since_ms: None,
        }
    }

    /// Adds a sentence to the open segment, or opens one.
    pub fn add_sentence(&mut self, sentence: String) {
        match self.segments.last_mut() {
            Some(segment) if !segment.closed => segment.sentences.push(sentence),
            _ => self.segments.push(Segment { sentences: vec![sentence], ..Segment::default() }),
        }
    }

    /// No more words will come (the LLM is done, failed or unused).
    pub fn words_done(&self) -> bool {
        !self.llm.open()
    }

    /// What the caller heard: the segments whose marks were echoed, in order.
    pub fn heard(&self) -> String {
        self.segments.iter().filter(|segment| segment.echoed).map(Segment::text).collect::<Vec<_>>().join(" ")
    }

    /// Every segment was spoken and heard (or the turn was cut off), and no more will come.
    pub fn finished(&self) -> bool {
        self.words_done() && (self.interrupted || self.segments.iter().all(|segment| segment.echoed))
    }
}
