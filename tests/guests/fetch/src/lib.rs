//! Test guest: sends HTTP requests through `wasi:http` as the caller's text messages ask,
//! while relaying binary messages to and from the outbound WebSocket of its `relay`
//! setting, so tests can see a streamed response and a socket flowing at once.
//!
//! Commands (one per text message; replies are text messages):
//! - `get <url> [option ...]`: one request; replies `status=<n> bytes=<total>
//!   location=<header> body=<first 200 bytes>`, or `error=<stage>:<code>` where `stage` is
//!   `send`, `head` or `body`;
//! - `sse <url> [option ...]`: reads server-sent events as they arrive, sending
//!   `token <data>` for each, then `done status=<n> events=<k>` (or an `error=`);
//! - `many <n> <url> [option ...]`: `n` requests one after another, each body read to the
//!   end; replies `many ok=<k> failed=<f> last=<error>`;
//! - `time <n> <url> [option ...]`: like `many`, timing each request from `send` to the
//!   end of its body on the guest's clock; replies `time n=<n> failed=<f> p50_us=...
//!   p90_us=... p99_us=... mean_us=...` (the HTTP benchmark reads it);
//! - `snoop`: replies with every setting the guest can read, to show no secret is there.
//!
//! Options: `method=POST`, `body_bytes=<n>` (a body of `n` bytes), `leg=<leg>`,
//! `h:<name>=<value>` (a header), `connect_ms=`, `first_byte_ms=`, `between_ms=`.

use std::collections::VecDeque;

use switchboard_guest::bindings::wasi::clocks::monotonic_clock;
use switchboard_guest::bindings::wasi::io::poll::Pollable;
use switchboard_guest::http::{self, Chunk, ErrorCode, Pending, Request, Response};
use switchboard_guest::io::{finish_connect, send_blocking, wait_any};
use switchboard_guest::outbound::{ConnectOptions, connect};
use switchboard_guest::sse::Parser;
use switchboard_guest::{Connection, Handler, Message, RequestInfo, Value, mark, setting};

struct Fetch;

/// The request under way, if any.
enum Op {
    Head { pending: Pending, sse: bool },
    Body { response: Response, sse: Option<(Parser, usize)>, kept: Vec<u8>, total: u64 },
}

impl Handler for Fetch {
    fn handle(_request: RequestInfo, inbound: Connection) {
        let mut outbound = setting("relay").and_then(|url| {
            let options = ConnectOptions { headers: Vec::new(), subprotocols: Vec::new(), timeout: None, leg: Some("relay".to_owned()) };
            connect(&url, &options).and_then(|future| finish_connect(&future)).ok()
        });
        let mut commands: VecDeque<String> = VecDeque::new();
        let mut op: Option<Op> = None;
        loop {
            loop {
                match inbound.receive() {
                    Ok(Some(Message::Text(text))) => commands.push_back(text),
                    Ok(Some(binary @ Message::Binary(_))) => {
                        if let Some(outbound) = &outbound {
                            let _ = send_blocking(outbound, &binary);
                        }
                    }
                    Ok(None) => break,
                    Err(_) => return,
                }
            }
            if let Some(socket) = &outbound {
                loop {
                    match socket.receive() {
                        Ok(Some(message)) => {
                            let _ = send_blocking(&inbound, &message);
                        }
                        Ok(None) => break,
                        Err(_) => {
                            outbound = None;
                            break;
                        }
                    }
                }
            }
            if op.is_none()
                && let Some(command) = commands.pop_front()
            {
                op = start(&inbound, &command);
            }
            op = op.and_then(|op| step(&inbound, op));
            if op.is_none() && !commands.is_empty() {
                continue;
            }
            let mut waits: Vec<Pollable> = vec![inbound.subscribe()];
            if let Some(socket) = &outbound {
                waits.push(socket.subscribe());
            }
            match &op {
                Some(Op::Head { pending, .. }) => waits.push(pending.subscribe()),
                Some(Op::Body { response, .. }) => waits.extend(response.body.subscribe()),
                None => {}
            }
            let refs: Vec<&Pollable> = waits.iter().collect();
            wait_any(&refs);
        }
    }
}

/// Runs a command: `many` and `snoop` at once, `get` and `sse` as an [`Op`] stepped
/// beside the sockets.
fn start(inbound: &Connection, command: &str) -> Option<Op> {
    let words: Vec<&str> = command.split_whitespace().collect();
    match words.as_slice() {
        ["get", url, options @ ..] => begin(inbound, request(url, options), false),
        ["sse", url, options @ ..] => begin(inbound, request(url, options), true),
        ["many", count, url, options @ ..] => {
            let request = request(url, options);
            let (mut ok, mut failed, mut last) = (0u32, 0u32, String::new());
            for _ in 0..count.parse::<u32>().unwrap_or(0) {
                match http::send(&request).and_then(Pending::wait).and_then(|mut response| response.body.read_to_end(0)) {
                    Ok(_) => ok += 1,
                    Err(code) => {
                        failed += 1;
                        last = name(&code);
                    }
                }
            }
            reply(inbound, &format!("many ok={ok} failed={failed} last={last}"));
            None
        }
        ["time", count, url, options @ ..] => {
            let request = request(url, options);
            let mut took_ns: Vec<u64> = Vec::new();
            let mut failed = 0u32;
            for _ in 0..count.parse::<u32>().unwrap_or(0) {
                let started = monotonic_clock::now();
                match http::send(&request).and_then(Pending::wait).and_then(|mut response| response.body.read_to_end(0)) {
                    Ok(_) => took_ns.push(monotonic_clock::now() - started),
                    Err(_) => failed += 1,
                }
            }
            took_ns.sort_unstable();
            let at = |q: f64| {
                took_ns.get(((took_ns.len() as f64 * q) as usize).min(took_ns.len().saturating_sub(1))).copied().unwrap_or(0) / 1_000
            };
            let mean = took_ns.iter().sum::<u64>() / (took_ns.len().max(1) as u64) / 1_000;
            reply(
                inbound,
                &format!(
                    "time n={} failed={failed} p50_us={} p90_us={} p99_us={} mean_us={mean}",
                    took_ns.len(),
                    at(0.5),
                    at(0.9),
                    at(0.99)
                ),
            );
            None
        }
        ["snoop"] => {
            let settings = switchboard_guest::bindings::wasi::config::store::get_all().unwrap_or_default();
            let listed: Vec<String> = settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
            reply(inbound, &format!("settings={}", listed.join(";")));
            None
        }
        _ => {
            reply(inbound, &format!("error=unknown command {command:?}"));
            None
        }
    }
}

fn begin(inbound: &Connection, request: Request, sse: bool) -> Option<Op> {
    match http::send(&request) {
        Ok(pending) => Some(Op::Head { pending, sse }),
        Err(code) => {
            reply(inbound, &format!("error=send:{}", name(&code)));
            None
        }
    }
}

/// Moves a request on as far as it can go without waiting; `None` once it is done.
fn step(inbound: &Connection, op: Op) -> Option<Op> {
    match op {
        Op::Head { pending, sse } => match pending.get() {
            None => Some(Op::Head { pending, sse }),
            Some(Err(code)) => {
                fail(inbound, "head", &code);
                None
            }
            Some(Ok(response)) => step(inbound, Op::Body { response, sse: sse.then(|| (Parser::new(), 0)), kept: Vec::new(), total: 0 }),
        },
        Op::Body { mut response, mut sse, mut kept, mut total } => loop {
            match response.body.read() {
                Chunk::Data(bytes) => {
                    total += bytes.len() as u64;
                    match &mut sse {
                        Some((parser, count)) => {
                            for event in parser.push(&bytes) {
                                *count += 1;
                                reply(inbound, &format!("token {}", event.data));
                            }
                        }
                        None => kept.extend_from_slice(&bytes[..bytes.len().min(200usize.saturating_sub(kept.len()))]),
                    }
                }
                Chunk::Pending => return Some(Op::Body { response, sse, kept, total }),
                Chunk::End => {
                    let text = match sse {
                        Some((_, events)) => format!("done status={} events={events}", response.status),
                        None => format!(
                            "status={} bytes={total} location={} body={}",
                            response.status,
                            response.header("location").unwrap_or_default(),
                            String::from_utf8_lossy(&kept)
                        ),
                    };
                    reply(inbound, &text);
                    return None;
                }
                Chunk::Failed(code) => {
                    mark("fetch.body-failed", &[("bytes", Value::from(total.to_string()))]);
                    reply(inbound, &format!("error=body:{} status={} bytes={total}", name(&code), response.status));
                    return None;
                }
            }
        },
    }
}

fn fail(inbound: &Connection, stage: &str, code: &ErrorCode) {
    reply(inbound, &format!("error={stage}:{}", name(code)));
}

/// The error code as WIT names it in Rust, e.g. `HttpRequestDenied`.
fn name(code: &ErrorCode) -> String {
    format!("{code:?}").replace("ErrorCode::", "")
}

fn reply(inbound: &Connection, text: &str) {
    let _ = send_blocking(inbound, &Message::Text(text.to_owned()));
}

/// A request for `url` with the command's options.
fn request(url: &str, options: &[&str]) -> Request {
    let mut request = Request::get(url);
    for option in options {
        let Some((key, value)) = option.split_once('=') else { continue };
        let ms = value.parse::<u64>().ok();
        match key {
            "method" => request.method = value.to_owned(),
            "body_bytes" => request.body = vec![b'x'; value.parse().unwrap_or(0)],
            "leg" => request = request.leg(value),
            "connect_ms" => request.connect_timeout_ms = ms,
            "first_byte_ms" => request.first_byte_timeout_ms = ms,
            "between_ms" => request.between_bytes_timeout_ms = ms,
            _ => {
                if let Some(name) = key.strip_prefix("h:") {
                    request = request.header(name, value);
                }
            }
        }
    }
    request
}

switchboard_guest::export_handler!(Fetch);
