//! What the host knows about its calls, and who it tells.
//!
//! - [`timeline`]: every call's markers (the host's and the guest's), logged as they
//!   happen and streamed to observers; [`marker`]: what they are made of, and the host's
//!   own marker names; [`legs`]: a call's legs, as the guest names them;
//! - [`metrics`]: Prometheus counters and gauges;
//! - [`calls`]: the call store: every marker persisted, each call classified (outcome,
//!   failing leg, cause).

pub mod calls;
pub mod legs;
pub mod marker;
pub mod metrics;
pub mod timeline;
