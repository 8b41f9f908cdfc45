//! Values that must differ between calls: session ids, nonces, challenges.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

use alloy::primitives::B256;

/// Wall-clock unix seconds.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A fresh 32-byte value: this process's counter after the time and the process id, so two test
/// binaries running at once never draw the same one.
pub fn unique_b256() -> B256 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let pid = u64::from(std::process::id());
    B256::left_padding_from(
        &[unix_now().to_be_bytes(), pid.to_be_bytes(), n.to_be_bytes()].concat(),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn values_never_repeat() {
        let drawn: HashSet<B256> = (0..10_000).map(|_| unique_b256()).collect();
        assert_eq!(drawn.len(), 10_000);
    }
}
