//! The embedded backend: one SQLite file (WAL), one connection behind a mutex. A writing
//! transaction is `BEGIN IMMEDIATE`: it holds the file's one write lock from its first
//! statement, so writers (this router's threads, or routers sharing the file) run one at a
//! time and every check a transaction makes still holds at its commit.

use std::{
    path::Path,
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
};

use rusqlite::{
    Connection,
    types::{ToSqlOutput, ValueRef},
};

use super::{
    migrations,
    sql::{Db, Lock, Row, Value},
};
use crate::{Error, Result};

/// The SQLite file's connection.
#[derive(Debug)]
pub(crate) struct Sqlite {
    conn: Mutex<Connection>,
    /// A group's transaction is open (`thread.rs`): calls' writes are savepoints of it.
    grouped: AtomicBool,
}

impl super::thread::Group for Sqlite {
    fn begin(&self) -> Result<()> {
        self.begin_group()
    }

    fn commit(&self) -> Result<()> {
        self.commit_group()
    }
}

/// The connection's page cache, in KiB (64 MiB; `PRAGMA cache_size` takes KiB negated).
const CACHE_KIB: i64 = 65_536;

impl Sqlite {
    /// Opens (or creates) the file at `path` and brings its schema to this build's version.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let open = || -> rusqlite::Result<Connection> {
            let mut conn = super::sqlite_process::open(path)?;
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            // Every statement the store runs stays parsed (there are about 60).
            conn.set_prepared_statement_cache_capacity(128);
            // The first statement that reads the file: where "file is not a database" shows.
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            // A group's calls are savepoints (`thread.rs`), whose undo copies of the pages they
            // change go to a sub-journal: held in memory in one allocation
            // (`sqlite_process.rs`; spilled to a temporary file past 64 KiB before, a `pwrite`
            // per page, a sixth of the router's time under load). Not `temp_store = MEMORY`,
            // which keeps it in chunks of 1 KiB, each allocated and freed on its own.
            // The pages requests read and write (the indexes' newest pages, the running totals,
            // each provider's windows) stay cached: past SQLite's default of 2 MiB, a file of a
            // million sessions was read again page by page under load.
            conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
            for (version, what) in migrations::migrate(&mut conn)? {
                tracing::info!(target: "router::store", version, what, "database migrated");
            }
            Ok(conn)
        };
        let conn = open().map_err(|source| Error::OpenDatabase {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            conn: Mutex::new(conn),
            grouped: AtomicBool::new(false),
        })
    }

    /// The connection. A panic while holding the lock cannot leave SQLite half-written
    /// (transactions roll back on drop), so a poisoned lock is safe to take over.
    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction, committed when it returns `Ok`: it runs
    /// alone, whether or not `exclusive` asks for it. Inside a group's transaction
    /// ([`begin_group`](Self::begin_group)) it is a savepoint of it instead: its changes are
    /// undone alone when it fails, and committed with the group's.
    pub(crate) fn write<T>(
        &self,
        _exclusive: bool,
        f: impl FnOnce(&mut dyn Db) -> Result<T>,
    ) -> Result<T> {
        let conn = self.conn();
        if self.grouped.load(Ordering::Relaxed) && conn.is_autocommit() {
            // SQLite rolled the group's transaction back on an earlier call's error: this one
            // must not commit on its own while the group is answered as failed.
            return Err(Error::DatabaseCall(
                "the transaction this call was part of was rolled back".into(),
            ));
        }
        let tx = Transaction::begin(&conn)?;
        let out = f(&mut On(&conn))?;
        tx.commit()?;
        Ok(out)
    }

    /// Opens the transaction a group of calls runs in (`thread.rs`), each call's writes a
    /// savepoint of it.
    pub(crate) fn begin_group(&self) -> Result<()> {
        self.conn().prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        self.grouped.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Commits the group's transaction, or rolls it back when the commit fails.
    pub(crate) fn commit_group(&self) -> Result<()> {
        let conn = self.conn();
        self.grouped.store(false, Ordering::Relaxed);
        let committed = conn
            .prepare_cached("COMMIT")
            .and_then(|mut s| s.execute([]));
        if let Err(e) = committed {
            if !conn.is_autocommit() {
                let _ = conn
                    .prepare_cached("ROLLBACK")
                    .and_then(|mut s| s.execute([]));
            }
            return Err(e.into());
        }
        Ok(())
    }

    /// Runs `f` on the connection, each statement on its own.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&mut dyn Db) -> Result<T>) -> Result<T> {
        f(&mut On(&self.conn()))
    }
}

/// A `BEGIN IMMEDIATE` transaction on the connection, or a savepoint when the connection is in
/// a group's transaction already; rolled back when dropped uncommitted (an error, or a panic
/// inside it). Its statements go through the statement cache: parsed once per connection, not
/// on every transaction.
struct Transaction<'c> {
    conn: &'c Connection,
    open: bool,
    /// A savepoint of an enclosing transaction, not a transaction of its own.
    nested: bool,
}

impl<'c> Transaction<'c> {
    fn begin(conn: &'c Connection) -> rusqlite::Result<Self> {
        let nested = !conn.is_autocommit();
        let begin = if nested {
            "SAVEPOINT call"
        } else {
            "BEGIN IMMEDIATE"
        };
        conn.prepare_cached(begin)?.execute([])?;
        Ok(Self {
            conn,
            open: true,
            nested,
        })
    }

    fn commit(mut self) -> rusqlite::Result<()> {
        let commit = if self.nested {
            "RELEASE call"
        } else {
            "COMMIT"
        };
        self.conn.prepare_cached(commit)?.execute([])?;
        self.open = false;
        Ok(())
    }

    fn run(&self, sql: &str) -> rusqlite::Result<usize> {
        self.conn.prepare_cached(sql)?.execute([])
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.open {
            return;
        }
        // A failed COMMIT leaves the transaction open too: rolled back here, as rusqlite's own
        // transaction does. A savepoint is undone and let go, the enclosing transaction kept.
        let rolled_back = if self.nested {
            self.run("ROLLBACK TO call")
                .and_then(|_| self.run("RELEASE call"))
        } else if !self.conn.is_autocommit() {
            self.run("ROLLBACK")
        } else {
            Ok(0)
        };
        if let Err(e) = rolled_back {
            tracing::error!(target: "router::store", error = %e, "rolling back failed");
        }
    }
}

/// [`Db`] on a SQLite connection or transaction, through its statement cache: each statement is
/// parsed once per connection, not once per call.
pub(crate) struct On<'c>(pub(crate) &'c Connection);

impl Db for On<'_> {
    fn lock(&mut self, _: Lock<'_>) -> Result<()> {
        // The transaction holds the file's one write lock already.
        Ok(())
    }

    fn writers_run_alone(&self) -> bool {
        true
    }

    fn exec(&mut self, sql: &str, args: &[Value]) -> Result<u64> {
        let n = self
            .0
            .prepare_cached(sql)?
            .execute(rusqlite::params_from_iter(args))?;
        Ok(n as u64)
    }

    fn query(&mut self, sql: &str, args: &[Value]) -> Result<Vec<Row>> {
        let mut statement = self.0.prepare_cached(sql)?;
        let columns = statement.column_count();
        let mut rows = statement.query(rusqlite::params_from_iter(args))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(columns);
            for i in 0..columns {
                values.push(match row.get_ref(i)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(v) => Value::Int(v),
                    ValueRef::Real(v) => Value::Real(v),
                    ValueRef::Text(t) | ValueRef::Blob(t) => {
                        Value::Text(String::from_utf8_lossy(t).into_owned())
                    }
                });
            }
            out.push(Row(values));
        }
        Ok(out)
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Self::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Self::Int(v) => ToSqlOutput::Borrowed(ValueRef::Integer(*v)),
            Self::Real(v) => ToSqlOutput::Borrowed(ValueRef::Real(*v)),
            Self::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        })
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Address, B256, U256};

    use crate::{
        Error,
        store::{NewSession, Store},
    };

    fn session(n: u8, nonce: u64) -> NewSession {
        NewSession {
            session_id: B256::repeat_byte(n),
            user: Address::repeat_byte(1),
            nonce: U256::from(nonce),
            model_id: B256::repeat_byte(9),
            day: 1,
            token_max: 100,
            deadline: u64::MAX / 4,
        }
    }

    /// A group's calls are savepoints: a failed one is undone alone, the others commit
    /// together, and what they wrote reads back after a reopen.
    #[test]
    fn a_failed_call_in_a_group_is_undone_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("router.db");
        let store = Store::open(&path).expect("open");
        let super::super::Backend::Sqlite(db) = &store.backend else {
            unreachable!("a SQLite store")
        };
        db.begin_group().expect("begin");
        store
            .reserve(&session(1, 1), U256::from(1000))
            .expect("first");
        let replay = store.reserve(&session(2, 1), U256::from(1000));
        assert!(matches!(replay, Err(Error::NonceUsed { .. })), "{replay:?}");
        let over = store.reserve(&session(3, 3), U256::from(150));
        assert!(matches!(over, Err(Error::OverAllowance(_))), "{over:?}");
        store
            .reserve(&session(4, 4), U256::from(1000))
            .expect("fourth");
        db.commit_group().expect("commit");
        drop(store);

        let store = Store::open(&path).expect("reopen");
        assert_eq!(store.used(Address::repeat_byte(1), 1).expect("used"), 200);
        // The refused calls left nothing: their nonces are free, their sessions absent.
        store
            .reserve(&session(3, 3), U256::from(1000))
            .expect("nonce 3 was never spent");
    }
}
