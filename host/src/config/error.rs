//! Configuration errors: each names the file, the key and what was expected.

use std::path::PathBuf;

/// Why a configuration was refused. Every variant is raised before any port is bound.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key, or a value of the wrong type.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line, column and key.
        message: String,
    },
    /// A value parsed but is not acceptable.
    #[error("config {origin}: `{key}`: {message}")]
    Invalid {
        /// The file, or "built-in defaults".
        origin: String,
        /// The dotted key path, e.g. `components.relay.limits.memory_mb`.
        key: String,
        /// What is wrong and what is expected.
        message: String,
    },
}
