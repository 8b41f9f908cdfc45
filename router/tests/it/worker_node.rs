//! `morpheus-worker run --config worker.toml`, the provider's node, against a devnet and a
//! router: it registers the provider, its model and its bid from the configuration (and on a
//! restart sends only what changed), serves a chat, and claims the credit by itself, the
//! provider's MOR balance rising by exactly what the router credited. Bad settings are refused at
//! start with one line naming them.

use std::{path::Path, process::Stdio, time::Duration};

use alloy::primitives::U256;
use morpheus_sdk::{
    merkle::ModelTree,
    openai::{ChatCompletionRequest, ChatMessage},
    provider::ProviderClient,
};
use morpheus_testkit::{log_of, stop_with_signal, tiny_model, tiny_weights};
use tokio::process::{Child, Command};

use crate::{
    common::{Net, PROVIDER, worker_bin},
    worker_claim::serve_one,
};

/// A free port on 127.0.0.1 for the node to listen on.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// `worker.toml` for the provider at `port` bidding `price` MOR per token.
fn config(net: &Net, dir: &Path, port: u16, price: &str) -> String {
    let deployment = dir.join("deployment.json");
    net.devnet
        .deployment()
        .save(&deployment)
        .expect("deployment file");
    format!(
        r#"rpc_url = "{rpc}"
deployment = "{deployment}"
listen = "127.0.0.1:{port}"
data_dir = "{state}"
startup_retry_secs = 2

[model]
dir = "{model}"
name = "tiny"
price_per_token = "{price}"
capacity = 16

[engine]
threads = 1
max_batch = 4

[claims]
router_urls = ["{router}"]
interval_secs = 1
# Gas priced at MOR's on-chain price with ETH nearly worthless: one chat's credit is worth a claim.
eth_usd = "0.0000000001"
"#,
        rpc = net.devnet.rpc_url(),
        deployment = deployment.display(),
        state = dir.join("state").display(),
        model = tiny_model().display(),
        router = net.router_url(""),
    )
}

fn command(net: &Net, config_path: &Path) -> Command {
    let mut cmd = Command::new(worker_bin());
    cmd.arg("run")
        .arg("--config")
        .arg(config_path)
        .env(
            "MORPHEUS_PROVIDER_KEY",
            format!("{:?}", net.devnet.signer(PROVIDER).to_bytes()),
        )
        .env(
            "ORT_DYLIB_PATH",
            morpheus_testkit::ort_library().expect("onnx runtime"),
        )
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// `morpheus-worker <args> --config <config_path> --json`, which must succeed; its JSON answer.
async fn provider_cmd(net: &Net, config_path: &Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new(worker_bin())
        .args(args)
        .arg("--config")
        .arg(config_path)
        .arg("--json")
        .env(
            "MORPHEUS_PROVIDER_KEY",
            format!("{:?}", net.devnet.signer(PROVIDER).to_bytes()),
        )
        .output()
        .await
        .expect("runs");
    assert!(out.status.success(), "{args:?}: {}", log_of(&out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", log_of(&out)))
}

/// Starts the node and waits until it serves on `port`.
async fn start(net: &Net, config_path: &Path, port: u16) -> Child {
    let mut child = command(net, config_path)
        .spawn()
        .expect("morpheus-worker runs");
    let url = format!("http://127.0.0.1:{port}/v1/models");
    let client = reqwest::Client::new();
    for _ in 0..600 {
        if client
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return child;
        }
        if let Some(status) = child.try_wait().expect("status") {
            let out = child.wait_with_output().await.expect("output");
            panic!("the node exited ({status}):\n{}", log_of(&out));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the node did not serve within 120 s");
}

/// Runs the node with `config_text`, which must be refused; returns its one-line error.
async fn refused(net: &Net, dir: &Path, config_text: &str) -> String {
    let path = dir.join("bad.toml");
    std::fs::write(&path, config_text).expect("config");
    let out = tokio::time::timeout(Duration::from_secs(60), command(net, &path).output())
        .await
        .expect("refused promptly")
        .expect("runs");
    assert!(!out.status.success(), "should refuse:\n{}", log_of(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    stderr
        .lines()
        .find(|l| l.starts_with("Error:"))
        .unwrap_or_else(|| panic!("no error line:\n{stderr}"))
        .to_string()
}

#[tokio::test]
async fn the_node_sets_itself_up_serves_and_claims_exactly_the_credit() {
    let mut net = Net::without_provider().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let config_path = dir.path().join("worker.toml");
    std::fs::write(&config_path, config(&net, dir.path(), port, "0.00000005")).expect("config");

    let chain = net.devnet.protocol(PROVIDER).await.expect("connect");
    let registry = chain.registry();
    let provider = net.devnet.signer(PROVIDER).address();
    let node = start(&net, &config_path, port).await;

    // Registered, the model registered by its root and claimed, the bid at the price.
    let record = registry.provider(provider).await.expect("record");
    assert_eq!(record.endpoint, format!("http://127.0.0.1:{port}"));
    let root = ModelTree::from_file(tiny_weights(), |_, _| {})
        .expect("tree")
        .root();
    let model_id = registry
        .compute_model_id(provider, root, "tiny")
        .await
        .expect("id");
    assert!(
        registry
            .has_model_claim(provider, model_id)
            .await
            .expect("claim")
    );
    let bid = registry.bid(provider, model_id).await.expect("bid");
    assert_eq!(
        (bid.pricePerToken, bid.capacity),
        (U256::from(50_000_000_000u64), U256::from(16))
    );
    net.model_id = model_id;

    // A chat through the network, reported, credited; the node claims it by itself.
    let before = chain.mor().balance_of(provider).await.expect("balance");
    let credited = serve_one(&net).await;
    let mut paid = U256::ZERO;
    for _ in 0..120 {
        paid = chain.mor().balance_of(provider).await.expect("balance") - before;
        if !paid.is_zero() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(paid, credited, "claimed by the node: exactly the credit");

    // The metrics show it, once the node has the receipt.
    let mut metrics = String::new();
    for _ in 0..40 {
        metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        if metrics.contains("morpheus_worker_claims_total 1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        metrics.contains("morpheus_worker_claims_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("morpheus_worker_owed_mor 0\n"),
        "{metrics}"
    );

    // kill -9 in the middle of a session: the restarted node still counts what it served, so
    // the assignment's tokenMax holds across the crash and the receipt counts both requests.
    let assignment = net.assignment().await;
    let client = ProviderClient::new(&assignment.message.endpoint).expect("client");
    let ask = |max_tokens| ChatCompletionRequest {
        model: "tiny".into(),
        messages: vec![ChatMessage::user("Count to three.")],
        max_tokens: Some(max_tokens),
        temperature: Some(0.0),
        ..Default::default()
    };
    let first = client.chat(&assignment, &ask(8)).await.expect("chat");
    let mut node = node;
    node.start_kill().expect("kill -9");
    node.wait().await.expect("killed");
    let node = start(&net, &config_path, port).await;
    let second = client.chat(&assignment, &ask(400)).await.expect("chat");
    let used = first.usage.total_tokens + second.usage.total_tokens;
    let token_max = u32::try_from(assignment.message.tokenMax).expect("small");
    assert!(
        used <= token_max,
        "{used} tokens served of a tokenMax of {token_max}"
    );
    let receipt = client.receipt(&assignment).await.expect("receipt");
    assert_eq!(
        receipt.message.tokens,
        U256::from(used),
        "both requests counted"
    );

    // SIGTERM: a clean stop. A restart with the same settings sends nothing; a new price
    // updates the bid and nothing else.
    let out = stop_with_signal(node, "TERM", Duration::from_secs(30)).await;
    assert!(out.status.success(), "{}", log_of(&out));
    let node = start(&net, &config_path, port).await;
    let out = stop_with_signal(node, "TERM", Duration::from_secs(30)).await;
    let log = log_of(&out);
    assert!(
        log.contains("on-chain standing matches the configuration"),
        "{log}"
    );
    std::fs::write(&config_path, config(&net, dir.path(), port, "0.00000004")).expect("config");
    let node = start(&net, &config_path, port).await;
    let bid = registry.bid(provider, model_id).await.expect("bid");
    assert_eq!(bid.pricePerToken, U256::from(40_000_000_000u64));
    let out = stop_with_signal(node, "TERM", Duration::from_secs(30)).await;
    let log = log_of(&out);
    assert!(log.contains("updated the bid"), "{log}");
    assert!(
        !log.contains("registered"),
        "nothing registered twice: {log}"
    );
    assert_eq!(
        chain.mor().balance_of(provider).await.expect("balance") - before,
        credited,
        "no claim twice across restarts"
    );

    // The provider's commands: status, a new bid, deregistering, the stake after the cooldown.
    let status = provider_cmd(&net, &config_path, &["status"]).await;
    assert_eq!(status["status"], "active", "{status}");
    assert_eq!(
        status["bids"][0]["pricePerToken"], "40000000000",
        "{status}"
    );
    assert_eq!(
        status["routers"][0]["paid"],
        credited.to_string(),
        "{status}"
    );
    assert_eq!(status["routers"][0]["owed"], "0", "{status}");
    assert_eq!(status["claims"]["claims"], 1, "{status}");
    assert_eq!(status["claims"]["paid"], credited.to_string(), "{status}");
    assert!(status["budget"]["left"].as_str().is_some(), "{status}");
    let set = provider_cmd(
        &net,
        &config_path,
        &["bid", "set", "--price", "0.00000003", "--capacity", "8"],
    )
    .await;
    assert_eq!(set["modelId"], model_id.to_string(), "{set}");
    let bid = registry.bid(provider, model_id).await.expect("bid");
    assert_eq!(
        (bid.pricePerToken, bid.capacity),
        (U256::from(30_000_000_000u64), U256::from(8))
    );
    let gone = provider_cmd(&net, &config_path, &["deregister"]).await;
    assert_eq!(gone["bidsDeleted"], 1, "{gone}");
    let stake = registry.provider(provider).await.expect("record").stake;
    net.devnet.advance_days(30).await.expect("time passes");
    let before = chain.mor().balance_of(provider).await.expect("balance");
    let back = provider_cmd(&net, &config_path, &["withdraw"]).await;
    assert_eq!(back["withdrawn"], stake.to_string(), "{back}");
    assert_eq!(
        chain.mor().balance_of(provider).await.expect("balance") - before,
        stake
    );

    // Bad settings: one line naming each.
    let good = config(&net, dir.path(), free_port(), "0.00000004");
    let line = refused(&net, dir.path(), &good.replace("\"0.00000004\"", "\"-3\"")).await;
    assert!(
        line.contains("model.price_per_token") && line.contains("below zero"),
        "{line}"
    );
    let line = refused(
        &net,
        dir.path(),
        &good.replace(&net.devnet.rpc_url(), "http://127.0.0.1:9"),
    )
    .await;
    assert!(
        line.contains("rpc_url") && line.contains("still failing"),
        "{line}"
    );
    let other = dir.path().join("other-chain.json");
    let mut wrong = net.devnet.deployment();
    wrong.chain_id = 1;
    wrong.save(&other).expect("deployment");
    let line = refused(
        &net,
        dir.path(),
        &good.replace(
            &dir.path().join("deployment.json").display().to_string(),
            &other.display().to_string(),
        ),
    )
    .await;
    assert!(line.to_lowercase().contains("chain"), "{line}");
    let line = refused(
        &net,
        dir.path(),
        &format!("provider = \"{}\"\n{good}", net.devnet.signer(1).address()),
    )
    .await;
    assert!(line.contains("the configuration names"), "{line}");
    net.stop().await;
}

#[tokio::test]
async fn the_node_serves_several_models_behind_its_one_endpoint() {
    let mut net = Net::without_provider().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let config_path = dir.path().join("worker.toml");
    // The tiny model twice, registered under two names (two model ids), bid at two prices.
    let one = config(&net, dir.path(), port, "0.00000005");
    let model = one
        .split("[model]")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .expect("the [model] table")
        .to_string();
    let two = format!(
        "[[models]]{model}\n\n[[models]]{}\n",
        model
            .replace("name = \"tiny\"", "name = \"tiny-b\"")
            .replace("\"0.00000005\"", "\"0.00000004\"")
    );
    let text = one.replace(&format!("[model]{model}\n"), "") + &two;
    std::fs::write(&config_path, &text).expect("config");

    let chain = net.devnet.protocol(PROVIDER).await.expect("connect");
    let registry = chain.registry();
    let provider = net.devnet.signer(PROVIDER).address();
    let node = start(&net, &config_path, port).await;
    let root = ModelTree::from_file(tiny_weights(), |_, _| {})
        .expect("tree")
        .root();
    let mut ids = Vec::new();
    for (name, price) in [("tiny", 50_000_000_000u64), ("tiny-b", 40_000_000_000)] {
        let id = registry
            .compute_model_id(provider, root, name)
            .await
            .expect("id");
        assert!(registry.has_model_claim(provider, id).await.expect("claim"));
        let bid = registry.bid(provider, id).await.expect("bid");
        assert_eq!(bid.pricePerToken, U256::from(price), "{name}");
        ids.push(id);
    }
    let listed: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}/v1/models"))
        .await
        .expect("models")
        .json()
        .await
        .expect("json");
    let listed_ids: Vec<_> = listed["data"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|m| m["model_id"].as_str().expect("an id").to_string())
        .collect();
    assert_eq!(
        listed_ids,
        ids.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "{listed}"
    );

    // A session on each model, through the router (its liveness check names the model): each
    // served by its own model's API, and the node claims both credits in one voucher.
    let before = chain.mor().balance_of(provider).await.expect("balance");
    let mut credited = U256::ZERO;
    for id in &ids {
        net.model_id = *id;
        credited += serve_one(&net).await;
    }
    let mut paid = U256::ZERO;
    for _ in 0..120 {
        paid = chain.mor().balance_of(provider).await.expect("balance") - before;
        if paid == credited {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(paid, credited, "both models' credit claimed by the node");

    let out = stop_with_signal(node, "TERM", Duration::from_secs(30)).await;
    assert!(out.status.success(), "{}", log_of(&out));
}
