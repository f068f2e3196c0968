//! A WebSocket client for calling a host's route, with deadlines on every wait.

use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::PATIENCE;

/// The socket type of a client.
pub type ClientSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A connected client.
pub struct TestClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl std::fmt::Debug for TestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestClient").finish_non_exhaustive()
    }
}

/// How a connection ended, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    /// Close code (1006 when the socket ended without a close frame).
    pub code: u16,
    /// Close reason.
    pub reason: String,
}

impl TestClient {
    /// Connects to a `ws://` URL.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let (socket, _) = tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(url))
            .await
            .context("connect timed out")?
            .with_context(|| format!("connecting to {url}"))?;
        Ok(TestClient { socket })
    }

    /// Connects to a `wss://` URL trusting `tls`.
    pub async fn connect_tls(url: &str, tls: std::sync::Arc<rustls::ClientConfig>) -> anyhow::Result<Self> {
        let connector = tokio_tungstenite::Connector::Rustls(tls);
        let (socket, _) =
            tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async_tls_with_config(url, None, true, Some(connector)))
                .await
                .context("connect timed out")?
                .with_context(|| format!("connecting to {url}"))?;
        Ok(TestClient { socket })
    }

    /// Splits into a sink and a stream, for driving both directions at once.
    pub fn into_split(self) -> (futures_util::stream::SplitSink<ClientSocket, Message>, futures_util::stream::SplitStream<ClientSocket>) {
        self.socket.split()
    }

    /// Sends a text message.
    pub async fn send_text(&mut self, text: &str) -> anyhow::Result<()> {
        self.socket.send(Message::text(text)).await.context("sending text")
    }

    /// Sends a binary message.
    pub async fn send_binary(&mut self, data: Vec<u8>) -> anyhow::Result<()> {
        self.socket.send(Message::binary(data)).await.context("sending binary")
    }

    /// Sends any message (a ping, say).
    pub async fn send(&mut self, message: Message) -> anyhow::Result<()> {
        self.socket.send(message).await.context("sending")
    }

    /// The next message of any kind within `timeout`; `None` when the stream ended.
    pub async fn next_within(&mut self, timeout: Duration) -> anyhow::Result<Option<Message>> {
        match tokio::time::timeout(timeout, self.socket.next()).await {
            Err(_) => bail!("no message within {timeout:?}"),
            Ok(None) => Ok(None),
            Ok(Some(result)) => Ok(Some(result.context("receiving")?)),
        }
    }

    /// The next text or binary message, skipping control frames.
    pub async fn next_data(&mut self) -> anyhow::Result<Message> {
        loop {
            match self.next_within(PATIENCE).await? {
                Some(message @ (Message::Text(_) | Message::Binary(_))) => return Ok(message),
                Some(Message::Close(frame)) => bail!("closed while waiting for data: {frame:?}"),
                Some(_) => {}
                None => bail!("the connection ended while waiting for data"),
            }
        }
    }

    /// The next text message.
    pub async fn next_text(&mut self) -> anyhow::Result<String> {
        match self.next_data().await? {
            Message::Text(text) => Ok(text.as_str().to_owned()),
            other => bail!("expected text, got {other:?}"),
        }
    }

    /// Waits for the server's close frame (answering it), skipping data.
    pub async fn expect_close(&mut self) -> anyhow::Result<Closed> {
        loop {
            match self.next_within(PATIENCE).await? {
                Some(Message::Close(frame)) => {
                    return Ok(match frame {
                        Some(frame) => Closed { code: frame.code.into(), reason: frame.reason.as_str().to_owned() },
                        None => Closed { code: 1005, reason: String::new() },
                    });
                }
                Some(_) => {}
                None => {
                    return Ok(Closed { code: 1006, reason: "ended without a close frame".to_owned() });
                }
            }
        }
    }

    /// Starts the close handshake with `code`.
    pub async fn close(&mut self, code: u16, reason: &str) -> anyhow::Result<()> {
        self.socket.close(Some(CloseFrame { code: CloseCode::from(code), reason: reason.to_owned().into() })).await.context("closing")
    }
}
