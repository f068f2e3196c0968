//! Outbound HTTP requests as the host sends them for guests, with no WIT types: the
//! runtime's `wasi:http` hooks check policy and hand a checked [`Plan`] here.
//!
//! - [`send`]: one exchange: a kept-alive connection or a fresh one (DNS, the address
//!   check, TCP, TLS under the connect deadline), the request, the response head under
//!   the first-byte deadline;
//! - [`body`]: the bodies both ways: a request body capped in size, a response body
//!   capped in size, with a deadline between bytes, that reports how it ended;
//! - [`pool`]: one call's idle keep-alive connections;
//! - [`error`]: every way an exchange fails, each with a cause label.
//!
//! HTTP/1.1 only. Redirects are never followed: a 3xx is the guest's to act on.

pub mod body;
pub mod error;
pub mod pool;
pub mod send;

pub use body::{BodyEnd, RequestBody, ResponseBody};
pub use error::FetchError;
pub use pool::Pool;
pub use send::{Exchange, FetchLimits, Plan, send};
