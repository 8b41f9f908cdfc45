//! The provider's claim survives `kill -9` at every point (`morpheus-worker claim --db`): before
//! the transaction is signed, signed (its hash recorded) but not sent, after it is sent and
//! before its receipt, after the receipt and before it is recorded. The run after the crash finishes what was interrupted, and over all of it the
//! provider's MOR balance rises by exactly what the router credited: nothing lost, nothing twice.

use std::{path::Path, process::Stdio, time::Duration};

use alloy::primitives::U256;
use morpheus_worker::{claim::CRASH_POINT_ENV, store::Store};
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Command,
};

use crate::{
    common::{Net, PROVIDER, worker_bin},
    worker_claim::serve_one,
};

/// `morpheus-worker claim --now --json` for the provider against `net`'s router, its state in
/// `db`; stops at `crash_point` when one is given.
fn claim_command(net: &Net, dir: &Path, crash_point: Option<&str>) -> Command {
    let deployment = dir.join("deployment.json");
    net.devnet
        .deployment()
        .save(&deployment)
        .expect("deployment file");
    let mut cmd = Command::new(worker_bin());
    cmd.arg("claim")
        .arg("--rpc-url")
        .arg(net.devnet.rpc_url())
        .arg("--deployment")
        .arg(&deployment)
        .arg("--router-url")
        .arg(net.router_url(""))
        .arg("--db")
        .arg(dir.join("worker.db"))
        .args(["--now", "--json"])
        .env(
            "MORPHEUS_PROVIDER_KEY",
            format!("{:?}", net.devnet.signer(PROVIDER).to_bytes()),
        )
        .env("NO_COLOR", "1")
        .env_remove(CRASH_POINT_ENV)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(point) = crash_point {
        cmd.env(CRASH_POINT_ENV, point);
    }
    cmd
}

/// Runs the claim until it reaches `point`, then kills it with SIGKILL.
async fn crash_at(net: &Net, dir: &Path, point: &str) {
    let mut child = claim_command(net, dir, Some(point))
        .spawn()
        .expect("morpheus-worker runs");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let marker = format!("{CRASH_POINT_ENV}={point}");
    let mut log = String::new();
    let reached = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.expect("stderr") {
            log.push_str(&line);
            log.push('\n');
            if line.contains(&marker) {
                return true;
            }
        }
        false
    })
    .await;
    assert!(
        matches!(reached, Ok(true)),
        "the claim never reached {point}:\n{log}"
    );
    child.start_kill().expect("kill -9");
    let status = child.wait().await.expect("exit status");
    assert!(!status.success(), "killed, not finished: {status}");
}

/// Runs the claim to its end; returns its JSON answer.
async fn claim_to_end(net: &Net, dir: &Path) -> Value {
    let out = tokio::time::timeout(
        Duration::from_secs(180),
        claim_command(net, dir, None).output(),
    )
    .await
    .expect("the claim ends")
    .expect("morpheus-worker runs");
    assert!(out.status.success(), "{}", morpheus_testkit::log_of(&out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", morpheus_testkit::log_of(&out)))
}

#[tokio::test]
async fn a_claim_killed_at_any_point_is_finished_by_the_next_run_and_pays_exactly_once() {
    let net = Net::start().await;
    let provider = net.devnet.signer(PROVIDER).address();
    let chain = net.devnet.protocol(PROVIDER).await.expect("connect");
    let dir = tempfile::tempdir().expect("temp dir");

    let mut all_credited = U256::ZERO;
    // (point, whether the node had the transaction, how an unsent claim ends in the journal)
    for (point, sent, unsent) in [
        ("before-sign", false, ("abandoned", "never sent")),
        (
            "before-send",
            false,
            ("failed", "does not know transaction"),
        ),
        ("after-send", true, ("", "")),
        ("after-receipt", true, ("", "")),
    ] {
        let credited = serve_one(&net).await;
        all_credited += credited;
        let start = chain.mor().balance_of(provider).await.expect("balance");
        crash_at(&net, dir.path(), point).await;
        let at_crash = chain.mor().balance_of(provider).await.expect("balance");
        assert_eq!(
            at_crash - start,
            if sent { credited } else { U256::ZERO },
            "{point}: what the chain paid when the process died"
        );

        let answer = claim_to_end(&net, dir.path()).await;
        let recovered = answer["recovered"].as_array().expect("recovered");
        assert_eq!(
            recovered.len(),
            1,
            "{point}: the interrupted claim, {answer}"
        );
        if sent {
            assert_eq!(recovered[0]["state"], "done", "{point}: {answer}");
            assert_eq!(
                recovered[0]["paid"],
                credited.to_string(),
                "{point}: {answer}"
            );
            assert!(
                answer["claimed"].is_null(),
                "{point}: nothing left to claim, {answer}"
            );
        } else {
            assert_eq!(recovered[0]["state"], unsent.0, "{point}: {answer}");
            assert!(
                recovered[0]["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains(unsent.1)),
                "{point}: {answer}"
            );
            assert_eq!(
                answer["claimed"]["paid"],
                credited.to_string(),
                "{point}: {answer}"
            );
        }
        let end = chain.mor().balance_of(provider).await.expect("balance");
        assert_eq!(end - start, credited, "{point}: exactly the credit, once");

        // And a run after that finds nothing to do.
        let again = claim_to_end(&net, dir.path()).await;
        assert!(
            again["recovered"].as_array().is_some_and(Vec::is_empty),
            "{again}"
        );
        assert!(again["claimed"].is_null(), "{point}: {again}");
        assert_eq!(
            chain.mor().balance_of(provider).await.expect("balance"),
            end
        );
    }

    // The journal counted each claim that paid once, with its gas: two recovered (the node had
    // them when the process died) and two sent after a crash that came before the node had one.
    let totals = Store::open(&dir.path().join("worker.db"))
        .expect("the worker's database")
        .claim_totals()
        .expect("totals");
    assert_eq!(totals.claims, 4, "{totals:?}");
    assert_eq!(totals.paid, all_credited, "{totals:?}");
    assert!(totals.gas_used > 4 * 21_000, "{totals:?}");
    net.stop().await;
}
