//! The shared PostgreSQL store: the embedded store's schema with the replica that took
//! each call in every key (call ids are unique per host, not per fleet), its writes and
//! queries, and the connection handling that keeps a database outage from touching calls.
//!
//! Every connection has a connect timeout, TCP keepalives and a user timeout, and a
//! statement timeout, so a database that stops answering is an error within seconds, not
//! a writer or a query stuck for good. Connections are made lazily and again after a
//! failure: the host starts and serves while the database is down.

use std::sync::Mutex;
use std::time::Duration;

use postgres::error::SqlState;
use postgres::{Client, GenericClient, Row};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::sink::{Sink, SinkError, Write};
use super::sqlite::attributes_json;
use super::{CallFilter, CallSummary, Reference, Retention, StoreError, StoredMarker, parse_call_id};

/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one statement may take.
const STATEMENT_TIMEOUT: &str = "10s";
/// The advisory lock replicas take to create the schema one at a time.
const SCHEMA_LOCK: i64 = 0x5357_4244_0001;

/// Where the database is and how to reach it. `Debug` does not show the password.
#[derive(Clone)]
pub struct Database {
    config: postgres::Config,
    tls: MakeRustlsConnect,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database").field("where", &self.describe()).finish_non_exhaustive()
    }
}

impl Database {
    /// Parses a connection string (`postgres://user:pass@host/db?sslmode=require`, or
    /// `host=/run/postgresql dbname=calls`), with TLS verified against the public roots
    /// and `extra_ca_files`.
    pub fn new(url: &str, tls: std::sync::Arc<rustls::ClientConfig>) -> Result<Self, String> {
        let mut config: postgres::Config = url.parse().map_err(|e| format!("not a PostgreSQL connection string: {e}"))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.keepalives_idle(Duration::from_secs(10)).tcp_user_timeout(Duration::from_secs(10)).application_name("switchboard");
        Ok(Database { config, tls: MakeRustlsConnect::new((*tls).clone()) })
    }

    /// Host and database name, for messages (never the password).
    pub fn describe(&self) -> String {
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .map(|host| match host {
                postgres::config::Host::Tcp(name) => name.clone(),
                postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        format!("postgres {} / {}", hosts.join(","), self.config.get_dbname().unwrap_or("(default database)"))
    }

    /// A new connection, with the statement timeout set.
    pub fn connect(&self) -> Result<Client, postgres::Error> {
        let mut client = self.config.connect(self.tls.clone())?;
        client.batch_execute(&format!("SET statement_timeout = '{STATEMENT_TIMEOUT}'; SET client_min_messages = warning"))?;
        Ok(client)
    }
}

/// Whether an error means "the database is not there now" rather than "it refused this".
pub fn is_unavailable(error: &postgres::Error) -> bool {
    match error.code() {
        None => true,
        Some(code) => {
            let class = &code.code()[..2];
            // 08: connection exception; 57: operator intervention (shutdown, cancel by
            // statement timeout); 53: insufficient resources; 58: system error.
            matches!(class, "08" | "57" | "53" | "58") || *code == SqlState::T_R_SERIALIZATION_FAILURE
        }
    }
}

/// Creates the tables (once per database, whichever replica comes first) and marks the
/// calls this replica left live when it last stopped as interrupted.
fn create_or_migrate(client: &mut Client, replica: &str) -> Result<(), postgres::Error> {
    let mut transaction = client.transaction()?;
    transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
    transaction.batch_execute(
        "CREATE TABLE IF NOT EXISTS calls (
            replica TEXT NOT NULL,
            call_id BIGINT NOT NULL,
            started_ms BIGINT NOT NULL,
            ended_ms BIGINT,
            path TEXT,
            component TEXT,
            version TEXT,
            close_code BIGINT,
            outcome TEXT NOT NULL DEFAULT 'live',
            failing_leg TEXT,
            cause TEXT,
            PRIMARY KEY (replica, call_id)
        );
        CREATE INDEX IF NOT EXISTS calls_started ON calls (started_ms);
        CREATE INDEX IF NOT EXISTS calls_id ON calls (call_id);
        CREATE TABLE IF NOT EXISTS call_refs (
            replica TEXT NOT NULL,
            call_id BIGINT NOT NULL,
            seq BIGINT NOT NULL,
            kind TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (replica, call_id, seq)
        );
        CREATE INDEX IF NOT EXISTS call_refs_value ON call_refs (value);
        CREATE TABLE IF NOT EXISTS markers (
            replica TEXT NOT NULL,
            call_id BIGINT NOT NULL,
            seq BIGINT NOT NULL,
            unix_ms BIGINT NOT NULL,
            offset_ms DOUBLE PRECISION NOT NULL,
            source TEXT NOT NULL,
            leg TEXT NOT NULL,
            name TEXT NOT NULL,
            attributes TEXT NOT NULL,
            PRIMARY KEY (replica, call_id, seq)
        );",
    )?;
    transaction.execute("UPDATE calls SET outcome = 'interrupted' WHERE outcome = 'live' AND replica = $1", &[&replica])?;
    transaction.commit()
}

/// The writer side: one connection, made again after a failure.
pub(super) struct PostgresSink {
    database: Database,
    replica: String,
    client: Option<Client>,
    migrated: bool,
}

impl PostgresSink {
    pub(super) fn new(database: Database, replica: String) -> Self {
        PostgresSink { database, replica, client: None, migrated: false }
    }

    /// The connection, made (and the schema checked, the first time) if needed.
    fn client(&mut self) -> Result<&mut Client, SinkError> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
        }
        if self.client.is_none() {
            let unavailable = |e: postgres::Error| SinkError::Unavailable(format!("{}: {e}", self.database.describe()));
            let mut client = self.database.connect().map_err(unavailable)?;
            if !self.migrated {
                create_or_migrate(&mut client, &self.replica).map_err(unavailable)?;
                self.migrated = true;
            }
            self.client = Some(client);
        }
        self.client.as_mut().ok_or_else(|| SinkError::Unavailable("no connection".to_owned()))
    }

    fn failed(&mut self, error: postgres::Error) -> SinkError {
        let described = format!("{}: {error}", self.database.describe());
        if is_unavailable(&error) {
            self.client = None;
            SinkError::Unavailable(described)
        } else {
            SinkError::Refused(described)
        }
    }
}

impl Sink for PostgresSink {
    fn commit(&mut self, writes: &[Write]) -> Result<(), SinkError> {
        let replica = self.replica.clone();
        let client = self.client()?;
        let result = (|| {
            let mut transaction = client.transaction()?;
            for write in writes {
                apply(&mut transaction, &replica, write)?;
            }
            transaction.commit()
        })();
        result.map_err(|error| self.failed(error))
    }

    fn apply_retention(&mut self, retention: Retention, now_ms: i64) -> Result<(), SinkError> {
        let oldest = now_ms - retention.max_age.as_millis() as i64;
        let keep = retention.max_calls as i64;
        let client = self.client()?;
        let result = (|| {
            let mut transaction = client.transaction()?;
            transaction.execute(
                "DELETE FROM calls WHERE started_ms < $1 OR (replica, call_id) IN
                   (SELECT replica, call_id FROM calls ORDER BY started_ms DESC OFFSET $2)",
                &[&oldest, &keep],
            )?;
            transaction.batch_execute(
                "DELETE FROM markers m WHERE NOT EXISTS (SELECT 1 FROM calls c WHERE c.replica = m.replica AND c.call_id = m.call_id);
                 DELETE FROM call_refs r WHERE NOT EXISTS (SELECT 1 FROM calls c WHERE c.replica = r.replica AND c.call_id = r.call_id);",
            )?;
            transaction.commit()
        })();
        result.map_err(|error| self.failed(error))
    }
}

fn apply(client: &mut impl GenericClient, replica: &str, write: &Write) -> Result<u64, postgres::Error> {
    match write {
        Write::Marker { seq: Some(seq), marker } => client.execute(
            "INSERT INTO markers (replica, call_id, seq, unix_ms, offset_ms, source, leg, name, attributes)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (replica, call_id, seq) DO NOTHING",
            &[
                &replica,
                &(marker.call.0 as i64),
                seq,
                &(marker.unix_ms as i64),
                &(marker.offset.as_secs_f64() * 1e3),
                &marker.source.to_string(),
                &marker.leg,
                &marker.name,
                &attributes_json(marker),
            ],
        ),
        Write::Marker { seq: None, marker } => client.execute(
            "INSERT INTO markers (replica, call_id, seq, unix_ms, offset_ms, source, leg, name, attributes)
             SELECT $1, $2, COALESCE(MAX(seq), 0) + 1, $3, $4, $5, $6, $7, $8 FROM markers WHERE replica = $1 AND call_id = $2",
            &[
                &replica,
                &(marker.call.0 as i64),
                &(marker.unix_ms as i64),
                &(marker.offset.as_secs_f64() * 1e3),
                &marker.source.to_string(),
                &marker.leg,
                &marker.name,
                &attributes_json(marker),
            ],
        ),
        Write::Call { id, started_ms, path, component } => client.execute(
            "INSERT INTO calls (replica, call_id, started_ms, path, component, outcome) VALUES ($1, $2, $3, $4, $5, 'live')
             ON CONFLICT (replica, call_id) DO NOTHING",
            &[&replica, &(*id as i64), started_ms, path, component],
        ),
        Write::Reference { id, seq, kind, value } => client.execute(
            "INSERT INTO call_refs (replica, call_id, seq, kind, value) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (replica, call_id, seq) DO UPDATE SET kind = EXCLUDED.kind, value = EXCLUDED.value",
            &[&replica, &(*id as i64), seq, kind, value],
        ),
        Write::Summary { id, outcome, failing_leg, cause, version, close_code, ended_ms } => client.execute(
            "UPDATE calls SET outcome = $3, failing_leg = $4, cause = $5, version = COALESCE($6, version),
             close_code = COALESCE($7, close_code), ended_ms = COALESCE($8, ended_ms) WHERE replica = $1 AND call_id = $2",
            &[&replica, &(*id as i64), outcome, failing_leg, cause, version, close_code, ended_ms],
        ),
    }
}

/// The query side: one connection shared by queries, made again after a failure.
pub(super) struct PostgresReader {
    database: Database,
    client: Mutex<Option<Client>>,
}

impl Drop for PostgresReader {
    fn drop(&mut self) {
        // Closing a connection blocks on the client's own runtime, which must not happen on
        // an async thread (the last clone of a store may be dropped on one): close it on a
        // thread of its own.
        let slot = self.client.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = slot.take() {
            let _ = std::thread::Builder::new().name("switchboard-store-close".to_owned()).spawn(move || drop(client));
        }
    }
}

const SUMMARY: &str = "SELECT c.call_id, c.started_ms, c.ended_ms, c.outcome, c.failing_leg, c.cause, c.component, c.version,
        c.close_code, c.replica,
        COALESCE((SELECT json_agg(json_build_object('kind', r.kind, 'value', r.value) ORDER BY r.seq)
                  FROM call_refs r WHERE r.replica = c.replica AND r.call_id = c.call_id)::text, '[]')
    FROM calls c";

fn summary(row: &Row, now_ms: i64) -> Result<CallSummary, postgres::Error> {
    let started: i64 = row.try_get(1)?;
    let ended: Option<i64> = row.try_get(2)?;
    let outcome: String = row.try_get(3)?;
    let duration = match (ended, outcome.as_str()) {
        (Some(ended), _) => Some(ended - started),
        (None, "live") => Some(now_ms - started),
        (None, _) => None,
    };
    let references: String = row.try_get(10)?;
    Ok(CallSummary {
        call_id: format!("call-{}", row.try_get::<_, i64>(0)?),
        references: serde_json::from_str::<Vec<Reference>>(&references).unwrap_or_default(),
        started_ms: started,
        duration_ms: duration,
        outcome,
        failing_leg: row.try_get(4)?,
        cause: row.try_get(5)?,
        component: row.try_get(6)?,
        version: row.try_get(7)?,
        close_code: row.try_get(8)?,
        replica: row.try_get(9)?,
    })
}

impl PostgresReader {
    pub(super) fn new(database: Database) -> Self {
        PostgresReader { database, client: Mutex::new(None) }
    }

    fn query<T>(&self, query: impl FnOnce(&mut Client) -> Result<T, postgres::Error>) -> Result<T, StoreError> {
        let mut slot = self.client.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref().is_some_and(Client::is_closed) {
            *slot = None;
        }
        let failed = |error: postgres::Error, slot: &mut Option<Client>| {
            let message = format!("{}: {error}", self.database.describe());
            if is_unavailable(&error) {
                *slot = None;
                StoreError::Unavailable(message)
            } else {
                StoreError::Postgres(message)
            }
        };
        if slot.is_none() {
            *slot = Some(self.database.connect().map_err(|e| failed(e, &mut None))?);
        }
        let Some(client) = slot.as_mut() else { return Err(StoreError::Unavailable("no connection".to_owned())) };
        query(client).map_err(|error| failed(error, &mut slot))
    }

    /// Host and database, for messages.
    pub(super) fn describe(&self) -> String {
        self.database.describe()
    }

    pub(super) fn list(&self, filter: &CallFilter, now_ms: i64) -> Result<Vec<CallSummary>, StoreError> {
        let limit = i64::from(filter.limit.unwrap_or(100).min(10_000));
        self.query(|client| {
            let rows = client.query(
                &format!(
                    "{SUMMARY} WHERE ($1::text IS NULL OR c.outcome = $1) AND ($2::text IS NULL OR c.failing_leg = $2)
                       AND ($3::bigint IS NULL OR c.started_ms >= $3) AND ($4::bigint IS NULL OR c.started_ms < $4)
                     ORDER BY c.started_ms DESC, c.call_id DESC LIMIT $5"
                ),
                &[&filter.outcome, &filter.leg, &filter.since_ms, &filter.until_ms, &limit],
            )?;
            rows.iter().map(|row| summary(row, now_ms)).collect()
        })
    }

    pub(super) fn find(&self, key: &str, now_ms: i64) -> Result<Option<CallSummary>, StoreError> {
        let id = parse_call_id(key).unwrap_or(-1);
        self.query(|client| {
            let rows = client.query(
                &format!(
                    "{SUMMARY} WHERE c.call_id = $1 OR (c.replica, c.call_id) IN (SELECT replica, call_id FROM call_refs WHERE value = $2)
                     ORDER BY c.started_ms DESC LIMIT 1"
                ),
                &[&id, &key],
            )?;
            rows.first().map(|row| summary(row, now_ms)).transpose()
        })
    }

    pub(super) fn timeline(&self, call: &CallSummary) -> Result<Vec<StoredMarker>, StoreError> {
        let id = parse_call_id(&call.call_id).unwrap_or(-1);
        let replica = call.replica.clone().unwrap_or_default();
        self.query(|client| {
            let rows = client.query(
                "SELECT offset_ms, unix_ms, source, leg, name, attributes FROM markers WHERE replica = $1 AND call_id = $2 ORDER BY seq",
                &[&replica, &id],
            )?;
            rows.iter()
                .map(|row| {
                    let attributes: String = row.try_get(5)?;
                    Ok(StoredMarker {
                        offset_ms: row.try_get(0)?,
                        unix_ms: row.try_get(1)?,
                        source: row.try_get(2)?,
                        leg: row.try_get(3)?,
                        name: row.try_get(4)?,
                        attributes: serde_json::from_str(&attributes).unwrap_or_default(),
                    })
                })
                .collect()
        })
    }
}
