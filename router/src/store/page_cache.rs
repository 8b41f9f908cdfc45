//! SQLite's own page cache, with its truncations that have nothing to drop skipped.
//!
//! Why: when a B-tree page splits, SQLite sorts the new pages by number, swapping two of them
//! through a temporary key, the number of the file's lock-byte page (page 262,145 of a file of
//! 4 KiB pages). The default page cache remembers the largest key it has seen, so after one
//! swap it believes a page that far up may be cached. At the end of every transaction SQLite
//! truncates the cache to the file's size, and a truncation that far above the file's last page
//! walks the cache's whole hash table (8,192 buckets and every page, for a file of 20 MB). Under
//! load most commits followed a swap: 4% of the router's time.
//!
//! This wraps the default cache's methods and keeps, per cache, a bound on the keys it holds:
//! the largest key a page was fetched or moved under, leaving out the temporary key, which a
//! swap vacates before it returns (while a page sits there, every truncation goes through). A
//! truncation to a limit above that bound has nothing to drop and is skipped; any other goes
//! to the default cache as before. The pages, their contents and the cache's size are the
//! default cache's own: only calls that would change nothing are left out.

use std::{
    os::raw::{c_int, c_uint, c_void},
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
};

use rusqlite::ffi::{self, sqlite3_pcache, sqlite3_pcache_methods2, sqlite3_pcache_page};

/// SQLite's lock-byte offset (`PENDING_BYTE`, 1 GiB): the page holding it is never a page of
/// the file, so its number is the temporary key of a swap.
const LOCK_BYTE: c_uint = 0x4000_0000;

/// Truncations skipped after a swap had been seen: each would have walked the whole cache.
static WALKS_AVOIDED: AtomicU64 = AtomicU64::new(0);

/// The default cache's methods, read once before these replace them.
struct Default(sqlite3_pcache_methods2);

// SAFETY: the methods are plain C function pointers and an argument SQLite passes back to
// them; they are read, never written, after they are set.
unsafe impl Send for Default {}
// SAFETY: as above.
unsafe impl Sync for Default {}

static DEFAULT: OnceLock<Default> = OnceLock::new();

/// One cache: the default cache's, and the bound on its keys.
struct Cache {
    inner: *mut sqlite3_pcache,
    /// No page of `inner` has a larger key, `temporary` aside.
    max_key: c_uint,
    /// The swap's temporary key at this cache's page size.
    temporary: c_uint,
    /// A page may sit at `temporary`.
    temporary_held: bool,
    /// A page was moved to `temporary` since the last truncation that went through.
    swapped: bool,
}

impl Cache {
    /// Notes that a page is at `key` now.
    fn holds(&mut self, key: c_uint) {
        if key == self.temporary {
            self.temporary_held = true;
            self.swapped = true;
        } else {
            self.max_key = self.max_key.max(key);
        }
    }
}

/// Installs the wrapped cache; call before SQLite initialises (from `sqlite_process`).
/// Returns SQLite's code: anything but `SQLITE_OK` leaves the default cache in place.
///
/// # Safety
///
/// No other thread may use SQLite meanwhile, as for any `sqlite3_config`.
pub(crate) unsafe fn install() -> c_int {
    let mut default = std::mem::MaybeUninit::<sqlite3_pcache_methods2>::zeroed();
    // SAFETY: the option writes the current methods into the struct it is given; the caller
    // guarantees that SQLite is not in use.
    let code = unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_GETPCACHE2, default.as_mut_ptr()) };
    if code != ffi::SQLITE_OK {
        return code;
    }
    // SAFETY: written by SQLite above (a zeroed struct is a valid value besides).
    let default = unsafe { default.assume_init() };
    if DEFAULT.set(Default(default)).is_err() {
        // Installed already: its methods would wrap themselves.
        return ffi::SQLITE_OK;
    }
    let wrapped = sqlite3_pcache_methods2 {
        iVersion: 1,
        pArg: std::ptr::null_mut(),
        xInit: Some(init),
        xShutdown: Some(shutdown),
        xCreate: Some(create),
        xCachesize: Some(cachesize),
        xPagecount: Some(pagecount),
        xFetch: Some(fetch),
        xUnpin: Some(unpin),
        xRekey: Some(rekey),
        xTruncate: Some(truncate),
        xDestroy: Some(destroy),
        xShrink: Some(shrink),
    };
    // SAFETY: SQLite copies the struct; the caller guarantees that SQLite is not in use.
    unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_PCACHE2, &wrapped as *const _) }
}

/// Truncations skipped after a swap so far, in this process.
#[cfg(test)]
pub(crate) fn walks_avoided() -> u64 {
    WALKS_AVOIDED.load(Ordering::Relaxed)
}

fn default() -> &'static sqlite3_pcache_methods2 {
    match DEFAULT.get() {
        Some(d) => &d.0,
        // The wrapped methods are installed only after the default ones are kept.
        None => std::process::abort(),
    }
}

/// The cache behind SQLite's handle.
///
/// # Safety
///
/// `p` is a handle [`create`] returned and [`destroy`] has not freed.
unsafe fn cache<'a>(p: *mut sqlite3_pcache) -> &'a mut Cache {
    // SAFETY: per the caller; SQLite calls one cache's methods one at a time.
    unsafe { &mut *p.cast::<Cache>() }
}

// The methods below are SQLite's to call, with the arguments its page cache interface
// documents; each passes them on to the default cache's method.

unsafe extern "C" fn init(_: *mut c_void) -> c_int {
    let d = default();
    // SAFETY: the default method, with its own argument.
    d.xInit.map_or(ffi::SQLITE_OK, |f| unsafe { f(d.pArg) })
}

unsafe extern "C" fn shutdown(_: *mut c_void) {
    let d = default();
    if let Some(f) = d.xShutdown {
        // SAFETY: the default method, with its own argument.
        unsafe { f(d.pArg) }
    }
}

unsafe extern "C" fn create(
    page_size: c_int,
    extra: c_int,
    purgeable: c_int,
) -> *mut sqlite3_pcache {
    let Some(f) = default().xCreate else {
        return std::ptr::null_mut();
    };
    // SAFETY: the default method, with SQLite's arguments.
    let inner = unsafe { f(page_size, extra, purgeable) };
    if inner.is_null() {
        return inner;
    }
    let page_size = c_uint::try_from(page_size).unwrap_or(1).max(1);
    Box::into_raw(Box::new(Cache {
        inner,
        max_key: 0,
        temporary: LOCK_BYTE / page_size + 1,
        temporary_held: false,
        swapped: false,
    }))
    .cast()
}

unsafe extern "C" fn cachesize(p: *mut sqlite3_pcache, pages: c_int) {
    if let Some(f) = default().xCachesize {
        // SAFETY: `p` is SQLite's handle of a live cache; its inner one is the default's.
        unsafe { f(cache(p).inner, pages) }
    }
}

unsafe extern "C" fn pagecount(p: *mut sqlite3_pcache) -> c_int {
    // SAFETY: as in `cachesize`.
    default()
        .xPagecount
        .map_or(0, |f| unsafe { f(cache(p).inner) })
}

unsafe extern "C" fn fetch(
    p: *mut sqlite3_pcache,
    key: c_uint,
    create: c_int,
) -> *mut sqlite3_pcache_page {
    // SAFETY: as in `cachesize`.
    let c = unsafe { cache(p) };
    let Some(f) = default().xFetch else {
        return std::ptr::null_mut();
    };
    // SAFETY: the default method, on its own cache.
    let page = unsafe { f(c.inner, key, create) };
    if !page.is_null() {
        c.holds(key);
    }
    page
}

unsafe extern "C" fn unpin(p: *mut sqlite3_pcache, page: *mut sqlite3_pcache_page, discard: c_int) {
    if let Some(f) = default().xUnpin {
        // SAFETY: as in `cachesize`; the page is the default cache's.
        unsafe { f(cache(p).inner, page, discard) }
    }
}

unsafe extern "C" fn rekey(
    p: *mut sqlite3_pcache,
    page: *mut sqlite3_pcache_page,
    old: c_uint,
    new: c_uint,
) {
    // SAFETY: as in `cachesize`.
    let c = unsafe { cache(p) };
    if let Some(f) = default().xRekey {
        // SAFETY: the default method, on its own cache and page.
        unsafe { f(c.inner, page, old, new) }
    }
    if old == c.temporary {
        c.temporary_held = false;
    }
    c.holds(new);
}

unsafe extern "C" fn truncate(p: *mut sqlite3_pcache, limit: c_uint) {
    // SAFETY: as in `cachesize`.
    let c = unsafe { cache(p) };
    if !c.temporary_held && c.max_key < limit {
        // No page at `limit` or above: nothing to drop.
        if std::mem::take(&mut c.swapped) {
            WALKS_AVOIDED.fetch_add(1, Ordering::Relaxed);
        }
        return;
    }
    if let Some(f) = default().xTruncate {
        // SAFETY: the default method, on its own cache.
        unsafe { f(c.inner, limit) }
    }
    c.max_key = c.max_key.min(limit.saturating_sub(1));
    if limit <= c.temporary {
        c.temporary_held = false;
    }
    c.swapped = false;
}

unsafe extern "C" fn destroy(p: *mut sqlite3_pcache) {
    // SAFETY: `p` came from `create` (`Box::into_raw`) and SQLite destroys it once.
    let c = unsafe { Box::from_raw(p.cast::<Cache>()) };
    if let Some(f) = default().xDestroy {
        // SAFETY: the default method, on its own cache, which is not used after this.
        unsafe { f(c.inner) }
    }
}

unsafe extern "C" fn shrink(p: *mut sqlite3_pcache) {
    if let Some(f) = default().xShrink {
        // SAFETY: as in `cachesize`.
        unsafe { f(cache(p).inner) }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use alloy::primitives::B256;
    use rusqlite::{Connection, params};

    use super::walks_avoided;
    use crate::store::sqlite_process;

    /// Inserts `keys` with a value of 200 bytes each, in the transaction open or alone.
    fn insert_rows(conn: &Connection, keys: impl IntoIterator<Item = B256>) {
        for k in keys {
            conn.execute(
                "INSERT INTO t (k, v) VALUES (?1, zeroblob(200))",
                params![k.as_slice()],
            )
            .expect("insert");
        }
    }

    /// `n` random keys.
    fn random_keys(n: usize) -> Vec<B256> {
        (0..n).map(|_| B256::new(rand::random())).collect()
    }

    /// Inserts `keys`, committed in transactions of 50.
    fn insert(conn: &Connection, keys: &[B256]) {
        for chunk in keys.chunks(50) {
            conn.execute_batch("BEGIN").expect("begin");
            insert_rows(conn, chunk.iter().copied());
            conn.execute_batch("COMMIT").expect("commit");
        }
    }

    /// The keys in the table, and whether SQLite finds the file sound.
    fn contents(conn: &Connection) -> BTreeSet<B256> {
        let ok: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("integrity_check");
        assert_eq!(ok, "ok");
        conn.prepare("SELECT k FROM t")
            .expect("prepare")
            .query_map([], |r| r.get::<_, Vec<u8>>(0))
            .expect("query")
            .map(|k| B256::from_slice(&k.expect("key")))
            .collect()
    }

    #[test]
    fn splits_skip_the_walk_and_stale_pages_are_still_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        let conn = sqlite_process::open(&path).expect("open");
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA cache_size = -65536;
             CREATE TABLE t (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;",
        )
        .expect("schema");
        let avoided = walks_avoided();
        // Random keys split pages all over the tree, whose new pages SQLite then swaps into
        // order; deleting a third frees pages that later splits reuse, out of order.
        let mut kept = random_keys(6_000);
        insert(&conn, &kept);
        for k in kept.iter().step_by(3) {
            conn.execute("DELETE FROM t WHERE k = ?1", params![k.as_slice()])
                .expect("delete");
        }
        kept = kept
            .into_iter()
            .enumerate()
            .filter_map(|(i, k)| (i % 3 != 0).then_some(k))
            .collect();
        let more = random_keys(3_000);
        insert(&conn, &more);
        kept.extend(more);
        assert!(
            walks_avoided() > avoided,
            "no truncation after a swap was skipped: the cache walk this module avoids did not \
             come up, or is not avoided"
        );

        // A transaction that grows the file, rolled back: the pages past the file's old end
        // must leave the cache (a truncation that goes through), and so must those of a
        // savepoint rolled back inside a transaction that commits.
        conn.execute_batch("BEGIN").expect("begin");
        insert_rows(&conn, random_keys(2_000));
        conn.execute_batch("ROLLBACK").expect("rollback");
        let last = random_keys(500);
        conn.execute_batch("BEGIN; SAVEPOINT s").expect("savepoint");
        insert_rows(&conn, random_keys(2_000));
        conn.execute_batch("ROLLBACK TO s; RELEASE s")
            .expect("rollback to");
        insert_rows(&conn, last.iter().copied());
        conn.execute_batch("COMMIT").expect("commit");
        kept.extend(last);
        let expected: BTreeSet<B256> = kept.into_iter().collect();
        assert_eq!(contents(&conn), expected);

        // Another connection's commit: this one's cached pages are stale and must all go (a
        // truncation to nothing), or it reads the table as it was.
        let other = sqlite_process::open(&path).expect("a second connection");
        let gone: Vec<B256> = expected.iter().step_by(2).copied().collect();
        other.execute_batch("BEGIN").expect("begin");
        for k in &gone {
            other
                .execute("DELETE FROM t WHERE k = ?1", params![k.as_slice()])
                .expect("delete");
        }
        other.execute_batch("COMMIT").expect("commit");
        let expected: BTreeSet<B256> = expected
            .difference(&gone.into_iter().collect())
            .copied()
            .collect();
        assert_eq!(contents(&conn), expected);
        drop(conn);
        let reopened = sqlite_process::open(&path).expect("reopen");
        assert_eq!(contents(&reopened), expected);
    }
}
