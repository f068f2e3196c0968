//! Components from an OCI registry: pulls and pushes ([`registry`]) of the references the
//! configuration names ([`OciReference`]), and the resolutions kept in the data directory so that a restart, or a
//! registry that is down, does not stop a host from loading what it pulled before.
//!
//! `<data_dir>/oci/<sha256 of the reference>.json` records what a reference resolved to
//! (the pinned reference and the component's SHA-256); the bytes themselves are in the
//! artifact store. A pinned reference whose bytes are stored never touches the network; a
//! tag is asked of the registry, and when the registry cannot be reached its last
//! resolution is used, with a warning.

pub mod registry;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::config::oci::{OciReference, ReferenceError};

use super::artifacts::{ArtifactStore, digest};

/// Why a component could not be had from a registry.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// The client could not be set up (a bad CA file, say).
    #[error("registry client: {0}")]
    Setup(String),
    /// The registry could not be reached.
    #[error("cannot reach the registry for {reference}: {message}")]
    Unreachable {
        /// The reference.
        reference: String,
        /// What went wrong.
        message: String,
    },
    /// The registry refused the credentials.
    #[error("the registry refused the credentials for {reference} (SWITCHBOARD_REGISTRY_USERNAME / _PASSWORD): {message}")]
    Unauthorized {
        /// The reference.
        reference: String,
        /// The registry's answer.
        message: String,
    },
    /// Nothing by that name.
    #[error("{reference} is not in the registry: {message}")]
    NotFound {
        /// The reference.
        reference: String,
        /// The registry's answer.
        message: String,
    },
    /// Something else the registry said.
    #[error("registry error for {reference}: {message}")]
    Registry {
        /// The reference.
        reference: String,
        /// The registry's answer.
        message: String,
    },
    /// What arrived does not hash to the digest it was asked for by.
    #[error("the {what} pulled does not match its digest: expected {expected}, got {actual}; refused")]
    DigestMismatch {
        /// `manifest`, `layer` or `component`.
        what: String,
        /// The digest asked for.
        expected: String,
        /// The digest of what arrived.
        actual: String,
    },
    /// The artifact is not a wasm component.
    #[error("{reference} is not a wasm component artifact: {message}")]
    NotAComponent {
        /// The reference.
        reference: String,
        /// Why.
        message: String,
    },
}

impl OciError {
    /// Whether the registry could not be reached (as opposed to refusing).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, OciError::Unreachable { .. })
    }
}

/// What a reference resolved to.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Resolution {
    pinned: String,
    component: String,
}

fn resolution_path(dir: &Path, reference: &OciReference) -> PathBuf {
    dir.join("oci").join(format!("{}.json", digest(reference.to_string().as_bytes())))
}

fn remember(artifacts: &ArtifactStore, reference: &OciReference, pinned: &OciReference, component: &str) {
    let Some(dir) = artifacts.dir() else { return };
    let resolution = Resolution { pinned: pinned.to_string(), component: component.to_owned() };
    let text = serde_json::to_vec(&resolution).unwrap_or_default();
    for key in [reference, pinned] {
        let path = resolution_path(dir, key);
        let stored = std::fs::create_dir_all(path.parent().unwrap_or(dir)).and_then(|()| {
            let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
            std::fs::write(&temporary, &text).and_then(|()| std::fs::rename(&temporary, &path))
        });
        if let Err(error) = stored {
            tracing::warn!("could not record the resolution of {key}: {error}");
        }
    }
}

fn recall(artifacts: &ArtifactStore, reference: &OciReference) -> Option<(OciReference, Vec<u8>)> {
    let text = std::fs::read(resolution_path(artifacts.dir()?, reference)).ok()?;
    let resolution: Resolution = serde_json::from_slice(&text).ok()?;
    let bytes = artifacts.source(&resolution.component)?;
    if digest(&bytes) != resolution.component {
        return None;
    }
    Some((OciReference::parse(&resolution.pinned).ok()?, bytes))
}

/// The component `reference` names, with the reference pinned: from the data directory
/// when a pinned reference was pulled before (no network), else from the registry (and
/// recorded), else, for a tag whose registry cannot be reached, its last resolution.
pub async fn fetch(artifacts: &ArtifactStore, reference: &OciReference) -> Result<(OciReference, Vec<u8>), OciError> {
    if reference.digest.is_some()
        && let Some(found) = recall(artifacts, reference)
    {
        return Ok(found);
    }
    match registry::pull(reference).await {
        Ok(pulled) => {
            let component = digest(&pulled.bytes);
            artifacts.keep_source(&component, &pulled.bytes);
            remember(artifacts, reference, &pulled.pinned, &component);
            Ok((pulled.pinned, pulled.bytes))
        }
        Err(error) if error.is_unreachable() => match recall(artifacts, reference) {
            Some(found) => {
                tracing::warn!("{error}; using {} pulled before", found.0);
                Ok(found)
            }
            None => Err(error),
        },
        Err(error) => Err(error),
    }
}
