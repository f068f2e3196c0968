// Shared body of the `versioned-v1` and `versioned-v2` test guests (included with
// `#[path]`): they differ only in `VERSION`, which they announce to the caller and on the
// timeline, so a test can tell which version served a call.

use switchboard_guest::io::send_blocking;
use switchboard_guest::{Connection, ErrorCode, Handler, Message, RequestInfo, Value, mark};

struct Versioned;

impl Handler for Versioned {
    fn handle(_request: RequestInfo, inbound: Connection) {
        mark("versioned.started", &[("version", Value::from(crate::VERSION))]);
        if send_blocking(&inbound, &Message::Text(format!("version:{}", crate::VERSION))).is_err() {
            return;
        }
        loop {
            match inbound.receive() {
                Ok(Some(message)) => {
                    if send_blocking(&inbound, &message).is_err() {
                        return;
                    }
                }
                Ok(None) => inbound.subscribe().block(),
                Err(ErrorCode::Closed(_)) | Err(_) => return,
            }
        }
    }
}

switchboard_guest::export_handler!(Versioned);
