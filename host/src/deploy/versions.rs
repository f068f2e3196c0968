//! Component versions and hot swap.
//!
//! Each configured component has a current version; a new call gets the current version
//! and keeps it until the call ends (the call holds an `Arc`), so a swap never touches a
//! live call, and an old version's instance code is freed when its last call ends. A new
//! version is compiled (or loaded from the artifact store) and checked against the world
//! off the serving path, and becomes current only once it is known to be good; a bad one
//! is refused with the reason and the current version keeps serving.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::config::ComponentConfig;
use crate::config::ComponentSource;
use crate::deploy::artifacts::{ArtifactStore, Compiled};
use crate::deploy::oci::OciReference;
use crate::runtime::{LoadError, LoadedComponent, Runtime, Sandbox};

/// One compiled, checked version of a component.
pub struct ComponentVersion {
    /// The component's name.
    pub component: String,
    /// Its number: 1 for the version the host started with, then one more per deploy.
    pub number: u32,
    /// SHA-256 of its bytes.
    pub digest: String,
    /// Where it came from: `builtin`, a file path, or `upload`.
    pub source: String,
    /// Ready to instantiate.
    pub loaded: LoadedComponent,
    /// When it was deployed, ms since the Unix epoch.
    pub deployed_unix_ms: u64,
    /// `compiled` when compiled for this version, `cached` when loaded from the store.
    pub compiled: &'static str,
    live: AtomicUsize,
}

impl std::fmt::Debug for ComponentVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComponentVersion").field("component", &self.component).field("number", &self.number).finish_non_exhaustive()
    }
}

impl ComponentVersion {
    /// Counts a live call on this version until the guard is dropped.
    pub fn enter_call(self: &Arc<Self>) -> VersionHold {
        self.live.fetch_add(1, Ordering::Relaxed);
        VersionHold(self.clone())
    }

    /// Calls running on this version now.
    pub fn live_calls(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// The first 12 hex digits of the digest.
    pub fn short_digest(&self) -> &str {
        &self.digest[..12.min(self.digest.len())]
    }
}

/// A call's hold on its version.
#[derive(Debug)]
pub struct VersionHold(Arc<ComponentVersion>);

impl VersionHold {
    /// The version the call runs.
    pub fn version(&self) -> &Arc<ComponentVersion> {
        &self.0
    }
}

impl Drop for VersionHold {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A version as the admin API lists it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct VersionInfo {
    /// Component name.
    pub component: String,
    /// Version number.
    pub number: u32,
    /// SHA-256 of the bytes.
    pub digest: String,
    /// Where it came from.
    pub source: String,
    /// Deployment time, ms since the Unix epoch.
    pub deployed_unix_ms: u64,
    /// Whether new calls get it.
    pub current: bool,
    /// Calls running on it.
    pub live_calls: usize,
    /// Whether its code is in memory (current, or still serving calls).
    pub loaded: bool,
    /// How its code was obtained when last loaded: `compiled` or `cached`.
    pub compiled: Option<&'static str>,
}

/// The outcome of a deploy or rollback.
#[derive(Debug, Clone, Serialize)]
pub struct Deployed {
    /// The version now current.
    pub version: VersionInfo,
    /// `cached` when the compiled form came from the artifact store.
    pub compiled: &'static str,
    /// Compile (or load) and check time, ms.
    pub ready_ms: f64,
}

/// Why a deploy was refused. The current version keeps serving in every case.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// No component of that name is configured.
    #[error("no component named {0:?}")]
    UnknownComponent(String),
    /// The bytes are not a valid component, or it does not fit the world.
    #[error(transparent)]
    Refused(#[from] LoadError),
    /// A rollback target that does not exist (or whose bytes are gone).
    #[error("{0}")]
    NoSuchVersion(String),
    /// The registry could not give the component, or what it gave was not what was asked.
    #[error(transparent)]
    Registry(#[from] crate::deploy::oci::OciError),
    /// The blocking compile task failed.
    #[error("internal error: {0}")]
    Internal(String),
}

struct Record {
    number: u32,
    digest: String,
    source: String,
    deployed_unix_ms: u64,
    version: Weak<ComponentVersion>,
}

struct ComponentEntry {
    sandbox: Arc<Sandbox>,
    current: Arc<ComponentVersion>,
    history: Vec<Record>,
}

/// Every component's versions.
pub struct Versions {
    runtime: Arc<Runtime>,
    artifacts: ArtifactStore,
    entries: RwLock<HashMap<String, ComponentEntry>>,
    /// One deploy at a time, so numbering and "previous" stay simple.
    deploying: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Versions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Versions").finish_non_exhaustive()
    }
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Versions {
    /// Loads version 1 of every configured component. CPU-heavy: call before serving.
    pub fn load(
        runtime: Arc<Runtime>,
        artifacts: ArtifactStore,
        components: &[&ComponentConfig],
        metrics: &Arc<crate::observe::metrics::Metrics>,
    ) -> Result<Self, LoadError> {
        let mut entries = HashMap::new();
        for config in components {
            let sandbox = Arc::new(Sandbox::from_config(config, metrics.clone())?);
            let (bytes, source) = match &config.source {
                ComponentSource::File(path) => (source_bytes(config)?, path.display().to_string()),
                ComponentSource::Builtin(_) => (source_bytes(config)?, "builtin".to_owned()),
                ComponentSource::Oci(reference) => {
                    let registry = |message: String| LoadError::Registry { name: config.name.clone(), message };
                    let (pinned, bytes) = block_on(crate::deploy::oci::fetch(&artifacts, reference))
                        .map_err(|e| registry(e.to_string()))?
                        .map_err(|e| registry(e.to_string()))?;
                    (bytes, pinned.to_string())
                }
            };
            let (loaded, digest, compiled) = compile_and_link(&runtime, &artifacts, &sandbox, &bytes)?;
            let (version, record) = new_version(&config.name, 1, digest, source, loaded, compiled);
            entries.insert(config.name.clone(), ComponentEntry { sandbox, current: version, history: vec![record] });
        }
        Ok(Versions { runtime, artifacts, entries: RwLock::new(entries), deploying: tokio::sync::Mutex::new(()) })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, ComponentEntry>> {
        self.entries.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, ComponentEntry>> {
        self.entries.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The version new calls of `component` get.
    pub fn current(&self, component: &str) -> Option<Arc<ComponentVersion>> {
        self.read().get(component).map(|entry| entry.current.clone())
    }

    /// Every version of every component, by name then number.
    pub fn list(&self) -> Vec<VersionInfo> {
        let entries = self.read();
        let mut names: Vec<&String> = entries.keys().collect();
        names.sort();
        names
            .into_iter()
            .flat_map(|name| {
                let entry = &entries[name];
                entry.history.iter().map(move |record| {
                    let live = record.version.upgrade();
                    VersionInfo {
                        component: name.clone(),
                        number: record.number,
                        digest: record.digest.clone(),
                        source: record.source.clone(),
                        deployed_unix_ms: record.deployed_unix_ms,
                        current: record.number == entry.current.number,
                        live_calls: live.as_ref().map_or(0, |v| v.live_calls()),
                        loaded: live.is_some(),
                        compiled: live.as_ref().map(|v| v.compiled),
                    }
                })
            })
            .collect()
    }

    /// The bytes of the version whose SHA-256 is `digest`, from the artifact store.
    pub fn source_of(&self, digest: &str) -> Option<Vec<u8>> {
        self.artifacts.source(digest)
    }

    fn info(&self, component: &str, number: u32) -> Option<VersionInfo> {
        self.list().into_iter().find(|v| v.component == component && v.number == number)
    }

    /// Compiles and checks `bytes` off the serving path; on success it becomes the current
    /// version of `component`.
    pub async fn deploy(&self, component: &str, bytes: Vec<u8>, source: String) -> Result<Deployed, DeployError> {
        let _one_at_a_time = self.deploying.lock().await;
        let sandbox = self
            .read()
            .get(component)
            .map(|entry| entry.sandbox.clone())
            .ok_or_else(|| DeployError::UnknownComponent(component.to_owned()))?;
        let started = Instant::now();
        let (runtime, artifacts) = (self.runtime.clone(), self.artifacts.clone());
        let (loaded, digest, compiled) = tokio::task::spawn_blocking(move || compile_and_link(&runtime, &artifacts, &sandbox, &bytes))
            .await
            .map_err(|e| DeployError::Internal(e.to_string()))??;
        let number = {
            let mut entries = self.write();
            let entry = entries.get_mut(component).ok_or_else(|| DeployError::UnknownComponent(component.to_owned()))?;
            let number = entry.history.iter().map(|r| r.number).max().unwrap_or(0) + 1;
            let (version, record) = new_version(component, number, digest, source, loaded, compiled);
            entry.history.push(record);
            entry.current = version;
            number
        };
        tracing::info!(component, version = number, compiled = label(compiled), "deployed");
        self.deployed(component, number, compiled, started)
    }

    /// Pulls the component `reference` names (verified by digest) and deploys it; the
    /// version's source is the reference pinned to its manifest digest.
    pub async fn deploy_reference(&self, component: &str, reference: &OciReference) -> Result<Deployed, DeployError> {
        if self.current(component).is_none() {
            return Err(DeployError::UnknownComponent(component.to_owned()));
        }
        let (pinned, bytes) = crate::deploy::oci::fetch(&self.artifacts, reference).await?;
        self.deploy(component, bytes, pinned.to_string()).await
    }

    /// The bytes a reference names, pinned (verified by digest; from the data directory
    /// when pulled before).
    pub async fn fetch_reference(&self, reference: &OciReference) -> Result<(OciReference, Vec<u8>), crate::deploy::oci::OciError> {
        crate::deploy::oci::fetch(&self.artifacts, reference).await
    }

    fn deployed(&self, component: &str, number: u32, compiled: Compiled, started: Instant) -> Result<Deployed, DeployError> {
        let version = self.info(component, number).ok_or_else(|| DeployError::Internal("version vanished".to_owned()))?;
        Ok(Deployed { version, compiled: label(compiled), ready_ms: started.elapsed().as_secs_f64() * 1e3 })
    }

    /// Makes an earlier version current again: version `to`, or the one deployed before
    /// the current one.
    pub async fn rollback(&self, component: &str, to: Option<u32>) -> Result<Deployed, DeployError> {
        let _one_at_a_time = self.deploying.lock().await;
        let started = Instant::now();
        let (sandbox, target, digest, alive) = {
            let entries = self.read();
            let entry = entries.get(component).ok_or_else(|| DeployError::UnknownComponent(component.to_owned()))?;
            let current = entry.current.number;
            let target = match to {
                Some(number) => number,
                None => entry
                    .history
                    .iter()
                    .map(|r| r.number)
                    .filter(|n| *n < current)
                    .max()
                    .ok_or_else(|| DeployError::NoSuchVersion(format!("{component} has no version before {current}")))?,
            };
            let record = entry
                .history
                .iter()
                .find(|r| r.number == target)
                .ok_or_else(|| DeployError::NoSuchVersion(format!("{component} has no version {target}")))?;
            (entry.sandbox.clone(), target, record.digest.clone(), record.version.upgrade())
        };
        let (version, compiled) = match alive {
            Some(version) => (version, Compiled::Cached),
            None => {
                let bytes = self.artifacts.source(&digest).ok_or_else(|| {
                    DeployError::NoSuchVersion(format!("the bytes of {component} version {target} are not in the artifact store"))
                })?;
                let (runtime, artifacts) = (self.runtime.clone(), self.artifacts.clone());
                let (loaded, _, compiled) = tokio::task::spawn_blocking(move || compile_and_link(&runtime, &artifacts, &sandbox, &bytes))
                    .await
                    .map_err(|e| DeployError::Internal(e.to_string()))??;
                let entries = self.read();
                let record = entries
                    .get(component)
                    .and_then(|s| s.history.iter().find(|r| r.number == target))
                    .ok_or_else(|| DeployError::NoSuchVersion(format!("{component} has no version {target}")))?;
                let version = Arc::new(ComponentVersion {
                    component: component.to_owned(),
                    number: target,
                    digest: record.digest.clone(),
                    source: record.source.clone(),
                    loaded,
                    deployed_unix_ms: record.deployed_unix_ms,
                    compiled: label(compiled),
                    live: AtomicUsize::new(0),
                });
                (version, compiled)
            }
        };
        {
            let mut entries = self.write();
            let entry = entries.get_mut(component).ok_or_else(|| DeployError::UnknownComponent(component.to_owned()))?;
            if let Some(record) = entry.history.iter_mut().find(|r| r.number == target) {
                record.version = Arc::downgrade(&version);
            }
            entry.current = version;
        }
        tracing::info!(component, version = target, "rolled back");
        self.deployed(component, target, compiled, started)
    }
}

/// A freshly deployed version and its history record.
fn new_version(
    component: &str,
    number: u32,
    digest: String,
    source: String,
    loaded: LoadedComponent,
    compiled: Compiled,
) -> (Arc<ComponentVersion>, Record) {
    let version = Arc::new(ComponentVersion {
        component: component.to_owned(),
        number,
        digest: digest.clone(),
        source: source.clone(),
        loaded,
        deployed_unix_ms: unix_ms(),
        compiled: label(compiled),
        live: AtomicUsize::new(0),
    });
    let record = Record { number, digest, source, deployed_unix_ms: version.deployed_unix_ms, version: Arc::downgrade(&version) };
    (version, record)
}

/// The bytes of a configured component's code.
pub fn source_bytes(config: &ComponentConfig) -> Result<Vec<u8>, LoadError> {
    match &config.source {
        ComponentSource::File(path) => {
            std::fs::read(path).map_err(|source| LoadError::Read { name: config.name.clone(), path: path.clone(), source })
        }
        ComponentSource::Builtin(builtin) => Ok(builtin.wasm().to_vec()),
        ComponentSource::Oci(reference) => {
            Err(LoadError::Registry { name: config.name.clone(), message: format!("{reference} is pulled when the host starts") })
        }
    }
}

/// Runs `future` to completion from blocking code (loading runs in `spawn_blocking`, or
/// outside any runtime).
fn block_on<F: std::future::Future>(future: F) -> std::io::Result<F::Output> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => Ok(handle.block_on(future)),
        Err(_) => Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(future)),
    }
}

fn label(compiled: Compiled) -> &'static str {
    match compiled {
        Compiled::Fresh => "compiled",
        Compiled::Cached => "cached",
    }
}

/// Compiles (or loads) and checks one version.
fn compile_and_link(
    runtime: &Runtime,
    artifacts: &ArtifactStore,
    sandbox: &Arc<Sandbox>,
    bytes: &[u8],
) -> Result<(LoadedComponent, String, Compiled), LoadError> {
    let (component, digest, compiled) = artifacts
        .compile(runtime.engine(), bytes)
        .map_err(|e| LoadError::Compile { name: sandbox.name.clone(), message: format!("{e:#}") })?;
    artifacts.keep_source(&digest, bytes);
    let loaded = LoadedComponent::link(runtime, sandbox.clone(), &component)?;
    Ok((loaded, digest, compiled))
}
