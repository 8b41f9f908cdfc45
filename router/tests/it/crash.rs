//! `kill -9` of the router binary under load, then a restart on the same database: no report
//! the router accepted is lost, no voucher amount ever decreases, and no allowance is spent
//! twice (a request it may have reserved before dying is refused as a replay, and the day's
//! count never passes the allowance).

use std::{
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use alloy::{
    primitives::{Address, B256, U256},
    signers::local::PrivateKeySigner,
    sol_types::Eip712Domain,
};
use morpheus_sdk::{
    messages::{ComputeRequest, Signed, UsageReport},
    router::RouterClient,
};
use morpheus_testkit::{Devnet, TestWorker, unique_b256, unix_now};
use tempfile::TempDir;
use tokio::process::Child;

use crate::common::{PRICE, PROVIDER, USER, assert_refused, provide, stake};

/// Tokens each report credits.
const TOKENS: u64 = 10;

/// The router binary on `addr` over the database in `dir` (or the PostgreSQL database
/// `postgres`; no rate limits: the load is one user on one address), its output discarded (a
/// pipe nobody reads would fill under load).
fn spawn_router(devnet: &Devnet, dir: &TempDir, addr: &str, postgres: Option<&str>) -> Child {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_morpheus-router"));
    devnet
        .router_command(bin, dir.path(), addr, postgres)
        .expect("deployment file")
        .args([
            "--allow-private-endpoints",
            "--ip-rate",
            "0",
            "--user-rate",
            "0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the router starts")
}

/// A signed request of `user` for 64 tokens of `model`, with a fresh nonce.
fn request(user: &PrivateKeySigner, model: B256, domain: &Eip712Domain) -> Signed<ComputeRequest> {
    let request = ComputeRequest {
        user: user.address(),
        modelId: model,
        tokenMax: U256::from(64),
        nonce: U256::from_be_bytes(*unique_b256()),
        deadline: U256::from(unix_now() + 300),
    };
    Signed::sign(request, domain, user).expect("sign")
}

/// `user`'s signed report of [`TOKENS`] tokens served well for `session`.
fn report(user: &PrivateKeySigner, session: B256, domain: &Eip712Domain) -> Signed<UsageReport> {
    let report = UsageReport {
        sessionId: session,
        tokens: U256::from(TOKENS),
        ttftMs: U256::from(10),
        durationMs: U256::from(TOKENS * 10),
        passed: true,
    };
    Signed::sign(report, domain, user).expect("sign")
}

async fn wait_ready(client: &RouterClient, user: Address) {
    for _ in 0..200 {
        if client.allowance(user).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the router did not answer within 10 s");
}

#[tokio::test]
async fn a_router_killed_under_load_loses_no_accepted_report() {
    let devnet = Devnet::start().await.expect("devnet");
    let model_id = devnet
        .register_tiny_model(PROVIDER, "tiny")
        .await
        .expect("model");
    let worker = TestWorker::with(devnet.worker_options(PROVIDER, model_id)).await;
    provide(&devnet, PROVIDER, &worker.url, model_id, PRICE).await;
    stake(&devnet, USER, "5").await;
    let (user, provider) = (devnet.signer(USER), devnet.signer(PROVIDER).address());
    let domain = devnet.deployment().domain();
    let dir = TempDir::new().expect("tempdir");
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .to_string();
    let postgres = morpheus_testkit::test_database().expect("a PostgreSQL database");
    let mut router = spawn_router(&devnet, &dir, &addr, postgres.as_deref());
    let client = RouterClient::new(&format!("http://{addr}")).expect("client");
    wait_ready(&client, user.address()).await;

    // Eight loops of request + report until the router dies; each counts the reports it was
    // answered for, and the first accepted request is kept to replay after the restart.
    let (accepted, stop) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let replay = Arc::new(std::sync::Mutex::new(None));
    let mut loops = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (client, user, domain, model) =
            (client.clone(), user.clone(), domain.clone(), model_id);
        let (accepted, stop, replay) = (accepted.clone(), stop.clone(), replay.clone());
        loops.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let request = request(&user, model, &domain);
                let Ok(assignment) = client.request_compute(&request).await else {
                    break;
                };
                replay.lock().expect("lock").get_or_insert(request);
                let report = report(&user, assignment.message.sessionId, &domain);
                if client.report_usage(&report).await.is_err() {
                    break;
                }
                accepted.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
    // A voucher while the load runs, then the kill once enough reports are in.
    while accepted.load(Ordering::SeqCst) < 20 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let during = client
        .voucher(provider)
        .await
        .expect("voucher")
        .expect("credited");
    while accepted.load(Ordering::SeqCst) < 60 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    router.start_kill().expect("kill -9");
    router.wait().await.expect("reaped");
    stop.store(true, Ordering::Relaxed);
    while loops.join_next().await.is_some() {}
    let acked = accepted.load(Ordering::SeqCst);

    let _restarted = spawn_router(&devnet, &dir, &addr, postgres.as_deref());
    wait_ready(&client, user.address()).await;
    let after = client
        .voucher(provider)
        .await
        .expect("voucher")
        .expect("credited");
    let credited = after.message.cumulativeAmount;
    // Every answered report is there; at most the eight in flight at the kill are there too.
    assert!(
        credited >= U256::from(acked * TOKENS * PRICE)
            && credited <= U256::from((acked + 8) * TOKENS * PRICE),
        "{acked} reports answered, {credited} credited"
    );
    assert!(
        credited >= during.message.cumulativeAmount,
        "a voucher never decreases"
    );
    assert_eq!(
        after.message.sessions,
        credited / U256::from(TOKENS * PRICE),
        "sessions and credit agree"
    );
    // The allowance: never over the user's maximum, and a request it took is not taken again.
    let allowance = client.allowance(user.address()).await.expect("allowance");
    assert!(allowance.used <= allowance.user_max, "{allowance:?}");
    let first = replay.lock().expect("lock").clone().expect("a request");
    assert_refused(client.request_compute(&first).await, 409, "nonce");
    // And the restarted router carries on: one more pair adds exactly its credit.
    let assignment = client
        .request_compute(&request(&user, model_id, &domain))
        .await
        .expect("assigned after the restart");
    client
        .report_usage(&report(&user, assignment.message.sessionId, &domain))
        .await
        .expect("reported");
    let last = client
        .voucher(provider)
        .await
        .expect("voucher")
        .expect("credited");
    assert_eq!(
        last.message.cumulativeAmount,
        credited + U256::from(TOKENS * PRICE)
    );
    worker.stop().await;
}
