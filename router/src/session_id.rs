//! Session ids: unique, and in the order they were made.
//!
//! An id is 32 bytes: the router's clock in milliseconds (8 bytes, big-endian), then 24 random
//! bytes. Stored as hex, the ids sort by time, so the sessions' unique index takes each new id at
//! its right-hand end and a report finds its session among the index's newest pages, both in the
//! page cache and written once per group of calls (`store/thread.rs`). Random ids put each new
//! entry, and each report's lookup, on a page of their own anywhere in the index: past the page
//! cache once the table outgrew it, a read from the file and a page more written per call. The
//! 192 random bits keep ids unique across the instances sharing a database and unguessable; the
//! time they tell is no more than the assignment's `expiresAt` says already.

use std::time::{SystemTime, UNIX_EPOCH};

use alloy::primitives::B256;

/// A new session id made at `now_ms` (milliseconds since the unix epoch).
pub(crate) fn session_id_at(now_ms: u64, random: [u8; 24]) -> B256 {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&now_ms.to_be_bytes());
    id[8..].copy_from_slice(&random);
    B256::from(id)
}

/// A new session id made now.
pub(crate) fn new_session_id() -> B256 {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default();
    session_id_at(now_ms, rand::random())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_the_time_they_were_made_as_stored() {
        // The store keeps ids as lower-case hex (`{:?}` of a B256): later ids sort after.
        let earlier = format!("{:?}", session_id_at(1_765_000_000_000, [0xff; 24]));
        let later = format!("{:?}", session_id_at(1_765_000_000_001, [0x00; 24]));
        assert!(earlier < later, "{earlier} !< {later}");
        assert!(later.starts_with("0x0000019"), "{later}");
    }

    #[test]
    fn ids_made_in_the_same_millisecond_differ() {
        let a = new_session_id();
        let b = new_session_id();
        assert_ne!(a, b);
        // Made now: the clock's milliseconds, not zero.
        let mut ms = [0u8; 8];
        ms.copy_from_slice(&a[..8]);
        assert!(u64::from_be_bytes(ms) > 1_700_000_000_000);
    }
}
