//! Switchboard: a sandboxed WebSocket edge runtime for real-time voice.
//!
//! The host accepts inbound WebSockets (Twilio Media Streams, say), runs a fresh instance
//! of a WebAssembly component (`wasm32-wasip2`, world `switchboard:call/call-handler`)
//! per connection, and lets that instance open outbound `ws://`/`wss://` connections
//! (Deepgram, say) under an egress allowlist, with secret headers it never sees, and with
//! memory and CPU limits.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! let config = switchboard::Config::builtin()?;
//! let host = switchboard::Switchboard::new(config)?;
//! let listeners = host.bind().await?; // the public and the operator listener
//! host.serve(listeners, std::future::pending()).await?;
//! # Ok(()) }
//! ```

mod admin;
mod api;
pub mod call;
pub mod calls_cli;
pub mod client;
pub mod config;
pub mod demo;
pub mod egress;
pub mod host;
pub mod metrics;
mod operator;
pub mod registry;
pub mod runtime;
pub mod secrets;
mod server;
pub mod signature;
pub mod store;
pub mod timeline;
mod watch;
pub mod ws;

pub use config::Config;
pub use host::{Listeners, StartError, Switchboard};
pub use timeline::{CallId, Marker, MarkerSource, Timeline};
