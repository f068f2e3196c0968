//! Component versions and how they arrive: the catalogue of versions with hot swap
//! ([`versions`]), the content-addressed store of their bytes and machine code
//! ([`artifacts`]), the file watch that redeploys a changed file ([`watch`]), components from an OCI
//! registry ([`oci`]), and the
//! fleet's deploy rows every replica converges on ([`fleet`]).

pub mod artifacts;
pub mod fleet;
pub mod oci;
pub mod versions;
pub mod watch;

/// The largest component accepted, uploaded or pulled: componentize-py and componentize-js
/// components run to tens of MB.
pub const MAX_COMPONENT_BYTES: usize = 64 << 20;
