//! What the host knows about its calls, and who it tells.
//!
//! - [`timeline`]: every call's markers (the host's and the guest's), logged as they
//!   happen and streamed to observers;
//! - [`metrics`]: Prometheus counters and gauges;
//! - [`calls`]: the call store: every marker persisted, each call classified (outcome,
//!   failing leg, cause).

pub mod calls;
pub mod metrics;
pub mod timeline;
