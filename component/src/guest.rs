//! The wasm glue: moves messages between the host's sockets and the [`Pipeline`], and
//! sleeps in one `poll` until a socket or the pipeline's next deadline needs attention.
//!
//! Every host call costs a trip across the sandbox boundary, and a call carries 50 media
//! messages a second, so the glue keeps its pollables for as long as what they watch
//! lives, keeps its timer until it fires or must fire sooner, and only reads the sockets
//! `poll` said are ready: about five host calls per media message.

use std::collections::VecDeque;

use switchboard_guest::bindings::switchboard::call::markers;
use switchboard_guest::bindings::wasi::io::poll::Pollable;
use switchboard_guest::io::{now_ms, timer_ms, wait_any};
use switchboard_guest::outbound::{ConnectOptions, FutureConnection, connect};
use switchboard_guest::{Connection, ErrorCode, Handler, Impact, Message, RequestInfo, TranscriptEntry, Value, fault, legs, mark, setting};

use crate::pipeline::{Action, ConnectFailure, DEEPGRAM_LEG, Pipeline, TWILIO_LEG};
use crate::settings::Settings;

struct VoicePipeline;

/// Where a settings problem is reported: the component itself, on its own leg.
const GUEST_SETTINGS_LEG: &str = "pipeline";

/// The Deepgram leg as the glue holds it. Each pollable is declared before what it
/// watches: a child resource must be dropped before its parent.
enum Upstream {
    None,
    Connecting { ready: Pollable, future: FutureConnection },
    Open { ready: Pollable, connection: Connection },
}

impl Upstream {
    fn connecting(future: FutureConnection) -> Self {
        Upstream::Connecting { ready: future.subscribe(), future }
    }

    fn open(connection: Connection) -> Self {
        Upstream::Open { ready: connection.subscribe(), connection }
    }
}

/// The pipeline's wake-up: a timer kept until it fires or a sooner deadline comes.
struct Timer {
    due_ms: u64,
    ready: Pollable,
}

impl Handler for VoicePipeline {
    fn handle(request: RequestInfo, inbound: Connection) {
        // The caller is Twilio: the host reports its socket's events on that leg.
        legs::name_inbound(TWILIO_LEG);
        let settings = match Settings::from_lookup(setting) {
            Ok(settings) => settings,
            Err(error) => {
                mark("pipeline.bad-setting", &[("error", Value::from(error.to_string()))]);
                fault(GUEST_SETTINGS_LEG, Impact::Failed, "bad-setting", &error.to_string());
                let _ = inbound.close(1011, "voice-pipeline: bad settings");
                return;
            }
        };
        mark("pipeline.started", &[("connection_id", Value::from(request.connection_id))]);
        let mut pipeline = Pipeline::new(settings, switchboard_guest::bindings::wasi::clocks::monotonic_clock::now());
        let mut glue = Glue {
            inbound_ready: Some(inbound.subscribe()),
            inbound,
            upstream: Upstream::None,
            outbox: VecDeque::new(),
            timer: None,
            actions: Vec::new(),
        };
        let mut now = now_ms();
        loop {
            pipeline.on_tick(now);
            if glue.run(&mut pipeline) {
                return;
            }
            let ready = glue.wait(pipeline.next_deadline(), now);
            now = now_ms();
            if ready.inbound {
                glue.drain_inbound(&mut pipeline, now);
            }
            if ready.upstream {
                glue.drain_upstream(&mut pipeline, now);
            }
            if glue.run(&mut pipeline) {
                return;
            }
        }
    }
}

struct Glue {
    /// Watches `inbound`; `None` once the caller's side has closed.
    inbound_ready: Option<Pollable>,
    inbound: Connection,
    upstream: Upstream,
    /// Messages for Deepgram that its send queue has not taken yet.
    outbox: VecDeque<Message>,
    timer: Option<Timer>,
    /// The pipeline's actions being carried out; kept so its allocation is reused.
    actions: Vec<Action>,
}

/// The pollables of one `poll`, on the stack: the timer first, then at most three
/// sockets' (inbound, Deepgram, Deepgram's `writable`).
struct PollSet<'a> {
    items: [&'a Pollable; 4],
    len: usize,
}

impl<'a> PollSet<'a> {
    fn new(timer: &'a Pollable) -> Self {
        PollSet { items: [timer; 4], len: 1 }
    }

    /// Adds `pollable`; returns its index in the `poll` list.
    fn push(&mut self, pollable: &'a Pollable) -> usize {
        self.items[self.len] = pollable;
        self.len += 1;
        self.len - 1
    }

    fn as_slice(&self) -> &[&'a Pollable] {
        &self.items[..self.len]
    }
}

/// Which sources `poll` found ready.
struct Ready {
    inbound: bool,
    upstream: bool,
}

impl Glue {
    /// Carries out the pipeline's actions; true when the call is over.
    fn run(&mut self, pipeline: &mut Pipeline) -> bool {
        let mut actions = std::mem::take(&mut self.actions);
        pipeline.swap_actions(&mut actions);
        for action in actions.drain(..) {
            match action {
                Action::Connect { url } => {
                    self.outbox.clear();
                    let options =
                        ConnectOptions { headers: Vec::new(), subprotocols: Vec::new(), timeout: None, leg: Some(DEEPGRAM_LEG.to_owned()) };
                    match connect(&url, &options) {
                        Ok(future) => self.upstream = Upstream::connecting(future),
                        Err(error) => {
                            self.upstream = Upstream::None;
                            pipeline.on_connect_failed(ConnectFailure::of(&error), now_ms());
                        }
                    }
                }
                Action::SendAudio(audio) => self.outbox.push_back(Message::Binary(audio)),
                Action::SendControl(text) => self.outbox.push_back(Message::Text(text.to_owned())),
                Action::CloseDeepgram => {
                    if let Upstream::Open { connection, .. } = &self.upstream {
                        let _ = connection.close(1000, "");
                    }
                    self.upstream = Upstream::None;
                }
                Action::Mark { name, attributes } => markers::emit(&name, &attributes),
                Action::Fault { leg, impact, cause, detail } => fault(leg, impact, cause, &detail),
                Action::Complete(leg) => legs::complete(leg),
                Action::Identify { kind, value } => markers::identify(kind, &value),
                Action::Transcript { text, start_ms, end_ms, confidence } => markers::transcript(&TranscriptEntry {
                    speaker: "caller".to_owned(),
                    text,
                    start_ms: Some(start_ms),
                    end_ms: Some(end_ms),
                    confidence: Some(confidence),
                }),
                Action::Heard(_) => {}
                Action::Finish => {
                    if self.inbound_ready.is_some() {
                        let _ = self.inbound.close(1000, "call complete");
                    }
                    return true;
                }
            }
        }
        self.actions = actions;
        self.flush_outbox();
        // Actions may have produced more actions (a failed connect): run them too.
        false
    }

    fn flush_outbox(&mut self) {
        let Upstream::Open { connection, .. } = &self.upstream else {
            return;
        };
        while let Some(message) = self.outbox.pop_front() {
            match connection.send(&message) {
                Ok(()) => {}
                Err(ErrorCode::WouldBlock) => {
                    self.outbox.push_front(message);
                    return;
                }
                // A closed connection is reported by `receive`; the pipeline replays.
                Err(_) => return,
            }
        }
    }

    /// Sleeps until the inbound socket, the Deepgram leg or the deadline needs attention.
    fn wait(&mut self, deadline: Option<u64>, now: u64) -> Ready {
        // Always wake at least every few seconds: KeepAlive and deadlines stay honest.
        let due = deadline.map_or(now + 5_000, |d| d.min(now + 5_000));
        let keep = self.timer.as_ref().is_some_and(|timer| now < timer.due_ms && timer.due_ms <= due);
        let timer = match &mut self.timer {
            Some(timer) if keep => &*timer,
            slot => &*slot.insert(Timer { due_ms: due, ready: timer_ms(due.saturating_sub(now)) }),
        };
        let writable = match &self.upstream {
            Upstream::Open { connection, .. } if !self.outbox.is_empty() => Some(connection.writable()),
            _ => None,
        };
        let mut pollables = PollSet::new(&timer.ready);
        let inbound_at = self.inbound_ready.as_ref().map(|ready| pollables.push(ready));
        let upstream_at = match &self.upstream {
            Upstream::None => None,
            Upstream::Connecting { ready, .. } | Upstream::Open { ready, .. } => Some(pollables.push(ready)),
        };
        if let Some(writable) = &writable {
            pollables.push(writable);
        }
        let ready = wait_any(pollables.as_slice());
        let is_ready = |at: Option<usize>| at.is_some_and(|at| ready.contains(&(at as u32)));
        Ready { inbound: is_ready(inbound_at), upstream: is_ready(upstream_at) }
    }

    fn drain_inbound(&mut self, pipeline: &mut Pipeline, now: u64) {
        while self.inbound_ready.is_some() {
            match self.inbound.receive() {
                Ok(Some(Message::Text(text))) => pipeline.on_twilio_text(&text, now),
                Ok(Some(Message::Binary(data))) => pipeline.on_twilio_binary(data.len()),
                Ok(None) => return,
                Err(error) => {
                    self.inbound_ready = None;
                    let (code, reason) = match error {
                        ErrorCode::Closed(frame) => (frame.code, frame.reason),
                        other => (1006, format!("{other:?}")),
                    };
                    pipeline.on_twilio_closed(code, &reason, now);
                }
            }
        }
    }

    fn drain_upstream(&mut self, pipeline: &mut Pipeline, now: u64) {
        if let Upstream::Connecting { future, .. } = &self.upstream {
            match future.get() {
                None => return,
                Some(Ok(connection)) => {
                    self.upstream = Upstream::open(connection);
                    pipeline.on_connected(now);
                }
                Some(Err(error)) => {
                    self.upstream = Upstream::None;
                    pipeline.on_connect_failed(ConnectFailure::of(&error), now);
                    return;
                }
            }
        }
        let Upstream::Open { connection, .. } = &self.upstream else {
            return;
        };
        loop {
            match connection.receive() {
                Ok(Some(Message::Text(text))) => pipeline.on_deepgram_text(&text, now),
                Ok(Some(Message::Binary(_))) => {}
                Ok(None) => return,
                Err(error) => {
                    let (code, reason) = match error {
                        ErrorCode::Closed(frame) => (frame.code, frame.reason),
                        other => (1006, format!("{other:?}")),
                    };
                    self.upstream = Upstream::None;
                    self.outbox.clear();
                    pipeline.on_deepgram_closed(code, &reason, now);
                    return;
                }
            }
        }
    }
}

switchboard_guest::export_handler!(VoicePipeline);
