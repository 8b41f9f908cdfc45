//! A write lock held elsewhere for longer than the router waits for it (SQLite's busy timeout and
//! PostgreSQL's `lock_timeout`: 5 s on both backends) fails the request with a 500 that names no
//! internals, instead of hanging it, and leaves nothing behind: once the lock is released, the
//! same signed request is served (its nonce was not spent).

use std::time::{Duration, Instant};

use crate::common::{Net, PROVIDER, assert_refused};

#[tokio::test]
async fn a_write_lock_held_too_long_fails_the_request_and_spends_nothing() {
    let net = Net::start().await;
    let held = net.hold_write_lock();
    let request = net.request(|_| {});

    let started = Instant::now();
    let refused = net.router.request_compute(&request).await;
    let waited = started.elapsed();
    assert_refused(refused, 500, "internal router error");
    assert!(
        waited >= Duration::from_millis(4500) && waited < Duration::from_secs(20),
        "the request waited {waited:?} for the lock: about the 5 s limit, never without end"
    );

    held.release().await;
    let assignment = net
        .router
        .request_compute(&request)
        .await
        .expect("the same request is served once the lock is released");
    assert_eq!(
        assignment.message.provider,
        net.devnet.signer(PROVIDER).address()
    );
    net.stop().await;
}
