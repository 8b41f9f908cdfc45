//! The outbox: signed usage reports kept in a SQLite file until the router has them, so a
//! report the router could not take (down, unreachable, failing) is sent again later, across
//! restarts, never lost. Reports are signed messages, so sending one twice is harmless: the
//! router answers the second `409 already_reported`.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
};

use alloy::primitives::B256;
use morpheus_sdk::messages::{Signed, UsageReport};
use rusqlite::{Connection, OptionalExtension, params};

use crate::{Error, Result};

/// A report waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The signed report.
    pub report: Signed<UsageReport>,
    /// How many times sending it failed.
    pub attempts: u32,
    /// Why the last attempt failed, if one did.
    pub last_error: Option<String>,
}

/// The outbox file. Cheap to clone; every call runs on a blocking thread.
#[derive(Debug, Clone)]
pub struct Outbox {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

impl Outbox {
    /// Opens (creating when missing) the outbox at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let fail = |e: rusqlite::Error| outbox_error(&path, e);
        let conn = Connection::open(&path).map_err(fail)?;
        // WAL and FULL sync: a report acknowledged as kept survives a crash right after.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA busy_timeout = 5000;
             CREATE TABLE IF NOT EXISTS reports (
                 session_id TEXT PRIMARY KEY,
                 report TEXT NOT NULL,
                 created_at INTEGER NOT NULL DEFAULT (unixepoch()),
                 attempts INTEGER NOT NULL DEFAULT 0,
                 last_error TEXT
             );",
        )
        .map_err(fail)?;
        Ok(Self {
            path,
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps `report` until [`remove`](Self::remove)d (keeping it again changes nothing).
    pub async fn keep(&self, report: &Signed<UsageReport>) -> Result<()> {
        let json = serde_json::to_string(report).map_err(|e| Error::Outbox {
            path: self.path.clone(),
            reason: format!("the report does not serialise: {e}"),
        })?;
        let session = report.message.sessionId.to_string();
        self.call(move |conn| {
            conn.execute(
                "INSERT OR IGNORE INTO reports (session_id, report) VALUES (?1, ?2)",
                params![session, json],
            )
            .map(drop)
        })
        .await
    }

    /// Forgets the report of `session` (the router has it).
    pub async fn remove(&self, session: B256) -> Result<()> {
        let session = session.to_string();
        self.call(move |conn| {
            conn.execute(
                "DELETE FROM reports WHERE session_id = ?1",
                params![session],
            )
            .map(drop)
        })
        .await
    }

    /// Records a failed attempt to send the report of `session`.
    pub async fn failed(&self, session: B256, reason: String) -> Result<()> {
        let session = session.to_string();
        self.call(move |conn| {
            conn.execute(
                "UPDATE reports SET attempts = attempts + 1, last_error = ?2 WHERE session_id = ?1",
                params![session, reason],
            )
            .map(drop)
        })
        .await
    }

    /// Whether the report of `session` is waiting.
    pub async fn holds(&self, session: B256) -> Result<bool> {
        let session = session.to_string();
        self.call(move |conn| {
            conn.query_row(
                "SELECT 1 FROM reports WHERE session_id = ?1",
                params![session],
                |_| Ok(()),
            )
            .optional()
            .map(|row| row.is_some())
        })
        .await
    }

    /// Every report waiting, oldest first. A row that does not parse (the file was changed
    /// outside the gateway) is an error naming it, never skipped in silence.
    pub async fn pending(&self) -> Result<Vec<Pending>> {
        let rows = self
            .call(|conn| {
                let mut stmt = conn.prepare(
                    "SELECT session_id, report, attempts, last_error FROM reports
                     ORDER BY created_at, session_id",
                )?;
                let rows = stmt.query_map([], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, u32>(2)?,
                        row.get::<_, Option<String>>(3)?,
                    ))
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        rows.into_iter()
            .map(|(session, json, attempts, last_error)| {
                let report = serde_json::from_str(&json).map_err(|e| Error::Outbox {
                    path: self.path.clone(),
                    reason: format!("the report of session {session} does not parse: {e}"),
                })?;
                Ok(Pending {
                    report,
                    attempts,
                    last_error,
                })
            })
            .collect()
    }

    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        let (conn, path) = (self.conn.clone(), self.path.clone());
        tokio::task::spawn_blocking(move || {
            let conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&conn).map_err(|e| outbox_error(&path, e))
        })
        .await
        .map_err(|e| Error::Outbox {
            path: self.path.clone(),
            reason: format!("the outbox task failed: {e}"),
        })?
    }
}

fn outbox_error(path: &Path, e: rusqlite::Error) -> Error {
    Error::Outbox {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use alloy::{primitives::U256, signers::local::PrivateKeySigner, sol_types::eip712_domain};

    use super::*;

    fn report(byte: u8) -> Signed<UsageReport> {
        let domain = eip712_domain! { name: "t", version: "1", chain_id: 1, };
        let signer = PrivateKeySigner::from_bytes(&B256::repeat_byte(7)).expect("key");
        let report = UsageReport {
            sessionId: B256::repeat_byte(byte),
            tokens: U256::from(12),
            ttftMs: U256::from(3),
            durationMs: U256::from(40),
            passed: true,
        };
        Signed::sign(report, &domain, &signer).expect("sign")
    }

    #[tokio::test]
    async fn a_kept_report_survives_reopening_until_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/outbox.db");
        let outbox = Outbox::open(&path).expect("open");
        outbox.keep(&report(1)).await.expect("keep");
        outbox.keep(&report(2)).await.expect("keep");
        outbox
            .keep(&report(1))
            .await
            .expect("keeping twice is harmless");
        outbox
            .failed(B256::repeat_byte(2), "router down".into())
            .await
            .expect("note");
        drop(outbox);

        let outbox = Outbox::open(&path).expect("reopen");
        let pending = outbox.pending().await.expect("pending");
        assert_eq!(pending.len(), 2);
        let second = pending
            .iter()
            .find(|p| p.report == report(2))
            .expect("the second report is kept");
        assert_eq!(second.attempts, 1);
        assert_eq!(second.last_error.as_deref(), Some("router down"));
        assert!(pending.iter().any(|p| p.report == report(1)));

        outbox.remove(B256::repeat_byte(1)).await.expect("remove");
        assert!(!outbox.holds(B256::repeat_byte(1)).await.expect("holds"));
        assert!(outbox.holds(B256::repeat_byte(2)).await.expect("holds"));
    }

    #[tokio::test]
    async fn a_damaged_row_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("outbox.db");
        let outbox = Outbox::open(&path).expect("open");
        Connection::open(&path)
            .expect("open")
            .execute(
                "INSERT INTO reports (session_id, report) VALUES ('0xabc', 'not json')",
                [],
            )
            .expect("insert");
        match outbox.pending().await {
            Err(Error::Outbox { reason, .. }) => assert!(reason.contains("0xabc"), "{reason}"),
            other => panic!("expected an outbox error, got {other:?}"),
        }
    }

    #[test]
    fn a_file_that_is_not_a_database_is_refused_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("outbox.db");
        std::fs::write(&path, vec![b'x'; 4096]).expect("write");
        match Outbox::open(&path) {
            Err(Error::Outbox { path: p, .. }) => assert_eq!(p, path),
            other => panic!("expected an outbox error, got {other:?}"),
        }
    }
}
