//! Test guest that is not the voice pipeline: a caller's requests relayed to a made-up
//! billing WebSocket API (setting `billing_url`), one text message each way. It proves the
//! host classifies any component on the legs the component names: the caller is leg
//! `customer`, the API leg `billing`.
//!
//! - the API refuses the handshake: a `failed` fault on `billing` ("the billing API
//!   refused the connection: HTTP 401 …");
//! - the API answers `{"error": "..."}`: a `failed` fault on `billing` with its words;
//! - the caller sends a message that is not `charge <amount>`: a `recovered` fault on
//!   `customer`, and the call goes on;
//! - the caller sends `done`: the `customer` leg is complete and the call ends.
//!
//! Everything else the host sees itself (the API vanishing, a policy refusal).

use switchboard_guest::io::{finish_connect, send_blocking};
use switchboard_guest::outbound::{ConnectOptions, connect};
use switchboard_guest::{Connection, ErrorCode, Handler, Impact, Message, RequestInfo, Value, fault, legs, mark, setting};

const CUSTOMER: &str = "customer";
const BILLING: &str = "billing";

struct Billing;

impl Handler for Billing {
    fn handle(_request: RequestInfo, inbound: Connection) {
        legs::name_inbound(CUSTOMER);
        let url = setting("billing_url").unwrap_or_default();
        let options = ConnectOptions { headers: Vec::new(), subprotocols: Vec::new(), timeout: None, leg: Some(BILLING.to_owned()) };
        let api = match connect(&url, &options).and_then(|future| finish_connect(&future)) {
            Ok(api) => api,
            Err(error) => {
                let detail = match &error {
                    ErrorCode::HandshakeRejected(response) => format!("the billing API refused the connection: HTTP {}", response.status),
                    other => format!("the billing API could not be reached: {other:?}"),
                };
                fault(BILLING, Impact::Failed, "connect", &detail);
                let _ = inbound.close(1011, "billing unavailable");
                return;
            }
        };
        mark("billing.open", &[]);
        serve(&inbound, &api);
    }
}

/// Relays one request at a time until the caller is done or a leg ends.
fn serve(inbound: &Connection, api: &Connection) {
    loop {
        let request = match next_text(inbound) {
            Some(text) => text,
            None => return,
        };
        if request == "done" {
            legs::complete(CUSTOMER);
            let _ = inbound.close(1000, "done");
            return;
        }
        let Some(amount) = request.strip_prefix("charge ") else {
            fault(CUSTOMER, Impact::Recovered, "bad-request", &format!("the customer sent {request:?}, not `charge <amount>`"));
            let _ = send_blocking(inbound, &Message::Text("error: say `charge <amount>`".to_owned()));
            continue;
        };
        mark("billing.charge", &[("amount", Value::from(amount))]);
        if send_blocking(api, &Message::Text(format!("{{\"charge\":{amount:?}}}"))).is_err() {
            return;
        }
        let Some(answer) = next_text(api) else { return };
        if let Some(error) = answer.strip_prefix("{\"error\":") {
            let words = error.trim_end_matches('}').trim_matches('"');
            fault(BILLING, Impact::Failed, "refused", &format!("the billing API refused the charge: {words}"));
            let _ = inbound.close(1011, "billing failed");
            return;
        }
        let _ = send_blocking(inbound, &Message::Text(answer));
    }
}

/// The next text message on `connection`, or `None` once it has ended.
fn next_text(connection: &Connection) -> Option<String> {
    loop {
        match connection.receive() {
            Ok(Some(Message::Text(text))) => return Some(text),
            Ok(Some(Message::Binary(_))) => {}
            Ok(None) => connection.subscribe().block(),
            Err(_) => return None,
        }
    }
}

switchboard_guest::export_handler!(Billing);
