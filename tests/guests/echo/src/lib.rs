//! Test guest: echoes every inbound message back, then returns when the caller closes.
//! The text message `bye` makes it return at once without closing (the host then closes
//! the socket with 1000).
//!
//! Built for `wasm32-wasip2` by the harness build script; see `tests/README.md`.

use switchboard_guest::io::send_blocking;
use switchboard_guest::{Connection, ErrorCode, Handler, Message, RequestInfo, Value, mark};

struct Echo;

impl Handler for Echo {
    fn handle(request: RequestInfo, inbound: Connection) {
        mark("echo.started", &[("path", Value::from(request.path.clone()))]);
        loop {
            match inbound.receive() {
                Ok(Some(Message::Text(text))) if text == "bye" => return,
                Ok(Some(message)) => {
                    if let Err(error) = send_blocking(&inbound, &message) {
                        mark("echo.send-failed", &[("error", Value::from(format!("{error:?}")))]);
                        return;
                    }
                }
                Ok(None) => inbound.subscribe().block(),
                Err(ErrorCode::Closed(frame)) => {
                    mark("echo.peer-closed", &[("code", Value::from(frame.code.to_string()))]);
                    return;
                }
                Err(error) => {
                    mark("echo.receive-failed", &[("error", Value::from(format!("{error:?}")))]);
                    return;
                }
            }
        }
    }
}

switchboard_guest::export_handler!(Echo);
