//! Running guest components: the engine, per-call store state, the CPU and memory limits,
//! and the host side of the WIT imports.
//!
//! - [`engine`]: one wasmtime engine per host (pooling allocator, epoch interruption);
//! - [`component`]: compiling and checking a component, then instantiating it per call;
//! - [`state`]: what each call's store holds, and the view the import impls borrow;
//! - [`cpu`]: the CPU budget; `*_impl`: one file per WIT interface.

pub mod artifacts;
pub mod bindings;
pub mod component;
pub mod cpu;
pub mod engine;
mod markers_impl;
mod outbound_impl;
pub mod output;
pub mod state;
mod websocket_impl;

pub use component::{LoadError, LoadedComponent, Sandbox};
pub use engine::{EngineSettings, Runtime};
