//! The voice-pipeline guest component (placeholder until the pipeline lands).
//!
//! For now it reads the Twilio Media Streams messages of a call, records a marker for each
//! event it recognises, and returns when the caller sends `stop` or closes. The Deepgram leg
//! is added by the voice-pipeline issue.

pub mod twilio_event;

#[cfg(target_arch = "wasm32")]
mod guest {
    use switchboard_guest::{Connection, ErrorCode, Handler, Message, RequestInfo, mark};

    use crate::twilio_event::event_name;

    struct VoicePipeline;

    impl Handler for VoicePipeline {
        fn handle(_request: RequestInfo, inbound: Connection) {
            loop {
                match inbound.receive() {
                    Ok(Some(Message::Text(text))) => {
                        let event = event_name(&text).unwrap_or("malformed");
                        mark(&format!("twilio.{event}"), &[]);
                        if event == "stop" {
                            let _ = inbound.close(1000, "stream stopped");
                            return;
                        }
                    }
                    Ok(Some(Message::Binary(_))) => mark("twilio.unexpected-binary", &[]),
                    Ok(None) => inbound.subscribe().block(),
                    Err(ErrorCode::Closed(_)) | Err(_) => return,
                }
            }
        }
    }

    switchboard_guest::export_handler!(VoicePipeline);
}
