//! Fleet deploys: with a shared PostgreSQL database, one `deployments` row per component
//! says which version the whole fleet runs, and every replica converges on it.
//!
//! A deploy through any replica's admin API is made on that replica first (so a bad
//! component is refused before the fleet hears of it), then [`Fleet::publish`] writes the
//! row (the component's SHA-256, and the pinned `oci://…@sha256:…` reference it came
//! from, or its bytes) and `NOTIFY`s. Every replica `LISTEN`s on its own connection, and
//! also reads the rows when it connects and every [`REREAD`], so a replica that missed a
//! notification, was down, or started later converges anyway. Converging fetches exactly
//! what the row pins, checks its SHA-256 against the row before deploying it, and swaps it
//! in as any deploy does: live calls keep the version they started on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use postgres::Client;
use postgres::fallible_iterator::FallibleIterator;

use super::artifacts::digest;
use super::versions::Versions;
use crate::observe::calls::postgres::Database;

/// How often the rows are read even without a notification.
pub const REREAD: Duration = Duration::from_secs(30);
/// How long to wait before connecting again after a failure.
const RECONNECT: Duration = Duration::from_secs(1);
/// The notification channel.
const CHANNEL: &str = "switchboard_deployments";

/// What a row pins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pinned {
    /// A pinned OCI reference, pulled and verified by digest.
    Reference(String),
    /// Bytes kept in the row (an upload or a file deployed through the admin API).
    Bytes,
}

/// One component's desired version, as the fleet's row says.
#[derive(Debug, Clone)]
pub struct Desired {
    /// Component name.
    pub component: String,
    /// SHA-256 of the component's bytes.
    pub digest: String,
    /// Where it came from, as the deploying replica recorded it.
    pub source: String,
    /// How to fetch it.
    pub pinned: Pinned,
    /// The replica that deployed it.
    pub deployed_by: String,
}

/// Why a fleet row could not be written.
#[derive(Debug, thiserror::Error)]
#[error("the fleet's deploy row for {component} was not written ({database}: {message}); the other replicas do not get this version")]
pub struct PublishError {
    component: String,
    database: String,
    message: String,
}

/// This replica's part in fleet deploys.
pub struct Fleet {
    database: Database,
    replica: String,
    versions: Arc<Versions>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet").field("replica", &self.replica).finish_non_exhaustive()
    }
}

fn create_table(client: &mut Client) -> Result<(), postgres::Error> {
    let mut transaction = client.transaction()?;
    transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&0x5357_4244_0002_i64])?;
    transaction.batch_execute(
        "CREATE TABLE IF NOT EXISTS deployments (
            component TEXT PRIMARY KEY,
            digest TEXT NOT NULL,
            source TEXT NOT NULL,
            reference TEXT,
            bytes BYTEA,
            deployed_ms BIGINT NOT NULL,
            deployed_by TEXT NOT NULL
        )",
    )?;
    transaction.commit()
}

fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Stops the listener thread when dropped.
pub struct Listening(Arc<AtomicBool>);

impl Drop for Listening {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl Fleet {
    /// This replica's fleet deploys through `database`.
    pub fn new(database: Database, replica: String, versions: Arc<Versions>) -> Self {
        Fleet { database, replica, versions }
    }

    /// Writes the fleet's row for `component`: its version is now the one `digest` names,
    /// fetched from `reference` when it came from a registry, else from `bytes`.
    pub fn publish(&self, component: &str, digest: &str, source: &str, reference: Option<&str>, bytes: &[u8]) -> Result<(), PublishError> {
        let failed = |e: postgres::Error| PublishError {
            component: component.to_owned(),
            database: self.database.describe(),
            message: e.to_string(),
        };
        let mut client = self.database.connect().map_err(failed)?;
        create_table(&mut client).map_err(failed)?;
        let stored: Option<&[u8]> = if reference.is_some() { None } else { Some(bytes) };
        let mut transaction = client.transaction().map_err(failed)?;
        transaction
            .execute(
                "INSERT INTO deployments (component, digest, source, reference, bytes, deployed_ms, deployed_by)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (component) DO UPDATE SET digest = EXCLUDED.digest, source = EXCLUDED.source,
                   reference = EXCLUDED.reference, bytes = EXCLUDED.bytes, deployed_ms = EXCLUDED.deployed_ms,
                   deployed_by = EXCLUDED.deployed_by",
                &[&component, &digest, &source, &reference, &stored, &unix_ms(), &self.replica],
            )
            .map_err(failed)?;
        transaction.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &component]).map_err(failed)?;
        transaction.commit().map_err(failed)?;
        tracing::info!(component, digest = &digest[..12.min(digest.len())], "published to the fleet");
        Ok(())
    }

    /// Every row.
    pub fn desired(client: &mut Client) -> Result<Vec<Desired>, postgres::Error> {
        let rows = client.query("SELECT component, digest, source, reference, deployed_by FROM deployments ORDER BY component", &[])?;
        rows.iter()
            .map(|row| {
                let reference: Option<String> = row.try_get(3)?;
                Ok(Desired {
                    component: row.try_get(0)?,
                    digest: row.try_get(1)?,
                    source: row.try_get(2)?,
                    pinned: reference.map_or(Pinned::Bytes, Pinned::Reference),
                    deployed_by: row.try_get(4)?,
                })
            })
            .collect()
    }

    /// Starts the thread that listens and converges; it stops when the guard is dropped.
    pub fn start(self: &Arc<Self>, runtime: tokio::runtime::Handle) -> std::io::Result<Listening> {
        let stop = Arc::new(AtomicBool::new(false));
        let (fleet, stopping) = (self.clone(), stop.clone());
        std::thread::Builder::new().name("switchboard-fleet".to_owned()).spawn(move || fleet.listen(&runtime, &stopping))?;
        Ok(Listening(stop))
    }

    fn listen(&self, runtime: &tokio::runtime::Handle, stop: &AtomicBool) {
        let mut warned = false;
        while !stop.load(Ordering::Relaxed) {
            match self.session(runtime, stop) {
                Ok(()) => return,
                Err(error) => {
                    if !warned {
                        tracing::warn!(
                            "fleet deploys: {}: {error}; this replica keeps its versions and tries again",
                            self.database.describe()
                        );
                        warned = true;
                    }
                    std::thread::sleep(RECONNECT);
                }
            }
        }
    }

    /// One connection's life: listen, converge, and converge again on each notification
    /// and every [`REREAD`].
    fn session(&self, runtime: &tokio::runtime::Handle, stop: &AtomicBool) -> Result<(), postgres::Error> {
        let mut client = self.database.connect()?;
        create_table(&mut client)?;
        client.batch_execute(&format!("LISTEN {CHANNEL}"))?;
        tracing::info!("fleet deploys: listening for the fleet's versions");
        loop {
            self.converge(&mut client, runtime)?;
            let mut notifications = client.notifications();
            let mut waiting = notifications.timeout_iter(Duration::from_millis(500));
            let started = std::time::Instant::now();
            loop {
                if stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
                // A lost connection is an error here, and the session starts again.
                match waiting.next()? {
                    Some(_) => break,
                    None if started.elapsed() >= REREAD => break,
                    None => {}
                }
            }
        }
    }

    /// Deploys every row's version that this replica does not run yet.
    fn converge(&self, client: &mut Client, runtime: &tokio::runtime::Handle) -> Result<(), postgres::Error> {
        for desired in Self::desired(client)? {
            let Some(current) = self.versions.current(&desired.component) else { continue };
            if current.digest == desired.digest {
                continue;
            }
            let bytes = match &desired.pinned {
                Pinned::Bytes => {
                    let row = client.query_one("SELECT bytes FROM deployments WHERE component = $1", &[&desired.component])?;
                    row.try_get::<_, Option<Vec<u8>>>(0)?.unwrap_or_default()
                }
                Pinned::Reference(reference) => match super::oci::OciReference::parse(reference) {
                    Ok(parsed) => match runtime.block_on(self.versions.fetch_reference(&parsed)) {
                        Ok((_, bytes)) => bytes,
                        Err(error) => {
                            tracing::warn!(component = desired.component, reference, "fleet deploy: cannot pull: {error}");
                            continue;
                        }
                    },
                    Err(error) => {
                        tracing::warn!(component = desired.component, reference, "fleet deploy: the row's reference is refused: {error}");
                        continue;
                    }
                },
            };
            if digest(&bytes) != desired.digest {
                tracing::error!(
                    component = desired.component,
                    expected = desired.digest,
                    actual = digest(&bytes),
                    "fleet deploy refused: what was fetched is not what the fleet's row pins"
                );
                continue;
            }
            let source = desired.source.clone();
            match runtime.block_on(self.versions.deploy(&desired.component, bytes, source)) {
                Ok(deployed) => tracing::info!(
                    component = desired.component,
                    version = deployed.version.number,
                    from = desired.deployed_by,
                    "converged on the fleet's version"
                ),
                Err(error) => tracing::warn!(component = desired.component, "fleet deploy refused here: {error}"),
            }
        }
        Ok(())
    }
}
