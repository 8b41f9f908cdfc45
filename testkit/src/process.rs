//! Checks shared by the services' binary tests: how a refusal looks to a client, and how a
//! process ends when it is sent a signal.

use std::{process::Output, time::Duration};

use tokio::process::{Child, Command};

/// Asserts `result` is `peer`'s refusal (`"router"` or `"provider"`) with HTTP `status` and a
/// message containing `words`.
pub fn assert_refused<T: std::fmt::Debug>(
    result: morpheus_sdk::Result<T>,
    peer: &str,
    status: u16,
    words: &str,
) {
    match result {
        Err(morpheus_sdk::Error::Http {
            peer: p,
            status: s,
            message,
            ..
        }) if p == peer => {
            assert_eq!(s, status, "status of {peer}'s refusal {message:?}");
            assert!(
                message.contains(words),
                "{peer}'s refusal {message:?} should mention {words:?}"
            );
        }
        other => {
            panic!("expected a {status} refusal by the {peer} mentioning {words:?}, got {other:?}")
        }
    }
}

/// Sends `signal` (`"TERM"`, `"INT"`) to `child` with `kill` and waits at most `within` for it to
/// exit; returns what it printed (pipe its stdout and stderr to see them) and its status.
pub async fn stop_with_signal(child: Child, signal: &str, within: Duration) -> Output {
    let pid = child.id().expect("the child is running").to_string();
    let kill = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(&pid)
        .status()
        .await
        .expect("kill runs");
    assert!(kill.success(), "kill -{signal} {pid}");
    tokio::time::timeout(within, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("still running {within:?} after SIG{signal}"))
        .expect("the child's exit status")
}

/// Stdout and stderr of `output`, one after the other, for assertions on a log.
pub fn log_of(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
