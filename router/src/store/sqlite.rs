//! The embedded backend: one SQLite file (WAL), one connection behind a mutex. A writing
//! transaction is `BEGIN IMMEDIATE`: it holds the file's one write lock from its first
//! statement, so writers (this router's threads, or routers sharing the file) run one at a
//! time and every check a transaction makes still holds at its commit.

use std::{
    path::Path,
    sync::{Mutex, MutexGuard},
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
}

impl Sqlite {
    /// Opens (or creates) the file at `path` and brings its schema to this build's version.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let open = || -> rusqlite::Result<Connection> {
            let mut conn = Connection::open(path)?;
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            // Every statement the store runs stays parsed (there are about 60).
            conn.set_prepared_statement_cache_capacity(128);
            // The first statement that reads the file: where "file is not a database" shows.
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
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
        })
    }

    /// The connection. A panic while holding the lock cannot leave SQLite half-written
    /// (transactions roll back on drop), so a poisoned lock is safe to take over.
    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction, committed when it returns `Ok`: it runs
    /// alone, whether or not `exclusive` asks for it.
    pub(crate) fn write<T>(
        &self,
        _exclusive: bool,
        f: impl FnOnce(&mut dyn Db) -> Result<T>,
    ) -> Result<T> {
        let conn = self.conn();
        let tx = Transaction::begin(&conn)?;
        let out = f(&mut On(&conn))?;
        tx.commit()?;
        Ok(out)
    }

    /// Runs `f` on the connection, each statement on its own.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&mut dyn Db) -> Result<T>) -> Result<T> {
        f(&mut On(&self.conn()))
    }
}

/// A `BEGIN IMMEDIATE` transaction on the connection, rolled back when dropped uncommitted (an
/// error, or a panic inside it). Its `BEGIN`, `COMMIT` and `ROLLBACK` go through the
/// statement cache: parsed once per connection, not on every transaction.
struct Transaction<'c> {
    conn: &'c Connection,
    open: bool,
}

impl<'c> Transaction<'c> {
    fn begin(conn: &'c Connection) -> rusqlite::Result<Self> {
        conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        Ok(Self { conn, open: true })
    }

    fn commit(mut self) -> rusqlite::Result<()> {
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        self.open = false;
        Ok(())
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        // A failed COMMIT leaves the transaction open too: rolled back here, as rusqlite's own
        // transaction does.
        if self.open && !self.conn.is_autocommit() {
            let rolled_back = self
                .conn
                .prepare_cached("ROLLBACK")
                .and_then(|mut s| s.execute([]));
            if let Err(e) = rolled_back {
                tracing::error!(target: "router::store", error = %e, "rolling back failed");
            }
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
