//! WebSockets as the host runs them, in either direction, with no WIT types: the runtime
//! gets a plain [`Socket`] and maps it to the guest's resources.
//!
//! - [`pump`]: drives one socket with a reader and a writer that never wait on each
//!   other, and hands out its [`Socket`] and the host's [`Control`];
//! - [`socket`]: the handle, never blocking (`send` queues or reports would-block,
//!   `receive` takes from a bounded buffer), with readiness to wait on;
//! - [`link`]: the state a socket, its pump and its control share (how it ended, what the
//!   peer has sent);
//! - [`dial`]: opens outbound `ws`/`wss` connections under a deadline, with typed failures;
//! - [`message`]: the messages and close frames of this layer; [`options`]: buffer sizes.

pub mod dial;
pub mod link;
pub mod message;
pub mod options;
pub mod pump;
pub mod socket;

pub use link::{Activity, CloseInfo, ClosedBy};
pub use message::{CloseFrame, Message};
pub use options::PumpOptions;
pub use pump::{Closer, Control};
pub use socket::{Socket, SocketError, WritableSignal};
