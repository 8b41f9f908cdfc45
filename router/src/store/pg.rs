//! The shared backend: a PostgreSQL database that several router instances (one router key,
//! one logical router) use at once, behind a load balancer.
//!
//! Writing transactions take transaction-scoped advisory locks (`pg_advisory_xact_lock`) on what
//! they check before they read it: a reservation its user (the allowance), a booking its
//! provider (the capacity), a report its user and provider (the session's "not reported yet",
//! the day's count, the provider's credit), a settlement its user. So two writers about the same
//! user or provider run in turn, on any instance, and every check still holds at its commit, as
//! on one SQLite file; writers about different ones run at once. Every writer also holds one
//! global key shared, which a bootstrap day and a pruning batch take exclusive: they read or
//! delete across users and providers. Locks are taken in one order (the global key, a user, a
//! provider), so no two writers wait on each other; they end with the transaction (commit,
//! rollback, or the connection's loss), so a killed instance never leaves one held. Reads run
//! outside transactions, concurrently.
//!
//! Connections are pooled per process; each keeps its prepared statements.

use std::{collections::HashMap, sync::Mutex};

use bytes::BytesMut;
use postgres::{
    Client, NoTls, Statement,
    types::{IsNull, ToSql, Type},
};

use super::sql::{Db, Lock, Row, Value, postgres_placeholders};
use crate::{Error, Result};

/// The advisory keys' first half (`pg_advisory_xact_lock(space, key)`): which kind of thing
/// the second half (a hash of its address, or 0) names. "MOR" and its successors in ASCII.
const GLOBAL_SPACE: i32 = 0x4d4f52;
const USER_SPACE: i32 = 0x4d4f53;
const PROVIDER_SPACE: i32 = 0x4d4f54;
const CHAIN_INDEX_SPACE: i32 = 0x4d4f56;
/// The advisory lock migrations run under, so instances starting together migrate once.
const MIGRATE_LOCK: i64 = 0x4d4f55;
/// Idle connections kept per process; more are closed when returned.
const MAX_IDLE: usize = 32;
/// Set on every connection: a statement waits at most 5 s for a lock (as long as SQLite's busy
/// timeout), then fails, so one stuck writer fails requests instead of hanging every instance;
/// and a session left idle inside a transaction for 30 s (a frozen instance) is ended by the
/// server, which releases its locks.
const SESSION_SETTINGS: &str =
    "SET lock_timeout = '5s'; SET idle_in_transaction_session_timeout = '30s'";

/// The PostgreSQL database and this process's connections to it.
pub(crate) struct Postgres {
    config: postgres::Config,
    /// The URL without its password, for messages.
    shown: String,
    idle: Mutex<Vec<Conn>>,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("url", &self.shown)
            .finish_non_exhaustive()
    }
}

/// One connection and the statements prepared on it.
struct Conn {
    client: Client,
    statements: HashMap<String, Statement>,
    /// A statement failed so that the connection's state is unknown: it is closed, not reused.
    broken: bool,
}

impl Postgres {
    /// Connects to `url` (`postgres://user:password@host:port/database` or key=value) and brings
    /// the schema to this build's version. A URL that does not parse, a server that does not
    /// answer, or a schema from a newer router is [`Error::OpenPostgres`] naming the URL (without
    /// its password).
    pub(crate) fn open(url: &str) -> Result<Self> {
        let shown = redacted(url);
        let fail = |reason: String| Error::OpenPostgres {
            url: shown.clone(),
            reason,
        };
        let mut config: postgres::Config = url.parse().map_err(|e| fail(format!("{e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(5));
        }
        config.application_name("morpheus-router");
        let store = Self {
            config,
            shown: shown.clone(),
            idle: Mutex::new(Vec::new()),
        };
        let mut conn = store.connect().map_err(|e| fail(e.to_string()))?;
        for (version, what) in migrate(&mut conn.client).map_err(fail)? {
            tracing::info!(target: "router::store", version, what, "database migrated");
        }
        store.give(conn);
        Ok(store)
    }

    fn connect(&self) -> Result<Conn> {
        let mut client = self.config.connect(NoTls)?;
        client.batch_execute(SESSION_SETTINGS)?;
        Ok(Conn {
            client,
            statements: HashMap::new(),
            broken: false,
        })
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Conn>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn give(&self, conn: Conn) {
        if conn.broken || conn.client.is_closed() {
            return;
        }
        let mut idle = self.idle();
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }

    /// Runs `f` on a pooled connection (a new one when none is idle).
    fn with<T>(&self, f: impl FnOnce(&mut Conn) -> Result<T>) -> Result<T> {
        let pooled = self.idle().pop();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => self.connect()?,
        };
        let out = f(&mut conn);
        self.give(conn);
        out
    }

    /// Runs `f` in one transaction holding the global key (shared, or `exclusive`), committed
    /// when it returns `Ok`.
    pub(crate) fn write<T>(
        &self,
        exclusive: bool,
        f: impl FnOnce(&mut dyn Db) -> Result<T>,
    ) -> Result<T> {
        let global = if exclusive {
            "pg_advisory_xact_lock"
        } else {
            "pg_advisory_xact_lock_shared"
        };
        self.with(|conn| {
            conn.client
                .batch_execute(&format!("BEGIN; SELECT {global}({GLOBAL_SPACE}, 0)"))
                .inspect_err(|_| conn.broken = true)?;
            match f(&mut On(conn)) {
                Ok(out) => {
                    conn.client
                        .batch_execute("COMMIT")
                        .inspect_err(|_| conn.broken = true)?;
                    Ok(out)
                }
                Err(e) => {
                    if conn.client.batch_execute("ROLLBACK").is_err() {
                        conn.broken = true;
                    }
                    Err(e)
                }
            }
        })
    }

    /// Runs `f` on a connection, each statement on its own.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&mut dyn Db) -> Result<T>) -> Result<T> {
        self.with(|conn| f(&mut On(conn)))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Each blocking client owns a small runtime, which must not be dropped on an async
        // thread (where the last reference to the store often goes): close them on their own.
        let idle = std::mem::take(&mut *self.idle());
        if !idle.is_empty() {
            std::thread::spawn(move || drop(idle));
        }
    }
}

/// [`Db`] on a pooled connection.
struct On<'c>(&'c mut Conn);

impl On<'_> {
    fn statement(&mut self, sql: &str) -> Result<Statement> {
        if let Some(s) = self.0.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self
            .0
            .client
            .prepare(&postgres_placeholders(sql))
            .inspect_err(|e| self.0.broken = e.is_closed())?;
        self.0.statements.insert(sql.to_owned(), s.clone());
        Ok(s)
    }
}

fn bind(args: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    args.iter().map(|a| a as &(dyn ToSql + Sync)).collect()
}

impl Db for On<'_> {
    fn writers_run_alone(&self) -> bool {
        false
    }

    fn lock(&mut self, lock: Lock<'_>) -> Result<()> {
        let (space, key) = match lock {
            Lock::User(user) => (USER_SPACE, user),
            Lock::Provider(provider) => (PROVIDER_SPACE, provider),
            Lock::ChainIndex => (CHAIN_INDEX_SPACE, "chain_index"),
        };
        // `hashtext` maps the address to the key's 32 bits: two addresses sharing one only
        // wait on each other.
        self.query(
            "SELECT 1 FROM (SELECT pg_advisory_xact_lock(?1, hashtext(?2))) AS taken",
            &[Value::Int(space.into()), Value::Text(key.to_owned())],
        )
        .map(drop)
    }

    fn exec(&mut self, sql: &str, args: &[Value]) -> Result<u64> {
        let s = self.statement(sql)?;
        let conn = &mut *self.0;
        Ok(conn
            .client
            .execute(&s, &bind(args))
            .inspect_err(|e| conn.broken = e.is_closed())?)
    }

    fn query(&mut self, sql: &str, args: &[Value]) -> Result<Vec<Row>> {
        let s = self.statement(sql)?;
        let conn = &mut *self.0;
        let rows = conn
            .client
            .query(&s, &bind(args))
            .inspect_err(|e| conn.broken = e.is_closed())?;
        rows.iter().map(read_row).collect()
    }
}

fn read_row(row: &postgres::Row) -> Result<Row> {
    let mut values = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let ty = column.type_();
        let v = match *ty {
            Type::INT8 => row.try_get::<_, Option<i64>>(i)?.map(Value::Int),
            Type::INT4 => row
                .try_get::<_, Option<i32>>(i)?
                .map(|v| Value::Int(v.into())),
            Type::INT2 => row
                .try_get::<_, Option<i16>>(i)?
                .map(|v| Value::Int(v.into())),
            Type::BOOL => row
                .try_get::<_, Option<bool>>(i)?
                .map(|v| Value::Int(v.into())),
            Type::FLOAT8 => row.try_get::<_, Option<f64>>(i)?.map(Value::Real),
            Type::FLOAT4 => row
                .try_get::<_, Option<f32>>(i)?
                .map(|v| Value::Real(v.into())),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
                row.try_get::<_, Option<String>>(i)?.map(Value::Text)
            }
            _ => {
                return Err(Error::CorruptDatabase {
                    column: "a query's column",
                    value: column.name().to_owned(),
                    reason: format!("a column of type {ty}, which the store never reads"),
                });
            }
        };
        values.push(v.unwrap_or(Value::Null));
    }
    Ok(Row(values))
}

type BoxError = Box<dyn std::error::Error + Sync + Send>;

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> std::result::Result<IsNull, BoxError> {
        match (self, ty) {
            (Self::Null, _) => Ok(IsNull::Yes),
            (Self::Int(v), &Type::INT8) => v.to_sql(ty, out),
            (Self::Int(v), &Type::INT4) => i32::try_from(*v)?.to_sql(ty, out),
            (Self::Int(v), &Type::INT2) => i16::try_from(*v)?.to_sql(ty, out),
            (Self::Int(v), &Type::BOOL) => (*v != 0).to_sql(ty, out),
            (Self::Int(v), &Type::FLOAT8) => (*v as f64).to_sql(ty, out),
            (Self::Real(v), &Type::FLOAT8) => v.to_sql(ty, out),
            (Self::Real(v), &Type::FLOAT4) => (*v as f32).to_sql(ty, out),
            (Self::Text(s), _) => s.as_str().to_sql(ty, out),
            (v, ty) => Err(format!("{v:?} bound to a parameter of type {ty}").into()),
        }
    }

    fn accepts(_: &Type) -> bool {
        // Checked per value in `to_sql`, which names the mismatch.
        true
    }

    fn to_sql_checked(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, BoxError> {
        self.to_sql(ty, out)
    }
}

/// `url` with its password replaced by `***`, in either of libpq's spellings.
pub(crate) fn redacted(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if let Some((userinfo, host)) = authority.rsplit_once('@')
            && let Some((user, _)) = userinfo.split_once(':')
        {
            return format!("{scheme}://{user}:***@{host}{tail}");
        }
        return url.to_owned();
    }
    url.split_whitespace()
        .map(|kv| match kv.split_once('=') {
            Some(("password", _)) => "password=***".to_owned(),
            _ => kv.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

// --- schema ---------------------------------------------------------------------------------

/// Every migration, version `i + 1` at index `i`, as for the SQLite file (`migrations.rs`);
/// PostgreSQL databases start at the SQLite schema's fourth version, so their first is it whole.
/// Never edit one that has shipped: add the next.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "the router's tables (nonces, sessions, users' days, reports, speed samples, credits, \
     reputation, bid history, bootstrap days)",
        r#"
CREATE TABLE nonces (
    "user"   TEXT NOT NULL,
    nonce    TEXT NOT NULL,
    deadline BIGINT, -- the request's: the nonce is kept until it is past (prune.rs)
    PRIMARY KEY ("user", nonce)
);
CREATE INDEX nonces_deadline ON nonces (deadline);
CREATE TABLE sessions (
    session_id      TEXT PRIMARY KEY,
    "user"          TEXT NOT NULL,
    nonce           TEXT NOT NULL,
    model_id        TEXT NOT NULL,
    day             BIGINT NOT NULL,
    token_max       BIGINT NOT NULL,
    provider        TEXT,
    price_per_token TEXT, -- what one token earns: credit_per_token(bid, reference price)
    expires_at      BIGINT,
    reported        BIGINT NOT NULL DEFAULT 0,
    tokens          BIGINT, -- the user's reported count, capped at token_max
    outcome         TEXT,
    amount          TEXT,
    endpoint        TEXT,
    credited        BIGINT, -- tokens credited (0 unless)
    receipt         BIGINT, -- the provider's signed count
    counted         BIGINT, -- against the user's day
    settled         BIGINT NOT NULL DEFAULT 0,
    attempts        BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX sessions_user_day ON sessions ("user", day);
CREATE INDEX sessions_provider ON sessions (provider, reported, expires_at);
CREATE INDEX sessions_due ON sessions (settled, expires_at);
CREATE INDEX sessions_day ON sessions (day);
CREATE TABLE user_days (
    "user"  TEXT NOT NULL,
    day     BIGINT NOT NULL,
    counted BIGINT NOT NULL, -- SUM(sessions.counted) of the user's sessions of the day
    PRIMARY KEY ("user", day)
);
CREATE TABLE reports (
    id           BIGSERIAL PRIMARY KEY,
    model_id     TEXT NOT NULL,
    provider     TEXT NOT NULL,
    ms_per_token DOUBLE PRECISION, -- the speed judged; NULL: no tokens
    failed       BIGINT NOT NULL,  -- earned nothing (failed or slow)
    "user"       TEXT,
    ttft_ms      DOUBLE PRECISION
);
CREATE INDEX reports_model ON reports (model_id, id);
CREATE INDEX reports_provider ON reports (provider, id);
CREATE INDEX reports_provider_model ON reports (provider, model_id, id);
CREATE TABLE speed_samples (
    model_id     TEXT NOT NULL,
    "user"       TEXT NOT NULL,
    report_id    BIGINT NOT NULL,
    ms_per_token DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (model_id, "user")
);
CREATE INDEX speed_samples_model ON speed_samples (model_id, report_id);
CREATE TABLE credits (
    provider TEXT PRIMARY KEY,
    amount   TEXT NOT NULL,
    tokens   BIGINT NOT NULL,
    sessions BIGINT NOT NULL,
    failed   BIGINT NOT NULL
);
CREATE TABLE reputation (
    provider         TEXT NOT NULL,
    model_id         TEXT NOT NULL,
    completed        BIGINT NOT NULL,
    failed           BIGINT NOT NULL,
    earned           TEXT NOT NULL,
    cancelled_pruned BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (provider, model_id)
);
CREATE TABLE bid_history (
    id              BIGSERIAL PRIMARY KEY,
    provider        TEXT NOT NULL,
    model_id        TEXT NOT NULL,
    price_per_token TEXT NOT NULL,
    capacity        TEXT NOT NULL,
    seen_at         BIGINT NOT NULL
);
CREATE INDEX bid_history_pair ON bid_history (provider, model_id, id);
CREATE TABLE bootstrap_days (
    day         BIGINT PRIMARY KEY,
    share       TEXT NOT NULL,
    reserve     TEXT NOT NULL,
    days_left   BIGINT NOT NULL,
    share_bps   BIGINT NOT NULL,
    outstanding TEXT NOT NULL,
    computed_at BIGINT NOT NULL
);
CREATE TABLE bootstrap_allotments (
    day      BIGINT NOT NULL,
    provider TEXT NOT NULL,
    credited TEXT NOT NULL,
    amount   TEXT NOT NULL,
    PRIMARY KEY (day, provider)
);
CREATE INDEX bootstrap_allotments_provider ON bootstrap_allotments (provider);
"#,
    ),
    (
        "the chain index (the registry's facts as of an indexed block)",
        super::chain_index::TABLES,
    ),
    (
        "indexes for the background rounds (sessions due pruning, old days' running totals)",
        super::migrations::ROUND_INDEXES,
    ),
    (
        "what each provider was credited each day, as a running total (provider_days)",
        super::bootstrap::PROVIDER_DAYS,
    ),
    (
        "provider_days filled from the sessions stored before it (exact decimal sums)",
        r#"
INSERT INTO provider_days (day, provider, credited)
    SELECT day, provider, SUM(amount::numeric)::text FROM sessions
    WHERE reported = 1 AND provider IS NOT NULL AND amount IS NOT NULL AND amount <> '0'
    GROUP BY day, provider;
"#,
    ),
    (
        "the indexes a request's windows are read through carry the columns read; \
         sessions_user_day and reports_model dropped",
        super::migrations::PAIR_INDEXES,
    ),
];

/// The version a database has after every migration of this build.
pub(crate) const LATEST: i64 = MIGRATIONS.len() as i64;

/// Brings the database to [`LATEST`], each migration in its own transaction with its version,
/// under [`MIGRATE_LOCK`]. A database at a version above it is refused, naming both.
fn migrate(client: &mut Client) -> std::result::Result<Vec<(i64, &'static str)>, String> {
    let mut ran = Vec::new();
    loop {
        let mut tx = client.transaction().map_err(|e| e.to_string())?;
        tx.batch_execute(&format!(
            "SELECT pg_advisory_xact_lock({MIGRATE_LOCK});
             CREATE TABLE IF NOT EXISTS router_schema (version BIGINT NOT NULL);"
        ))
        .map_err(|e| e.to_string())?;
        let version: i64 = tx
            .query_opt("SELECT version FROM router_schema", &[])
            .map_err(|e| e.to_string())?
            .map_or(0, |r| r.get(0));
        if version > LATEST {
            return Err(format!(
                "the database is at schema version {version}, newer than this router's \
                 {LATEST}: run the router that wrote it"
            ));
        }
        let Some((what, sql)) = usize::try_from(version)
            .ok()
            .and_then(|v| MIGRATIONS.get(v))
        else {
            return Ok(ran);
        };
        tx.batch_execute(sql).map_err(|e| e.to_string())?;
        tx.batch_execute(&format!(
            "DELETE FROM router_schema; INSERT INTO router_schema VALUES ({})",
            version + 1
        ))
        .map_err(|e| e.to_string())?;
        tx.commit().map_err(|e| e.to_string())?;
        ran.push((version + 1, *what));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_never_shown() {
        assert_eq!(
            redacted("postgres://router:s3cret@db.internal:5432/morpheus"),
            "postgres://router:***@db.internal:5432/morpheus"
        );
        assert_eq!(
            redacted("postgresql://router@db/morpheus"),
            "postgresql://router@db/morpheus"
        );
        assert_eq!(
            redacted("host=db user=router password=s3cret dbname=morpheus"),
            "host=db user=router password=*** dbname=morpheus"
        );
    }
}
