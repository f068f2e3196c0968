//! The wasm glue: moves messages between the host's sockets, the LLM's streamed response
//! and the [`Agent`], and sleeps in one `poll` until one of them or the agent's next
//! deadline needs attention. Socket pollables are kept while what they watch lives (50
//! media messages a second each way); an HTTP response's pollable is made per wait.

use std::collections::VecDeque;

use switchboard_guest::bindings::switchboard::call::markers;
use switchboard_guest::bindings::wasi::io::poll::Pollable;
use switchboard_guest::http::{self, Chunk, Pending, Request, Response};
use switchboard_guest::io::{now_ms, timer_ms, wait_any};
use switchboard_guest::outbound::{ConnectOptions, FutureConnection, connect};
use switchboard_guest::{Connection, ErrorCode, Handler, Impact, Message, RequestInfo, TranscriptEntry, Value, fault, legs, mark, setting};
use switchboard_voice::pipeline::ConnectFailure;

use crate::agent::{Action, Agent, LISTEN_LEG, LLM_LEG, SPEAK_LEG, Socket, TWILIO_LEG};
use crate::settings::AgentSettings;

struct VoiceAgent;

/// Where a settings problem is reported: the component itself, on its own leg.
const GUEST_SETTINGS_LEG: &str = "agent";

/// An outbound socket as the glue holds it; the pollable is declared before what it
/// watches (a child resource is dropped before its parent).
enum Link {
    None,
    Connecting { ready: Pollable, future: FutureConnection },
    Open { ready: Pollable, connection: Connection },
}

impl Link {
    fn ready(&self) -> Option<&Pollable> {
        match self {
            Link::None => None,
            Link::Connecting { ready, .. } | Link::Open { ready, .. } => Some(ready),
        }
    }
}

/// An HTTP exchange: waiting for the head, then reading the body.
enum Exchange {
    None,
    Head(Pending),
    Body(Response),
}

struct Timer {
    due_ms: u64,
    ready: Pollable,
}

impl Handler for VoiceAgent {
    fn handle(_request: RequestInfo, inbound: Connection) {
        legs::name_inbound(TWILIO_LEG);
        let settings = match AgentSettings::from_lookup(setting) {
            Ok(settings) => settings,
            Err(error) => {
                mark("agent.bad-setting", &[("error", Value::from(error.to_string()))]);
                fault(GUEST_SETTINGS_LEG, Impact::Failed, "bad-setting", &error.to_string());
                let _ = inbound.close(1011, "voice-agent: bad settings");
                return;
            }
        };
        let mut agent = Agent::new(settings, switchboard_guest::bindings::wasi::clocks::monotonic_clock::now());
        let mut glue = Glue {
            inbound_ready: Some(inbound.subscribe()),
            inbound,
            twilio_outbox: VecDeque::new(),
            listen: Link::None,
            listen_outbox: VecDeque::new(),
            speak: Link::None,
            speak_outbox: VecDeque::new(),
            llm: Exchange::None,
            rest: Exchange::None,
            timer: None,
        };
        let mut now = now_ms();
        loop {
            agent.on_tick(now);
            if glue.run(&mut agent) {
                return;
            }
            let ready = glue.wait(agent.next_deadline(now), now);
            now = now_ms();
            if ready.inbound {
                glue.drain_inbound(&mut agent, now);
            }
            if ready.listen {
                glue.drain_listen(&mut agent, now);
            }
            if ready.speak {
                glue.drain_speak(&mut agent, now);
            }
            glue.drain_llm(&mut agent, now);
            glue.drain_rest(&mut agent, now);
            if glue.run(&mut agent) {
                return;
            }
        }
    }
}

struct Glue {
    inbound_ready: Option<Pollable>,
    inbound: Connection,
    twilio_outbox: VecDeque<Message>,
    listen: Link,
    listen_outbox: VecDeque<Message>,
    speak: Link,
    speak_outbox: VecDeque<Message>,
    llm: Exchange,
    rest: Exchange,
    timer: Option<Timer>,
}

struct Ready {
    inbound: bool,
    listen: bool,
    speak: bool,
}

impl Glue {
    /// Carries out the agent's actions; true when the call is over.
    fn run(&mut self, agent: &mut Agent) -> bool {
        loop {
            let actions = agent.take_actions();
            if actions.is_empty() {
                break;
            }
            for action in actions {
                if self.act(action, agent) {
                    return true;
                }
            }
        }
        flush(&self.inbound, self.inbound_ready.is_some(), &mut self.twilio_outbox);
        if let Link::Open { connection, .. } = &self.listen {
            flush(connection, true, &mut self.listen_outbox);
        }
        if let Link::Open { connection, .. } = &self.speak {
            flush(connection, true, &mut self.speak_outbox);
        }
        false
    }

    fn act(&mut self, action: Action, agent: &mut Agent) -> bool {
        match action {
            Action::Connect { socket, url } => {
                let leg = match socket {
                    Socket::Listen => LISTEN_LEG,
                    Socket::Speak => SPEAK_LEG,
                };
                let options = ConnectOptions { headers: Vec::new(), subprotocols: Vec::new(), timeout: None, leg: Some(leg.to_owned()) };
                let (link, outbox) = self.socket(socket);
                outbox.clear();
                match connect(&url, &options) {
                    Ok(future) => *link = Link::Connecting { ready: future.subscribe(), future },
                    Err(error) => {
                        *link = Link::None;
                        match socket {
                            Socket::Listen => agent.on_listen_connect_failed(ConnectFailure::of(&error), now_ms()),
                            Socket::Speak => agent.on_speak_connect_failed(ConnectFailure::of(&error), now_ms()),
                        }
                    }
                }
            }
            Action::SendText { socket, text } => self.socket(socket).1.push_back(Message::Text(text)),
            Action::SendAudio(audio) => self.listen_outbox.push_back(Message::Binary(audio)),
            Action::Close(socket) => {
                let (link, outbox) = self.socket(socket);
                if let Link::Open { connection, .. } = &*link {
                    flush(connection, true, outbox);
                    let _ = connection.close(1000, "");
                }
                *link = Link::None;
                outbox.clear();
            }
            Action::ToTwilio(text) => self.twilio_outbox.push_back(Message::Text(text)),
            Action::Ask { url, body, first_byte_timeout_ms, between_bytes_timeout_ms } => {
                let mut request =
                    Request::post(&url, body).header("content-type", "application/json").header("accept", "text/event-stream").leg(LLM_LEG);
                request.first_byte_timeout_ms = Some(first_byte_timeout_ms);
                request.between_bytes_timeout_ms = Some(between_bytes_timeout_ms);
                match http::send(&request) {
                    Ok(pending) => self.llm = Exchange::Head(pending),
                    Err(code) => agent.on_llm_failed(http::cause(&code), now_ms()),
                }
            }
            Action::CancelAsk => self.llm = Exchange::None,
            Action::Post { url, body, leg } => {
                let request = Request::post(&url, body).header("content-type", "application/x-www-form-urlencoded").leg(leg);
                match http::send(&request) {
                    Ok(pending) => self.rest = Exchange::Head(pending),
                    Err(code) => agent.on_rest_failed(http::cause(&code), now_ms()),
                }
            }
            Action::Mark { name, attributes } => markers::emit(&name, &attributes),
            Action::Fault { leg, impact, cause, detail } => fault(leg, impact, cause, &detail),
            Action::Complete(leg) => legs::complete(leg),
            Action::Identify { kind, value } => markers::identify(kind, &value),
            Action::Transcript { speaker, text, start_ms, end_ms, confidence } => {
                markers::transcript(&TranscriptEntry { speaker: speaker.to_owned(), text, start_ms, end_ms, confidence })
            }
            Action::Finish => {
                flush(&self.inbound, self.inbound_ready.is_some(), &mut self.twilio_outbox);
                if self.inbound_ready.is_some() {
                    let _ = self.inbound.close(1000, "call complete");
                }
                return true;
            }
        }
        false
    }

    fn socket(&mut self, socket: Socket) -> (&mut Link, &mut VecDeque<Message>) {
        match socket {
            Socket::Listen => (&mut self.listen, &mut self.listen_outbox),
            Socket::Speak => (&mut self.speak, &mut self.speak_outbox),
        }
    }

    /// Sleeps until a socket, an HTTP exchange or the deadline needs attention.
    fn wait(&mut self, deadline: Option<u64>, now: u64) -> Ready {
        let due = deadline.map_or(now + 5_000, |d| d.min(now + 5_000));
        let keep = self.timer.as_ref().is_some_and(|timer| now < timer.due_ms && timer.due_ms <= due);
        if !keep {
            self.timer = Some(Timer { due_ms: due, ready: timer_ms(due.saturating_sub(now)) });
        }
        // Writability of a socket whose outbox waits, and the HTTP exchanges' pollables.
        let mut owned: Vec<Pollable> = Vec::new();
        if !self.twilio_outbox.is_empty() && self.inbound_ready.is_some() {
            owned.push(self.inbound.writable());
        }
        for (link, outbox) in [(&self.listen, &self.listen_outbox), (&self.speak, &self.speak_outbox)] {
            if let Link::Open { connection, .. } = link
                && !outbox.is_empty()
            {
                owned.push(connection.writable());
            }
        }
        for exchange in [&self.llm, &self.rest] {
            match exchange {
                Exchange::None => {}
                Exchange::Head(pending) => owned.push(pending.subscribe()),
                Exchange::Body(response) => owned.extend(response.body.subscribe()),
            }
        }
        let mut pollables: Vec<&Pollable> = Vec::with_capacity(8);
        let inbound_at = push(&mut pollables, self.inbound_ready.as_ref());
        let listen_at = push(&mut pollables, self.listen.ready());
        let speak_at = push(&mut pollables, self.speak.ready());
        pollables.extend(owned.iter());
        if let Some(timer) = &self.timer {
            pollables.push(&timer.ready);
        }
        let ready = wait_any(&pollables);
        let is_ready = |at: Option<usize>| at.is_some_and(|at| ready.contains(&(at as u32)));
        Ready { inbound: is_ready(inbound_at), listen: is_ready(listen_at), speak: is_ready(speak_at) }
    }

    fn drain_inbound(&mut self, agent: &mut Agent, now: u64) {
        while self.inbound_ready.is_some() {
            match self.inbound.receive() {
                Ok(Some(Message::Text(text))) => agent.on_twilio_text(&text, now),
                Ok(Some(Message::Binary(data))) => agent.on_twilio_binary(data.len()),
                Ok(None) => return,
                Err(error) => {
                    self.inbound_ready = None;
                    self.twilio_outbox.clear();
                    let (code, reason) = close_of(error);
                    agent.on_twilio_closed(code, &reason, now);
                }
            }
        }
    }

    fn drain_listen(&mut self, agent: &mut Agent, now: u64) {
        if let Link::Connecting { future, .. } = &self.listen {
            match future.get() {
                None => return,
                Some(Ok(connection)) => {
                    self.listen = Link::Open { ready: connection.subscribe(), connection };
                    agent.on_listen_connected(now);
                }
                Some(Err(error)) => {
                    self.listen = Link::None;
                    agent.on_listen_connect_failed(ConnectFailure::of(&error), now);
                    return;
                }
            }
        }
        let Link::Open { connection, .. } = &self.listen else { return };
        loop {
            match connection.receive() {
                Ok(Some(Message::Text(text))) => agent.on_listen_text(&text, now),
                Ok(Some(Message::Binary(_))) => {}
                Ok(None) => return,
                Err(error) => {
                    self.listen = Link::None;
                    self.listen_outbox.clear();
                    let (code, reason) = close_of(error);
                    agent.on_listen_closed(code, &reason, now);
                    return;
                }
            }
        }
    }

    fn drain_speak(&mut self, agent: &mut Agent, now: u64) {
        if let Link::Connecting { future, .. } = &self.speak {
            match future.get() {
                None => return,
                Some(Ok(connection)) => {
                    self.speak = Link::Open { ready: connection.subscribe(), connection };
                    agent.on_speak_connected(now);
                }
                Some(Err(error)) => {
                    self.speak = Link::None;
                    agent.on_speak_connect_failed(ConnectFailure::of(&error), now);
                    return;
                }
            }
        }
        let Link::Open { connection, .. } = &self.speak else { return };
        loop {
            match connection.receive() {
                Ok(Some(Message::Text(text))) => agent.on_speak_text(&text, now),
                Ok(Some(Message::Binary(audio))) => agent.on_speak_audio(&audio, now),
                Ok(None) => return,
                Err(error) => {
                    self.speak = Link::None;
                    self.speak_outbox.clear();
                    let (code, reason) = close_of(error);
                    agent.on_speak_closed(code, &reason, now);
                    return;
                }
            }
        }
    }

    fn drain_llm(&mut self, agent: &mut Agent, now: u64) {
        if let Exchange::Head(pending) = &self.llm {
            match pending.get() {
                None => return,
                Some(Ok(response)) => {
                    agent.on_llm_response(response.status, now);
                    self.llm = Exchange::Body(response);
                }
                Some(Err(code)) => {
                    self.llm = Exchange::None;
                    agent.on_llm_failed(http::cause(&code), now);
                    return;
                }
            }
        }
        while let Exchange::Body(response) = &mut self.llm {
            match response.body.read() {
                Chunk::Data(bytes) => agent.on_llm_body(&bytes, now),
                Chunk::Pending => return,
                Chunk::End => {
                    self.llm = Exchange::None;
                    agent.on_llm_end(now);
                }
                Chunk::Failed(code) => {
                    self.llm = Exchange::None;
                    agent.on_llm_failed(http::cause(&code), now);
                }
            }
        }
    }

    fn drain_rest(&mut self, agent: &mut Agent, now: u64) {
        if let Exchange::Head(pending) = &self.rest {
            match pending.get() {
                None => {}
                Some(Ok(response)) => {
                    // The status is the answer; the body is dropped unread.
                    agent.on_rest_response(response.status, now);
                    self.rest = Exchange::None;
                }
                Some(Err(code)) => {
                    self.rest = Exchange::None;
                    agent.on_rest_failed(http::cause(&code), now);
                }
            }
        }
    }
}

/// Adds `pollable` to the wait list; its index there.
fn push<'a>(pollables: &mut Vec<&'a Pollable>, pollable: Option<&'a Pollable>) -> Option<usize> {
    pollables.push(pollable?);
    Some(pollables.len() - 1)
}

/// Sends what the socket takes now; the rest waits for writability.
fn flush(connection: &Connection, open: bool, outbox: &mut VecDeque<Message>) {
    if !open {
        return;
    }
    while let Some(message) = outbox.pop_front() {
        match connection.send(&message) {
            Ok(()) => {}
            Err(ErrorCode::WouldBlock) => {
                outbox.push_front(message);
                return;
            }
            // A closed connection is reported by `receive`.
            Err(_) => return,
        }
    }
}

fn close_of(error: ErrorCode) -> (u16, String) {
    match error {
        ErrorCode::Closed(frame) => (frame.code, frame.reason),
        other => (1006, format!("{other:?}")),
    }
}

switchboard_guest::export_handler!(VoiceAgent);
