//! The `morpheus-router` binary shuts down gracefully on SIGTERM, as on Ctrl-C: what `kill`,
//! systemd and container runtimes send.

use std::{process::Stdio, time::Duration};

use morpheus_sdk::router::RouterClient;
use tempfile::TempDir;
use tokio::process::Command;

use crate::common::{Net, USER};

#[tokio::test]
async fn sigterm_stops_the_binary_cleanly() {
    let net = Net::start().await;
    let dir = TempDir::new().expect("tempdir");
    let deployment = dir.path().join("deployment.json");
    net.devnet
        .deployment()
        .save(&deployment)
        .expect("deployment file");
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    let child = Command::new(env!("CARGO_BIN_EXE_morpheus-router"))
        .arg("serve")
        .arg("--rpc-url")
        .arg(net.devnet.rpc_url())
        .arg("--deployment")
        .arg(&deployment)
        .arg("--db")
        .arg(dir.path().join("router.db"))
        .arg("--listen")
        .arg(addr.to_string())
        .env(
            "MORPHEUS_ROUTER_KEY",
            format!("{:?}", net.devnet.router_signer().to_bytes()),
        )
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("router starts");

    let client = RouterClient::new(&format!("http://{addr}")).expect("client");
    let user = net.devnet.signer(USER).address();
    let mut serving = false;
    for _ in 0..100 {
        if client.allowance(user).await.is_ok() {
            serving = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(serving, "the binary answers on {addr}");

    let pid = child.id().expect("running").to_string();
    let kill = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("kill");
    assert!(kill.success(), "kill -TERM {pid}");
    let output = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("stops within 10 s of SIGTERM")
        .expect("exit status");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "clean exit on SIGTERM: {}\n{log}",
        output.status
    );
    assert!(
        log.contains("shutting down") && log.contains("SIGTERM"),
        "the log says it shuts down on SIGTERM:\n{log}"
    );
    assert!(log.contains("stopped"), "the log says it stopped:\n{log}");
    net.stop().await;
}
