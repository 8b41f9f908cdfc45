//! SQLite work runs off the async runtime's threads: while the router waits on the database
//! (here: another process holds its write lock), it keeps answering other requests.

use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::common::Net;

/// How long the test holds the database's write lock (the router's busy timeout is 5 s).
const HOLD: Duration = Duration::from_millis(1500);

// One runtime thread, shared by the test, the router and its clients: a store call made on it
// would stall everything until SQLite's busy timeout gives up.
#[tokio::test(flavor = "current_thread")]
async fn a_request_waiting_on_the_database_does_not_stall_the_router() {
    // The lock is SQLite's (the file's one writer); PostgreSQL's pass runs this on SQLite too.
    let net = Net::with(|c| c.postgres_url = None).await;

    let lock = Connection::open(net.db_path()).expect("open the router's database");
    lock.execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");

    let router = net.router.clone();
    let request = net.request(|_| {});
    let compute = tokio::spawn(async move { router.request_compute(&request).await });

    // The request reads the chain, then waits on the lock to reserve its tokens.
    let started = Instant::now();
    tokio::time::sleep(HOLD).await;
    let health = tokio::time::timeout(
        Duration::from_secs(1),
        reqwest::get(net.router_url("/health")),
    )
    .await
    .expect("the router answers /health within 1 s while a request waits on the database")
    .expect("health");
    assert!(health.status().is_success(), "health: {}", health.status());
    let waited = started.elapsed();
    assert!(
        waited < HOLD + Duration::from_secs(1),
        "the runtime was stalled: {HOLD:?} of sleep and a health check took {waited:?}"
    );
    assert!(
        !compute.is_finished(),
        "the compute request is still waiting on the lock"
    );

    lock.execute_batch("ROLLBACK").expect("release the lock");
    let assignment = compute
        .await
        .expect("compute task")
        .expect("the request is served once the lock is released");
    assert_eq!(
        assignment.message.provider,
        net.devnet.signer(crate::common::PROVIDER).address()
    );
    net.stop().await;
}
