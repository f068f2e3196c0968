//! Test guest: relays messages between the inbound socket and one outbound socket.
//!
//! Settings (`wasi:config/store`): `target` (the outbound URL), optional `subprotocols`
//! (comma-separated), `leg` (the outbound connection's leg) and `header.<name>` entries
//! sent as handshake headers. When the
//! connect fails the guest records `relay.connect-failed` with the error and sends
//! `connect-failed: <error>` to the caller before returning. Either side's close is passed
//! on to the other side with the same code.

use std::collections::VecDeque;

use switchboard_guest::bindings::wasi::io::poll::Pollable;
use switchboard_guest::io::{finish_connect, wait_any};
use switchboard_guest::outbound::{ConnectOptions, connect};
use switchboard_guest::{Connection, ErrorCode, Handler, Message, RequestInfo, Value, mark, setting};

struct Relay;

/// Messages read from one side that the other side's queue has not accepted yet.
#[derive(Default)]
struct Pending(VecDeque<Message>);

impl Handler for Relay {
    fn handle(_request: RequestInfo, inbound: Connection) {
        let Some(target) = setting("target") else {
            mark("relay.no-target", &[]);
            let _ = inbound.close(1011, "relay: no target configured");
            return;
        };
        let options = ConnectOptions {
            headers: configured_headers(),
            subprotocols: setting("subprotocols").map(|list| list.split(',').map(|p| p.trim().to_owned()).collect()).unwrap_or_default(),
            timeout: setting("timeout_ms").and_then(|ms| ms.parse::<u64>().ok()).map(|ms| ms * 1_000_000),
            leg: setting("leg"),
        };
        let outbound = match connect(&target, &options).and_then(|future| finish_connect(&future)) {
            Ok(connection) => connection,
            Err(error) => {
                let text = format!("{error:?}");
                mark("relay.connect-failed", &[("error", Value::from(text.clone()))]);
                let _ = inbound.send(&Message::Text(format!("connect-failed: {text}")));
                let _ = inbound.close(1011, "outbound connect failed");
                return;
            }
        };
        mark("relay.connected", &[("protocol", Value::from(outbound.protocol().unwrap_or_default()))]);
        pump(&inbound, &outbound);
    }
}

/// `header.<name>` settings, as handshake headers.
fn configured_headers() -> Vec<(String, String)> {
    switchboard_guest::bindings::wasi::config::store::get_all()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(key, value)| key.strip_prefix("header.").map(|name| (name.to_owned(), value)))
        .collect()
}

/// Moves messages both ways until one side ends. A side whose peer does not read only
/// stalls its own direction: the other direction keeps flowing.
fn pump(inbound: &Connection, outbound: &Connection) {
    let mut to_outbound = Pending::default();
    let mut to_inbound = Pending::default();
    loop {
        if let Some(frame) =
            move_messages(inbound, outbound, &mut to_outbound).or_else(|| move_messages(outbound, inbound, &mut to_inbound))
        {
            let (closed, other) = frame;
            // 1005, 1006 and 1015 describe a close; they may not be sent in one.
            let code = match closed.code {
                1005 => 1000,
                1006 | 1015 => 1011,
                code => code,
            };
            let _ = other.close(code, &closed.reason);
            mark("relay.closed", &[("code", Value::from(closed.code.to_string()))]);
            return;
        }
        // Wait for whatever can make progress: a side with nothing pending can receive;
        // a side with pending messages waits for the queue it is blocked on.
        let mut waits: Vec<Pollable> = Vec::with_capacity(2);
        waits.push(if to_outbound.0.is_empty() { inbound.subscribe() } else { outbound.writable() });
        waits.push(if to_inbound.0.is_empty() { outbound.subscribe() } else { inbound.writable() });
        let refs: Vec<&Pollable> = waits.iter().collect();
        wait_any(&refs);
    }
}

/// Forwards what `from` has buffered to `to`. Returns the close frame and the side to
/// close when `from` has ended.
fn move_messages<'a>(
    from: &'a Connection,
    to: &'a Connection,
    pending: &mut Pending,
) -> Option<(switchboard_guest::CloseFrame, &'a Connection)> {
    loop {
        while let Some(message) = pending.0.pop_front() {
            match to.send(&message) {
                Ok(()) => {}
                Err(ErrorCode::WouldBlock) => {
                    mark("relay.backpressure", &[("queued", Value::from(to.queued_bytes().to_string()))]);
                    pending.0.push_front(message);
                    return None;
                }
                Err(ErrorCode::Closed(frame)) => return Some((frame, from)),
                Err(error) => {
                    mark("relay.send-failed", &[("error", Value::from(format!("{error:?}")))]);
                    return Some((close_frame(1011, "relay send failed"), from));
                }
            }
        }
        match from.receive() {
            Ok(Some(message)) => pending.0.push_back(message),
            Ok(None) => return None,
            Err(ErrorCode::Closed(frame)) => return Some((frame, to)),
            Err(error) => {
                mark("relay.receive-failed", &[("error", Value::from(format!("{error:?}")))]);
                return Some((close_frame(1011, "relay receive failed"), to));
            }
        }
    }
}

fn close_frame(code: u16, reason: &str) -> switchboard_guest::CloseFrame {
    switchboard_guest::CloseFrame { code, reason: reason.to_owned() }
}

switchboard_guest::export_handler!(Relay);
