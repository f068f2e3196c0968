//! The front doors: the two listeners and what each serves.
//!
//! - [`listener`]: the accept loop (TLS first when configured, HTTP/1.1 with upgrades,
//!   head size and time limits, a connection cap), shared by both listeners;
//! - [`public`]: the public listener: routes (the WebSocket upgrades that start calls),
//!   `/healthz`, `/readyz`, and 404 for everything else;
//! - [`operator`]: the operator listener; it serves [`api`] (query API, events, metrics,
//!   dashboard) and [`admin`] (the deploy API), behind [`auth`];
//! - [`client`]: the client of the operator listener, for the CLI and tests.

pub mod admin;
pub mod api;
pub mod auth;
pub mod client;
pub mod listener;
pub mod operator;
pub mod public;
