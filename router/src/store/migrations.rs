//! The database's schema, versioned. `PRAGMA user_version` holds the number of the last
//! migration a file has had; every start runs the ones after it, in order, each in its own
//! transaction with the new number, so a crash between two leaves a file that the next start
//! takes up from where it stopped. A file from a newer router (a version this one does not
//! know) is refused rather than written in a shape it does not understand.

use rusqlite::{Connection, TransactionBehavior};

use super::{bootstrap, receipts, reputation};

/// One step of the schema.
struct Migration {
    /// What it adds, for the log.
    what: &'static str,
    run: fn(&Connection) -> rusqlite::Result<()>,
}

/// Every migration, version `i + 1` at index `i`. Never edit one that has shipped: add the next.
const MIGRATIONS: &[Migration] = &[
    Migration {
        what: "the tables from before versions (nonces, sessions, reports, speed samples, \
               credits, receipts' columns, reputation, bootstrap days)",
        run: base,
    },
    Migration {
        what: "running totals of what each user's day counts (user_days)",
        run: user_days,
    },
    Migration {
        what: "each nonce keeps its request's deadline, so it can be pruned once replay is \
               refused by the deadline alone",
        run: nonce_deadlines,
    },
    Migration {
        what: "the cancelled sessions of pruned rows are kept as a count per provider and model",
        run: cancelled_pruned,
    },
    Migration {
        what: "the chain index (the registry's facts as of an indexed block)",
        run: chain_index,
    },
    Migration {
        what: "indexes for the background rounds (sessions due a receipt or pruning, old days' \
               running totals), so that they never scan a table",
        run: round_indexes,
    },
    Migration {
        what: "what each provider was credited each day, as a running total (provider_days), \
               so that computing a day's bootstrap never reads the day's sessions",
        run: provider_days,
    },
    Migration {
        what: "the indexes a request's windows are read through carry the columns read, so \
               a window is read from its index alone (no row looked up per entry); \
               sessions_user_day and reports_model, read by no query, are dropped",
        run: pair_indexes,
    },
];

/// The version a file has after every migration of this build.
pub(super) const LATEST: i64 = MIGRATIONS.len() as i64;

/// Brings the file to [`LATEST`], one migration per transaction. Returns the versions it ran,
/// with what each added. A file at a version above [`LATEST`] is refused (an error naming both).
pub(super) fn migrate(conn: &mut Connection) -> rusqlite::Result<Vec<(i64, &'static str)>> {
    let mut ran = Vec::new();
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > LATEST {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISMATCH),
                Some(format!(
                    "the database is at schema version {version}, newer than this router's \
                     {LATEST}: run the router that wrote it"
                )),
            ));
        }
        let Some(step) = usize::try_from(version)
            .ok()
            .and_then(|v| MIGRATIONS.get(v))
        else {
            return Ok(ran);
        };
        (step.run)(&tx)?;
        // PRAGMA takes no parameters; the number is this build's own.
        tx.execute_batch(&format!("PRAGMA user_version = {}", version + 1))?;
        tx.commit()?;
        ran.push((version + 1, step.what));
    }
}

/// Version 1: everything the router created before the schema had versions. Each part is
/// idempotent and upgrades the files of older routers (which are at version 0 too).
fn base(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(super::SCHEMA)?;
    super::add_report_user(conn)?;
    receipts::add_session_columns(conn)?;
    reputation::create_tables(conn)?;
    bootstrap::create_tables(conn)
}

/// Version 2: what each user's day counts, kept as a running total beside the sessions (every
/// change of `sessions.counted` changes it in the same transaction), so that a reservation
/// reads one row instead of summing the user's sessions of the day.
fn user_days(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE user_days (
             user    TEXT NOT NULL,
             day     INTEGER NOT NULL,
             counted INTEGER NOT NULL, -- SUM(sessions.counted) of the user's sessions of the day
             PRIMARY KEY (user, day)
         ) WITHOUT ROWID;
         INSERT INTO user_days (user, day, counted)
             SELECT user, day, SUM(counted) FROM sessions GROUP BY user, day;",
    )
}

/// Version 3: `nonces.deadline`, the deadline of the request that used the nonce (NULL for rows
/// from before, which are kept).
fn nonce_deadlines(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "ALTER TABLE nonces ADD COLUMN deadline INTEGER;
         CREATE INDEX nonces_deadline ON nonces (deadline);",
    )
}

/// Version 4: `reputation.cancelled_pruned`, the cancelled sessions that pruning removed (the
/// reputation's `cancelled` counts the rows left plus these).
fn cancelled_pruned(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "ALTER TABLE reputation ADD COLUMN cancelled_pruned INTEGER NOT NULL DEFAULT 0;",
    )
}

/// Version 5: the chain index's tables (`chain_index.rs`).
fn chain_index(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(super::chain_index::TABLES)
}

/// Version 6: the indexes the background rounds read through. A file created new never had
/// `sessions_due` (it came only with the receipts' columns, added to older files), so settling
/// and pruning scanned the sessions table every round: with a million stored sessions, a
/// fraction of a second of the store's one thread each time.
fn round_indexes(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(ROUND_INDEXES)
}

/// The statements of [`round_indexes`], shared with PostgreSQL's migration of the same.
pub(super) const ROUND_INDEXES: &str = r#"
CREATE INDEX IF NOT EXISTS sessions_due ON sessions (settled, expires_at);
CREATE INDEX IF NOT EXISTS sessions_unassigned ON sessions (day) WHERE provider IS NULL;
CREATE INDEX IF NOT EXISTS user_days_day ON user_days (day);
"#;

/// Version 7: `provider_days`, filled from the sessions stored before it.
fn provider_days(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(bootstrap::PROVIDER_DAYS)?;
    bootstrap::fill_provider_days(conn)
}

/// Version 8: [`PAIR_INDEXES`].
fn pair_indexes(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(PAIR_INDEXES)
}

/// The indexes a request's windows and counts are read through, widened by the columns those
/// reads return or test: a provider's last reports (its record, and its reputation and bid
/// history for a model), a model's speed samples, and a provider's open sessions. Each entry
/// read was a lookup of its row besides: about a hundred B-tree searches a pair, one candidate
/// (`store::tests::a_pairs_reads_take_windows_from_their_indexes_alone`). The same names, so
/// every other query through them reads them as before. And two indexes go that no query reads,
/// yet every reservation or report wrote an entry of: `sessions_user_day` (a user's day is a
/// running total, `user_days`) and `reports_model` (every read of the reports names its
/// provider). Shared with PostgreSQL's migration.
pub(super) const PAIR_INDEXES: &str = r#"
DROP INDEX IF EXISTS sessions_user_day;
DROP INDEX IF EXISTS reports_model;
DROP INDEX IF EXISTS reports_provider;
CREATE INDEX reports_provider ON reports (provider, id, "user", failed, ms_per_token);
DROP INDEX IF EXISTS reports_provider_model;
CREATE INDEX reports_provider_model ON reports (provider, model_id, id, ms_per_token, ttft_ms);
DROP INDEX IF EXISTS speed_samples_model;
CREATE INDEX speed_samples_model ON speed_samples (model_id, report_id, "user", ms_per_token);
DROP INDEX IF EXISTS sessions_provider;
CREATE INDEX sessions_provider ON sessions (provider, reported, expires_at, receipt, model_id);
DROP INDEX IF EXISTS bid_history_pair;
CREATE INDEX bid_history_pair ON bid_history (provider, model_id, id, price_per_token, capacity,
    seen_at);
"#;

#[cfg(test)]
mod tests {
    use rusqlite::types::FromSql;

    use super::*;

    /// Every row of `sql`, its three columns as a tuple.
    fn three_columns<A: FromSql, B: FromSql, C: FromSql>(
        conn: &Connection,
        sql: &str,
    ) -> Vec<(A, B, C)> {
        conn.prepare(sql)
            .expect("prepare")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("rows")
    }

    #[test]
    fn a_new_file_gets_every_version_once_and_a_newer_one_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = crate::store::sqlite_process::open(&dir.path().join("r.db")).expect("open");
        let ran = migrate(&mut conn).expect("migrate");
        assert_eq!(
            ran.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
            (1..=LATEST).collect::<Vec<_>>()
        );
        assert!(migrate(&mut conn).expect("again").is_empty());
        conn.execute_batch(&format!("PRAGMA user_version = {}", LATEST + 1))
            .expect("from the future");
        let refused = migrate(&mut conn).expect_err("a newer file").to_string();
        assert!(
            refused.contains(&format!("schema version {}", LATEST + 1)),
            "{refused}"
        );
    }

    #[test]
    fn providers_credits_per_day_start_from_the_sessions_stored_before_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = crate::store::sqlite_process::open(&dir.path().join("r.db")).expect("open");
        let tx = conn.transaction().expect("tx");
        for step in &MIGRATIONS[..6] {
            (step.run)(&tx).expect(step.what);
        }
        // Amounts past 2^53 (a float would round them) and past 2^64; an unreported session, a
        // session that earned nothing and one never assigned count nothing.
        tx.execute_batch(
            "INSERT INTO sessions (session_id, user, nonce, model_id, day, token_max, provider,
                 reported, amount)
             VALUES ('a', 'u', '1', 'm', 7, 1, 'p', 1, '9007199254740993'),
                    ('b', 'u', '2', 'm', 7, 1, 'p', 1, '18446744073709551617'),
                    ('c', 'u', '3', 'm', 8, 1, 'p', 1, '5'),
                    ('d', 'u', '4', 'm', 7, 1, 'q', 1, '0'),
                    ('e', 'u', '5', 'm', 7, 1, 'q', 0, NULL),
                    ('f', 'u', '6', 'm', 7, 1, NULL, 0, NULL);
             PRAGMA user_version = 6;",
        )
        .expect("sessions");
        tx.commit().expect("commit");
        assert_eq!(
            migrate(&mut conn).expect("the rest"),
            [(7, MIGRATIONS[6].what), (8, MIGRATIONS[7].what)]
        );
        let credited: Vec<(i64, String, String)> = three_columns(
            &conn,
            "SELECT day, provider, credited FROM provider_days ORDER BY day, provider",
        );
        assert_eq!(
            credited,
            [
                (7, "p".to_string(), "18455751272964292610".to_string()),
                (8, "p".to_string(), "5".to_string())
            ]
        );
    }

    #[test]
    fn running_totals_start_from_the_sessions_of_a_file_from_before_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = crate::store::sqlite_process::open(&dir.path().join("r.db")).expect("open");
        let tx = conn.transaction().expect("tx");
        base(&tx).expect("version 1");
        tx.execute_batch(
            "INSERT INTO sessions (session_id, user, nonce, model_id, day, token_max, counted)
             VALUES ('a', 'u', '1', 'm', 7, 100, 100), ('b', 'u', '2', 'm', 7, 50, 20),
                    ('c', 'u', '3', 'm', 8, 10, 10), ('d', 'v', '1', 'm', 7, 5, 5);
             PRAGMA user_version = 1;",
        )
        .expect("sessions");
        tx.commit().expect("commit");
        migrate(&mut conn).expect("the rest");
        let totals: Vec<(String, i64, i64)> = three_columns(
            &conn,
            "SELECT user, day, counted FROM user_days ORDER BY user, day",
        );
        assert_eq!(
            totals,
            [
                ("u".to_string(), 7, 120),
                ("u".to_string(), 8, 10),
                ("v".to_string(), 7, 5)
            ]
        );
    }
}
