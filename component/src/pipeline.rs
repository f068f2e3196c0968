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

use crate::backoff::Backoff;
use crate::deepgram::{self, CLOSE_STREAM, FINALIZE, KEEP_ALIVE, ServerMessage};
use crate::ledger::AudioLedger;
use crate::settings::{BYTES_PER_MS, Settings};
use crate::twilio::{self, StartInfo, TwilioError, TwilioEvent};
use crate::utterance::{Utterance, UtteranceAssembler};

/// Something the glue must do.
#[derive(Debug, Clone, PartialEq)]
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
        attributes: Vec<(String, String)>,
    },
    /// The pipeline is done: close the inbound socket (1000) and return.
    Finish,
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

/// The fastest audio goes to Deepgram: 1.25x real time (mu-law, 8 bytes a millisecond).
/// After a frame of `n` bytes the next waits `n / PACE_BYTES_PER_MS` ms, so over any
/// stretch of a connection the audio sent never runs ahead of 1.25x the time it took.
pub const PACE_BYTES_PER_MS: u64 = BYTES_PER_MS as u64 * 5 / 4;

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

fn attrs(pairs: &[(&str, String)]) -> Vec<(String, String)> {
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

    /// Whether the pipeline has finished (the glue returns after the `Finish` action).
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// The counters so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    fn mark(&mut self, name: &str, pairs: &[(&str, String)]) {
        debug_assert!(crate::markers::is_documented(name, pairs.iter().map(|(key, _)| *key)), "undocumented marker {name} {pairs:?}");
        self.actions.push(Action::Mark { name: name.to_owned(), attributes: attrs(pairs) });
    }

    // ---- Twilio -------------------------------------------------------------------------

    /// A text message from Twilio.
    pub fn on_twilio_text(&mut self, text: &str, now_ms: u64) {
        if self.finished {
            return;
        }
        match twilio::parse(text) {
            Ok(TwilioEvent::Connected { protocol }) => self.mark("twilio.connected", &[("protocol", protocol)]),
            Ok(TwilioEvent::Start(start)) => {
                let mut pairs = vec![
                    ("call_sid", start.call_sid.clone()),
                    ("stream_sid", start.stream_sid.clone()),
                    ("encoding", start.encoding.clone()),
                    ("sample_rate", start.sample_rate.to_string()),
                    ("channels", start.channels.to_string()),
                ];
                for (key, value) in &start.custom_parameters {
                    pairs.push(("parameter", format!("{key}={value}")));
                }
                self.mark("twilio.start", &pairs);
                if start.encoding != "audio/x-mulaw" || start.sample_rate != 8000 || start.channels != 1 {
                    self.mark("twilio.unexpected-format", &[("encoding", start.encoding.clone())]);
                }
                self.call = start;
                self.ensure_connection(now_ms);
            }
            Ok(TwilioEvent::Media { audio, .. }) => {
                self.stats.media_messages += 1;
                if self.first_media_ms.is_none() {
                    self.first_media_ms = Some(now_ms);
                    self.mark("twilio.first-media", &[("bytes", audio.len().to_string())]);
                }
                if self.ending {
                    return;
                }
                let overflow = self.ledger.push(&audio);
                if overflow > 0 {
                    self.mark(
                        "audio.overflow",
                        &[("bytes", overflow.to_string()), ("buffer_ms", self.settings.replay_buffer_ms.to_string())],
                    );
                }
                self.ensure_connection(now_ms);
                self.pump_audio(now_ms);
            }
            Ok(TwilioEvent::Dtmf { digit }) => self.mark("twilio.dtmf", &[("digit", digit)]),
            Ok(TwilioEvent::Mark { name }) => self.mark("twilio.mark", &[("name", name)]),
            Ok(TwilioEvent::Stop) => {
                self.mark("twilio.stop", &[("media_messages", self.stats.media_messages.to_string())]);
                self.end_of_call(now_ms);
            }
            Err(error) => {
                let name = match error {
                    TwilioError::Malformed(_) => "twilio.malformed",
                    TwilioError::UnknownEvent(_) => "twilio.unknown-event",
                    TwilioError::BadPayload(_) => "twilio.bad-payload",
                };
                let excerpt: String = text.chars().take(200).collect();
                self.mark(name, &[("error", error.to_string()), ("message", excerpt)]);
            }
        }
    }

    /// A binary message from Twilio (Twilio sends none: recorded and ignored).
    pub fn on_twilio_binary(&mut self, len: usize) {
        self.mark("twilio.unexpected-binary", &[("bytes", len.to_string())]);
    }

    /// The Twilio socket ended.
    pub fn on_twilio_closed(&mut self, code: u16, reason: &str, now_ms: u64) {
        self.mark("twilio.closed", &[("code", code.to_string()), ("reason", reason.to_owned())]);
        self.end_of_call(now_ms);
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
        self.mark("deepgram.connecting", &[("attempt", (self.backoff.attempts() + 1).to_string())]);
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
        self.mark("deepgram.open", &[("connect_ms", (now_ms - since).to_string()), ("session", self.sessions.to_string())]);
        self.stats.lost_bytes += gone;
        if self.sessions > 1 || gone > 0 {
            self.mark(
                "deepgram.replay",
                &[
                    ("replay_bytes", replay.to_string()),
                    ("lost_bytes", gone.to_string()),
                    ("from_ms", (self.ledger.sent() / BYTES_PER_MS as u64).to_string()),
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
                    &[("status", status.to_string()), ("dg_error", dg_error.unwrap_or_default()), ("body", body)],
                );
                if (400..500).contains(&status) {
                    // Auth or request errors do not heal by retrying.
                    self.give_up("rejected", now_ms);
                } else {
                    self.schedule_reconnect(now_ms);
                }
            }
            ConnectFailure::Permanent { cause, detail } => {
                self.mark("deepgram.connect-failed", &[("cause", cause), ("detail", detail)]);
                self.give_up("refused-by-host", now_ms);
            }
            ConnectFailure::Failed { cause, detail } => {
                self.mark("deepgram.connect-failed", &[("cause", cause), ("detail", detail)]);
                self.schedule_reconnect(now_ms);
            }
        }
    }

    /// A text message from Deepgram.
    pub fn on_deepgram_text(&mut self, text: &str, now_ms: u64) {
        let message = match deepgram::parse(text) {
            Ok(message) => message,
            Err(error) => {
                self.mark("deepgram.malformed", &[("error", error), ("message", text.chars().take(200).collect())]);
                return;
            }
        };
        let offset = self.ledger.session_offset_seconds();
        match message {
            ServerMessage::Results(results) => {
                if !self.first_result {
                    self.first_result = true;
                    let since_audio = self.first_media_ms.map(|t| now_ms.saturating_sub(t)).unwrap_or(0);
                    self.mark("deepgram.first-result", &[("ms_since_first_audio", since_audio.to_string())]);
                }
                if !results.is_final {
                    return;
                }
                self.ledger.confirm(results.start + results.duration);
                let (start, end) = (offset + results.start, offset + results.start + results.duration);
                if !results.transcript.trim().is_empty() {
                    self.stats.transcripts += 1;
                    self.mark(
                        "transcript.final",
                        &[
                            ("text", results.transcript.clone()),
                            ("start", format!("{start:.3}")),
                            ("end", format!("{end:.3}")),
                            ("confidence", format!("{:.3}", results.confidence)),
                            ("call_sid", self.call.call_sid.clone()),
                            ("from_finalize", results.from_finalize.to_string()),
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
                self.mark("deepgram.utterance-end", &[("last_word_end", format!("{:.3}", offset + last_word_end))]);
                if let Some(utterance) = self.assembler.finish() {
                    self.mark_utterance(utterance);
                }
            }
            ServerMessage::SpeechStarted { timestamp } => {
                self.mark("deepgram.speech-started", &[("at", format!("{:.3}", offset + timestamp))]);
            }
            ServerMessage::Metadata { request_id } => self.mark("deepgram.metadata", &[("request_id", request_id)]),
            ServerMessage::Other(kind) => self.mark("deepgram.other", &[("type", kind)]),
        }
    }

    fn mark_utterance(&mut self, utterance: Utterance) {
        self.mark(
            "utterance",
            &[
                ("text", utterance.text),
                ("start", format!("{:.3}", utterance.start)),
                ("end", format!("{:.3}", utterance.end)),
                ("confidence", format!("{:.3}", utterance.confidence)),
                ("call_sid", self.call.call_sid.clone()),
            ],
        );
    }

    /// The Deepgram connection ended.
    pub fn on_deepgram_closed(&mut self, code: u16, reason: &str, now_ms: u64) {
        if self.finished {
            return;
        }
        self.mark("deepgram.closed", &[("code", code.to_string()), ("reason", reason.to_owned())]);
        let expected = matches!(self.link, Link::Draining { .. }) && code == 1000;
        if expected {
            self.link = Link::Closed;
            self.complete(true);
        } else if code == 1008 {
            // DATA-0000 and the like: the request itself is wrong; retrying repeats it.
            self.give_up("closed-1008", now_ms);
        } else if !matches!(self.link, Link::Closed) {
            self.schedule_reconnect(now_ms);
        }
    }

    fn schedule_reconnect(&mut self, now_ms: u64) {
        if self.backoff.attempts() >= self.settings.max_reconnects {
            self.give_up("max-reconnects", now_ms);
            return;
        }
        if self.ending && self.end_deadline_ms.is_some_and(|deadline| now_ms >= deadline) {
            self.give_up("call-ended", now_ms);
            return;
        }
        let delay = self.backoff.next_delay_ms();
        self.stats.reconnects += 1;
        self.link = Link::Waiting { until_ms: now_ms + delay };
        self.mark(
            "deepgram.reconnect",
            &[
                ("attempt", self.backoff.attempts().to_string()),
                ("delay_ms", delay.to_string()),
                ("unconfirmed_bytes", (self.ledger.sent() - self.ledger.confirmed()).to_string()),
            ],
        );
    }

    fn give_up(&mut self, why: &str, now_ms: u64) {
        self.gave_up = true;
        let was_open = matches!(self.link, Link::Open { .. } | Link::Draining { .. });
        self.link = Link::Closed;
        if was_open {
            self.actions.push(Action::CloseDeepgram);
        }
        self.mark("deepgram.gave-up", &[("why", why.to_owned()), ("unsent_bytes", self.ledger.unsent().to_string())]);
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
            paced_until_ms = now_ms + (audio.len() as u64).div_ceil(PACE_BYTES_PER_MS);
            last_send_ms = now_ms;
            self.actions.push(Action::SendAudio(audio));
        }
        self.link = Link::Open { last_send_ms, paced_until_ms };
        if self.ending && !self.close_sent && self.ledger.unsent() == 0 {
            self.close_sent = true;
            self.actions.push(Action::SendControl(FINALIZE));
            self.actions.push(Action::SendControl(CLOSE_STREAM));
            let deadline = now_ms + self.settings.final_wait_ms;
            self.link = Link::Draining { deadline_ms: deadline };
            self.mark("deepgram.close-stream", &[("audio_bytes", self.ledger.received().to_string())]);
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
                    && now_ms.saturating_sub(last_send_ms) >= self.settings.keepalive_ms
                {
                    self.actions.push(Action::SendControl(KEEP_ALIVE));
                    self.link = Link::Open { last_send_ms: now_ms, paced_until_ms };
                }
            }
            Link::Draining { deadline_ms } if now_ms >= deadline_ms => {
                self.mark("deepgram.final-timeout", &[("waited_ms", self.settings.final_wait_ms.to_string())]);
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
            self.give_up("call-ended", now_ms);
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
                let keepalive = last_send_ms + self.settings.keepalive_ms;
                // Audio held back by the pace is due when the pace allows it.
                let paced = self.next_frame_bytes().map(|_| paced_until_ms);
                Some(paced.map_or(keepalive, |p| p.min(keepalive)))
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
        self.mark(
            "pipeline.summary",
            &[
                ("audio_bytes", self.ledger.received().to_string()),
                ("media_messages", self.stats.media_messages.to_string()),
                ("replayed_bytes", self.ledger.replayed().to_string()),
                ("lost_bytes", self.stats.lost_bytes.to_string()),
                ("reconnects", self.stats.reconnects.to_string()),
                ("transcripts", self.stats.transcripts.to_string()),
                ("clean", clean.to_string()),
            ],
        );
        self.actions.push(Action::Finish);
    }
}

#[cfg(test)]
mod tests;
