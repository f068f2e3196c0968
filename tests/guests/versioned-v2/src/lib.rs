//! Test guest: echoes messages after announcing `version:v2`; see `../versioned/common.rs`.

const VERSION: &str = "v2";

#[path = "../../versioned/common.rs"]
mod common;
