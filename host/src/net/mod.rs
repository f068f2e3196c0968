//! Reaching an outbound peer: what WebSockets and HTTP requests share below their
//! protocols. No WIT types.
//!
//! - [`connect`]: resolves a checked target, keeps only the addresses the egress policy
//!   accepts, connects to one of them and runs TLS, with a typed error for each failure;
//! - [`tls`]: the TLS settings of both directions (outbound trust, listener acceptors).

pub mod connect;
pub mod tls;

pub use connect::{AddressCheck, ConnectError, Connected, Transport, connect};
