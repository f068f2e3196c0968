//! Integration test harness for Switchboard components.
//!
//! Everything runs on loopback with ports from 0: a real host ([`TestHost`]) serving your
//! component, real WebSocket clients ([`TestClient`]), real WebSocket servers
//! ([`FakeServer`]) and HTTP servers ([`FakeHttpServer`]) with real TLS from a CA made at
//! test time ([`TestCa`]).
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use switchboard_harness::{ComponentSpec, FakeServer, TestCa, TestClient, TestHost};
//! let ca = TestCa::new()?;
//! let upstream = FakeServer::echo().tls(&ca).start().await?;
//! let host = TestHost::builder()
//!     .route("/call", ComponentSpec::new("relay", "path/to/relay.wasm")
//!         .allow(&upstream.origin())
//!         .trust(&ca)
//!         .setting("target", &upstream.url("/v1/listen")))
//!     .start()
//!     .await?;
//! let mut caller = TestClient::connect(&host.url("/call")).await?;
//! caller.send_text("hello").await?;
//! assert_eq!(caller.next_text().await?, "hello");
//! # Ok(()) }
//! ```

pub mod client;
mod compiled;
pub mod database;
pub mod fake_http;
pub mod fake_server;
pub mod guests;
pub mod host;
pub mod registry;

pub use client::TestClient;
pub use database::TestPostgres;
pub use fake_http::{FakeHttpServer, RecordedRequest, Reply, RunningHttpServer};
pub use fake_server::{FakeServer, Handshake, RunningServer};
pub use host::{ComponentSpec, Deadlines, HostBuilder, TestHost};
pub use registry::TestRegistry;
/// The Twilio caller and Deepgram simulators (crate `switchboard-sim`).
pub use switchboard_sim as sim;
/// A CA made at test time (from `switchboard-sim`).
pub use switchboard_sim::tls::TestCa;

/// 13.2 s of synthetic speech as Twilio carries it (mu-law, 8 kHz, mono); see
/// `assets/README.md`.
pub fn caller_speech() -> Vec<u8> {
    switchboard_sim::CALLER_SPEECH.to_vec()
}

/// The project's Python (`target/py`, made by `scripts/setup.sh --tests`) with the test
/// packages of `scripts/requirements-test.txt`; an error saying how to get it otherwise.
pub fn python() -> anyhow::Result<std::path::PathBuf> {
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/py/bin/python");
    anyhow::ensure!(python.is_file(), "{} is missing: run `scripts/setup.sh --tests` (./test.sh does)", python.display());
    Ok(python)
}

/// How long harness helpers wait for something that should happen promptly.
pub const PATIENCE: std::time::Duration = std::time::Duration::from_secs(20);
