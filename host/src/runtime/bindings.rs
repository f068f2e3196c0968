//! The host-side bindings of the `switchboard:call/call-handler` world.
//!
//! WASI interfaces map to `wasmtime-wasi`'s own bindings, and each WIT resource of ours to
//! the host type behind it (see [`super::types`]).

#![allow(missing_docs, reason = "generated from the WIT, whose own docs the bindings carry")]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "switchboard:call/call-handler",
    imports: { default: trappable },
    exports: { default: async },
    with: {
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        "wasi:cli": wasmtime_wasi::p2::bindings::cli,
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        "switchboard:call/websocket.connection": crate::runtime::types::Connection,
        "switchboard:call/outbound.future-connection": crate::runtime::types::FutureConnection,
    },
    require_store_data_send: true,
});

pub use self::exports::switchboard::call::handler::RequestInfo;
pub use self::switchboard::call::websocket::{CloseFrame, ErrorCode, HandshakeResponse, Message};
