//! `morpheus devnet` with the tiny model, end to end: the deploy script on anvil, the worker and
//! router binaries, the gateway, a chat through it, the provider's claim paid on-chain; and the
//! `--keep-running` binary answering at the URL it prints until SIGTERM stops it and everything
//! it started.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::OnceLock,
    time::Duration,
};

use alloy::primitives::U256;
use morpheus_cli::devnet::{self, DevnetArgs};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Command,
    sync::Mutex,
};

/// One devnet at a time: each deploys with the forge script, which writes the repository's
/// `deployments/31337.json`, and two at once would share two cores between two workers.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// How long a devnet may take to be up (the tiny model converted on the first run included).
const UP_WITHIN: Duration = Duration::from_secs(600);

/// The directory of this build's binaries: `morpheus` (cargo builds it for this test) and
/// `morpheus-router` and `morpheus-worker`, built in the same profile on first use.
fn bin_dir() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            morpheus_testkit::workspace_binaries(
                Path::new(env!("CARGO_BIN_EXE_morpheus")),
                &["morpheus-router", "morpheus-worker"],
            )
        })
        .clone()
}

/// The flags of a test devnet: the tiny model, every port free, state in `state`.
fn flags(state: &Path) -> Vec<String> {
    morpheus_testkit::ensure_installed().expect("make deps");
    let root = morpheus_testkit::repo_root();
    let models = morpheus_testkit::cache_dir().join("devnet-models");
    let path = |p: &Path| p.display().to_string();
    let mut flags: Vec<String> = ["--model", "tiny", "--max-tokens", "24"]
        .into_iter()
        .map(String::from)
        .collect();
    for port in [
        "--rpc-port",
        "--router-port",
        "--worker-port",
        "--gateway-port",
    ] {
        flags.extend([port.to_string(), "0".to_string()]);
    }
    flags.extend([
        "--state-dir".into(),
        path(state),
        "--models-dir".into(),
        path(&models),
        "--root".into(),
        path(&root),
        "--bin-dir".into(),
        path(&bin_dir()),
    ]);
    flags
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_through_the_gateway_is_credited_and_paid_on_chain() {
    let _one = ONE_AT_A_TIME.lock().await;
    let state = tempfile::tempdir().expect("tempdir");
    let args = DevnetArgs::parse_flags(flags(state.path())).expect("flags");
    let summary = tokio::time::timeout(UP_WITHIN, devnet::run(args, std::future::pending()))
        .await
        .expect("the devnet finished in time")
        .expect("the devnet ran to its summary");

    assert!(summary.completion_tokens > 0, "{summary:?}");
    // The chain settled every token of the chat (prompt and completion).
    assert_eq!(
        summary.tokens,
        summary.prompt_tokens + summary.completion_tokens,
        "{summary:?}"
    );
    // MOR $20 and $0.002 per 1000 tokens (the deploy script's FixedPriceSource) make the
    // reference price 1e11 wei per token (docs/protocol.md, "Credit per token"), below the 2e-6
    // MOR the provider bids: that is what each token earns.
    let reference = U256::from(100_000_000_000u64);
    assert!(summary.bid_per_token > reference, "{summary:?}");
    assert_eq!(summary.price_per_token, reference, "{summary:?}");
    assert_eq!(
        summary.credited,
        U256::from(summary.tokens) * reference,
        "{summary:?}"
    );
    // The claim paid what the router credited, out of today's budget.
    assert_eq!(summary.paid, summary.credited, "{summary:?}");
    assert_eq!(
        summary.budget_left,
        summary.budget - summary.paid,
        "{summary:?}"
    );
    assert!(summary.claim_gas > 21_000, "{summary:?}");
    assert!(
        summary.gateway_url.starts_with("http://127.0.0.1:")
            && summary.gateway_url.ends_with("/v1"),
        "{summary:?}"
    );
    for log in ["anvil", "deploy", "prepare", "router", "worker"] {
        let file = state.path().join(format!("{log}.log"));
        assert!(file.is_file(), "no {}", file.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_running_serves_at_its_url_until_sigterm_and_leaves_no_process() {
    let _one = ONE_AT_A_TIME.lock().await;
    let state = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_morpheus"))
        .arg("devnet")
        .arg("--keep-running")
        .args(flags(state.path()))
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("morpheus starts");
    let pid = child.id().expect("running");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut seen = Vec::new();
    let url = tokio::time::timeout(UP_WITHIN, async {
        while let Some(line) = lines.next_line().await.expect("stdout") {
            let ready = line == "ready";
            seen.push(line);
            if ready {
                return lines.next_line().await.expect("stdout");
            }
        }
        None
    })
    .await
    .unwrap_or_else(|_| panic!("not ready within {UP_WITHIN:?}:\n{}", seen.join("\n")))
    .unwrap_or_else(|| panic!("ended before `ready`:\n{}", seen.join("\n")));
    let port = url
        .strip_prefix("http://127.0.0.1:")
        .and_then(|rest| rest.strip_suffix("/v1"))
        .and_then(|port| port.parse::<u16>().ok());
    assert!(
        port.is_some_and(|p| p != 0),
        "the line after `ready` is {url:?}"
    );

    let children = children_of(pid);
    let names: Vec<String> = children.iter().map(|&c| comm(c)).collect();
    for service in ["anvil", "morpheus-worker", "morpheus-router"] {
        assert!(
            names.iter().any(|n| n == service),
            "no {service} among {names:?}"
        );
    }

    // An OpenAI client's chat at the printed URL, after the devnet's own.
    let http = reqwest::Client::new();
    let models: Value = http
        .get(format!("{url}/models"))
        .send()
        .await
        .expect("GET /models")
        .json()
        .await
        .expect("a model list");
    let model = models["data"][0]["id"]
        .as_str()
        .expect("a served model")
        .to_string();
    let response = http
        .post(format!("{url}/chat/completions"))
        .bearer_auth("any")
        .json(&json!({
            "model": model,
            "messages": [{ "role": "user", "content": "Hello?" }],
            "max_tokens": 8,
        }))
        .send()
        .await
        .expect("POST /chat/completions");
    assert!(response.status().is_success(), "{}", response.status());
    let answer: Value = response.json().await.expect("a chat completion");
    assert!(
        answer["usage"]["completion_tokens"].as_u64().unwrap_or(0) > 0,
        "{answer}"
    );

    let output = morpheus_testkit::stop_with_signal(child, "TERM", Duration::from_secs(60)).await;
    assert!(
        output.status.success(),
        "exit after SIGTERM: {:?}",
        output.status
    );
    let mut rest = Vec::new();
    while let Some(line) = lines.next_line().await.expect("stdout") {
        rest.push(line);
    }
    assert!(
        rest.iter().any(|l| l.starts_with("stopped: gateway, ")),
        "no stop report in {rest:?}"
    );
    for (child, name) in children.iter().zip(&names) {
        let mut left = true;
        for _ in 0..50 {
            left = alive(*child);
            if !left {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            !left,
            "{name} ({child}) is still running after morpheus exited"
        );
    }
}

/// The processes whose parent is `pid` (from /proc).
fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| stat(p).is_some_and(|(_, ppid)| ppid == pid))
        .collect()
}

/// A process's state letter and parent, from `/proc/PID/stat` (the name may hold spaces and
/// parentheses: the fields after it start at the last `)`).
fn stat(pid: u32) -> Option<(char, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = text.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Running (a zombie has exited, it only waits to be reaped).
fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|(state, _)| state != 'Z')
}
