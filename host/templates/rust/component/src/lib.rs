//! {{name}}: echoes every message back to the caller until the caller closes; the text
//! message `bye` ends the call (the host then closes the socket with 1000).

use switchboard_guest::io::send_blocking;
use switchboard_guest::{Connection, ErrorCode, Handler, Message, RequestInfo, Value, mark};

struct Component;

impl Handler for Component {
    fn handle(request: RequestInfo, inbound: Connection) {
        mark("{{name}}.started", &[("path", Value::from(request.path))]);
        loop {
            match inbound.receive() {
                Ok(Some(Message::Text(text))) if text == "bye" => return,
                Ok(Some(message)) => {
                    if send_blocking(&inbound, &message).is_err() {
                        return;
                    }
                }
                Ok(None) => inbound.subscribe().block(),
                Err(ErrorCode::Closed(_)) => return,
                Err(error) => {
                    mark("{{name}}.receive-failed", &[("error", Value::from(format!("{error:?}")))]);
                    return;
                }
            }
        }
    }
}

switchboard_guest::export_handler!(Component);
