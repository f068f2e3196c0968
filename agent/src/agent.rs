//! The voice agent as a state machine with no I/O: Twilio, the two Deepgram sockets and
//! the LLM's streamed answer go in, [`Action`]s come out. The wasm glue in `guest.rs`
//! only moves bytes, so every rule here is tested natively.
//!
//! - **Listen** is the voice pipeline's state machine, embedded unchanged: Deepgram live
//!   STT with KeepAlive, pacing, and reconnect with replay. Its final utterance ends the
//!   caller's turn.
//! - **Think**: the conversation so far goes to the chat-completions endpoint with
//!   `"stream": true`; tokens are cut into sentences as they arrive.
//! - **Speak**: each sentence goes to Deepgram's speak socket as it completes; sentences
//!   are flushed in segments (the first at once, the rest while the previous is being
//!   synthesized, at most `max_flushes_per_minute`), and a segment's audio goes to Twilio
//!   in paced 20 ms frames followed by a `mark`.
//! - **Barge-in**: caller speech while the agent speaks sends Twilio `clear`, the speak
//!   socket `Clear`, cancels the LLM and drops queued audio; audio of the old text that
//!   still arrives before `Cleared` is dropped. The assistant's line in the history is
//!   what the caller heard: the segments whose marks Twilio echoed before the `clear`.
//! - **Telephony**: keypad digits become a line of the conversation; a hang-up phrase or
//!   the model's `end_call` tool ends the call after the last words were heard, through
//!   Twilio's REST API when configured.

mod turn;

use std::collections::VecDeque;

use switchboard_guest::{Impact, Value};
use switchboard_voice::backoff::Backoff;
use switchboard_voice::pipeline::{Action as Listen, ConnectFailure, Heard, Pipeline};
use switchboard_voice::speak::{self, SpeakMessage};
use switchboard_voice::twilio::{self, TwilioEvent};

use crate::chat::{self, Ask, Delta, Line, Role};
use crate::playback::{self, Out, Playback};
use crate::settings::{AgentSettings, BargeIn, normalize};
use turn::{Kind, Llm, Turn};

pub use switchboard_voice::pipeline::{DEEPGRAM_LEG as LISTEN_LEG, TWILIO_LEG};

/// The leg of Deepgram's speak socket.
pub const SPEAK_LEG: &str = "deepgram-speak";
/// The leg of the LLM's requests.
pub const LLM_LEG: &str = "llm";
/// The leg of Twilio's REST API.
pub const TWILIO_REST_LEG: &str = "twilio-rest";

/// An error answer's body is kept up to this size for its message.
const MAX_ERROR_BODY: usize = 4_096;
/// A speak socket that owes audio and sends nothing for this long is reconnected, ms.
const SPEAK_STALL_MS: u64 = 10_000;
/// A speak socket that does not answer `Clear` within this long is reconnected (a new
/// socket owes no audio of the old text), ms.
const CLEAR_WAIT_MS: u64 = 2_000;
/// Twilio's mark echo is waited for this long after the audio should have played, ms.
const ECHO_GRACE_MS: u64 = 5_000;
/// Twilio's REST answer is waited for this long before the stream is closed anyway, ms.
const REST_WAIT_MS: u64 = 5_000;
/// The window of the flush budget, ms.
const FLUSH_WINDOW_MS: u64 = 60_000;
/// Audio-to-wall-clock samples are kept this long, ms.
const AUDIO_CLOCK_MS: u64 = 120_000;

/// One of the agent's outbound sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Socket {
    /// Deepgram live speech-to-text.
    Listen,
    /// Deepgram text-to-speech.
    Speak,
}

/// Something the glue must do.
#[derive(Debug, Clone)]
pub enum Action {
    /// Open a socket.
    Connect {
        /// Which.
        socket: Socket,
        /// The full URL.
        url: String,
    },
    /// Send a text message on a socket.
    SendText {
        /// Which.
        socket: Socket,
        /// The message.
        text: String,
    },
    /// Send caller audio to the listen socket.
    SendAudio(Vec<u8>),
    /// Close a socket (1000).
    Close(Socket),
    /// Send a text message to Twilio.
    ToTwilio(String),
    /// Start the LLM request (`POST`, JSON, streamed answer), on the [`LLM_LEG`].
    Ask {
        /// The chat-completions URL.
        url: String,
        /// The JSON body.
        body: String,
        /// Time allowed to the response head, ms.
        first_byte_timeout_ms: u64,
        /// Silence allowed inside the answer, ms.
        between_bytes_timeout_ms: u64,
    },
    /// Drop the LLM request and its answer.
    CancelAsk,
    /// A form-encoded `POST` on `leg` (Twilio's REST API).
    Post {
        /// The URL.
        url: String,
        /// `application/x-www-form-urlencoded` body.
        body: String,
        /// The leg it belongs to.
        leg: &'static str,
    },
    /// Record a marker on the call's timeline.
    Mark {
        /// Marker name.
        name: String,
        /// Attributes.
        attributes: Vec<(String, Value)>,
    },
    /// Report a fault on a leg.
    Fault {
        /// The leg.
        leg: &'static str,
        /// What it did to the call.
        impact: Impact,
        /// A short label.
        cause: &'static str,
        /// The sentence operators read first.
        detail: String,
    },
    /// Say a leg has done its part.
    Complete(&'static str),
    /// Record a name the call is known by elsewhere.
    Identify {
        /// Whose name it is.
        kind: &'static str,
        /// The name.
        value: String,
    },
    /// Add a line to the call's transcript.
    Transcript {
        /// `caller` or `agent`.
        speaker: &'static str,
        /// What was said (for the agent: what the caller heard).
        text: String,
        /// Where it starts in the call's audio, ms (the caller's lines).
        start_ms: Option<u64>,
        /// Where it ends, ms.
        end_ms: Option<u64>,
        /// Deepgram's confidence (the caller's lines).
        confidence: Option<f64>,
    },
    /// The call is over: close the inbound socket (1000) and return.
    Finish,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum SpeakLink {
    Idle,
    Connecting { since_ms: u64 },
    Open,
    Waiting { until_ms: u64 },
    Closed,
}

/// How the call is ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Still talking.
    No,
    /// The agent decided to hang up; waiting for the last words to be heard.
    AfterSpeech,
    /// Waiting for Twilio's REST answer (until the deadline).
    Rest { deadline_ms: u64 },
    /// Listening is finishing; then the call is over.
    Closing,
}

/// Counters for the summary marker.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Turns spoken (greeting and farewell included).
    pub turns: u32,
    /// Barge-ins.
    pub barge_ins: u32,
    /// LLM requests that failed.
    pub llm_failures: u32,
    /// Speak socket reconnects.
    pub speak_reconnects: u32,
    /// Audio frames sent to Twilio.
    pub media_frames: u64,
    /// Audio dropped by barge-ins (queued here or arriving before `Cleared`), bytes.
    pub dropped_audio_bytes: u64,
}

/// The agent for one call.
#[derive(Debug)]
pub struct Agent {
    settings: AgentSettings,
    listen: Pipeline,
    listen_done: bool,
    history: Vec<Line>,
    turn: Option<Turn>,
    turns: u32,
    /// What the caller said while the agent spoke with barge-in off, or keypad digits.
    waiting_lines: Vec<String>,
    digits: String,
    digits_due_ms: Option<u64>,
    playback: Playback,
    /// Marks carry this; a `clear` moves it on, so echoes of cleared marks are known.
    generation: u32,
    speak: SpeakLink,
    speak_backoff: Backoff,
    /// `Clear` was sent: audio until `Cleared` is of text no longer wanted.
    clearing: bool,
    /// When the `Clear` being waited for was sent.
    clear_sent_ms: u64,
    /// When the speak socket last sent something while it owed audio.
    speak_activity_ms: u64,
    flushes: VecDeque<u64>,
    stream_sid: String,
    call_sid: String,
    account_sid: String,
    /// (audio received up to, ms of call audio; when it arrived).
    audio_clock: VecDeque<(u64, u64)>,
    audio_received_ms: u64,
    ending: Ending,
    finished: bool,
    stats: Stats,
    actions: Vec<Action>,
}

fn attrs(pairs: &[(&str, Value)]) -> Vec<(String, Value)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
}

impl Agent {
    /// An agent with `settings`; `seed` drives reconnect jitter.
    pub fn new(settings: AgentSettings, seed: u64) -> Self {
        let listen = Pipeline::new(settings.listen.clone(), seed);
        let speak_backoff = Backoff::new(settings.listen.reconnect_base_ms, settings.listen.reconnect_max_ms, seed ^ 0x5eed);
        let history = vec![Line { role: Role::System, content: settings.system_prompt.clone() }];
        Agent {
            playback: Playback::new(settings.lead_ms),
            settings,
            listen,
            listen_done: false,
            history,
            turn: None,
            turns: 0,
            waiting_lines: Vec::new(),
            digits: String::new(),
            digits_due_ms: None,
            generation: 0,
            speak: SpeakLink::Idle,
            speak_backoff,
            clearing: false,
            clear_sent_ms: 0,
            speak_activity_ms: 0,
            flushes: VecDeque::new(),
            stream_sid: String::new(),
            call_sid: String::new(),
            account_sid: String::new(),
            audio_clock: VecDeque::new(),
            audio_received_ms: 0,
            ending: Ending::No,
            finished: false,
            stats: Stats::default(),
            actions: Vec::new(),
        }
    }

    /// The actions produced since the last call.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// The call is over.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// The counters so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The conversation as the LLM sees it (system prompt first).
    pub fn history(&self) -> &[Line] {
        &self.history
    }

    fn mark(&mut self, name: &str, pairs: &[(&str, Value)]) {
        debug_assert!(crate::markers::is_documented(name, pairs.iter().map(|(key, _)| *key)), "undocumented marker {name} {pairs:?}");
        self.actions.push(Action::Mark { name: name.to_owned(), attributes: attrs(pairs) });
    }

    fn fault(&mut self, leg: &'static str, impact: Impact, cause: &'static str, detail: String) {
        self.actions.push(Action::Fault { leg, impact, cause, detail });
    }

    // ---- Twilio -------------------------------------------------------------------------

    /// A text message from Twilio.
    pub fn on_twilio_text(&mut self, text: &str, now_ms: u64) {
        if self.finished {
            return;
        }
        let parsed = twilio::parse(text);
        match &parsed {
            Ok(TwilioEvent::Start(start)) => {
                self.stream_sid = start.stream_sid.clone();
                self.call_sid = start.call_sid.clone();
                self.account_sid = start.account_sid.clone();
            }
            Ok(TwilioEvent::Media { audio, .. }) => {
                self.audio_received_ms += playback::audio_ms(audio.len());
                self.audio_clock.push_back((self.audio_received_ms, now_ms));
                while self.audio_clock.front().is_some_and(|(_, at)| now_ms.saturating_sub(*at) > AUDIO_CLOCK_MS) {
                    self.audio_clock.pop_front();
                }
            }
            _ => {}
        }
        let event = parsed.as_ref().ok().cloned();
        self.listen.on_twilio_parsed(parsed, text, now_ms);
        self.absorb_listen(now_ms);
        match event {
            Some(TwilioEvent::Start(_)) => self.on_start(now_ms),
            Some(TwilioEvent::Mark { name }) => self.on_echo(&name, now_ms),
            Some(TwilioEvent::Dtmf { digit }) => self.on_digit(&digit, now_ms),
            Some(TwilioEvent::Stop) => self.caller_left(now_ms),
            _ => {}
        }
        self.pump(now_ms);
    }

    /// A binary message from Twilio (Twilio sends none).
    pub fn on_twilio_binary(&mut self, len: usize) {
        self.listen.on_twilio_binary(len);
    }

    /// The Twilio socket ended.
    pub fn on_twilio_closed(&mut self, code: u16, reason: &str, now_ms: u64) {
        self.listen.on_twilio_closed(code, reason, now_ms);
        self.absorb_listen(now_ms);
        self.caller_left(now_ms);
        self.pump(now_ms);
    }

    fn on_start(&mut self, now_ms: u64) {
        self.mark(
            "agent.started",
            &[("barge_in", self.settings.barge_in.to_string().into()), ("llm_model", self.settings.llm_model.as_str().into())],
        );
        self.connect_speak(now_ms);
        if !self.settings.greeting.trim().is_empty() {
            let greeting = self.settings.greeting.clone();
            self.begin_scripted(Kind::Greeting, &greeting, now_ms);
        }
    }

    fn on_echo(&mut self, name: &str, now_ms: u64) {
        let Some((generation, turn_index, segment)) = parse_mark(name) else { return };
        let current = generation == self.generation;
        let Some(turn) = self.turn.as_mut().filter(|turn| current && turn.index == turn_index) else {
            // An echo of a mark a `clear` returned, or of a turn already over.
            return;
        };
        let Some(seg) = turn.segments.get_mut(segment) else { return };
        if seg.echoed {
            return;
        }
        seg.echoed = true;
        let first = turn.first_echo_ms.is_none();
        if first {
            turn.first_echo_ms = Some(now_ms);
        }
        let since = turn.speech_end_ms.unwrap_or(turn.began_ms);
        self.mark(
            "agent.heard",
            &[("turn", turn_index.into()), ("segment", (segment as u64).into()), ("ms", now_ms.saturating_sub(since).into())],
        );
    }

    fn on_digit(&mut self, digit: &str, now_ms: u64) {
        if digit == "#" {
            self.digits_due_ms = Some(now_ms);
        } else {
            self.digits.push_str(digit);
            self.digits_due_ms = Some(now_ms + self.settings.dtmf_wait_ms);
        }
    }

    fn caller_left(&mut self, now_ms: u64) {
        if matches!(self.ending, Ending::Closing) {
            return;
        }
        self.ending = Ending::Closing;
        self.mark("agent.caller-left", &[("turn", self.turn.as_ref().map_or(0, |turn| turn.index).into())]);
        self.abandon_turn(now_ms);
        self.playback.clear(now_ms);
        self.close_speak();
    }

    // ---- Listening ----------------------------------------------------------------------

    /// The listen socket's handshake succeeded.
    pub fn on_listen_connected(&mut self, now_ms: u64) {
        self.listen.on_connected(now_ms);
        self.absorb_listen(now_ms);
        self.pump(now_ms);
    }

    /// The listen socket's handshake failed.
    pub fn on_listen_connect_failed(&mut self, failure: ConnectFailure, now_ms: u64) {
        self.listen.on_connect_failed(failure, now_ms);
        self.absorb_listen(now_ms);
        self.pump(now_ms);
    }

    /// A text message from the listen socket.
    pub fn on_listen_text(&mut self, text: &str, now_ms: u64) {
        self.listen.on_deepgram_text(text, now_ms);
        self.absorb_listen(now_ms);
        self.pump(now_ms);
    }

    /// The listen socket ended.
    pub fn on_listen_closed(&mut self, code: u16, reason: &str, now_ms: u64) {
        self.listen.on_deepgram_closed(code, reason, now_ms);
        self.absorb_listen(now_ms);
        self.pump(now_ms);
    }

    /// Turns the listener's actions into the agent's, and acts on what it heard.
    fn absorb_listen(&mut self, now_ms: u64) {
        for action in self.listen.take_actions() {
            match action {
                Listen::Connect { url } => self.actions.push(Action::Connect { socket: Socket::Listen, url }),
                Listen::SendAudio(audio) => self.actions.push(Action::SendAudio(audio)),
                Listen::SendControl(text) => self.actions.push(Action::SendText { socket: Socket::Listen, text: text.to_owned() }),
                Listen::CloseDeepgram => self.actions.push(Action::Close(Socket::Listen)),
                Listen::Mark { name, attributes } => self.actions.push(Action::Mark { name, attributes }),
                Listen::Fault { leg, impact, cause, detail } => self.actions.push(Action::Fault { leg, impact, cause, detail }),
                Listen::Complete(leg) => self.actions.push(Action::Complete(leg)),
                Listen::Identify { kind, value } => self.actions.push(Action::Identify { kind, value }),
                Listen::Transcript { text, start_ms, end_ms, confidence } => {
                    self.actions.push(Action::Transcript {
                        speaker: "caller",
                        text: text.clone(),
                        start_ms: Some(start_ms),
                        end_ms: Some(end_ms),
                        confidence: Some(confidence),
                    });
                    self.on_utterance(text, end_ms, now_ms);
                }
                Listen::Heard(heard) => self.on_heard(heard, now_ms),
                Listen::Finish => self.listen_done = true,
            }
        }
    }

    /// The wall-clock moment the audio up to `audio_ms` arrived (the caller's end of speech).
    fn arrival_of(&self, audio_ms: u64) -> Option<u64> {
        self.audio_clock.iter().find(|(upto, _)| *upto >= audio_ms).map(|(_, at)| *at)
    }

    fn speaking(&self) -> bool {
        self.turn.as_ref().is_some_and(|turn| !turn.interrupted)
    }

    fn on_heard(&mut self, heard: Heard, now_ms: u64) {
        if !self.speaking() || self.ending != Ending::No {
            return;
        }
        let trigger = match (&heard, self.settings.barge_in) {
            (Heard::SpeechStarted { .. }, BargeIn::SpeechStarted) => "speech-started",
            (Heard::Interim { words, .. }, BargeIn::SpeechStarted | BargeIn::Words) if *words >= self.settings.barge_in_min_words => {
                "words"
            }
            _ => return,
        };
        let spoke_at = match heard {
            Heard::SpeechStarted { at } => self.arrival_of((at.max(0.0) * 1e3) as u64),
            Heard::Interim { .. } => None,
        };
        self.barge_in(trigger, spoke_at, now_ms);
    }

    fn on_utterance(&mut self, text: String, end_ms: u64, now_ms: u64) {
        if self.ending != Ending::No {
            return;
        }
        let speech_end = self.arrival_of(end_ms);
        if self.speaking() {
            if self.settings.barge_in == BargeIn::Off {
                self.waiting_lines.push(text);
                return;
            }
            self.barge_in("final", None, now_ms);
        }
        let hang_up = {
            let said = format!(" {} ", normalize(&text));
            self.settings.hangup_phrases.iter().any(|phrase| said.contains(&format!(" {phrase} ")))
        };
        self.push_line(Role::User, text);
        if hang_up {
            self.mark("agent.hangup-phrase", &[]);
            self.ending = Ending::AfterSpeech;
            let farewell = self.settings.farewell.clone();
            self.begin_scripted(Kind::Farewell, &farewell, now_ms);
            return;
        }
        self.begin_reply(speech_end, now_ms);
    }

    // ---- Turns --------------------------------------------------------------------------

    fn push_line(&mut self, role: Role, content: String) {
        self.history.push(Line { role, content });
        // The system prompt stays; the oldest lines go first.
        let most = self.settings.max_history_turns * 2 + 1;
        if self.history.len() > most {
            let excess = self.history.len() - most;
            self.history.drain(1..1 + excess);
        }
    }

    fn next_index(&mut self) -> u32 {
        let index = self.turns;
        self.turns += 1;
        index
    }

    fn begin_scripted(&mut self, kind: Kind, text: &str, now_ms: u64) {
        let index = self.next_index();
        let turn = Turn::scripted(index, kind, text, self.settings.min_sentence_chars, now_ms);
        self.mark("agent.turn", &[("turn", index.into()), ("kind", kind.as_str().into()), ("text", text.into())]);
        self.turn = Some(turn);
    }

    fn begin_reply(&mut self, speech_end_ms: Option<u64>, now_ms: u64) {
        let index = self.next_index();
        let mut turn = Turn::new(index, Kind::Reply, Llm::Waiting, self.settings.min_sentence_chars, now_ms);
        turn.speech_end_ms = speech_end_ms;
        let ask = Ask {
            model: &self.settings.llm_model,
            temperature: self.settings.llm_temperature,
            max_tokens: self.settings.llm_max_tokens,
            end_call_tool: self.settings.end_call_tool,
        };
        let body = chat::request_body(&ask, &self.history);
        let to_final = speech_end_ms.map_or(0, |at| now_ms.saturating_sub(at));
        let said = self.history.last().map(|line| line.content.clone()).unwrap_or_default();
        self.mark("agent.turn", &[("turn", index.into()), ("kind", "reply".into()), ("text", said.into())]);
        self.mark(
            "llm.request",
            &[("turn", index.into()), ("messages", (self.history.len() as u64).into()), ("to_final_ms", to_final.into())],
        );
        self.actions.push(Action::Ask {
            url: self.settings.llm_url.clone(),
            body,
            first_byte_timeout_ms: self.settings.llm_first_byte_timeout_ms,
            between_bytes_timeout_ms: self.settings.llm_between_tokens_timeout_ms,
        });
        self.turn = Some(turn);
    }

    /// The caller spoke over the agent: stop speaking at once, keep only what was heard.
    fn barge_in(&mut self, trigger: &'static str, spoke_at: Option<u64>, now_ms: u64) {
        let Some(turn) = self.turn.as_mut() else { return };
        if turn.interrupted {
            return;
        }
        turn.interrupted = true;
        let cancel = turn.llm.open();
        if cancel {
            turn.llm = Llm::Over;
        }
        turn.splitter.reset();
        let index = turn.index;
        let heard = turn.segments.iter().filter(|segment| segment.echoed).count();
        let unheard = turn.segments.len() - heard;
        self.actions.push(Action::ToTwilio(twilio::clear_message(&self.stream_sid)));
        if self.speak == SpeakLink::Open {
            self.actions.push(Action::SendText { socket: Socket::Speak, text: speak::CLEAR.to_owned() });
            self.clearing = true;
            self.clear_sent_ms = now_ms;
        }
        if cancel {
            self.actions.push(Action::CancelAsk);
        }
        self.generation += 1;
        let dropped = self.playback.clear(now_ms);
        self.stats.dropped_audio_bytes += dropped;
        self.stats.barge_ins += 1;
        let reaction = spoke_at.map_or(0, |at| now_ms.saturating_sub(at));
        self.mark(
            "agent.barge-in",
            &[
                ("turn", index.into()),
                ("trigger", trigger.into()),
                ("heard_segments", (heard as u64).into()),
                ("unheard_segments", (unheard as u64).into()),
                ("dropped_bytes", dropped.into()),
                ("reaction_ms", reaction.into()),
            ],
        );
        if let Some(turn) = self.turn.take() {
            self.end_turn(turn, now_ms);
        }
    }

    /// Closes a turn: the history gets what the caller heard, the timeline its timings.
    fn end_turn(&mut self, turn: Turn, now_ms: u64) {
        let heard = turn.heard();
        if !heard.is_empty() {
            self.push_line(Role::Assistant, heard.clone());
            self.actions.push(Action::Transcript { speaker: "agent", text: heard.clone(), start_ms: None, end_ms: None, confidence: None });
        }
        self.stats.turns += 1;
        let from = turn.speech_end_ms.unwrap_or(turn.began_ms);
        let since = |at: Option<u64>| at.map_or(-1, |at| at.saturating_sub(from) as i64);
        self.mark(
            "agent.turn-summary",
            &[
                ("turn", turn.index.into()),
                ("kind", turn.kind.as_str().into()),
                ("to_final_ms", since(Some(turn.began_ms)).into()),
                ("to_first_token_ms", since(turn.first_token_ms).into()),
                ("to_first_audio_ms", since(turn.first_audio_ms).into()),
                ("to_first_media_ms", since(turn.first_media_ms).into()),
                ("to_first_echo_ms", since(turn.first_echo_ms).into()),
                ("segments", (turn.segments.len() as u64).into()),
                ("heard_segments", (turn.segments.iter().filter(|segment| segment.echoed).count() as u64).into()),
                ("tokens", turn.tokens.into()),
                ("interrupted", turn.interrupted.into()),
                ("heard", heard.into()),
            ],
        );
        // The model's hang-up holds unless the caller cut it off; a farewell ends the call
        // even when interrupted (the caller said goodbye).
        if turn.end_call && !turn.interrupted && self.ending == Ending::No {
            self.ending = Ending::AfterSpeech;
        }
        if self.ending == Ending::AfterSpeech {
            self.hang_up(now_ms);
        }
    }

    /// The call is ending under the current turn: its LLM answer is dropped and it ends as
    /// cut off (what was heard stays in the history).
    fn abandon_turn(&mut self, now_ms: u64) {
        if let Some(mut turn) = self.turn.take() {
            if turn.llm.open() {
                self.actions.push(Action::CancelAsk);
                turn.llm = Llm::Over;
            }
            turn.interrupted = true;
            self.end_turn(turn, now_ms);
        }
    }

    fn hang_up(&mut self, now_ms: u64) {
        let rest = self.settings.twilio_rest_hangup && !self.call_sid.is_empty();
        self.mark("agent.hangup", &[("rest", rest.into())]);
        if rest {
            let url = self.settings.call_url(&self.account_sid, &self.call_sid);
            self.actions.push(Action::Post { url, body: "Status=completed".to_owned(), leg: TWILIO_REST_LEG });
            self.ending = Ending::Rest { deadline_ms: now_ms + REST_WAIT_MS };
        } else {
            self.close_call(now_ms);
        }
    }

    /// Twilio's REST API answered the hang-up.
    pub fn on_rest_response(&mut self, status: u16, now_ms: u64) {
        if !matches!(self.ending, Ending::Rest { .. }) {
            return;
        }
        self.mark("twilio-rest.response", &[("status", status.into())]);
        if (200..300).contains(&status) {
            self.actions.push(Action::Complete(TWILIO_REST_LEG));
        } else {
            self.fault(
                TWILIO_REST_LEG,
                Impact::Recovered,
                "rejected",
                format!("Twilio's REST API answered the hang-up with HTTP {status}"),
            );
        }
        self.close_call(now_ms);
        self.pump(now_ms);
    }

    /// Twilio's REST request failed (`cause` from the host's error code).
    pub fn on_rest_failed(&mut self, cause: &str, now_ms: u64) {
        if !matches!(self.ending, Ending::Rest { .. }) {
            return;
        }
        self.fault(TWILIO_REST_LEG, Impact::Recovered, "request-failed", format!("the hang-up through Twilio's REST API failed: {cause}"));
        self.close_call(now_ms);
        self.pump(now_ms);
    }

    fn close_call(&mut self, now_ms: u64) {
        self.ending = Ending::Closing;
        self.close_speak();
        self.listen.end(now_ms);
        self.absorb_listen(now_ms);
    }

    // ---- The LLM ------------------------------------------------------------------------

    /// The LLM's response head.
    pub fn on_llm_response(&mut self, status: u16, now_ms: u64) {
        let Some(turn) = self.turn.as_mut().filter(|turn| turn.llm == Llm::Waiting) else { return };
        if (200..300).contains(&status) {
            turn.llm = Llm::Streaming;
        } else {
            turn.llm = Llm::Refused { status };
        }
        let index = turn.index;
        self.mark("llm.response", &[("turn", index.into()), ("status", status.into())]);
        self.pump(now_ms);
    }

    /// A piece of the LLM's answer body.
    pub fn on_llm_body(&mut self, bytes: &[u8], now_ms: u64) {
        let Some(turn) = self.turn.as_mut() else { return };
        match turn.llm {
            Llm::Refused { .. } => {
                let room = MAX_ERROR_BODY.saturating_sub(turn.error_body.len());
                turn.error_body.extend_from_slice(&bytes[..bytes.len().min(room)]);
                return;
            }
            Llm::Streaming => {}
            _ => return,
        }
        let events = turn.events.push(bytes);
        for event in events {
            match chat::parse_data(&event.data) {
                Ok(deltas) => {
                    for delta in deltas {
                        self.on_delta(delta, now_ms);
                    }
                }
                Err(error) => {
                    let index = self.turn.as_ref().map_or(0, |turn| turn.index);
                    self.mark("llm.malformed", &[("turn", index.into()), ("error", error.into())]);
                }
            }
        }
        self.pump(now_ms);
    }

    fn on_delta(&mut self, delta: Delta, now_ms: u64) {
        let Some(turn) = self.turn.as_mut().filter(|turn| turn.llm == Llm::Streaming) else { return };
        match delta {
            Delta::Text(text) => {
                turn.tokens += 1;
                for sentence in turn.splitter.push(&text) {
                    turn.add_sentence(sentence);
                }
                if turn.first_token_ms.is_none() {
                    turn.first_token_ms = Some(now_ms);
                    let (index, ms) = (turn.index, now_ms.saturating_sub(turn.speech_end_ms.unwrap_or(turn.began_ms)));
                    self.mark("llm.first-token", &[("turn", index.into()), ("ms", ms.into())]);
                }
            }
            Delta::ToolCall { name } => {
                let index = turn.index;
                let known = name == chat::END_CALL_TOOL;
                if known {
                    turn.end_call = true;
                }
                self.mark("llm.tool-call", &[("turn", index.into()), ("name", name.into()), ("known", known.into())]);
            }
            Delta::Finished(_) | Delta::Nothing => {}
            Delta::Done => self.llm_done(),
        }
    }

    fn llm_done(&mut self) {
        let Some(turn) = self.turn.as_mut().filter(|turn| turn.llm == Llm::Streaming) else { return };
        turn.llm = Llm::Done;
        if let Some(rest) = turn.splitter.finish() {
            turn.add_sentence(rest);
        }
        let (index, tokens, silent, end_call) = (turn.index, turn.tokens, turn.segments.is_empty(), turn.end_call);
        self.mark("llm.complete", &[("turn", index.into()), ("tokens", tokens.into())]);
        // An empty answer says the fallback rather than nothing; a silent hang-up, the farewell.
        if silent {
            let text = if end_call { self.settings.farewell.clone() } else { self.settings.fallback_text.clone() };
            self.say(&text);
        }
    }

    /// The LLM's answer body ended.
    pub fn on_llm_end(&mut self, now_ms: u64) {
        let Some(turn) = self.turn.as_mut() else { return };
        match turn.llm {
            Llm::Refused { status } => {
                let message = chat::error_message(&turn.error_body);
                turn.llm = Llm::Over;
                let cause = match status {
                    429 => "rate-limited",
                    400..=499 => "rejected",
                    _ => "server-error",
                };
                self.llm_failed(cause, format!("the LLM answered HTTP {status}: {message}"), now_ms);
            }
            // `[DONE]` may be missing; the end of the body says the same.
            Llm::Streaming => {
                let rest = turn.events.push(b"\n\n");
                if !rest.is_empty() {
                    let data: Vec<String> = rest.into_iter().map(|event| event.data).collect();
                    for text in data {
                        for delta in chat::parse_data(&text).unwrap_or_default() {
                            self.on_delta(delta, now_ms);
                        }
                    }
                }
                self.llm_done();
            }
            _ => {}
        }
        self.pump(now_ms);
    }

    /// The LLM request failed (`cause` from the host's error code: a timeout, DNS, TLS...).
    pub fn on_llm_failed(&mut self, cause: &str, now_ms: u64) {
        let Some(turn) = self.turn.as_mut().filter(|turn| turn.llm.open()) else { return };
        turn.llm = Llm::Over;
        self.llm_failed("request-failed", format!("the LLM request failed: {cause}"), now_ms);
        self.pump(now_ms);
    }

    fn llm_failed(&mut self, cause: &'static str, detail: String, now_ms: u64) {
        self.stats.llm_failures += 1;
        let index = self.turn.as_ref().map_or(0, |turn| turn.index);
        self.mark("llm.failed", &[("turn", index.into()), ("cause", cause.into()), ("detail", detail.as_str().into())]);
        self.fault(LLM_LEG, Impact::Recovered, cause, detail);
        let Some(turn) = self.turn.as_mut() else { return };
        // Whatever of the answer came is spoken; with nothing, the fallback.
        if let Some(rest) = turn.splitter.finish() {
            turn.add_sentence(rest);
        }
        if turn.segments.is_empty() {
            let text = self.settings.fallback_text.clone();
            self.say(&text);
        }
        let _ = now_ms;
    }

    /// Adds fixed words to the current turn (the fallback, the farewell).
    fn say(&mut self, text: &str) {
        let Some(turn) = self.turn.as_mut() else { return };
        let mut sentences = turn.splitter.push(text);
        sentences.extend(turn.splitter.finish());
        for sentence in sentences {
            turn.add_sentence(sentence);
        }
    }

    // ---- Speaking -----------------------------------------------------------------------

    fn connect_speak(&mut self, now_ms: u64) {
        self.speak = SpeakLink::Connecting { since_ms: now_ms };
        self.mark("speak.connecting", &[("attempt", (self.speak_backoff.attempts() + 1).into())]);
        self.actions.push(Action::Connect { socket: Socket::Speak, url: self.settings.speak_url() });
    }

    fn close_speak(&mut self) {
        if self.speak == SpeakLink::Open {
            self.actions.push(Action::SendText { socket: Socket::Speak, text: speak::CLOSE.to_owned() });
            self.actions.push(Action::Close(Socket::Speak));
            self.actions.push(Action::Complete(SPEAK_LEG));
        }
        self.speak = SpeakLink::Closed;
    }

    /// The speak socket's handshake succeeded.
    pub fn on_speak_connected(&mut self, now_ms: u64) {
        let SpeakLink::Connecting { since_ms } = self.speak else { return };
        self.speak = SpeakLink::Open;
        self.speak_backoff.reset();
        self.speak_activity_ms = now_ms;
        self.clearing = false;
        self.mark("speak.open", &[("connect_ms", now_ms.saturating_sub(since_ms).into())]);
        // A new connection owes nothing: what the last one did not finish is sent again.
        if let Some(turn) = self.turn.as_mut() {
            for segment in turn.segments.iter_mut().filter(|segment| !segment.audio_done) {
                segment.sent = 0;
                segment.flush_sent = false;
            }
        }
        self.pump(now_ms);
    }

    /// The speak socket's handshake failed.
    pub fn on_speak_connect_failed(&mut self, failure: ConnectFailure, now_ms: u64) {
        if !matches!(self.speak, SpeakLink::Connecting { .. }) {
            return;
        }
        match failure {
            ConnectFailure::Rejected { status, dg_error, body } if (400..500).contains(&status) => {
                let reason = dg_error.unwrap_or(body);
                self.speak_gave_up("rejected", format!("Deepgram rejected the speak connection: HTTP {status} {reason}"), now_ms);
            }
            ConnectFailure::Permanent { cause, .. } => {
                self.speak_gave_up("refused-by-host", format!("the host refused the speak connect ({cause})"), now_ms);
            }
            ConnectFailure::Rejected { status, .. } => {
                self.fault(SPEAK_LEG, Impact::Recovered, "rejected", format!("Deepgram's speak socket answered HTTP {status}"));
                self.speak_retry(now_ms);
            }
            ConnectFailure::Failed { cause, detail } => {
                self.fault(SPEAK_LEG, Impact::Recovered, "connect-failed", format!("connect to Deepgram speak failed: {cause} ({detail})"));
                self.speak_retry(now_ms);
            }
        }
        self.pump(now_ms);
    }

    /// A text message from the speak socket.
    pub fn on_speak_text(&mut self, text: &str, now_ms: u64) {
        if self.speak != SpeakLink::Open {
            return;
        }
        self.speak_activity_ms = now_ms;
        match speak::parse(text) {
            Ok(SpeakMessage::Flushed { .. }) if !self.clearing => {
                let generation = self.generation;
                let Some(turn) = self.turn.as_mut() else { return };
                let index = turn.index;
                if let Some((at, segment)) =
                    turn.segments.iter_mut().enumerate().find(|(_, segment)| segment.flush_sent && !segment.audio_done)
                {
                    segment.audio_done = true;
                    self.playback.end_segment(mark_name(generation, index, at));
                }
            }
            Ok(SpeakMessage::Flushed { .. }) => {}
            Ok(SpeakMessage::Cleared { .. }) => self.clearing = false,
            Ok(SpeakMessage::Warning { code, description }) => {
                self.mark("speak.warning", &[("code", code.into()), ("description", description.into())]);
            }
            Ok(SpeakMessage::Metadata { request_id }) => self.mark("speak.metadata", &[("request_id", request_id.into())]),
            Ok(SpeakMessage::Other(_)) => {}
            Err(error) => self.mark("speak.malformed", &[("error", error.into())]),
        }
        self.pump(now_ms);
    }

    /// Audio from the speak socket.
    pub fn on_speak_audio(&mut self, audio: &[u8], now_ms: u64) {
        if self.speak != SpeakLink::Open {
            return;
        }
        self.speak_activity_ms = now_ms;
        let owner = self.turn.as_mut().filter(|turn| !turn.interrupted && !self.clearing).and_then(|turn| {
            let at = turn.segments.iter().position(|segment| segment.sent > 0 && !segment.audio_done)?;
            Some((turn, at))
        });
        let Some((turn, at)) = owner else {
            // Audio of text a barge-in took back (or of nothing asked for): never played.
            self.stats.dropped_audio_bytes += audio.len() as u64;
            return;
        };
        turn.segments[at].audio_bytes += audio.len() as u64;
        let first = turn.first_audio_ms.is_none();
        if first {
            turn.first_audio_ms = Some(now_ms);
        }
        let (index, since) = (turn.index, turn.speech_end_ms.unwrap_or(turn.began_ms));
        self.playback.push_audio(audio);
        if first {
            self.mark("speak.first-audio", &[("turn", index.into()), ("ms", now_ms.saturating_sub(since).into())]);
        }
        self.pump(now_ms);
    }

    /// The speak socket ended.
    pub fn on_speak_closed(&mut self, code: u16, reason: &str, now_ms: u64) {
        if matches!(self.speak, SpeakLink::Closed | SpeakLink::Idle) {
            return;
        }
        self.mark("speak.closed", &[("code", code.into()), ("reason", reason.into())]);
        self.fault(SPEAK_LEG, Impact::Recovered, "closed", format!("Deepgram's speak socket closed {code} {reason}"));
        self.speak_lost(now_ms);
        self.pump(now_ms);
    }

    /// The speak socket was lost mid-turn: Twilio's queue is cleared and the unheard
    /// segments are spoken again on a new connection, so no half sentence is left hanging.
    fn speak_lost(&mut self, now_ms: u64) {
        if let Some(turn) = self.turn.as_mut().filter(|turn| !turn.interrupted) {
            let owed = turn.segments.iter().any(|segment| !segment.echoed);
            if owed {
                self.actions.push(Action::ToTwilio(twilio::clear_message(&self.stream_sid)));
                self.generation += 1;
                self.stats.dropped_audio_bytes += self.playback.clear(now_ms);
                for segment in turn.segments.iter_mut().filter(|segment| !segment.echoed) {
                    *segment = turn::Segment {
                        sentences: std::mem::take(&mut segment.sentences),
                        closed: segment.closed,
                        ..turn::Segment::default()
                    };
                }
            }
        }
        self.speak_retry(now_ms);
    }

    fn speak_retry(&mut self, now_ms: u64) {
        if self.ending == Ending::Closing {
            self.speak = SpeakLink::Closed;
            return;
        }
        if self.speak_backoff.attempts() >= self.settings.listen.max_reconnects {
            let tries = self.settings.listen.max_reconnects;
            self.speak_gave_up("max-reconnects", format!("gave up on Deepgram speak after {tries} reconnects"), now_ms);
            return;
        }
        let delay = self.speak_backoff.next_delay_ms();
        self.stats.speak_reconnects += 1;
        self.speak = SpeakLink::Waiting { until_ms: now_ms + delay };
        self.mark("speak.reconnect", &[("attempt", self.speak_backoff.attempts().into()), ("delay_ms", delay.into())]);
    }

    /// Without a voice the call cannot go on: it ends, with the cause on the speak leg.
    fn speak_gave_up(&mut self, why: &'static str, reason: String, now_ms: u64) {
        self.speak = SpeakLink::Closed;
        self.mark("speak.gave-up", &[("why", why.into())]);
        self.fault(SPEAK_LEG, Impact::Failed, why, reason);
        self.abandon_turn(now_ms);
        if self.ending != Ending::Closing {
            self.close_call(now_ms);
        }
    }

    /// Sends what may go to the speak socket now: new sentences, and `Flush`es within the
    /// budget (a segment closes when the one before it has its audio, or the words are done).
    fn pump_speak(&mut self, now_ms: u64) {
        if self.speak != SpeakLink::Open || self.clearing {
            return;
        }
        let Some(turn) = self.turn.as_mut().filter(|turn| !turn.interrupted) else { return };
        let words_done = turn.words_done();
        let outstanding = turn.segments.iter().any(|segment| segment.flush_sent && !segment.audio_done);
        while self.flushes.front().is_some_and(|at| now_ms.saturating_sub(*at) >= FLUSH_WINDOW_MS) {
            self.flushes.pop_front();
        }
        let mut budget = self.settings.max_flushes_per_minute.saturating_sub(self.flushes.len());
        let count = turn.segments.len();
        for (at, segment) in turn.segments.iter_mut().enumerate() {
            if segment.audio_done {
                continue;
            }
            while segment.sent < segment.sentences.len() {
                let text = speak::speak_message(&segment.sentences[segment.sent]);
                self.actions.push(Action::SendText { socket: Socket::Speak, text });
                segment.sent += 1;
            }
            let last = at + 1 == count;
            if !segment.closed && (!last || words_done || !outstanding) {
                segment.closed = true;
            }
            if segment.closed && !segment.flush_sent && segment.sent > 0 {
                if budget == 0 {
                    break;
                }
                budget -= 1;
                segment.flush_sent = true;
                if !outstanding {
                    // The wait for this flush's audio starts now.
                    self.speak_activity_ms = now_ms;
                }
                self.flushes.push_back(now_ms);
                self.actions.push(Action::SendText { socket: Socket::Speak, text: speak::FLUSH.to_owned() });
            }
        }
    }

    /// Sends the audio and marks that are due to Twilio.
    fn pump_playback(&mut self, now_ms: u64) {
        while let Some(out) = self.playback.next(now_ms) {
            match out {
                Out::Media(frame) => {
                    self.stats.media_frames += 1;
                    if let Some(turn) = self.turn.as_mut().filter(|turn| turn.first_media_ms.is_none()) {
                        turn.first_media_ms = Some(now_ms);
                        let (index, since) = (turn.index, turn.speech_end_ms.unwrap_or(turn.began_ms));
                        self.mark("agent.first-media", &[("turn", index.into()), ("ms", now_ms.saturating_sub(since).into())]);
                    }
                    self.actions.push(Action::ToTwilio(twilio::media_message(&self.stream_sid, &frame)));
                }
                Out::Mark(name) => self.actions.push(Action::ToTwilio(twilio::mark_message(&self.stream_sid, &name))),
            }
        }
    }

    /// Everything that follows from the state: speech out, turns over, the call over.
    fn pump(&mut self, now_ms: u64) {
        if self.finished {
            return;
        }
        self.pump_speak(now_ms);
        self.pump_playback(now_ms);
        // A turn whose words were all heard is over.
        let quiet = self.playback.is_quiet(now_ms);
        if let Some(turn) = self.turn.as_mut() {
            let all_sent = turn.words_done() && turn.segments.iter().all(|segment| segment.audio_done) && self.playback.is_drained();
            if all_sent && quiet && turn.quiet_since_ms.is_none() {
                turn.quiet_since_ms = Some(now_ms);
            }
            let echo_lost = turn.quiet_since_ms.is_some_and(|since| now_ms.saturating_sub(since) >= ECHO_GRACE_MS);
            if turn.finished() || (all_sent && echo_lost) {
                if echo_lost && !turn.finished() {
                    let index = turn.index;
                    self.mark("agent.echo-missing", &[("turn", index.into())]);
                    for segment in self.turn.as_mut().map(|turn| turn.segments.iter_mut()).into_iter().flatten() {
                        segment.echoed = true;
                    }
                }
                if let Some(turn) = self.turn.take() {
                    self.end_turn(turn, now_ms);
                }
            }
        }
        if self.turn.is_none() && self.ending == Ending::No {
            self.next_turn(now_ms);
        }
        if self.ending == Ending::Closing && self.listen_done && !self.finished {
            self.finish();
        }
    }

    /// Starts the turn that waited: what the caller said over the agent, or keypad digits.
    fn next_turn(&mut self, now_ms: u64) {
        if !self.waiting_lines.is_empty() {
            let text = self.waiting_lines.join(" ");
            self.waiting_lines.clear();
            self.push_line(Role::User, text);
            self.begin_reply(None, now_ms);
        }
    }

    fn finish(&mut self) {
        self.finished = true;
        let stats = self.stats.clone();
        self.mark(
            "agent.summary",
            &[
                ("turns", stats.turns.into()),
                ("barge_ins", stats.barge_ins.into()),
                ("llm_failures", stats.llm_failures.into()),
                ("speak_reconnects", stats.speak_reconnects.into()),
                ("media_frames", stats.media_frames.into()),
                ("dropped_audio_bytes", stats.dropped_audio_bytes.into()),
            ],
        );
        self.actions.push(Action::Finish);
    }

    // ---- Time ---------------------------------------------------------------------------

    /// Time passed: listening's own deadlines, pacing, keypad digits, reconnects, stalls.
    pub fn on_tick(&mut self, now_ms: u64) {
        if self.finished {
            return;
        }
        self.listen.on_tick(now_ms);
        self.absorb_listen(now_ms);
        if let SpeakLink::Waiting { until_ms } = self.speak
            && now_ms >= until_ms
        {
            self.connect_speak(now_ms);
        }
        if self.speak == SpeakLink::Open && self.owes_audio() && now_ms.saturating_sub(self.speak_activity_ms) >= SPEAK_STALL_MS {
            self.speak_stalled(SPEAK_STALL_MS, "sent no audio", now_ms);
        }
        if self.speak == SpeakLink::Open && self.clearing && now_ms.saturating_sub(self.clear_sent_ms) >= CLEAR_WAIT_MS {
            self.speak_stalled(CLEAR_WAIT_MS, "did not answer Clear", now_ms);
        }
        if self.digits_due_ms.is_some_and(|due| now_ms >= due) {
            self.digits_due_ms = None;
            let digits = std::mem::take(&mut self.digits);
            if !digits.is_empty() && self.ending == Ending::No {
                self.mark("agent.dtmf", &[("digits", digits.as_str().into())]);
                let spaced: Vec<String> = digits.chars().map(String::from).collect();
                let line = format!("(The caller pressed {} on the keypad.)", spaced.join(" "));
                if self.speaking() && self.settings.barge_in != BargeIn::Off {
                    self.barge_in("dtmf", None, now_ms);
                }
                self.waiting_lines.push(line);
            }
        }
        if let Ending::Rest { deadline_ms } = self.ending
            && now_ms >= deadline_ms
        {
            self.on_rest_failed("no answer in time", now_ms);
        }
        self.pump(now_ms);
    }

    /// The speak socket owes something and says nothing: a new one is opened.
    fn speak_stalled(&mut self, waited_ms: u64, what: &str, now_ms: u64) {
        self.mark("speak.stalled", &[("waited_ms", waited_ms.into())]);
        self.fault(SPEAK_LEG, Impact::Recovered, "stalled", format!("Deepgram's speak socket {what} for {waited_ms} ms"));
        self.actions.push(Action::Close(Socket::Speak));
        self.speak = SpeakLink::Idle;
        self.speak_lost(now_ms);
    }

    fn owes_audio(&self) -> bool {
        !self.clearing
            && self.turn.as_ref().is_some_and(|turn| turn.segments.iter().any(|segment| segment.flush_sent && !segment.audio_done))
    }

    /// When the glue should call [`Agent::on_tick`] next, if ever.
    pub fn next_deadline(&self, now_ms: u64) -> Option<u64> {
        if self.finished {
            return None;
        }
        let mut due: Vec<u64> = Vec::new();
        due.extend(self.listen.next_deadline());
        due.extend(self.playback.next_due(now_ms));
        due.extend(self.digits_due_ms);
        if let SpeakLink::Waiting { until_ms } = self.speak {
            due.push(until_ms);
        }
        if self.speak == SpeakLink::Open && self.owes_audio() {
            due.push(self.speak_activity_ms + SPEAK_STALL_MS);
        }
        if self.speak == SpeakLink::Open && self.clearing {
            due.push(self.clear_sent_ms + CLEAR_WAIT_MS);
        }
        if let Some(turn) = &self.turn {
            if let Some(since) = turn.quiet_since_ms {
                due.push(since + ECHO_GRACE_MS);
            } else if turn.words_done() && self.playback.is_drained() && turn.segments.iter().all(|segment| segment.audio_done) {
                // When what was sent will have played (then the wait for a lost echo starts).
                due.push(self.playback.playhead_ms().max(now_ms));
            }
            // A flush held back by the budget.
            if let Some(oldest) = self.flushes.front()
                && self.flushes.len() >= self.settings.max_flushes_per_minute
            {
                due.push(oldest + FLUSH_WINDOW_MS);
            }
        }
        if let Ending::Rest { deadline_ms } = self.ending {
            due.push(deadline_ms);
        }
        due.into_iter().min()
    }
}

/// A mark's name: `g{generation}-t{turn}-s{segment}`.
fn mark_name(generation: u32, turn: u32, segment: usize) -> String {
    format!("g{generation}-t{turn}-s{segment}")
}

fn parse_mark(name: &str) -> Option<(u32, u32, usize)> {
    let mut parts = name.split('-');
    let generation = parts.next()?.strip_prefix('g')?.parse().ok()?;
    let turn = parts.next()?.strip_prefix('t')?.parse().ok()?;
    let segment = parts.next()?.strip_prefix('s')?.parse().ok()?;
    parts.next().is_none().then_some((generation, turn, segment))
}

#[cfg(test)]
mod tests;
