//! Running guest components: the engine, per-call store state, the CPU and memory limits,
//! and the host side of every WIT interface of the world, in one place.
//!
//! - [`engine`]: one wasmtime engine per host (pooling allocator, epoch interruption) and
//!   the linker holding every import;
//! - [`component`]: linking a compiled component and instantiating it per call;
//! - [`sandbox`]: what a component's calls run under; [`state`]: what each call's store
//!   holds; [`limits`], [`cpu`]: the memory limit and the CPU budget; [`output`]: the
//!   guest's stdout and stderr;
//! - [`bindings`]: the one `bindgen!`; [`types`]: the concrete types behind the WIT
//!   resources; `*_impl`: the `Host` traits, one file per WIT interface ([`http_impl`]:
//!   `wasi:http` in the linker; [`http_hooks`]: its send hook, where the policy is).

pub mod bindings;
pub mod component;
pub mod cpu;
pub mod engine;
pub mod error;
pub mod http_hooks;
pub mod http_impl;
mod legs_impl;
pub mod limits;
mod markers_impl;
mod outbound_impl;
pub mod output;
pub mod sandbox;
pub mod state;
pub mod types;
mod websocket_impl;

pub use component::LoadedComponent;
pub use engine::{EngineSettings, Runtime};
pub use error::LoadError;
pub use sandbox::Sandbox;
