//! Paths of the test guest components, built for `wasm32-wasip2` by this crate's build
//! script (see `build.rs`).

/// Echoes every message; `bye` makes it return without closing.
pub const ECHO: &str = env!("GUEST_ECHO_GUEST");
/// Relays between the inbound socket and the outbound `target` setting.
pub const RELAY: &str = env!("GUEST_RELAY_GUEST");
/// Misbehaves as its `mode` setting says.
pub const HOSTILE: &str = env!("GUEST_HOSTILE_GUEST");
/// The bundled voice-pipeline component.
pub const VOICE_PIPELINE: &str = env!("GUEST_VOICE_PIPELINE");
/// The bundled voice agent.
pub const VOICE_AGENT: &str = env!("GUEST_VOICE_AGENT");
/// Echoes after announcing `version:v1` (hot-swap tests).
pub const VERSIONED_V1: &str = env!("GUEST_VERSIONED_V1_GUEST");
/// Echoes after announcing `version:v2` (hot-swap tests).
pub const VERSIONED_V2: &str = env!("GUEST_VERSIONED_V2_GUEST");
/// Runs the Autobahn fuzzing-server cases through the host's outbound client.
pub const AUTOBAHN: &str = env!("GUEST_AUTOBAHN_GUEST");
/// Relays `charge <amount>` requests to a made-up billing API, naming its legs
/// (`customer`, `billing`) and reporting its faults (classification tests).
pub const BILLING: &str = env!("GUEST_BILLING_GUEST");
/// Sends `wasi:http` requests as the caller's text messages say (`get`, `sse`, `many`,
/// `snoop`) while relaying binary messages over the outbound `relay` socket.
pub const FETCH: &str = env!("GUEST_FETCH_GUEST");
/// The TypeScript SDK's echo example (`sdk/js/examples/echo.ts`): behaves as [`ECHO`].
pub const TS_ECHO: &str = env!("GUEST_TS_ECHO");
/// The TypeScript SDK's relay example (`sdk/js/examples/relay.ts`): behaves as [`RELAY`].
pub const TS_RELAY: &str = env!("GUEST_TS_RELAY");
/// A TypeScript guest that loops, allocates without end or snoops, as `mode` says.
pub const TS_HOSTILE: &str = env!("GUEST_TS_HOSTILE");
/// The Python SDK's echo example (`sdk/python/examples/echo`): behaves as [`ECHO`].
pub const PY_ECHO: &str = env!("GUEST_PY_ECHO");
/// The Python SDK's relay example (`sdk/python/examples/relay`): behaves as [`RELAY`].
pub const PY_RELAY: &str = env!("GUEST_PY_RELAY");

/// Where test hosts share compiled components (see
/// [`HostBuilder::share_compiled`](crate::HostBuilder::share_compiled)): beside the built
/// TypeScript and Python guests, in the target directory.
pub fn compiled_cache() -> std::path::PathBuf {
    let foreign = std::path::Path::new(TS_ECHO).parent().unwrap_or(std::path::Path::new("."));
    foreign.with_file_name("compiled-cache")
}
/// A Python guest that loops or snoops, as `mode` says.
pub const PY_HOSTILE: &str = env!("GUEST_PY_HOSTILE");
/// A TypeScript guest that makes the HTTP requests its caller asks for (`get`, `post`).
pub const TS_FETCH: &str = env!("GUEST_TS_FETCH");
/// A Python guest that makes the HTTP requests its caller asks for (`get`, `post`).
pub const PY_FETCH: &str = env!("GUEST_PY_FETCH");
