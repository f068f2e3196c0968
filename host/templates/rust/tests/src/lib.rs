//! The component under test, built by this crate's build script.

/// Path of the built component.
pub const COMPONENT: &str = env!("GUEST_{{crate_upper}}");
