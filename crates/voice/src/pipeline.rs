//! The voice pipeline as a state machine with no I/O: Twilio and Deepgram events go in,
//! [`Action`]s come out (connect, send, close, record a marker, finish). The wasm glue in
//! `guest.rs` only moves bytes between this and the host, so every rule here is tested
//! natively.
//!
//! The rules: open Deepgram on `start`; send caller audio in frames of whole `batch_ms`
//! batches (a shorter frame only for the last audio of the call, never an empty one), never
//! faster than 1.25x real time over any stretch of a connection; send `KeepAlive` when no audio has gone out for
//! `keepalive_ms`; on `stop` (or the caller hanging up) send the rest, `Finalize` and
//! `CloseStream`, then wait up to `final_wait_ms` for Deepgram to close. An unexpected
//! close or network error reconnects with backoff and replays the audio Deepgram had not
//! finalized; a 4xx answer or a 1008 close is not retried. Every step is a marker.
//!
//! With a Flux endpoint (`/v2/listen`) the utterance is Flux's `EndOfTurn`, its
//! `StartOfTurn` and `Update`s are what was heard, audio is confirmed up to each
//! `TurnInfo`'s `audio_window_end`, no `KeepAlive` or `Finalize` is sent (Flux has
//! neither), and after `CloseStream` any close is the expected one (Flux closes without a
//! status code).

use crate::backoff::Backoff;
use crate::deepgram::{self, CLOSE_STREAM, FINALIZE, KEEP_ALIVE, ServerMessage};
use crate::ledger::AudioLedger;
use crate::settings::{BYTES_PER_MS, Settings};
use crate::twilio::{self, StartInfo, TwilioError, TwilioEvent};
use crate::utterance::{Utterance, UtteranceAssembler};
pub use switchboard_guest::{ErrorCode, Impact, Value};

/// Something the glue must do.
#[derive(Debug, Clone)]
pub enum Action {
    /// Open the Deepgram connection.
    Connect {
        /// The full listen URL.
        url: String,
    },
    /// Send a binary audio frame to Deepgram.
    SendAudio(Vec<u8>),
    /// Send a text control message to Deepgram.
    SendControl(&'static str),
    /// Close the Deepgram connection (1000).
    CloseDeepgram,
    /// Record a marker on the call's timeline.
    Mark {
        /// Marker name.
        name: String,
        /// Attributes.
        attributes: Vec<(String, Value)>,
    },
    /// Report a fault on a leg (`twilio` or `deepgram`).
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
    /// Add an utterance to the call's transcript.
    Transcript {
        /// What the caller said.
        text: String,
        /// Where it starts and ends in the call, ms.
        start_ms: u64,
        /// Where it ends, ms.
        end_ms: u64,
        /// Deepgram's confidence.
        confidence: f64,
    },
    /// Deepgram heard the caller (what a voice agent's barge-in listens for; the
    /// transcribing pipeline's glue ignores it).
    Heard(Heard),
    /// The pipeline is done: close the inbound socket (1000) and return.
    Finish,
}

/// Signs of the caller speaking, before the utterance is final.
#[derive(Debug, Clone, PartialEq)]
pub enum Heard {
    /// Deepgram's voice activity detection fired (`SpeechStarted`, needs `vad_events`).
    SpeechStarted {
        /// Where in the call, seconds.
        at: f64,
    },
    /// An interim transcript with words in it.
    Interim {
        /// The transcript so far.
        text: String,
        /// How many words it has.
        words: usize,
    },
}

/// Why a Deepgram connect failed, as the glue reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnectFailure {
    /// The server answered the upgrade with `status` (and maybe a `dg-error`).
    Rejected {
        /// HTTP status.
        status: u16,
        /// Deepgram's `dg-error` header, when it sent one.
        dg_error: Option<String>,
        /// The start of the response body.
        body: String,
    },
    /// Refused for good: the host's policy denies the target, or the URL is invalid.
    Permanent {
        /// A short cause, e.g. `denied`.
        cause: String,
        /// The host's description.
        detail: String,
    },
    /// Anything else (DNS, refused, TLS, timeout): worth retrying.
    Failed {
        /// A short cause, e.g. `connect-timeout`.
        cause: String,
        /// The host's description.
        detail: String,
    },
}

impl ConnectFailure {
    /// How the host's refusal of a connect reads here.
    pub fn of(error: &ErrorCode) -> ConnectFailure {
        match error {
            ErrorCode::HandshakeRejected(response) => {
                let dg_error = response.headers.iter().find(|(name, _)| name == "dg-error").map(|(_, value)| value.clone());
                ConnectFailure::Rejected { status: response.status, dg_error, body: response.body_excerpt.clone() }
            }
            ErrorCode::Denied | ErrorCode::InvalidUrl(_) => {
                ConnectFailure::Permanent { cause: "denied".to_owned(), detail: format!("{error:?}") }
            }
            other => {
                let cause = match other {
                    ErrorCode::DnsError(_) => "dns-error",
                    ErrorCode::ConnectionRefused => "connection-refused",
                    ErrorCode::ConnectTimeout => "connect-timeout",
                    ErrorCode::TlsError(_) => "tls-error",
                    ErrorCode::ConnectionLimit => "connection-limit",
                    _ => "other",
                };
                ConnectFailure::Failed { cause: cause.to_owned(), detail: format!("{other:?}") }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Link {
    /// No connection wanted yet.
    Idle,
    /// A handshake is under way.
    Connecting { since_ms: u64 },
    /// Connected; audio flows.
    Open {
        /// When audio or a KeepAlive last went out (KeepAlive is due `keepalive_ms` later).
        last_send_ms: u64,
        /// The earliest the next audio frame may go (the pace, see [`PACE_BYTES_PER_MS`]).
        paced_until_ms: u64,
    },
    /// Waiting to reconnect.
    Waiting { until_ms: u64 },
    /// `CloseStream` sent; waiting for Deepgram to close.
    Draining { deadline_ms: u64 },
    /// Done with Deepgram.
    Closed,
}

/// The leg of the caller's connection, as the glue names it.
pub const TWILIO_LEG: &str = "twilio";
/// The leg of the Deepgram connection.
pub const DEEPGRAM_LEG: &str = "deepgram";

/// The fastest audio goes to Deepgram: 1.25x real time (mu-law, 8 bytes a millisecond).
/// A frame of `n` bytes moves the pace on by `n / PACE_BYTES_PER_MS` ms, so over any
/// stretch of a connection the audio sent never runs ahead of 1.25x the time it took, plus
/// [`PACE_CREDIT_MS`] of credit.
pub const PACE_BYTES_PER_MS: u64 = BYTES_PER_MS as u64 * 5 / 4;

/// How far the pace may fall behind the clock while audio comes in live: a frame that
/// arrives early after a late one (jitter on the caller's side) goes at once instead of
/// waiting a few milliseconds for the pace (a timer and a second wake-up for every such
/// frame), while a replay after a reconnect, which starts with no credit, still goes at
/// 1.25x. 40 ms is 400 bytes ahead at most, against Deepgram's 250 ms frames.
pub const PACE_CREDIT_MS: u64 = 40;

/// The largest frame: 250 ms, Deepgram's guidance for a message.
const MAX_FRAME_MS: usize = 250;

/// Counters for the summary marker.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Twilio media messages.
    pub media_messages: u64,
    /// Reconnects scheduled.
    pub reconnects: u32,
    /// Final transcripts recorded.
    pub transcripts: u32,
    /// Audio that did not reach Deepgram (or was not confirmed after a failure).
    pub lost_bytes: u64,
}

/// The pipeline for one call.
#[derive(Debug)]
pub struct Pipeline {
    settings: Settings,
    ledger: AudioLedger,
    link: Link,
    backoff: Backoff,
    assembler: UtteranceAssembler,
    call: StartInfo,
    sessions: u32,
    first_media_ms: Option<u64>,
    first_result: bool,
    /// Twilio is done (stop, or the caller hung up): drain and finish.
    ending: bool,
    /// When ending: the latest moment to still be waiting for Deepgram.
    end_deadline_ms: Option<u64>,
    /// `CloseStream` was sent on the current connection.
    close_sent: bool,
    /// Deepgram will not be retried.
    gave_up: bool,
    finished: bool,
    stats: Stats,
    actions: Vec<Action>,
}

fn attrs(pairs: &[(&str, Value)]) -> Vec<(String, Value)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
}

impl Pipeline {
    /// A pipeline with `settings`; `seed` drives reconnect jitter.
    pub fn new(settings: Settings, seed: u64) -> Self {
        Pipeline {
            ledger: AudioLedger::new(settings.replay_buffer_bytes()),
            backoff: Backoff::new(settings.reconnect_base_ms, settings.reconnect_max_ms, seed),
            settings,
            link: Link::Idle,
            assembler: UtteranceAssembler::default(),
            call: StartInfo::default(),
            sessions: 0,
            first_media_ms: None,
            first_result: false,
            ending: false,
            end_deadline_ms: None,
            close_sent: false,
            gave_up: false,
            finished: false,
            stats: Stats::default(),
            actions: Vec::new(),
        }
    }

    /// Takes the actions produced so far, in order.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// Moves the actions produced so far into `buffer` (emptied first) and keeps the
    /// buffer's old allocation for the next ones: [`Pipeline::take_actions`] without an
    /// allocation per media message.
    pub fn swap_actions(&mut self, buffer: &mut Vec<Action>) {
        buffer.clear();
        std::mem::swap(&mut self.actions, buffer);
    }

    /// Whether the pipeline has finished (the glue returns after the `Finish` action).
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// The counters so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    fn fault(&mut self, leg: &'static str, impact: Impact, cause: &'static str, detail: String) {
        self.actions.push(Action::Fault { leg, impact, cause, detail });
    }

    fn mark(&mut self, name: &str, pairs: &[(&str, Value)]) {
        debug_assert!(crate::markers::is_documented(name, pairs.iter().map(|(key, _)| *key)), "undocumented marker {name} {pairs:?}");
        self.actions.push(Action::Mark { name: name.to_owned(), attributes: attrs(pairs) });
    }

    // ---- Twilio -------------------------------------------------------------------------

    /// A text message from Twilio.
    pub fn on_twilio_text(&mut self, text: &str, now_ms: u64) {
        self.on_twilio_parsed(twilio::parse(text), text, now_ms);
    }

    /// A text message from Twilio that the caller already parsed (`text` is kept for the
    /// marker of a message that did not parse).
    pub fn on_twilio_parsed(&mut self, parsed: Result<TwilioEvent, TwilioError>, text: &str, now_ms: u64) {
        if self.finished {
            return;
        }
        match parsed {
            Ok(TwilioEvent::Connected { protocol }) => self.mark("twilio.connected", &[("protocol", protocol.into())]),
            Ok(TwilioEvent::Start(start)) => {
                let mut pairs = vec![
                    ("call_sid", start.call_sid.as_str().into()),
                    ("stream_sid", start.stream_sid.as_str().into()),
                    ("encoding", start.encoding.as_str().into()),
                    ("sample_rate", start.sample_rate.into()),
                    ("channels", start.channels.into()),
                ];
                for (key, value) in &start.custom_parameters {
                    pairs.push(("parameter", format!("{key}={value}").into()));
                }
                self.mark("twilio.start", &pairs);
                self.actions.push(Action::Identify { kind: "call_sid", value: start.call_sid.clone() });
                self.actions.push(Action::Identify { kind: "stream_sid", value: start.stream_sid.clone() });
                if start.encoding != "audio/x-mulaw" || start.sample_rate != 8000 || start.channels != 1 {
                    self.mark("twilio.unexpected-format", &[("encoding", start.encoding.as_str().into())]);
                }
                self.call = start;
                self.ensure_connection(now_ms);
            }
            Ok(TwilioEvent::Media { audio, .. }) => {
                self.stats.media_messages += 1;
                if self.first_media_ms.is_none() {
                    self.first_media_ms = Some(now_ms);
                    self.mark("twilio.first-media", &[("bytes", audio.len().into())]);
                }
                if self.ending {
                    return;
                }
                let overflow = self.ledger.push(&audio);
                if overflow > 0 {
                    self.mark("audio.overflow", &[("bytes", overflow.into()), ("buffer_ms", self.settings.replay_buffer_ms.into())]);
                }
                self.ensure_connection(now_ms);
                self.pump_audio(now_ms);
            }
            Ok(TwilioEvent::Dtmf { digit }) => self.mark("twilio.dtmf", &[("digit", digit.into())]),
            Ok(TwilioEvent::Mark { name }) => self.mark("twilio.mark", &[("name", name.into())]),
            Ok(TwilioEvent::Stop) => {
                self.mark("twilio.stop", &[("media_messages", self.stats.media_messages.into())]);
                // Twilio is done: the caller hanging up the socket from here on is no fault.
                self.actions.push(Action::Complete(TWILIO_LEG));
                self.end_of_call(now_ms);
            }
            Err(error) => {
                let name = match error {
                    TwilioError::Malformed(_) => "twilio.malformed",
                    TwilioError::UnknownEvent(_) => "twilio.unknown-event",
                    TwilioError::BadPayload(_) => "twilio.bad-payload",
                };
                let excerpt: String = text.chars().take(200).collect();
                self.fault(TWILIO_LEG, Impact::Recovered, "bad-message", format!("{name}: {error}"));
                self.mark(name, &[("error", error.to_string().into()), ("message", excerpt.into())]);
            }
        }
    }

    /// A binary message from Twilio (Twilio sends none: recorded and ignored).
    pub fn on_twilio_binary(&mut self, len: usize) {
        self.mark("twilio.unexpected-binary", &[("bytes", len.into())]);
    }

    /// The Twilio socket ended.
    pub fn on_twilio_closed(&mut self, code: u16, reason: &str, now_ms: u64) {
        self.mark("twilio.closed", &[("code", code.into()), ("reason", reason.into())]);
        self.end_of_call(now_ms);
    }

    /// The call is ending for another reason (a voice agent hung up): send the rest,
    /// finalize and close as on `stop`.
    pub fn end(&mut self, now_ms: u64) {
        self.end_of_call(now_ms);
    }

    /// The call's `start` (empty until Twilio sent it).
    pub fn call(&self) -> &StartInfo {
        &self.call
    }

    // ---- Deepgram -----------------------------------------------------------------------

    fn ensure_connection(&mut self, now_ms: u64) {
        if self.link == Link::Idle && !self.gave_up {
            self.connect(now_ms);
        }
    }

    fn connect(&mut self, now_ms: u64) {
        self.link = Link::Connecting { since_ms: now_ms };
        self.close_sent = false;
        self.mark("deepgram.connecting", &[("attempt", (self.backoff.attempts() + 1).into())]);
        self.actions.push(Action::Connect { url: self.settings.listen_url() });
    }

    /// The Deepgram handshake succeeded.
    pub fn on_connected(&mut self, now_ms: u64) {
        if self.finished || !matches!(self.link, Link::Connecting { .. }) {
            return;
        }
        let since = match self.link {
            Link::Connecting { since_ms } => since_ms,
            _ => now_ms,
        };
        self.sessions += 1;
        self.link = Link::Open { last_send_ms: now_ms, paced_until_ms: now_ms };
        self.backoff.reset();
        let (replay, gone) = self.ledger.restart_session();
        self.mark("deepgram.open", &[("connect_ms", (now_ms - since).into()), ("session", self.sessions.into())]);
        self.stats.lost_bytes += gone;
        if self.sessions > 1 || gone > 0 {
            self.mark(
                "deepgram.replay",
                &[
                    ("replay_bytes", replay.into()),
                    ("lost_bytes", gone.into()),
                    ("from_ms", (self.ledger.sent() / BYTES_PER_MS as u64).into()),
                ],
            );
        }
        self.pump_audio(now_ms);
    }

    /// The Deepgram handshake failed.
    pub fn on_connect_failed(&mut self, failure: ConnectFailure, now_ms: u64) {
        if self.finished || !matches!(self.link, Link::Connecting { .. }) {
            return;
        }
        match failure {
            ConnectFailure::Rejected { status, dg_error, body } => {
                self.mark(
                    "deepgram.rejected",
                    &[("status", status.into()), ("dg_error", dg_error.clone().unwrap_or_default().into()), ("body", body.as_str().into())],
                );
                if (400..500).contains(&status) {
                    // Auth or request errors do not heal by retrying.
                    let reason = dg_error.unwrap_or(body);
                    self.give_up("rejected", format!("Deepgram rejected the connection: HTTP {status} {reason}"), now_ms);
                } else {
                    let reason = dg_error.unwrap_or(body);
                    self.fault(DEEPGRAM_LEG, Impact::Recovered, "rejected", format!("Deepgram answered HTTP {status} {reason}"));
                    self.schedule_reconnect(now_ms);
                }
            }
            ConnectFailure::Permanent { cause, detail } => {
                let reason = format!("gave up on Deepgram: the host refused the connect ({cause})");
                self.mark("deepgram.connect-failed", &[("cause", cause.into()), ("detail", detail.into())]);
                self.give_up("refused-by-host", reason, now_ms);
            }
            ConnectFailure::Failed { cause, detail } => {
                self.fault(DEEPGRAM_LEG, Impact::Recovered, "connect-failed", format!("connect to Deepgram failed: {cause} ({detail})"));
                self.mark("deepgram.connect-failed", &[("cause", cause.into()), ("detail", detail.into())]);
                self.schedule_reconnect(now_ms);
            }
        }
    }

    /// A text message from Deepgram.
    pub fn on_deepgram_text(&mut self, text: &str, now_ms: u64) {
        let message = match deepgram::parse(text) {
            Ok(message) => message,
            Err(error) => {
                self.mark("deepgram.malformed", &[("error", error.into()), ("message", text.chars().take(200).collect::<String>().into())]);
                return;
            }
        };
        let offset = self.ledger.session_offset_seconds();
        match message {
            ServerMessage::Results(results) => {
                if !self.first_result {
                    self.first_result = true;
                    let since_audio = self.first_media_ms.map(|t| now_ms.saturating_sub(t)).unwrap_or(0);
                    self.mark("deepgram.first-result", &[("ms_since_first_audio", since_audio.into())]);
                }
                if !results.is_final {
                    let words = results.transcript.split_whitespace().count();
                    if words > 0 {
                        self.actions.push(Action::Heard(Heard::Interim { text: results.transcript, words }));
                    }
                    return;
                }
                self.ledger.confirm(results.start + results.duration);
                let (start, end) = (offset + results.start, offset + results.start + results.duration);
                if !results.transcript.trim().is_empty() {
                    self.stats.transcripts += 1;
                    self.mark(
                        "transcript.final",
                        &[
                            ("text", results.transcript.as_str().into()),
                            ("start", start.into()),
                            ("end", end.into()),
                            ("confidence", results.confidence.into()),
                            ("call_sid", self.call.call_sid.as_str().into()),
                            ("from_finalize", results.from_finalize.into()),
                        ],
                    );
                }
                if let Some(utterance) =
                    self.assembler.final_piece(&results.transcript, start, end, results.confidence, results.speech_final)
                {
                    self.mark_utterance(utterance);
                }
            }
            ServerMessage::UtteranceEnd { last_word_end } => {
                self.mark("deepgram.utterance-end", &[("last_word_end", (offset + last_word_end).into())]);
                if let Some(utterance) = self.assembler.finish() {
                    self.mark_utterance(utterance);
                }
            }
            ServerMessage::SpeechStarted { timestamp } => {
                self.mark("deepgram.speech-started", &[("at", (offset + timestamp).into())]);
                self.actions.push(Action::Heard(Heard::SpeechStarted { at: offset + timestamp }));
            }
            ServerMessage::TurnInfo(turn) => self.on_turn_info(turn, offset, now_ms),
            ServerMessage::Connected { request_id } => self.mark("deepgram.metadata", &[("request_id", request_id.into())]),
            ServerMessage::Metadata { request_id } => self.mark("deepgram.metadata", &[("request_id", request_id.into())]),
            ServerMessage::Other(kind) => self.mark("deepgram.other", &[("type", kind.into())]),
        }
    }

    /// Flux's view of the turn: audio confirmed to the window's end, the start and the
    /// words heard, and the turn's end as the utterance.
    fn on_turn_info(&mut self, turn: deepgram::TurnInfo, offset: f64, now_ms: u64) {
        if !self.first_result {
            self.first_result = true;
            let since_audio = self.first_media_ms.map(|t| now_ms.saturating_sub(t)).unwrap_or(0);
            self.mark("deepgram.first-result", &[("ms_since_first_audio", since_audio.into())]);
        }
        self.ledger.confirm(turn.audio_window_end);
        match turn.event.as_str() {
            "StartOfTurn" => {
                self.mark("deepgram.turn", &[("event", turn.event.as_str().into()), ("turn_index", turn.turn_index.into())]);
                self.actions.push(Action::Heard(Heard::SpeechStarted { at: offset + turn.audio_window_start }));
            }
            "EndOfTurn" => {
                self.mark("deepgram.turn", &[("event", turn.event.as_str().into()), ("turn_index", turn.turn_index.into())]);
                if !turn.transcript.trim().is_empty() {
                    self.stats.transcripts += 1;
                    self.mark_utterance(Utterance {
                        text: turn.transcript,
                        start: offset + turn.audio_window_start,
                        end: offset + turn.audio_window_end,
                        confidence: turn.end_of_turn_confidence,
                    });
                }
            }
            "Update" | "TurnResumed" | "EagerEndOfTurn" => {
                let words = turn.transcript.split_whitespace().count();
                if words > 0 {
                    self.actions.push(Action::Heard(Heard::Interim { text: turn.transcript, words }));
                }
            }
            other => self.mark("deepgram.other", &[("type", format!("TurnInfo {other}").into())]),
        }
    }

    fn mark_utterance(&mut self, utterance: Utterance) {
        let ms = |seconds: f64| (seconds.max(0.0) * 1e3).round() as u64;
        self.actions.push(Action::Transcript {
            text: utterance.text.clone(),
            start_ms: ms(utterance.start),
            end_ms: ms(utterance.end),
            confidence: utterance.confidence,
        });
        self.mark(
            "utterance",
            &[
                ("text", utterance.text.into()),
                ("start", utterance.start.into()),
                ("end", utterance.end.into()),
                ("confidence", utterance.confidence.into()),
                ("call_sid", self.call.call_sid.as_str().into()),
            ],
        );
    }

    /// The Deepgram connection ended.
    pub fn on_deepgram_closed(&mut self, code: u16, reason: &str, now_ms: u64) {
        if self.finished {
            return;
        }
        self.mark("deepgram.closed", &[("code", code.into()), ("reason", reason.into())]);
        // Flux closes without a status code after CloseStream: any close is then expected.
        let expected = matches!(self.link, Link::Draining { .. }) && (code == 1000 || self.settings.flux());
        if expected {
            self.link = Link::Closed;
            self.complete(true);
        } else if code == 1008 {
            // DATA-0000 and the like: the request itself is wrong; retrying repeats it.
            self.give_up(
                "closed-1008",
                format!("Deepgram closed the stream with 1008 {reason}: the request is wrong, retrying repeats it"),
                now_ms,
            );
        } else if !matches!(self.link, Link::Closed) {
            self.fault(DEEPGRAM_LEG, Impact::Recovered, "closed", format!("Deepgram closed {code} {reason}"));
            self.schedule_reconnect(now_ms);
        }
    }

    fn schedule_reconnect(&mut self, now_ms: u64) {
        if self.backoff.attempts() >= self.settings.max_reconnects {
            let tries = self.settings.max_reconnects;
            self.give_up("max-reconnects", format!("gave up on Deepgram after {tries} reconnects"), now_ms);
            return;
        }
        if self.ending && self.end_deadline_ms.is_some_and(|deadline| now_ms >= deadline) {
            self.give_up("call-ended", "gave up on Deepgram: the call ended while it was unreachable".to_owned(), now_ms);
            return;
        }
        let delay = self.backoff.next_delay_ms();
        self.stats.reconnects += 1;
        self.link = Link::Waiting { until_ms: now_ms + delay };
        self.mark(
            "deepgram.reconnect",
            &[
                ("attempt", self.backoff.attempts().into()),
                ("delay_ms", delay.into()),
                ("unconfirmed_bytes", (self.ledger.sent() - self.ledger.confirmed()).into()),
            ],
        );
    }

    fn give_up(&mut self, why: &str, reason: String, now_ms: u64) {
        self.gave_up = true;
        let was_open = matches!(self.link, Link::Open { .. } | Link::Draining { .. });
        self.link = Link::Closed;
        if was_open {
            self.actions.push(Action::CloseDeepgram);
        }
        self.mark("deepgram.gave-up", &[("why", why.into()), ("unsent_bytes", self.ledger.unsent().into())]);
        self.fault(DEEPGRAM_LEG, Impact::Failed, "gave-up", reason);
        if self.ending {
            self.complete(false);
        }
        let _ = now_ms;
    }

    // ---- Time and audio -----------------------------------------------------------------

    /// The size of the next frame to send, if one may go: whole `batch_ms` frames (several
    /// at once while catching up, up to [`MAX_FRAME_MS`]); a shorter frame only for the
    /// last audio of a call that is ending. Never an empty frame.
    fn next_frame_bytes(&self) -> Option<usize> {
        let batch = self.settings.batch_bytes();
        let unsent = self.ledger.unsent() as usize;
        if unsent >= batch {
            let largest = (MAX_FRAME_MS * BYTES_PER_MS / batch).max(1) * batch;
            Some(unsent.min(largest) / batch * batch)
        } else if self.ending && unsent > 0 {
            Some(unsent)
        } else {
            None
        }
    }

    /// Sends the audio that may go now, paced at [`PACE_BYTES_PER_MS`]; then `Finalize` and
    /// `CloseStream` once a call that is ending has sent everything.
    fn pump_audio(&mut self, now_ms: u64) {
        let Link::Open { mut last_send_ms, mut paced_until_ms } = self.link else {
            return;
        };
        while now_ms >= paced_until_ms {
            let Some(size) = self.next_frame_bytes() else { break };
            let Some(audio) = self.ledger.next_frame(size, size) else { break };
            let from = paced_until_ms.max(now_ms.saturating_sub(PACE_CREDIT_MS));
            paced_until_ms = from + (audio.len() as u64).div_ceil(PACE_BYTES_PER_MS);
            last_send_ms = now_ms;
            self.actions.push(Action::SendAudio(audio));
        }
        self.link = Link::Open { last_send_ms, paced_until_ms };
        if self.ending && !self.close_sent && self.ledger.unsent() == 0 {
            self.close_sent = true;
            if !self.settings.flux() {
                self.actions.push(Action::SendControl(FINALIZE));
            }
            self.actions.push(Action::SendControl(CLOSE_STREAM));
            if self.settings.flux() {
                // Flux closes without a status code: its close cannot say it is done, so the
                // pipeline says so (the host then takes that close for the normal end).
                self.actions.push(Action::Complete(DEEPGRAM_LEG));
            }
            let deadline = now_ms + self.settings.final_wait_ms;
            self.link = Link::Draining { deadline_ms: deadline };
            self.mark("deepgram.close-stream", &[("audio_bytes", self.ledger.received().into())]);
        }
    }

    fn end_of_call(&mut self, now_ms: u64) {
        if self.ending || self.finished {
            return;
        }
        self.ending = true;
        self.end_deadline_ms = Some(now_ms + self.settings.final_wait_ms);
        match self.link {
            Link::Idle | Link::Closed => self.complete(self.link == Link::Idle && self.ledger.received() == 0),
            Link::Open { .. } => self.pump_audio(now_ms),
            Link::Connecting { .. } | Link::Waiting { .. } | Link::Draining { .. } => {}
        }
    }

    /// Time passed: reconnect, keep alive, pace, or give up waiting.
    pub fn on_tick(&mut self, now_ms: u64) {
        if self.finished {
            return;
        }
        match self.link {
            Link::Waiting { until_ms } if now_ms >= until_ms => self.connect(now_ms),
            Link::Open { last_send_ms, .. } => {
                self.pump_audio(now_ms);
                if let Link::Open { last_send_ms: after, paced_until_ms } = self.link
                    && after == last_send_ms
                    && !self.settings.flux()
                    && now_ms.saturating_sub(last_send_ms) >= self.settings.keepalive_ms
                {
                    self.actions.push(Action::SendControl(KEEP_ALIVE));
                    self.link = Link::Open { last_send_ms: now_ms, paced_until_ms };
                }
            }
            Link::Draining { deadline_ms } if now_ms >= deadline_ms => {
                self.mark("deepgram.final-timeout", &[("waited_ms", self.settings.final_wait_ms.into())]);
                self.fault(DEEPGRAM_LEG, Impact::Failed, "final-timeout", "Deepgram sent no final close after CloseStream".to_owned());
                self.actions.push(Action::CloseDeepgram);
                self.link = Link::Closed;
                self.complete(false);
                return;
            }
            _ => {}
        }
        if self.ending
            && !matches!(self.link, Link::Open { .. } | Link::Draining { .. } | Link::Closed)
            && self.end_deadline_ms.is_some_and(|deadline| now_ms >= deadline)
        {
            self.give_up("call-ended", "gave up on Deepgram: the call ended while it was unreachable".to_owned(), now_ms);
        }
    }

    /// When the glue should call [`Pipeline::on_tick`] next, if ever.
    pub fn next_deadline(&self) -> Option<u64> {
        if self.finished {
            return None;
        }
        let link = match self.link {
            Link::Waiting { until_ms } => Some(until_ms),
            Link::Open { last_send_ms, paced_until_ms } => {
                // Flux has no KeepAlive: only the pace wakes it.
                let keepalive = (!self.settings.flux()).then(|| last_send_ms + self.settings.keepalive_ms);
                // Audio held back by the pace is due when the pace allows it.
                let paced = self.next_frame_bytes().map(|_| paced_until_ms);
                match (paced, keepalive) {
                    (Some(p), Some(k)) => Some(p.min(k)),
                    (p, k) => p.or(k),
                }
            }
            Link::Draining { deadline_ms } => Some(deadline_ms),
            _ => None,
        };
        // The end-of-call deadline only matters while no connection is up (see on_tick).
        let waiting_for_deepgram = !matches!(self.link, Link::Open { .. } | Link::Draining { .. } | Link::Closed);
        let ending = if self.ending && waiting_for_deepgram { self.end_deadline_ms } else { None };
        match (link, ending) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn complete(&mut self, clean: bool) {
        if self.finished {
            return;
        }
        if let Some(utterance) = self.assembler.finish() {
            self.mark_utterance(utterance);
        }
        let unconfirmed = if clean { 0 } else { self.ledger.sent() - self.ledger.confirmed() };
        self.stats.lost_bytes += self.ledger.unsent() + unconfirmed;
        self.finished = true;
        if self.stats.lost_bytes > 0 {
            let lost = self.stats.lost_bytes;
            self.fault(DEEPGRAM_LEG, Impact::Failed, "audio-lost", format!("{lost} bytes of audio did not reach Deepgram"));
        }
        self.mark(
            "pipeline.summary",
            &[
                ("audio_bytes", self.ledger.received().into()),
                ("media_messages", self.stats.media_messages.into()),
                ("replayed_bytes", self.ledger.replayed().into()),
                ("lost_bytes", self.stats.lost_bytes.into()),
                ("reconnects", self.stats.reconnects.into()),
                ("transcripts", self.stats.transcripts.into()),
                ("clean", clean.into()),
            ],
        );
        self.actions.push(Action::Finish);
    }
}

#[cfg(test)]
mod tests;
