//! `native-relay`: the bench's practical limit. The same work as the voice-pipeline
//! component, written directly on tokio-tungstenite with no wasm: accept a Twilio Media
//! Streams WebSocket, open Deepgram over `wss` with `Authorization: Token …` on `start`,
//! forward each `media` payload base64-decoded as a binary frame, send `KeepAlive` after
//! 4 s without audio, and `CloseStream` when the call stops, then close both sides.
//!
//! ```text
//! DEEPGRAM_API_KEY=… native-relay --listen 127.0.0.1:8081 --deepgram-url wss://localhost:9000/v1/listen --ca ca.pem
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde::Deserialize;
use switchboard_bench::wire::lean;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Deepgram's query, as the voice-pipeline component sends it by default.
const QUERY: &str = "model=nova-3&encoding=mulaw&sample_rate=8000&channels=1&interim_results=true&endpointing=300&utterance_end_ms=1000&vad_events=true&smart_format=true&punctuate=true";
const KEEPALIVE_AFTER: Duration = Duration::from_secs(4);
const FINAL_WAIT: Duration = Duration::from_secs(5);

#[derive(Parser)]
#[command(about = "A native Rust Twilio-to-Deepgram relay (the benchmark's baseline)")]
struct Args {
    /// Address to accept Twilio Media Streams on.
    #[arg(long)]
    listen: SocketAddr,
    /// Deepgram's live endpoint, without a query.
    #[arg(long)]
    deepgram_url: String,
    /// A PEM file of CA certificates trusted for Deepgram's TLS.
    #[arg(long)]
    ca: PathBuf,
}

/// Where and how to reach Deepgram.
struct Upstream {
    url: String,
    host: String,
    port: u16,
    authorization: String,
    tls: TlsConnector,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let key = std::env::var("DEEPGRAM_API_KEY").context("DEEPGRAM_API_KEY is not set")?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&args.ca).with_context(|| format!("reading {}", args.ca.display()))? {
        roots.add(cert?)?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let parsed = url::Url::parse(&args.deepgram_url)?;
    let upstream = Arc::new(Upstream {
        url: format!("{}?{QUERY}", args.deepgram_url),
        host: parsed.host_str().context("the Deepgram URL has no host")?.to_owned(),
        port: parsed.port_or_known_default().unwrap_or(443),
        authorization: format!("Token {key}"),
        tls: TlsConnector::from(Arc::new(tls)),
    });
    let listener = TcpListener::bind(args.listen).await?;
    loop {
        let (tcp, _) = listener.accept().await?;
        let upstream = upstream.clone();
        tokio::spawn(async move {
            if let Err(error) = relay(tcp, &upstream).await {
                eprintln!("call failed: {error:#}");
            }
        });
    }
}

/// The parts of a Twilio message the relay reads; the payload is borrowed, not copied.
#[derive(Deserialize)]
struct TwilioEvent<'a> {
    event: &'a str,
    #[serde(borrow)]
    media: Option<Media<'a>>,
}

#[derive(Deserialize)]
struct Media<'a> {
    payload: &'a str,
}

type DeepgramSocket = tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;

async fn relay(tcp: TcpStream, upstream: &Upstream) -> anyhow::Result<()> {
    tcp.set_nodelay(true)?;
    let mut caller = tokio_tungstenite::accept_async_with_config(tcp, Some(lean())).await?;
    let mut deepgram: Option<DeepgramSocket> = None;
    let mut keepalive = tokio::time::interval(KEEPALIVE_AFTER);
    let mut sent_audio = false;
    loop {
        tokio::select! {
            message = caller.next() => {
                let text = match message {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                    Some(Ok(_)) => continue,
                };
                let Ok(event) = serde_json::from_str::<TwilioEvent<'_>>(&text) else { continue };
                match (event.event, event.media, deepgram.as_mut()) {
                    ("start", _, None) => deepgram = Some(connect(upstream).await?),
                    ("media", Some(media), Some(socket)) => {
                        let audio = base64::engine::general_purpose::STANDARD.decode(media.payload)?;
                        socket.send(Message::Binary(audio.into())).await?;
                        sent_audio = true;
                    }
                    ("stop", _, _) => break,
                    _ => {}
                }
            }
            reply = next_reply(deepgram.as_mut()) => {
                if reply.is_none() {
                    anyhow::bail!("Deepgram closed the stream during the call");
                }
            }
            _ = keepalive.tick() => {
                if let Some(socket) = deepgram.as_mut() && !std::mem::take(&mut sent_audio) {
                    socket.send(Message::Text(Utf8Bytes::from_static(r#"{"type":"KeepAlive"}"#))).await?;
                }
            }
        }
    }
    if let Some(mut socket) = deepgram {
        socket.send(Message::Text(Utf8Bytes::from_static(r#"{"type":"CloseStream"}"#))).await?;
        // Final results, Metadata, then Deepgram's close.
        let _ = tokio::time::timeout(FINAL_WAIT, async { while socket.next().await.is_some_and(|m| m.is_ok()) {} }).await;
    }
    let _ = caller.close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() })).await;
    let _ = tokio::time::timeout(FINAL_WAIT, async { while caller.next().await.is_some_and(|m| m.is_ok()) {} }).await;
    Ok(())
}

/// Deepgram's next message (transcripts are read and dropped); pending forever before
/// Deepgram is connected; `None` when it closed.
async fn next_reply(deepgram: Option<&mut DeepgramSocket>) -> Option<()> {
    let Some(socket) = deepgram else {
        return std::future::pending().await;
    };
    match socket.next().await {
        Some(Ok(Message::Close(_)) | Err(_)) | None => None,
        Some(Ok(_)) => Some(()),
    }
}

async fn connect(upstream: &Upstream) -> anyhow::Result<DeepgramSocket> {
    let tcp = TcpStream::connect((upstream.host.as_str(), upstream.port)).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from(upstream.host.clone())?;
    let tls = upstream.tls.connect(name, tcp).await?;
    let mut request = upstream.url.as_str().into_client_request()?;
    request.headers_mut().insert("authorization", upstream.authorization.parse()?);
    let (socket, _) = tokio_tungstenite::client_async_with_config(request, tls, Some(lean())).await?;
    Ok(socket)
}
