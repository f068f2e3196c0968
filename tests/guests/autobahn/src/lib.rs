//! Test guest: runs the Autobahn test cases against the host's outbound client.
//!
//! Settings: `server` (the fuzzing server, e.g. `ws://127.0.0.1:9001`) and `agent`. It
//! asks `/getCaseCount`, runs every case by connecting to `/runCase?case=N&agent=A` and
//! echoing each message until the server closes, then asks `/updateReports`, and tells
//! the caller `done N`.

use switchboard_guest::io::{finish_connect, send_blocking};
use switchboard_guest::outbound::{ConnectOptions, connect};
use switchboard_guest::{Connection, ErrorCode, Handler, Message, RequestInfo, Value, mark, setting};

struct Autobahn;

fn open(url: &str) -> Result<Connection, ErrorCode> {
    let options = ConnectOptions { headers: Vec::new(), subprotocols: Vec::new(), timeout: None, leg: None };
    connect(url, &options).and_then(|future| finish_connect(&future))
}

/// Echoes every message until the connection ends; returns the first text received.
fn echo_until_closed(connection: &Connection) -> Option<String> {
    let mut first_text = None;
    loop {
        match connection.receive() {
            Ok(Some(message)) => {
                if let (None, Message::Text(text)) = (&first_text, &message) {
                    first_text = Some(text.clone());
                }
                if send_blocking(connection, &message).is_err() {
                    return first_text;
                }
            }
            Ok(None) => connection.subscribe().block(),
            Err(_) => return first_text,
        }
    }
}

impl Handler for Autobahn {
    fn handle(_request: RequestInfo, inbound: Connection) {
        let server = setting("server").unwrap_or_else(|| "ws://127.0.0.1:9001".to_owned());
        let agent = setting("agent").unwrap_or_else(|| "switchboard".to_owned());
        let count = open(&format!("{server}/getCaseCount"))
            .ok()
            .and_then(|connection| {
                let ready = connection.subscribe();
                ready.block();
                drop(ready);
                match connection.receive() {
                    Ok(Some(Message::Text(text))) => text.trim().parse::<u32>().ok(),
                    _ => None,
                }
            })
            .unwrap_or(0);
        mark("autobahn.cases", &[("count", Value::from(count.to_string()))]);
        for case in 1..=count {
            match open(&format!("{server}/runCase?case={case}&agent={agent}")) {
                Ok(connection) => {
                    echo_until_closed(&connection);
                }
                Err(error) => mark(
                    "autobahn.connect-failed",
                    &[("case", Value::from(case.to_string())), ("error", Value::from(format!("{error:?}")))],
                ),
            }
        }
        if let Ok(connection) = open(&format!("{server}/updateReports?agent={agent}")) {
            echo_until_closed(&connection);
        }
        let _ = send_blocking(&inbound, &Message::Text(format!("done {count}")));
        let _ = inbound.close(1000, "");
    }
}

switchboard_guest::export_handler!(Autobahn);
