//! The on-disk, content-addressed store of components and their compiled form.
//!
//! `<dir>/sources/<sha256>.wasm` keeps every component version the host has loaded (so a
//! rollback needs no upload), and `<dir>/compiled/<sha256>-<engine>.cwasm` its machine code
//! for this engine configuration, so a restart, a rollback or a deploy of a component
//! precompiled with `switchboard compile` does not compile again. Files are written to a
//! temporary name and renamed into place, so a crash never leaves a torn artifact.
//!
//! Loading machine code trusts the directory: it must be writable by the host alone.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// A component's content address: the SHA-256 of its bytes, in hex.
pub fn digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether a compiled component came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compiled {
    /// Compiled now (and stored).
    Fresh,
    /// Loaded from the store.
    Cached,
}

/// The artifact store. Without a directory, compiled code is not kept and component
/// bytes are kept in memory (so a rollback still works until the host restarts).
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    dir: Option<PathBuf>,
    engine_tag: String,
    in_memory: Arc<Mutex<HashMap<String, Arc<[u8]>>>>,
}

impl ArtifactStore {
    /// A store in `dir` (created if needed) for components compiled by `engine`.
    pub fn new(dir: Option<&Path>, engine: &Engine) -> std::io::Result<Self> {
        if let Some(dir) = dir {
            std::fs::create_dir_all(dir.join("sources"))?;
            std::fs::create_dir_all(dir.join("compiled"))?;
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(ArtifactStore { dir: dir.map(Path::to_path_buf), engine_tag: format!("{:016x}", hasher.finish()), in_memory: Arc::default() })
    }

    /// The store's directory, if it has one.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    fn compiled_path(&self, digest: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|dir| dir.join("compiled").join(format!("{digest}-{}.cwasm", self.engine_tag)))
    }

    fn source_path(&self, digest: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|dir| dir.join("sources").join(format!("{digest}.wasm")))
    }

    /// The component for `bytes`: from the store when compiled before, else compiled now
    /// and stored. CPU-heavy on a miss: call from a blocking context.
    pub fn compile(&self, engine: &Engine, bytes: &[u8]) -> wasmtime::Result<(Component, String, Compiled)> {
        let digest = digest(bytes);
        if let Some(path) = self.compiled_path(&digest)
            && path.is_file()
        {
            // SAFETY: the file was written by `Component::serialize` of an engine with the
            // same compatibility hash (it is in the name) into the host's own store, which
            // the host alone may write (see the module docs). wasmtime still checks the
            // header and refuses an incompatible artifact.
            #[allow(unsafe_code, reason = "deserializing machine code is unsafe by nature; the SAFETY comment above says why it holds")]
            let loaded = unsafe { Component::deserialize_file(engine, &path) };
            match loaded {
                Ok(component) => return Ok((component, digest, Compiled::Cached)),
                Err(error) => {
                    tracing::warn!(path = %path.display(), "ignoring an unusable compiled artifact: {error:#}")
                }
            }
        }
        let component = Component::new(engine, bytes)?;
        if let (Some(compiled), Some(source)) = (self.compiled_path(&digest), self.source_path(&digest)) {
            let stored = component.serialize().map_err(std::io::Error::other).and_then(|code| write_atomically(&compiled, &code));
            if let Err(error) = stored.and_then(|()| write_atomically(&source, bytes)) {
                tracing::warn!("could not store the compiled component {digest}: {error}");
            }
        }
        Ok((component, digest, Compiled::Fresh))
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<[u8]>>> {
        self.in_memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The bytes of a version stored earlier.
    pub fn source(&self, digest: &str) -> Option<Vec<u8>> {
        match self.source_path(digest) {
            Some(path) => std::fs::read(path).ok(),
            None => self.memory().get(digest).map(|bytes| bytes.to_vec()),
        }
    }

    /// Stores a version's bytes (for rollback) without compiling.
    pub fn keep_source(&self, digest: &str, bytes: &[u8]) {
        if self.dir.is_none() {
            self.memory().entry(digest.to_owned()).or_insert_with(|| Arc::from(bytes));
            return;
        }
        if let Some(path) = self.source_path(digest)
            && !path.is_file()
            && let Err(error) = write_atomically(&path, bytes)
        {
            tracing::warn!("could not store component source {digest}: {error}");
        }
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_sha256() {
        assert_eq!(digest(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
