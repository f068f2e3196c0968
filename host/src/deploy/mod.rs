//! Component versions and how they arrive: the catalogue of versions with hot swap
//! ([`versions`]), the content-addressed store of their bytes and machine code
//! ([`artifacts`]), and the file watch that redeploys a changed file ([`watch`]).

pub mod artifacts;
pub mod versions;
pub mod watch;
