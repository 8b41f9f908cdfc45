//! The `morpheus-router` binary: serves until Ctrl-C or SIGTERM (what `kill`, systemd and
//! container runtimes send) and then stops gracefully; refuses a key that is not a router's.

use std::{process::Stdio, time::Duration};

use morpheus_sdk::router::RouterClient;
use morpheus_testkit::{Devnet, log_of, stop_with_signal};
use tempfile::TempDir;
use tokio::process::Command;

use crate::common::USER;

fn command(devnet: &Devnet, dir: &TempDir, key: String, listen: &str) -> Command {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_morpheus-router"));
    let postgres = morpheus_testkit::test_database().expect("a PostgreSQL database");
    let mut cmd = devnet
        .router_command(bin, dir.path(), listen, postgres.as_deref())
        .expect("deployment file");
    cmd.env("MORPHEUS_ROUTER_KEY", key)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn key_hex(devnet: &Devnet, index: usize) -> String {
    format!("{:?}", devnet.signer(index).to_bytes())
}

/// Starts the binary, waits until it answers, sends `signal`; returns its log after a clean exit.
async fn serve_then_signal(signal: &str) -> String {
    let devnet = Devnet::start().await.expect("devnet");
    let dir = TempDir::new().expect("tempdir");
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    let child = command(&devnet, &dir, key_hex(&devnet, 1), &addr.to_string())
        .spawn()
        .expect("router starts");
    let client = RouterClient::new(&format!("http://{addr}")).expect("client");
    let user = devnet.signer(USER).address();
    let mut answered = None;
    for _ in 0..100 {
        if let Ok(a) = client.allowance(user).await {
            answered = Some(a);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered.is_some(), "the binary answers on {addr}");
    let output = stop_with_signal(child, signal, Duration::from_secs(10)).await;
    let log = log_of(&output);
    assert!(
        output.status.success(),
        "clean exit on SIG{signal}: {}\n{log}",
        output.status
    );
    assert!(log.contains("stopped"), "the log says it stopped:\n{log}");
    log
}

#[tokio::test]
async fn serves_until_ctrl_c() {
    let log = serve_then_signal("INT").await;
    assert!(log.contains("shutting down"), "{log}");
}

#[tokio::test]
async fn sigterm_stops_the_binary_cleanly() {
    let log = serve_then_signal("TERM").await;
    assert!(
        log.contains("shutting down") && log.contains("SIGTERM"),
        "the log says it shuts down on SIGTERM:\n{log}"
    );
}

#[tokio::test]
async fn refuses_a_key_that_is_not_a_router() {
    let devnet = Devnet::start().await.expect("devnet");
    let dir = TempDir::new().expect("tempdir");
    let output = command(&devnet, &dir, key_hex(&devnet, 5), "127.0.0.1:0")
        .output()
        .await
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("not an authorised router signer"),
        "stderr: {stderr}"
    );
}
