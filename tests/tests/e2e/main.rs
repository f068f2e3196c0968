//! End-to-end tests: a real host on loopback running real guest components, driven by
//! real WebSocket clients and servers. Run with `cargo test -p switchboard-harness`.

mod agent;
mod faults;
mod http;
mod inbound;
mod languages;
mod legs;
mod loading;
mod observability;
mod outbound;
mod pipeline;
mod sandbox;
mod security;
mod swap;

use switchboard_harness::guests;
use switchboard_harness::{ComponentSpec, TestHost};

/// Logs go to the test output when `RUST_LOG` is set.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).with_test_writer().try_init();
}

/// A host serving the echo guest on `/echo`.
pub async fn echo_host() -> anyhow::Result<TestHost> {
    init_tracing();
    TestHost::builder().route("/echo", ComponentSpec::new("echo", guests::ECHO)).start().await
}
