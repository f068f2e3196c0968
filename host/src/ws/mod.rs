//! WebSockets as the host runs them for guests.
//!
//! - [`pump`]: drives one socket with two independent tasks' worth of work (a reader and a
//!   writer), so neither direction can block the other;
//! - [`Connection`]: the guest-facing resource over a pumped socket, never blocking;
//! - [`dial`]: opens outbound `ws`/`wss` connections with typed failures;
//! - [`PendingConnection`]: an outbound handshake in flight, as the guest polls it.

mod connection;
pub mod dial;
mod pending;
pub mod pump;
pub mod tls;

pub use connection::{Connection, WritableSignal};
pub use pending::PendingConnection;
pub use pump::{Activity, CloseInfo, ClosedBy, Closer, ConnectionControl, PumpOptions};
