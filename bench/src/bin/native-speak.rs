//! `native-speak`: the speech-back benchmark's baseline. What the voice agent does with
//! speech, without the sandbox: it takes Twilio Media Streams calls, and on `start` opens
//! a Deepgram-protocol speak socket (`wss`, trusting `--ca`), sends the same text and
//! `Flush`es the agent sends for its greeting, and forwards every audio message to Twilio
//! as a `media` message (base64 in JSON), with a `mark` after each `Flushed`.
//!
//! ```text
//! native-speak --listen 127.0.0.1:9000 --tts wss://localhost:9443/v1/speak --ca ca.pem --text "Hello there." --text "The rest."
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use base64::Engine;
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser)]
#[command(about = "Forwards Deepgram speak audio to Twilio calls (the speech-back benchmark's baseline)")]
struct Args {
    /// Address to serve Twilio calls on.
    #[arg(long)]
    listen: String,
    /// The speak endpoint (`wss://host:port/v1/speak`).
    #[arg(long)]
    tts: url::Url,
    /// A PEM CA certificate to trust.
    #[arg(long)]
    ca: PathBuf,
    /// Text to speak, one flush per `--text`.
    #[arg(long, required = true)]
    text: Vec<String>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&args.ca).context("reading the CA")? {
        roots.add(cert?)?;
    }
    let tls = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let listener = TcpListener::bind(&args.listen).await?;
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        let (args, tls) = (args.clone(), tls.clone());
        tokio::spawn(async move {
            if let Err(error) = call(tcp, &args, tls).await {
                eprintln!("native-speak: {error:#}");
            }
        });
    }
}

async fn call(tcp: TcpStream, args: &Args, tls: Arc<rustls::ClientConfig>) -> anyhow::Result<()> {
    // A connection that never upgrades is the harness checking the port: nothing to say.
    let Ok(mut twilio) = tokio_tungstenite::accept_async(tcp).await else { return Ok(()) };
    // Wait for `start`: it carries the stream's id.
    let stream_sid = loop {
        let Some(message) = twilio.next().await else { return Ok(()) };
        if let Message::Text(text) = message? {
            let value: serde_json::Value = serde_json::from_str(text.as_str()).unwrap_or_default();
            if value["event"] == "start" {
                break value["start"]["streamSid"].as_str().unwrap_or_default().to_owned();
            }
        }
    };
    let host = args.tts.host_str().context("the TTS URL has no host")?.to_owned();
    let port = args.tts.port_or_known_default().context("the TTS URL has no port")?;
    let tcp = TcpStream::connect((host.as_str(), port)).await?;
    tcp.set_nodelay(true)?;
    let stream = tokio_rustls::TlsConnector::from(tls).connect(ServerName::try_from(host.clone())?, tcp).await?;
    let url = format!("{}?model=aura-2-thalia-en&encoding=mulaw&sample_rate=8000", args.tts);
    let (mut speak, _) = tokio_tungstenite::client_async(url.as_str(), stream).await?;
    for text in &args.text {
        speak.send(Message::text(serde_json::json!({"type": "Speak", "text": text}).to_string())).await?;
        speak.send(Message::text(r#"{"type":"Flush"}"#)).await?;
    }
    let mut flushed = 0;
    let engine = base64::engine::general_purpose::STANDARD;
    while flushed < args.text.len() {
        tokio::select! {
            message = speak.next() => match message {
                Some(Ok(Message::Binary(audio))) => {
                    let media = serde_json::json!({"event": "media", "streamSid": stream_sid, "media": {"payload": engine.encode(&audio)}});
                    twilio.send(Message::text(media.to_string())).await?;
                }
                Some(Ok(Message::Text(text))) if text.as_str().contains("Flushed") => {
                    let mark = serde_json::json!({"event": "mark", "streamSid": stream_sid, "mark": {"name": format!("s{flushed}")}});
                    twilio.send(Message::text(mark.to_string())).await?;
                    flushed += 1;
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error.into()),
                None => break,
            },
            message = twilio.next() => match message {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Ok(()),
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = speak.close(None).await;
    let _ = twilio.close(None).await;
    Ok(())
}
