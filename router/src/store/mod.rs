//! The router's state in one SQLite file: used nonces, sessions (what each user reserved and
//! used per UTC day), every report (who sent it on which provider, its speed, whether it earned),
//! each user's newest speed sample per model, and every provider's cumulative credit.
//!
//! The rules a report is judged by are pure functions elsewhere (`speed.rs`, `record.rs`,
//! `usage.rs`): the store only gathers their inputs and writes what they decided. Receipts (the
//! provider's signed token counts) and the settling of expired sessions are in `receipts.rs`.
//!
//! Nothing here can reconstruct a prompt or an answer (invariant 6): the router only ever sees
//! ids, addresses, token counts and timings.

use std::{path::Path, sync::Arc};

use alloy::primitives::{Address, B256, U256};
use morpheus_sdk::{
    messages::UsageReport,
    router::{ModelReputation, Outcome, ProviderStats, UsageReceipt},
};

use crate::{
    Error, Result,
    error::Shortfall,
    record::{self, RecordEntry, RecordRule},
    speed::{self, SpeedRule, SpeedSample},
    usage::{self, Served},
};

pub(crate) mod bootstrap;
mod chain_index;
mod migrations;
mod page_cache;
mod pg;
mod prune;
mod receipts;
mod reconcile;
mod reputation;
mod sql;
mod sqlite;
mod sqlite_process;
mod thread;

pub(crate) use chain_index::{FactRow, Saving};
pub(crate) use pg::redacted;
pub(crate) use prune::Pruned;
pub(crate) use receipts::SessionTerms;
use sql::{Db, Lock, args};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS nonces (
    user  TEXT NOT NULL,
    nonce TEXT NOT NULL,
    PRIMARY KEY (user, nonce)
);
CREATE TABLE IF NOT EXISTS sessions (
    session_id      TEXT PRIMARY KEY,
    user            TEXT NOT NULL,
    nonce           TEXT NOT NULL,
    model_id        TEXT NOT NULL,
    day             INTEGER NOT NULL,
    token_max       INTEGER NOT NULL,
    provider        TEXT,
    price_per_token TEXT, -- what one token earns: credit_per_token(bid, reference price)
    expires_at      INTEGER,
    reported        INTEGER NOT NULL DEFAULT 0,
    tokens          INTEGER, -- the user's reported count, capped at token_max
    outcome         TEXT,
    amount          TEXT
);
CREATE INDEX IF NOT EXISTS sessions_user_day ON sessions (user, day);
CREATE INDEX IF NOT EXISTS sessions_provider ON sessions (provider, reported, expires_at);
CREATE TABLE IF NOT EXISTS reports (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    model_id     TEXT NOT NULL,
    provider     TEXT NOT NULL,
    ms_per_token REAL, -- the speed judged, between the floor and the ceiling; NULL: no tokens
    failed       INTEGER NOT NULL, -- earned nothing (failed or slow)
    user         TEXT -- who signed it; NULL in rows written before the column was added
);
CREATE INDEX IF NOT EXISTS reports_model ON reports (model_id, id);
CREATE INDEX IF NOT EXISTS reports_provider ON reports (provider, id);
-- The newest credited, believed speed of each user per model: what the speed reference reads.
CREATE TABLE IF NOT EXISTS speed_samples (
    model_id     TEXT NOT NULL,
    user         TEXT NOT NULL,
    report_id    INTEGER NOT NULL,
    ms_per_token REAL NOT NULL,
    PRIMARY KEY (model_id, user)
);
CREATE INDEX IF NOT EXISTS speed_samples_model ON speed_samples (model_id, report_id);
CREATE TABLE IF NOT EXISTS credits (
    provider TEXT PRIMARY KEY,
    amount   TEXT NOT NULL,
    tokens   INTEGER NOT NULL,
    sessions INTEGER NOT NULL,
    failed   INTEGER NOT NULL
);
";

/// The longest time to first token a report is taken at (one day, in ms): a larger claim is
/// counted as this, so one report cannot throw a median's arithmetic off.
const MAX_TTFT_MS: u64 = 86_400_000;

/// A request being served: inserted (reserving `token_max`) before the provider is picked.
#[derive(Debug, Clone)]
pub(crate) struct NewSession {
    pub(crate) session_id: B256,
    pub(crate) user: Address,
    pub(crate) nonce: U256,
    pub(crate) model_id: B256,
    pub(crate) day: u64,
    pub(crate) token_max: u64,
    /// The request's deadline (unix seconds): its nonce is kept at least until then.
    pub(crate) deadline: u64,
}

/// A provider's cumulative counters at this router: what its voucher carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Credits {
    pub(crate) amount: U256,
    pub(crate) tokens: u64,
    pub(crate) sessions: u64,
    pub(crate) failed: u64,
}

/// Whether [`Store::book`] assigned the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Booking {
    /// The session is the provider's.
    Booked,
    /// The provider already has `open` sessions, its bid's capacity or more.
    Full {
        /// Its sessions neither reported nor expired.
        open: u64,
    },
}

/// What the store knows of a provider when picking one for a model: its record over all
/// models, its reputation for the model, and its open sessions.
#[derive(Debug, Clone)]
pub(crate) struct Standing {
    pub(crate) record: ProviderStats,
    pub(crate) reputation: ModelReputation,
    pub(crate) open_sessions: u64,
}

/// The router's store, on one of two backends: the embedded SQLite file (the default) or a
/// PostgreSQL database shared by several instances. Its calls block (on the disk, on the
/// network, on another writer's lock), so async code reaches it only through [`blocking`].
#[derive(Debug)]
pub(crate) struct Store {
    backend: Backend,
    /// Where [`blocking`] runs SQLite's calls (`thread.rs`); PostgreSQL's, whose connections
    /// run side by side, go to tokio's blocking pool.
    thread: Option<thread::StoreThread>,
}

#[derive(Debug)]
enum Backend {
    Sqlite(Arc<sqlite::Sqlite>),
    // Boxed: its connection settings are larger than the SQLite side's mutex.
    Postgres(Box<pg::Postgres>),
}

/// Runs `f` on the store off the runtime's worker threads (SQLite's own thread, or tokio's
/// blocking pool for PostgreSQL), so that the database never holds them up. The call runs to
/// its end even when the awaiting request is dropped: a report the store accepted is committed
/// whether or not its reply is sent.
pub(crate) async fn blocking<T, F>(store: &Arc<Store>, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&Store) -> Result<T> + Send + 'static,
{
    let shared = Arc::clone(store);
    match &store.thread {
        Some(thread) => thread.run(move || f(&shared)).await,
        None => tokio::task::spawn_blocking(move || f(&shared)).await?,
    }
}

fn key<T: std::fmt::Debug>(value: &T) -> String {
    // Debug of alloy's addresses and fixed bytes is the full lowercase 0x hex: one spelling.
    format!("{value:?}").to_lowercase()
}

/// A count or time for an INTEGER column. Saturates instead of failing: every value written is
/// already below 2^63 (`tokenMax` is refused above it, times are unix seconds and days), and a
/// cumulative token counter cannot reach 2^63 tokens.
fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The error for a value read back from `column` that is not what the router wrote there.
fn corrupt(column: &'static str, value: impl ToString, reason: impl ToString) -> Error {
    Error::CorruptDatabase {
        column,
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// A count read back from `column`; the router never writes a negative one.
fn read_u64(column: &'static str, v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| corrupt(column, v, "a negative count"))
}

fn read_u256(column: &'static str, s: &str) -> Result<U256> {
    s.parse()
        .map_err(|e| corrupt(column, s, format_args!("not an amount: {e}")))
}

fn read_address(column: &'static str, s: &str) -> Result<Address> {
    s.parse()
        .map_err(|e| corrupt(column, s, format_args!("not an address: {e}")))
}

impl Store {
    /// Opens (or creates) the SQLite database at `path`. A file that is not a SQLite database,
    /// or cannot be read or set up, is [`Error::OpenDatabase`] naming it.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let db = Arc::new(sqlite::Sqlite::open(path)?);
        Ok(Self {
            thread: Some(thread::StoreThread::start(db.clone())?),
            backend: Backend::Sqlite(db),
        })
    }

    /// Connects to the PostgreSQL database at `url` and brings its schema to this build's
    /// version ([`Error::OpenPostgres`] when it cannot, naming the URL without its password).
    pub(crate) fn open_postgres(url: &str) -> Result<Self> {
        Ok(Self {
            backend: Backend::Postgres(Box::new(pg::Postgres::open(url)?)),
            thread: None,
        })
    }

    /// Which backend this is, for the log.
    pub(crate) fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Runs `f` in one writing transaction, committed when it returns `Ok` and rolled back when
    /// it returns an error. `f` takes the [`Lock`]s of what it checks before reading it (on
    /// SQLite every writer runs alone anyway), so what it checked still holds when it commits.
    fn write<T>(&self, f: impl FnOnce(&mut dyn Db) -> Result<T>) -> Result<T> {
        match &self.backend {
            Backend::Sqlite(db) => db.write(false, f),
            Backend::Postgres(db) => db.write(false, f),
        }
    }

    /// [`write`](Self::write) with no other writer running, on any instance: for what reads or
    /// changes many users' and providers' rows at once (a bootstrap day, a pruning batch).
    fn write_alone<T>(&self, f: impl FnOnce(&mut dyn Db) -> Result<T>) -> Result<T> {
        match &self.backend {
            Backend::Sqlite(db) => db.write(true, f),
            Backend::Postgres(db) => db.write(true, f),
        }
    }

    /// Runs `f` outside a transaction: each statement sees what was committed before it.
    fn read<T>(&self, f: impl FnOnce(&mut dyn Db) -> Result<T>) -> Result<T> {
        match &self.backend {
            Backend::Sqlite(db) => db.read(f),
            Backend::Postgres(db) => db.read(f),
        }
    }

    /// The SQLite connection, for tests that change the file behind the store's back.
    #[cfg(test)]
    fn conn(&self) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
        match &self.backend {
            Backend::Sqlite(db) => db.conn(),
            Backend::Postgres(_) => panic!("a SQLite test on a PostgreSQL store"),
        }
    }

    /// Whether the database answers a query (`/readyz`).
    pub(crate) fn ping(&self) -> Result<()> {
        self.read(|db| db.query_one("SELECT 1", args![]).map(drop))
    }

    /// In one transaction: refuses a used nonce, refuses a request over `user_max`, then
    /// records the nonce and reserves `token_max` against the user's day.
    pub(crate) fn reserve(&self, s: &NewSession, user_max: U256) -> Result<()> {
        self.write(|db| {
            let (user, nonce) = (key(&s.user), s.nonce.to_string());
            db.lock(Lock::User(&user))?;
            let used_nonce = db.query_opt(
                r#"SELECT 1 FROM nonces WHERE "user" = ?1 AND nonce = ?2"#,
                args![&user, &nonce],
            )?;
            if used_nonce.is_some() {
                return Err(Error::NonceUsed {
                    user: s.user,
                    nonce: s.nonce,
                });
            }
            let used = U256::from(used_on(db, &user, s.day)?);
            let requested = U256::from(s.token_max);
            if used + requested > user_max {
                return Err(Error::OverAllowance(Box::new(Shortfall {
                    user: s.user,
                    requested,
                    user_max,
                    used,
                })));
            }
            db.exec(
                r#"INSERT INTO nonces ("user", nonce, deadline) VALUES (?1, ?2, ?3)"#,
                args![&user, &nonce, to_i64(s.deadline)],
            )?;
            db.exec(
                r#"INSERT INTO sessions (session_id, "user", nonce, model_id, day, token_max, counted)
                   VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)"#,
                args![
                    key(&s.session_id),
                    &user,
                    &nonce,
                    key(&s.model_id),
                    to_i64(s.day),
                    to_i64(s.token_max)
                ],
            )?;
            count_against_day(db, &user, to_i64(s.day), to_i64(s.token_max))
        })
    }

    /// Undoes [`reserve`](Self::reserve) when no provider could be assigned: the reservation
    /// and the nonce are released, so the same signed request may be sent again.
    pub(crate) fn cancel(&self, session_id: B256) -> Result<()> {
        self.write(|db| {
            let id = key(&session_id);
            let Some(row) = db.query_opt(
                r#"SELECT "user", nonce, day, counted FROM sessions
                   WHERE session_id = ?1 AND provider IS NULL"#,
                args![&id],
            )?
            else {
                return Ok(());
            };
            let (user, nonce) = (row.get::<String>(0)?, row.get::<String>(1)?);
            db.lock(Lock::User(&user))?;
            db.exec("DELETE FROM sessions WHERE session_id = ?1", args![&id])?;
            db.exec(
                r#"DELETE FROM nonces WHERE "user" = ?1 AND nonce = ?2"#,
                args![&user, &nonce],
            )?;
            count_against_day(db, &user, row.get(2)?, -row.get::<i64>(3)?)
        })
    }

    /// Books `provider` for a reserved session, in one writing transaction: the provider's open
    /// sessions at `now` are counted and the session is assigned only while they are below
    /// `capacity`, so concurrent requests (or instances sharing the database) cannot book more
    /// sessions than the bid's capacity. `credit_per_token` is what each token of the session
    /// earns; `endpoint` is where the provider is asked for the session's receipt.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn book(
        &self,
        session_id: B256,
        provider: Address,
        endpoint: &str,
        capacity: U256,
        credit_per_token: U256,
        now: u64,
        expires_at: u64,
    ) -> Result<Booking> {
        self.write(|db| {
            db.lock(Lock::Provider(&key(&provider)))?;
            let open = open_sessions(db, provider, now)?;
            if U256::from(open) >= capacity {
                return Ok(Booking::Full { open });
            }
            db.exec(
                "UPDATE sessions SET provider = ?2, price_per_token = ?3, expires_at = ?4,
                     endpoint = ?5
                 WHERE session_id = ?1",
                args![
                    key(&session_id),
                    key(&provider),
                    credit_per_token.to_string(),
                    to_i64(expires_at),
                    endpoint
                ],
            )?;
            Ok(Booking::Booked)
        })
    }

    /// Tokens `user` used or reserved on `day`.
    pub(crate) fn used(&self, user: Address, day: u64) -> Result<u64> {
        self.read(|db| used_on(db, &key(&user), day))
    }

    /// The standing of each of `providers` (in that order) for `model`: its record over its
    /// last Z reports, its reputation for the model, and its sessions neither reported nor
    /// expired at `now`.
    pub(crate) fn standings(
        &self,
        providers: &[Address],
        model: B256,
        rule: RecordRule,
        now: u64,
    ) -> Result<Vec<Standing>> {
        self.read(|db| {
            providers
                .iter()
                .map(|p| {
                    Ok(Standing {
                        record: stats(db, *p, &rule)?,
                        reputation: reputation::model_reputation(db, *p, model, rule.window)?,
                        open_sessions: open_sessions(db, *p, now)?,
                    })
                })
                .collect()
        })
    }

    /// A provider's cumulative counters, if it was ever reported on.
    pub(crate) fn credits(&self, provider: Address) -> Result<Option<Credits>> {
        self.read(|db| credits_of(db, &key(&provider)))
    }

    /// Applies a usage report signed by `signer`, in one transaction: checks it belongs to the
    /// session's user and is the session's first, judges it (pass/fail, the speed rule against
    /// the model's reference before it), then marks the session reported, counts its tokens
    /// against the user's day (`usage::counted_tokens`: the whole `tokenMax` unless `receipt`,
    /// the provider's signed count, says less), records the report, and updates the provider's
    /// counters and, when it was credited at a believed speed, the user's speed sample.
    pub(crate) fn record_report(
        &self,
        report: &UsageReport,
        signer: Address,
        rule: SpeedRule,
        receipt: Option<u64>,
        fail_withholds: bool,
    ) -> Result<UsageReceipt> {
        self.write(|db| record_report(db, report, signer, rule, receipt, fail_withholds))
    }
}

/// [`Store::record_report`] in its transaction.
fn record_report(
    db: &mut dyn Db,
    report: &UsageReport,
    signer: Address,
    rule: SpeedRule,
    receipt: Option<u64>,
    fail_withholds: bool,
) -> Result<UsageReceipt> {
    let id = key(&report.sessionId);
    // Whom the session is about, then their locks, then the session as it is under them
    // (where writers run alone, it is as it is already).
    if !db.writers_run_alone() {
        let parties = db.query_opt(
            r#"SELECT "user", provider FROM sessions WHERE session_id = ?1"#,
            args![&id],
        )?;
        if let Some(parties) = &parties {
            db.lock(Lock::User(&parties.get::<String>(0)?))?;
            if let Some(provider) = parties.get::<Option<String>>(1)? {
                db.lock(Lock::Provider(&provider))?;
            }
        }
    }
    let row = db.query_opt(
        r#"SELECT "user", model_id, token_max, provider, price_per_token, reported, receipt,
               settled, day, counted
           FROM sessions WHERE session_id = ?1"#,
        args![&id],
    )?;
    let Some(row) = row else {
        return Err(Error::UnknownSession(report.sessionId));
    };
    let (Some(provider), Some(price)) =
        (row.get::<Option<String>>(3)?, row.get::<Option<String>>(4)?)
    else {
        return Err(Error::UnknownSession(report.sessionId));
    };
    let (user, model, token_max) = (
        row.get::<String>(0)?,
        row.get::<String>(1)?,
        row.get::<i64>(2)?,
    );
    let (reported, kept, settled, day, counted_before) = (
        row.get::<i64>(5)?,
        row.get::<Option<i64>>(6)?,
        row.get::<i64>(7)?,
        row.get::<i64>(8)?,
        row.get::<i64>(9)?,
    );
    // A count settled before the report (the session expired first) stands.
    let receipt = match kept {
        Some(kept) => Some(read_u64("sessions.receipt", kept)?),
        None => receipt,
    };
    // Everything read back is checked before anything is judged or written: a damaged row
    // fails the report (and rolls the transaction back) instead of crediting a default.
    let user = read_address("sessions.user", &user)?;
    let provider = read_address("sessions.provider", &provider)?;
    let price = read_u256("sessions.price_per_token", &price)?;
    let token_max = read_u64("sessions.token_max", token_max)?;
    if user != signer {
        return Err(Error::WrongReporter {
            session: report.sessionId,
            user,
            signer,
        });
    }
    if reported != 0 {
        return Err(Error::AlreadyReported(report.sessionId));
    }
    // The user's signed numbers, not the database's: a count above u64 is capped like any
    // count above tokenMax, a duration above u64 is as slow as one can be.
    let tokens = u64::try_from(report.tokens)
        .unwrap_or(u64::MAX)
        .min(token_max);
    let duration_ms = u64::try_from(report.durationMs).unwrap_or(u64::MAX);
    let speed = speed::report_speed(tokens, duration_ms, &rule);
    let reference = speed::speed_reference(&speed_samples(db, &model, rule.window)?, &rule);
    let (outcome, detail) = match (report.passed, speed) {
        (false, _) if fail_withholds => (
            Outcome::Failed,
            "the user reported the session failed".into(),
        ),
        (false, _) => (
            Outcome::Disputed,
            "the user reported the session failed, but its stake does not exceed the \
             provider's (fail policy by-stake): credited, and a point against the record"
                .into(),
        ),
        (true, Some(s)) if speed::is_slow(s.ms_per_token, reference, &rule) => {
            let reference = reference.unwrap_or_default();
            (
                Outcome::Slow,
                format!(
                    "{:.3} ms/token is more than {}% above the model's reference {reference:.3} \
                     ms/token (the median of its recent users' credited reports; limit {:.3})",
                    s.ms_per_token,
                    rule.slow_threshold_pct,
                    speed::slow_limit(reference, &rule),
                ),
            )
        }
        (true, Some(s)) if !s.believed => (
            Outcome::Credited,
            format!(
                "{tokens} tokens in {duration_ms} ms is below the floor of {} ms/token: \
                 judged at the floor, not a speed sample",
                rule.min_ms_per_token
            ),
        ),
        (true, Some(s)) => (
            Outcome::Credited,
            format!("{tokens} tokens at {:.3} ms/token", s.ms_per_token),
        ),
        (true, None) => (Outcome::Credited, "no tokens served".into()),
    };
    // A disputed session earns as a credited one and counts against the record as a failure.
    let earns = matches!(outcome, Outcome::Credited | Outcome::Disputed);
    let amount = if earns {
        U256::from(tokens) * price
    } else {
        U256::ZERO
    };
    let failed = outcome != Outcome::Credited;
    let credited = if earns { tokens } else { 0 };
    let served = match receipt {
        Some(r) => Served::Receipt(r),
        None if settled != 0 => Served::Unanswered,
        None => Served::Unknown,
    };
    let allowance_tokens = usage::counted_tokens(token_max, Some(tokens), credited, served);
    let counted_before = read_u64("sessions.counted", counted_before)?;
    count_against_day(
        db,
        &key(&user),
        day,
        delta(counted_before, allowance_tokens),
    )?;

    db.exec(
        "UPDATE sessions SET reported = 1, tokens = ?2, outcome = ?3, amount = ?4,
             credited = ?5, receipt = ?6, counted = ?7, settled = ?8
         WHERE session_id = ?1",
        args![
            &id,
            to_i64(tokens),
            format!("{outcome:?}"),
            amount.to_string(),
            to_i64(credited),
            receipt.map(to_i64),
            to_i64(allowance_tokens),
            served != Served::Unknown
        ],
    )?;
    let counted = speed.map(|s| s.ms_per_token.min(rule.max_ms_per_token));
    // The user's reported time to first token (capped), for answers that passed only: a
    // failed session's timing says nothing of how fast the provider answers.
    let ttft_ms = report.passed.then(|| {
        u64::try_from(report.ttftMs)
            .unwrap_or(u64::MAX)
            .min(MAX_TTFT_MS) as f64
    });
    let report_id: i64 = db
        .query_one(
            r#"INSERT INTO reports (model_id, provider, ms_per_token, failed, "user", ttft_ms)
               VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id"#,
            args![&model, key(&provider), counted, failed, key(&user), ttft_ms],
        )?
        .get(0)?;
    if let Some(s) = speed.filter(|s| s.believed && outcome == Outcome::Credited) {
        db.exec(
            r#"INSERT INTO speed_samples (model_id, "user", report_id, ms_per_token)
               VALUES (?1, ?2, ?3, ?4)
               ON CONFLICT (model_id, "user") DO UPDATE SET report_id = excluded.report_id,
                   ms_per_token = excluded.ms_per_token"#,
            args![&model, key(&user), report_id, s.ms_per_token],
        )?;
    }
    reputation::count_report(db, provider, &model, outcome, amount)?;
    bootstrap::credit_day(db, day, &key(&provider), amount)?;
    // A provider never reported on has all-zero counters: the true starting point.
    let before = credits_of(db, &key(&provider))?.unwrap_or_default();
    write_credits(
        db,
        &key(&provider),
        &Credits {
            amount: before.amount + amount,
            tokens: before.tokens.saturating_add(tokens),
            sessions: before.sessions + 1,
            failed: before.failed + u64::from(failed),
        },
    )?;
    Ok(UsageReceipt {
        session_id: report.sessionId,
        provider,
        outcome,
        tokens: U256::from(tokens),
        amount,
        detail,
        provider_count: receipt.map(U256::from),
        counted: U256::from(allowance_tokens),
    })
}

/// What the user's sessions of `day` count (`usage::counted_tokens`): the running total that
/// every change of a session's count keeps ([`count_against_day`]).
fn used_on(db: &mut dyn Db, user: &str, day: u64) -> Result<u64> {
    let used = db.query_opt(
        r#"SELECT counted FROM user_days WHERE "user" = ?1 AND day = ?2"#,
        args![user, to_i64(day)],
    )?;
    read_u64(
        "user_days.counted",
        used.map(|r| r.get(0)).transpose()?.unwrap_or(0),
    )
}

/// Moves the running total of `user`'s `day` by `delta` tokens, in the transaction that changes
/// a session's count by as much.
fn count_against_day(db: &mut dyn Db, user: &str, day: i64, delta: i64) -> Result<()> {
    if delta != 0 {
        db.exec(
            r#"INSERT INTO user_days ("user", day, counted) VALUES (?1, ?2, ?3)
               ON CONFLICT ("user", day)
               DO UPDATE SET counted = user_days.counted + excluded.counted"#,
            args![user, day, delta],
        )?;
    }
    Ok(())
}

/// The change from `before` to `after` tokens, as a signed count (both are below 2^63).
fn delta(before: u64, after: u64) -> i64 {
    to_i64(after) - to_i64(before)
}

/// Sessions assigned to `provider` that are not reported, not closed by the provider's receipt
/// and not expired at `now`.
fn open_sessions(db: &mut dyn Db, provider: Address, now: u64) -> Result<u64> {
    let n: i64 = db
        .query_one(
            "SELECT COUNT(*) FROM sessions
             WHERE provider = ?1 AND reported = 0 AND receipt IS NULL AND expires_at >= ?2",
            args![key(&provider), to_i64(now)],
        )?
        .get(0)?;
    read_u64("sessions (open count)", n)
}

/// A provider's record: cumulative counters, the mean speed of its last Z reports, and whether
/// they make a bad record ([`record::bad_record`]).
fn stats(db: &mut dyn Db, provider: Address, rule: &RecordRule) -> Result<ProviderStats> {
    // A provider never reported on has all-zero counters: the true starting point.
    let credits = credits_of(db, &key(&provider))?.unwrap_or_default();
    // The window as a literal: see `sql.rs` on LIMIT.
    let rows = db.query(
        &format!(
            r#"SELECT "user", failed, ms_per_token FROM reports WHERE provider = ?1
               ORDER BY id DESC LIMIT {}"#,
            rule.window
        ),
        args![key(&provider)],
    )?;
    let (mut entries, mut speeds) = (Vec::new(), Vec::new());
    for row in rows {
        // Rows from before reports named their user count for the speed, not the record.
        if let Some(user) = row.get::<Option<String>>(0)? {
            entries.push(RecordEntry {
                user: read_address("reports.user", &user)?,
                earned: !row.get::<bool>(1)?,
            });
        }
        speeds.extend(row.get::<Option<f64>>(2)?);
    }
    // No report with tokens: the speed is unknown.
    let mean = (!speeds.is_empty()).then(|| speeds.iter().sum::<f64>() / speeds.len() as f64);
    Ok(ProviderStats {
        sessions: credits.sessions,
        failed: credits.failed,
        tokens: credits.tokens,
        amount: credits.amount,
        ms_per_token: mean,
        bad_record: record::bad_record(&entries, rule),
    })
}

/// The newest speed sample of each of the model's last `window` users to have one, newest first:
/// what [`speed::speed_reference`] reads.
fn speed_samples(db: &mut dyn Db, model: &str, window: u32) -> Result<Vec<SpeedSample>> {
    // The window as a literal: see `sql.rs` on LIMIT.
    db.query(
        &format!(
            r#"SELECT "user", ms_per_token FROM speed_samples WHERE model_id = ?1
               ORDER BY report_id DESC LIMIT {window}"#
        ),
        args![model],
    )?
    .into_iter()
    .map(|row| {
        Ok(SpeedSample {
            user: read_address("speed_samples.user", &row.get::<String>(0)?)?,
            ms_per_token: row.get(1)?,
        })
    })
    .collect()
}

/// Adds `reports.user` to a database written before reports named their user (`CREATE TABLE IF
/// NOT EXISTS` leaves an existing table as it was). Its old rows keep NULL there.
fn add_report_user(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    let has_user = conn
        .prepare("SELECT 1 FROM pragma_table_info('reports') WHERE name = 'user'")?
        .exists([])?;
    if !has_user {
        conn.execute_batch("ALTER TABLE reports ADD COLUMN user TEXT")?;
    }
    Ok(())
}

/// Writes a provider's cumulative counters (what its next voucher carries).
fn write_credits(db: &mut dyn Db, provider: &str, c: &Credits) -> Result<()> {
    db.exec(
        "INSERT INTO credits (provider, amount, tokens, sessions, failed)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (provider) DO UPDATE SET amount = excluded.amount,
             tokens = excluded.tokens, sessions = excluded.sessions, failed = excluded.failed",
        args![
            provider,
            c.amount.to_string(),
            to_i64(c.tokens),
            to_i64(c.sessions),
            to_i64(c.failed)
        ],
    )?;
    Ok(())
}

fn credits_of(db: &mut dyn Db, provider: &str) -> Result<Option<Credits>> {
    let row = db.query_opt(
        "SELECT amount, tokens, sessions, failed FROM credits WHERE provider = ?1",
        args![provider],
    )?;
    row.map(|r| {
        Ok(Credits {
            amount: read_u256("credits.amount", &r.get::<String>(0)?)?,
            tokens: read_u64("credits.tokens", r.get(1)?)?,
            sessions: read_u64("credits.sessions", r.get(2)?)?,
            failed: read_u64("credits.failed", r.get(3)?)?,
        })
    })
    .transpose()
}

/// Where a unit test's store lives: a new database on the suite's PostgreSQL server in its
/// PostgreSQL pass (`morpheus_testkit::POSTGRES_ENV`), else a SQLite file in a new directory.
#[cfg(test)]
pub(crate) struct TestDb {
    dir: tempfile::TempDir,
    postgres: Option<String>,
}

#[cfg(test)]
impl TestDb {
    pub(crate) fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
            postgres: morpheus_testkit::test_database().expect("a PostgreSQL database"),
        }
    }

    /// Opens the store (again: the same file or database each time).
    pub(crate) fn open(&self) -> Store {
        self.try_open().expect("open")
    }

    pub(crate) fn try_open(&self) -> Result<Store> {
        match &self.postgres {
            Some(url) => Store::open_postgres(url),
            None => Store::open(&self.dir.path().join("router.db")),
        }
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::params;

    use super::*;

    /// A session reserved by `user` and assigned to `provider`, in a fresh store.
    fn assigned(dir: &Path, user: Address, provider: Address) -> (Store, B256) {
        let store = Store::open(&dir.join("router.db")).expect("open");
        let id = book_session(&store, 7, user, provider);
        (store, id)
    }

    /// Session `n` of model 9, reserved by `user` (nonce `n`) and assigned to `provider`.
    fn book_session(store: &Store, n: u8, user: Address, provider: Address) -> B256 {
        let session = NewSession {
            session_id: B256::repeat_byte(n),
            user,
            nonce: U256::from(n),
            model_id: B256::repeat_byte(9),
            day: 1,
            token_max: 100,
            deadline: u64::MAX / 4,
        };
        store
            .reserve(&session, U256::from(10_000))
            .expect("reserve");
        let booked = store
            .book(
                session.session_id,
                provider,
                "http://provider.test",
                U256::from(100),
                U256::from(3),
                0,
                u64::MAX / 4,
            )
            .expect("book");
        assert_eq!(booked, Booking::Booked);
        session.session_id
    }

    /// The speed samples of model 9, newest first.
    fn samples(store: &Store) -> Vec<SpeedSample> {
        store
            .read(|db| speed_samples(db, &key(&B256::repeat_byte(9)), 20))
            .expect("samples")
    }

    fn report(session_id: B256) -> UsageReport {
        UsageReport {
            sessionId: session_id,
            tokens: U256::from(10),
            ttftMs: U256::from(1),
            durationMs: U256::from(10),
            passed: true,
        }
    }

    const RULE: SpeedRule = SpeedRule {
        slow_threshold_pct: 50,
        window: 20,
        min_ms_per_token: 1.0,
        max_ms_per_token: 10_000.0,
    };

    /// Every statement a pair runs (the reservation, the candidates' standings, the booking,
    /// the report, the receipt) is parsed once and then only bound and run: none is re-prepared
    /// (`sql.rs` on LIMIT).
    /// Runs a pair's calls (a booking, the standings, the report, the receipt) twenty times
    /// on a new SQLite store and returns every statement its connection keeps, as (times
    /// re-prepared, runs, its SQL on one line), with the store.
    fn pair_statements(dir: &Path) -> (Store, Vec<(i32, i32, String)>) {
        let store = Store::open(&dir.join("router.db")).expect("open");
        let (user, provider) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let rule = RecordRule {
            window: 20,
            min_users: 3,
        };
        for n in 1..=20 {
            let id = book_session(&store, n, user, provider);
            store
                .standings(&[provider], B256::repeat_byte(9), rule, 0)
                .expect("standings");
            store
                .record_report(&report(id), user, RULE, Some(10), true)
                .expect("report");
            store.settle(id, Some(10), 6).expect("receipt");
        }
        let mut statements = Vec::new();
        {
            let conn = store.conn();
            // SAFETY: the connection's handle is valid while `conn` is held, and so is each
            // statement `sqlite3_next_stmt` returns (nothing finalizes them meanwhile); the SQL
            // text is copied out before the next call.
            unsafe {
                let db = conn.handle();
                let mut statement = rusqlite::ffi::sqlite3_next_stmt(db, std::ptr::null_mut());
                while !statement.is_null() {
                    let count = |what| rusqlite::ffi::sqlite3_stmt_status(statement, what, 0);
                    statements.push((
                        count(rusqlite::ffi::SQLITE_STMTSTATUS_REPREPARE),
                        count(rusqlite::ffi::SQLITE_STMTSTATUS_RUN),
                        std::ffi::CStr::from_ptr(rusqlite::ffi::sqlite3_sql(statement))
                            .to_string_lossy()
                            .split_whitespace()
                            .collect::<Vec<_>>()
                            .join(" "),
                    ));
                    statement = rusqlite::ffi::sqlite3_next_stmt(db, statement);
                }
            }
        }
        (store, statements)
    }

    #[test]
    fn statements_run_per_pair_are_parsed_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_store, statements) = pair_statements(dir.path());
        assert!(
            statements.iter().filter(|(_, runs, _)| *runs >= 20).count() >= 15,
            "the pair's statements are cached: {statements:#?}"
        );
        let reprepared: Vec<_> = statements.iter().filter(|(n, _, _)| *n > 0).collect();
        assert!(reprepared.is_empty(), "re-prepared: {reprepared:#?}");
    }

    /// Every statement a pair runs reads its rows through an index, and reads a table's row
    /// only where it looks one up by its unique key: a window or a count (a provider's last
    /// reports, a model's speed samples, a provider's open sessions) is read from its index
    /// alone, not one row lookup per entry.
    #[test]
    fn a_pairs_reads_take_windows_from_their_indexes_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, statements) = pair_statements(dir.path());
        let conn = store.conn();
        let mut plans = Vec::new();
        for (_, runs, sql) in statements.iter().filter(|(_, runs, _)| *runs >= 20) {
            let mut explain = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .expect("explain");
            // Parameters bound NULL: the plan does not depend on their values.
            let nulls = vec![rusqlite::types::Null; explain.parameter_count()];
            let steps = explain
                .query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))
                .expect("plan")
                .collect::<rusqlite::Result<Vec<_>>>()
                .expect("steps");
            plans.push((*runs, sql.clone(), steps));
        }
        let wide: Vec<_> = plans
            .iter()
            .filter(|(_, _, steps)| {
                steps.iter().any(|step| {
                    (step.starts_with("SEARCH") || step.starts_with("SCAN"))
                        && !step.contains("COVERING INDEX")
                        && !step.contains("PRIMARY KEY")
                        && !step.contains("sqlite_autoindex_")
                        && step != "SCAN CONSTANT ROW"
                })
            })
            .collect();
        assert!(
            wide.is_empty(),
            "rows read past an index: {wide:#?}\n{plans:#?}"
        );
    }

    #[test]
    fn a_database_from_a_newer_router_is_refused_naming_both_versions() {
        let db = TestDb::new();
        let store = db.open();
        let latest = match store.backend {
            Backend::Sqlite(_) => migrations::LATEST,
            Backend::Postgres(_) => pg::LATEST,
        };
        store
            .write(|d| match store.backend {
                Backend::Sqlite(_) => d.exec("PRAGMA user_version = 99", args![]),
                Backend::Postgres(_) => d.exec("UPDATE router_schema SET version = 99", args![]),
            })
            .expect("a newer router's version");
        drop(store);
        let refused = db.try_open().expect_err("a newer schema").to_string();
        assert!(
            refused.contains("schema version 99") && refused.contains(&format!("{latest}")),
            "{refused}"
        );
    }

    #[test]
    fn only_credited_reports_at_a_believed_speed_are_samples_one_per_user() {
        let store = TestDb::new().open();
        let provider = Address::repeat_byte(2);
        let [a, b, c] = [10, 11, 12].map(Address::repeat_byte);
        let mut n = 0;
        let mut send = |user, duration_ms: u64, passed| {
            n += 1;
            let id = book_session(&store, n, user, provider);
            let r = UsageReport {
                tokens: U256::from(100),
                durationMs: U256::from(duration_ms),
                passed,
                ..report(id)
            };
            store
                .record_report(&r, user, RULE, None, true)
                .expect("report")
                .outcome
        };
        assert_eq!(send(a, 1_000, true), Outcome::Credited);
        assert_eq!(send(b, 0, true), Outcome::Credited, "below the floor");
        assert_eq!(send(c, 100_000, true), Outcome::Slow);
        assert_eq!(send(c, 1_000, false), Outcome::Failed);
        let sample = |user, ms_per_token| SpeedSample { user, ms_per_token };
        assert_eq!(samples(&store), [sample(a, 10.0)]);
        assert_eq!(send(b, 1_200, true), Outcome::Credited);
        assert_eq!(send(a, 1_400, true), Outcome::Credited);
        assert_eq!(
            samples(&store),
            [sample(a, 14.0), sample(b, 12.0)],
            "each user's newest, newest first"
        );
    }

    #[test]
    fn a_database_from_before_reports_named_users_is_upgraded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("router.db");
        let old = sqlite_process::open(&path).expect("create");
        old.execute_batch(
            "CREATE TABLE reports (
                 id INTEGER PRIMARY KEY AUTOINCREMENT, model_id TEXT NOT NULL,
                 provider TEXT NOT NULL, ms_per_token REAL, failed INTEGER NOT NULL);
             INSERT INTO reports (model_id, provider, ms_per_token, failed) VALUES
                 ('m', '0x0202020202020202020202020202020202020202', 4.0, 1),
                 ('m', '0x0202020202020202020202020202020202020202', 4.0, 1);",
        )
        .expect("an old schema");
        drop(old);
        let (user, provider) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let (store, id) = assigned(dir.path(), user, provider);
        store
            .record_report(&report(id), user, RULE, None, true)
            .expect("a report on the upgraded file");
        let rule = RecordRule {
            window: 20,
            min_users: 1,
        };
        let standing = &store
            .standings(&[provider], B256::repeat_byte(9), rule, 0)
            .expect("standing")[0];
        assert!(
            !standing.record.bad_record,
            "the old failed rows name no user and do not count for the record"
        );
        assert_eq!(
            standing.record.ms_per_token,
            Some(3.0),
            "mean of 4, 4 and 1"
        );
        drop(store);
        Store::open(&path).expect("opening it again does not add the column twice");
    }

    #[test]
    fn a_provider_at_capacity_is_not_booked_until_a_session_ends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (user, provider) = (Address::repeat_byte(1), Address::repeat_byte(2));
        // One session booked at capacity 1, open until u64::MAX / 4.
        let (store, _) = assigned(dir.path(), user, provider);
        let second = NewSession {
            session_id: B256::repeat_byte(8),
            user,
            nonce: U256::from(2),
            model_id: B256::repeat_byte(9),
            day: 1,
            token_max: 100,
            deadline: u64::MAX / 4,
        };
        store.reserve(&second, U256::from(1000)).expect("reserve");
        let book = |now| {
            store
                .book(
                    second.session_id,
                    provider,
                    "http://provider.test",
                    U256::from(1),
                    U256::from(3),
                    now,
                    u64::MAX / 2,
                )
                .expect("book")
        };
        assert_eq!(book(0), Booking::Full { open: 1 });
        let provider_of: Option<String> = store
            .conn()
            .query_row(
                "SELECT provider FROM sessions WHERE session_id = ?1",
                params![key(&second.session_id)],
                |r| r.get(0),
            )
            .expect("row");
        assert_eq!(provider_of, None, "a full provider is not written");
        // Once the first session has expired, the provider has room again.
        assert_eq!(book(u64::MAX / 4 + 1), Booking::Booked);
    }

    #[test]
    fn a_bad_address_read_back_names_its_column_and_value() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (user, provider) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let (store, id) = assigned(dir.path(), user, provider);
        store
            .conn()
            .execute("UPDATE sessions SET provider = '0xnot-an-address'", [])
            .expect("tamper");
        match store.record_report(&report(id), user, RULE, None, true) {
            Err(e @ Error::CorruptDatabase { .. }) => {
                let message = e.to_string();
                assert!(
                    message.contains("sessions.provider") && message.contains("0xnot-an-address"),
                    "{message:?} names the column and the value"
                );
            }
            other => panic!("expected Error::CorruptDatabase, got {other:?}"),
        }
        assert_eq!(store.credits(Address::ZERO).expect("read"), None);
    }

    #[test]
    fn a_negative_count_read_back_names_its_column_and_value() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (user, provider) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let (store, id) = assigned(dir.path(), user, provider);
        store
            .record_report(&report(id), user, RULE, None, true)
            .expect("report");
        store
            .conn()
            .execute("UPDATE credits SET tokens = -5", [])
            .expect("tamper");
        match store.credits(provider) {
            Err(Error::CorruptDatabase { column, value, .. }) => {
                assert_eq!((column, value.as_str()), ("credits.tokens", "-5"));
            }
            other => panic!("expected Error::CorruptDatabase, got {other:?}"),
        }
    }
    #[test]
    fn reputation_counts_reports_and_a_database_from_before_it_is_backfilled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (user, provider) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let store = Store::open(&dir.path().join("router.db")).expect("open");
        let (passed, failed) = (
            book_session(&store, 7, user, provider),
            book_session(&store, 8, user, provider),
        );
        store
            .record_report(&report(passed), user, RULE, None, true)
            .expect("passed");
        let mut fail = report(failed);
        fail.passed = false;
        store
            .record_report(&fail, user, RULE, None, true)
            .expect("failed");
        let model = B256::repeat_byte(9);
        let read = |store: &Store| {
            store
                .read(|db| reputation::model_reputation(db, provider, model, 20))
                .expect("reputation")
        };
        let counted = read(&store);
        // 10 tokens at 3 wei; the failed report's time to first token is not a sample.
        assert_eq!(
            (counted.completed, counted.failed, counted.earned),
            (1, 1, U256::from(30))
        );
        assert_eq!(counted.ttft_ms, Some(1.0));
        assert_eq!(counted.ms_per_token, Some(1.0));

        store
            .conn()
            .execute_batch(
                "DROP TABLE reputation; DROP TABLE user_days; DROP INDEX nonces_deadline;
                 ALTER TABLE nonces DROP COLUMN deadline; DROP TABLE chain_index;
                 DROP TABLE chain_index_blocks; DROP TABLE chain_facts; DROP TABLE provider_days;
                 DROP INDEX sessions_unassigned; PRAGMA user_version = 0;",
            )
            .expect("as before the table (and before schema versions)");
        drop(store);
        let reopened = Store::open(&dir.path().join("router.db")).expect("reopen");
        let backfilled = read(&reopened);
        assert_eq!(
            (backfilled.completed, backfilled.failed, backfilled.earned),
            (1, 1, U256::from(30))
        );
    }
}
