//! Several router instances (one router key, one logical router) on one SQLite file: every
//! reservation, booking and report is one `BEGIN IMMEDIATE` transaction, so instances sharing
//! the file on one machine keep the same rules as one: a user's concurrent requests spread over
//! them never reserve more than the allowance, concurrent reports of one session credit it
//! once, and every instance signs the same cumulative voucher.

use alloy::primitives::U256;
use morpheus_sdk::router::RouterClient;
use tokio::task::JoinSet;

use crate::common::{Net, PROVIDER, assert_refused, serve};

#[tokio::test]
async fn three_instances_on_one_file_keep_the_allowance_and_credit_once() {
    let net = Net::start().await;
    // Two more instances of the same router on the same database file.
    let mut instances = vec![net.router.clone()];
    let mut stops = Vec::new();
    for _ in 0..2 {
        let (url, stop, task) = serve(net.config.clone()).await;
        instances.push(RouterClient::new(&url).expect("client"));
        stops.push((stop, task));
    }
    let user = net.user().address();
    let allowance = net.router.allowance(user).await.expect("allowance");
    // Requests of a tenth of the allowance each: ten fit, thirty are sent at once, ten to each
    // instance, and the provider has room for more than ten.
    let token_max = allowance.remaining / U256::from(10);
    net.bid(U256::from(crate::common::PRICE), 64).await;
    let mut requests = JoinSet::new();
    for i in 0..30 {
        let request = net.request(|r| r.tokenMax = token_max);
        let router = instances[i % 3].clone();
        requests.spawn(async move { router.request_compute(&request).await });
    }
    let mut granted = Vec::new();
    while let Some(result) = requests.join_next().await {
        match result.expect("task") {
            Ok(a) => granted.push(a),
            refused => assert_refused(refused, 429, "left today"),
        }
    }
    assert_eq!(
        granted.len(),
        10,
        "exactly the allowance, over three instances"
    );
    let used = net.router.allowance(user).await.expect("allowance").used;
    assert_eq!(used, token_max * U256::from(10));
    assert!(used <= allowance.user_max);

    // One session's report sent to the three instances at once: credited once.
    let session = granted[0].message.sessionId;
    let report = net.report_as(&net.user(), session, 100, 100, true);
    let mut reports = JoinSet::new();
    for router in &instances {
        let (router, report) = (router.clone(), report.clone());
        reports.spawn(async move { router.report_usage(&report).await });
    }
    let mut credited = 0;
    while let Some(result) = reports.join_next().await {
        match result.expect("task") {
            Ok(_) => credited += 1,
            refused => assert_refused(refused, 409, "already reported"),
        }
    }
    assert_eq!(credited, 1, "one report of the three is taken");

    // Every instance signs the same cumulative figures.
    let provider = net.devnet.signer(PROVIDER).address();
    let mut vouchers = Vec::new();
    for router in &instances {
        let v = router
            .voucher(provider)
            .await
            .expect("voucher")
            .expect("credited");
        vouchers.push((
            v.message.cumulativeAmount,
            v.message.cumulativeTokens,
            v.message.sessions,
        ));
    }
    assert!(vouchers.windows(2).all(|w| w[0] == w[1]), "{vouchers:?}");
    assert_eq!(vouchers[0].2, U256::from(1));
    for (stop, task) in stops {
        let _ = stop.send(());
        task.await.expect("task").expect("stops cleanly");
    }
    net.stop().await;
}
