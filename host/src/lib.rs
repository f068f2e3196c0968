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
//!
//! The wings, each importing only from the ones listed before it (`docs/ARCHITECTURE.md`
//! has the whole map):
//!
//! | module | what lives there |
//! |---|---|
//! | [`policy`] | egress allowlist, secret headers, Twilio signatures |
//! | [`observe`] | the call timeline, metrics, the call store and its classification |
//! | [`config`] | the TOML file, its defaults and validation |
//! | [`net`] | reaching a checked outbound address: DNS, TCP, TLS; the TLS settings |
//! | [`ws`] | pumped WebSockets both ways and dialing them; no WIT types |
//! | [`fetch`] | outbound HTTP exchanges: pooled connections, deadlines, capped bodies; no WIT types |
//! | [`runtime`] | the engine, per-call state, limits, the host side of every WIT interface |
//! | [`deploy`] | component versions, the artifact store, file watching |
//! | [`call`] | one call from upgrade to close, and the caller's deadlines |
//! | `state` | what the front doors share |
//! | [`http`] | the front doors: public and operator listeners, API, deploy API, client |
//! | [`host`] | [`Switchboard`]: composes the rest and serves |

pub mod call;
pub mod config;
pub mod deploy;
pub mod fetch;
pub mod host;
pub mod http;
pub mod net;
pub mod observe;
pub mod policy;
pub mod runtime;
mod state;
pub mod ws;

pub use config::Config;
pub use host::{Listeners, StartError, Switchboard};
pub use observe::timeline::{CallId, Marker, MarkerSource, Timeline};
