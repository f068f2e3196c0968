//! Why a component could not be loaded: each failure names the component and what is
//! wrong with it (a missing import by name, the export it lacks, bytes that are not a
//! component).

use crate::net::tls::TlsSetupError;

/// Why a component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("component `{name}`: cannot read {path}: {source}")]
    Read {
        /// Component name.
        name: String,
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The component could not be pulled from its registry.
    #[error("component `{name}`: {message}")]
    Registry {
        /// Component name.
        name: String,
        /// Why.
        message: String,
    },
    /// Not a valid component.
    #[error("component `{name}`: not a valid WebAssembly component: {message}")]
    Compile {
        /// Component name.
        name: String,
        /// The compiler's message.
        message: String,
    },
    /// It imports something the host does not provide.
    #[error("component `{name}` imports what the host does not provide: {}{}", missing.join(", "), detail.as_ref().map(|d| format!(" ({d})")).unwrap_or_default())]
    MissingImports {
        /// Component name.
        name: String,
        /// The imports the host lacks, by name.
        missing: Vec<String>,
        /// The linker's own explanation, when no import is missing by name (a type mismatch).
        detail: Option<String>,
    },
    /// It does not export `switchboard:call/handler` with the expected `handle`.
    #[error("component `{name}` does not export the expected `switchboard:call/handler` interface: {message}")]
    WrongExport {
        /// Component name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// Its outbound TLS settings are unusable.
    #[error("component `{name}`: {source}")]
    Tls {
        /// Component name.
        name: String,
        /// The TLS problem.
        source: TlsSetupError,
    },
}
