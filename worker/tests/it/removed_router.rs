//! A router the `SessionRouter` owner removed stops being honoured (with `--rpc-url`).

use std::time::{Duration, Instant};

use morpheus_testkit::{Devnet, TestWorker, WorkerOptions};

use crate::common::request;

#[tokio::test]
async fn a_removed_routers_assignments_are_refused() {
    let devnet = Devnet::start().await.expect("devnet");
    let deployment = devnet.deployment();
    let worker = TestWorker::with(WorkerOptions {
        threads: 1,
        router: devnet.router_signer(),
        chain_id: deployment.chain_id,
        session_router: deployment.session_router,
        rpc_url: Some(devnet.rpc_url()),
        ..Default::default()
    })
    .await;
    let client = worker.client();
    client
        .chat(&worker.assignment(256), &request("Hi", 4, 1))
        .await
        .expect("an authorised router's assignment is served");

    // The owner (account 0) removes the router.
    devnet
        .protocol(0)
        .await
        .expect("connect")
        .session_router()
        .remove_router(devnet.router_signer().address())
        .await
        .expect("remove the router");

    // Within a refresh (500 ms in the kit) its assignments are refused, naming why.
    let start = Instant::now();
    loop {
        match client
            .chat(&worker.assignment(256), &request("Hi", 4, 2))
            .await
        {
            Err(e) if e.to_string().contains("no longer authorised") => break,
            other => assert!(
                start.elapsed() < Duration::from_secs(10),
                "still served 10 s after the removal: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    worker.stop().await;
}
