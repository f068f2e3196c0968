//! Guest-side bindings for the `switchboard:call/call-handler` world, plus small helpers.
//!
//! A component crate (a `cdylib` built for `wasm32-wasip2`) implements
//! [`bindings::exports::switchboard::call::handler::Guest`] and exports it:
//!
//! ```text
//! struct Echo;
//! impl switchboard_guest::Handler for Echo {
//!     fn handle(request: RequestInfo, inbound: Connection) { /* ... */ }
//! }
//! switchboard_guest::export_handler!(Echo);
//! ```
//!
//! The bindings are generated once here so every guest shares them.

#![allow(missing_docs)] // the generated bindings carry the WIT's own docs

/// The generated bindings for the whole world (WASI imports included).
#[allow(clippy::all, unsafe_code, rust_2018_idioms)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "switchboard:call/call-handler",
        generate_all,
        pub_export_macro: true,
        export_macro_name: "export_handler_inner",
        default_bindings_module: "switchboard_guest::bindings",
    });
}

pub mod io;
pub mod timeline;

pub use bindings::exports::switchboard::call::handler::{Guest as Handler, RequestInfo};
pub use bindings::switchboard::call::legs::{self, Impact};
pub use bindings::switchboard::call::markers::{TranscriptEntry, Value};
pub use bindings::switchboard::call::outbound::{self, ConnectOptions, FutureConnection};
pub use bindings::switchboard::call::websocket::{CloseFrame, Connection, ErrorCode, Message};
pub use timeline::{fault, mark};

/// Exports a [`Handler`] implementation as the component's `handler` interface.
#[macro_export]
macro_rules! export_handler {
    ($handler:ident) => {
        $crate::bindings::export_handler_inner!($handler with_types_in $crate::bindings);
    };
}

/// Reads a non-secret setting from `wasi:config/store`; `None` when unset or unreadable.
pub fn setting(key: &str) -> Option<String> {
    bindings::wasi::config::store::get(key).ok().flatten()
}
