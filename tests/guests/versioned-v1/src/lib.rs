//! Test guest: echoes messages after announcing `version:v1`; see `../versioned/common.rs`.

const VERSION: &str = "v1";

#[path = "../../versioned/common.rs"]
mod common;
