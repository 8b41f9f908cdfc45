//! The worker's durable state, one SQLite file: each session's token count (so a restart never
//! lets an assignment serve beyond its `tokenMax`), the newest voucher of each router (kept
//! before any claim sends it), and the journal of claims (so a claim interrupted at any point is
//! finished, not sent twice, after a restart).
//!
//! Every write is its own transaction in WAL mode with `synchronous = NORMAL`: a committed write
//! survives the process being killed (`kill -9`); only a power loss may undo the last commits.

mod claims;
mod sessions;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
};

use rusqlite::Connection;

pub use claims::{ClaimRow, ClaimState, ClaimTotals, StoredVoucher};
pub use sessions::StoredSession;

use crate::{Error, Result};

/// The schema, applied on open (every statement is idempotent).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sessions (
    id BLOB PRIMARY KEY,
    used INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    closed INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS vouchers (
    router BLOB PRIMARY KEY,
    issued_at INTEGER NOT NULL,
    voucher TEXT NOT NULL,
    first_seen INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS claims (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    state TEXT NOT NULL,
    vouchers TEXT NOT NULL,
    nonce INTEGER NOT NULL,
    tx BLOB,
    gas_used INTEGER,
    paid TEXT,
    detail TEXT,
    started_at INTEGER NOT NULL,
    ended_at INTEGER
);
";

/// SQLite integers are signed: counts and times past `i64::MAX` are stored as `i64::MAX`, which
/// reads back as a larger count or a later expiry, never a smaller one.
fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A stored integer read back (a negative one, never written, as 0).
fn uint(v: i64) -> u64 {
    v.max(0).cast_unsigned()
}

/// A handle on the worker's database; clones share one connection.
#[derive(Debug, Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    path: Option<PathBuf>,
}

impl Store {
    /// Opens (creating it if missing) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let conn = Connection::open(path).map_err(|e| Error::store(path, e))?;
        Self::init(conn, Some(path.to_path_buf()))
    }

    /// A database in memory, gone when the process ends (tests, and a worker run without a
    /// data directory).
    pub fn in_memory() -> Result<Self> {
        let conn = Connection::open_in_memory().map_err(|e| Error::store(":memory:", e))?;
        Self::init(conn, None)
    }

    fn init(conn: Connection, path: Option<PathBuf>) -> Result<Self> {
        let shown = path.clone().unwrap_or_else(|| ":memory:".into());
        conn.pragma_update(None, "journal_mode", "WAL")
            .and_then(|()| conn.pragma_update(None, "synchronous", "NORMAL"))
            .and_then(|()| conn.busy_timeout(std::time::Duration::from_secs(5)))
            .and_then(|()| conn.execute_batch(SCHEMA))
            .map_err(|e| Error::store(&shown, e))?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            path,
        })
    }

    /// The database file (`None`: in memory).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Sets how long a write waits for another connection's lock (tests of a busy database).
    #[cfg(test)]
    pub(crate) fn set_busy_timeout_for_tests(&self, timeout: std::time::Duration) {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        conn.busy_timeout(timeout).expect("busy timeout");
    }

    /// Runs `f` on the connection; its error names the database.
    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        f(&conn).map_err(|e| Error::store(self.path.as_deref().unwrap_or(Path::new(":memory:")), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_reopens_with_what_was_written() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("nested").join("worker.db");
        let store = Store::open(&path).expect("open");
        store
            .put_session(&StoredSession {
                id: [1; 32].into(),
                used: 40,
                expires_at: 99,
                closed: false,
            })
            .expect("write");
        drop(store);
        let again = Store::open(&path).expect("reopen");
        let sessions = again.sessions(0).expect("read");
        assert_eq!(sessions.len(), 1);
        assert_eq!(sessions[0].used, 40);
    }

    #[test]
    fn a_file_that_is_not_a_database_is_named_in_the_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("worker.db");
        std::fs::write(
            &path,
            b"not sqlite at all, just some text that is long enough",
        )
        .expect("write");
        let err = Store::open(&path).expect_err("not a database");
        assert!(err.to_string().contains("worker.db"), "{err}");
    }
}
