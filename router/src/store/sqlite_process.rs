//! SQLite's process-wide settings, made once before the first connection opens (SQLite takes
//! them only before it initialises). They change costs, never results: where SQLite was
//! initialised already (by another library in the process) they are left out, with a warning.
//!
//! - The sub-journal. Each call of a group is a savepoint (`thread.rs`), and the first change a
//!   savepoint makes to a page copies the page's old content into the transaction's
//!   sub-journal. With `temp_store = MEMORY` that journal grows in chunks of 1 KiB, each a
//!   `malloc` through SQLite's allocator, and is freed chunk by chunk when the call's
//!   savepoint is released: the allocations, not the copies, were 4-5% of the router's time
//!   under load. With the statement-journal spill size as its chunk, a call's copies go into
//!   one allocation (about 11 pages a call), and past it, to a temporary file.
//! - Memory statistics. SQLite counts every allocation under a global mutex; nothing here reads
//!   the counts (no soft heap limit).
//! - The page cache: SQLite's own, with its truncations that have nothing to drop skipped
//!   (`page_cache.rs`).
//!
//! Every connection of the router's opens through [`open`], so the settings precede them all.

use std::{os::raw::c_int, path::Path, sync::Once};

use rusqlite::{Connection, ffi};

/// The sub-journal's bytes held in memory, in one allocation, before it spills to a file:
/// far above a call's copies (tens of KiB), above a pruning batch's.
const SUB_JOURNAL_IN_MEMORY: c_int = 4 << 20;

/// Opens the SQLite file at `path`, after the settings.
pub(crate) fn open(path: &Path) -> rusqlite::Result<Connection> {
    configure();
    Connection::open(path)
}

/// Makes the settings, once per process, before any connection opens.
fn configure() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: `sqlite3_config` must not run while SQLite is used on another thread; it runs
        // inside `call_once`, before this process's first connection (every connection the
        // router opens goes through `open`, which waits for this first). Each call passes the
        // argument its option takes (an int), or the methods `page_cache::install` reads and
        // sets.
        let results = unsafe {
            [
                ("its page cache", super::page_cache::install()),
                (
                    "the sub-journal's spill size",
                    ffi::sqlite3_config(ffi::SQLITE_CONFIG_STMTJRNL_SPILL, SUB_JOURNAL_IN_MEMORY),
                ),
                (
                    "memory statistics off",
                    ffi::sqlite3_config(ffi::SQLITE_CONFIG_MEMSTATUS, 0 as c_int),
                ),
            ]
        };
        for (what, code) in results {
            if code != ffi::SQLITE_OK {
                tracing::warn!(
                    target: "router::store",
                    code,
                    "SQLite was initialised before the router set {what}: left as it was"
                );
            }
        }
    });
}
