//! One simulated Twilio Media Streams call at real-time pacing: `connected`, `start`, a
//! `media` message every 20 ms carrying a stamped frame (see [`crate::stamp`]), `stop`,
//! then a close. Messages are Twilio's exact JSON, formatted without a JSON library so the
//! load generator stays cheap.

use std::time::Duration;

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::stamp::{Stamp, now_ns};

/// Twilio sends a media message every 20 ms.
pub const FRAME_INTERVAL: Duration = Duration::from_millis(20);

/// How long a caller waits for the server's close after its own.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// One call to place.
#[derive(Debug, Clone)]
pub struct CallPlan {
    /// `ws://host:port/path` of the system under test.
    pub url: String,
    /// The call's index (stamped into every frame).
    pub call: u32,
    /// When to connect.
    pub connect_at: Instant,
    /// Media messages to send (50 per second of call).
    pub frames: u32,
}

/// What happened on one call.
#[derive(Debug, Clone, Default)]
pub struct CallReport {
    /// The call's index.
    pub call: u32,
    /// Media messages sent.
    pub sent: u32,
    /// Why the call failed, if it did.
    pub error: Option<String>,
    /// How far behind its schedule the caller sent its latest frame, at worst.
    pub max_lateness: Duration,
    /// The server answered the close.
    pub closed_cleanly: bool,
}

/// Places the call; never fails, the report says what went wrong.
pub async fn run(plan: CallPlan) -> CallReport {
    let mut report = CallReport { call: plan.call, ..CallReport::default() };
    if let Err(error) = place(&plan, &mut report).await {
        report.error = Some(format!("{error:#}"));
    }
    report
}

async fn place(plan: &CallPlan, report: &mut CallReport) -> anyhow::Result<()> {
    tokio::time::sleep_until(plan.connect_at).await;
    let address = plan.url.trim_start_matches("ws://").split('/').next().unwrap_or_default().to_owned();
    let tcp = TcpStream::connect(&address).await?;
    tcp.set_nodelay(true)?;
    let (socket, _) = tokio_tungstenite::client_async_with_config(plan.url.as_str(), tcp, Some(crate::wire::lean())).await?;
    let (mut sink, mut stream) = socket.split();
    // Whatever the server sends (nothing, for a relay) is read and dropped; its close
    // ends the reader.
    let reader = tokio::spawn(async move {
        while let Some(message) = stream.next().await {
            match message {
                Ok(Message::Close(_)) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        false
    });

    let names = CallNames::new(plan.call);
    sink.send(text(r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#.to_owned())).await?;
    sink.send(text(names.start())).await?;
    let mut ticker = tokio::time::interval(FRAME_INTERVAL);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
    for seq in 0..plan.frames {
        let scheduled = ticker.tick().await;
        report.max_lateness = report.max_lateness.max(scheduled.elapsed());
        let frame = Stamp { call: plan.call, seq, sent_ns: now_ns() }.frame();
        sink.send(text(names.media(seq, &frame))).await?;
        report.sent += 1;
    }
    sink.send(text(names.stop(plan.frames + 2))).await?;
    sink.send(Message::Close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() }))).await?;
    report.closed_cleanly = matches!(tokio::time::timeout(CLOSE_WAIT, reader).await, Ok(Ok(true)));
    Ok(())
}

fn text(json: String) -> Message {
    Message::Text(json.into())
}

/// The identifiers of one call and its messages.
struct CallNames {
    call_sid: String,
    stream_sid: String,
}

const ACCOUNT_SID: &str = "AC00000000000000000000000000000001";

impl CallNames {
    fn new(call: u32) -> Self {
        CallNames { call_sid: format!("CA{call:032x}"), stream_sid: format!("MZ{call:032x}") }
    }

    fn start(&self) -> String {
        format!(
            concat!(
                r#"{{"event":"start","sequenceNumber":"1","start":{{"accountSid":"{account}","streamSid":"{stream}","#,
                r#""callSid":"{call}","tracks":["inbound"],"mediaFormat":{{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}},"#,
                r#""customParameters":{{}}}},"streamSid":"{stream}"}}"#
            ),
            account = ACCOUNT_SID,
            stream = self.stream_sid,
            call = self.call_sid,
        )
    }

    fn media(&self, seq: u32, frame: &[u8]) -> String {
        let payload = base64::engine::general_purpose::STANDARD.encode(frame);
        format!(
            r#"{{"event":"media","sequenceNumber":"{number}","media":{{"track":"inbound","chunk":"{chunk}","timestamp":"{timestamp}","payload":"{payload}"}},"streamSid":"{stream}"}}"#,
            number = seq + 2,
            chunk = seq + 1,
            timestamp = u64::from(seq) * 20,
            stream = self.stream_sid,
        )
    }

    fn stop(&self, number: u32) -> String {
        format!(
            r#"{{"event":"stop","sequenceNumber":"{number}","stop":{{"accountSid":"{ACCOUNT_SID}","callSid":"{call}"}},"streamSid":"{stream}"}}"#,
            call = self.call_sid,
            stream = self.stream_sid,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_valid_twilio_json() -> anyhow::Result<()> {
        let names = CallNames::new(7);
        let start: serde_json::Value = serde_json::from_str(&names.start())?;
        assert_eq!(start["start"]["mediaFormat"]["encoding"], "audio/x-mulaw");
        assert_eq!(start["streamSid"], start["start"]["streamSid"]);
        let frame = Stamp { call: 7, seq: 3, sent_ns: 42 }.frame();
        let media: serde_json::Value = serde_json::from_str(&names.media(3, &frame))?;
        assert_eq!(media["media"]["timestamp"], "60");
        let payload = media["media"]["payload"].as_str().unwrap_or_default();
        let decoded = base64::engine::general_purpose::STANDARD.decode(payload)?;
        assert_eq!(Stamp::read(&decoded), Some(Stamp { call: 7, seq: 3, sent_ns: 42 }));
        let stop: serde_json::Value = serde_json::from_str(&names.stop(9))?;
        assert_eq!(stop["stop"]["callSid"], start["start"]["callSid"]);
        Ok(())
    }
}
