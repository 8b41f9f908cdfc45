//! The `morpheus` binary's own commands: the keystore (`key new | import | show`), the account
//! (`stake | unstake | withdraw | allowance`) on a real devnet, `models`, and bad settings, each
//! failing with one line that names what was wrong.

use std::{
    io::Write,
    path::Path,
    process::{Command, Output, Stdio},
};

use alloy::{
    hex,
    primitives::{U256, utils::parse_ether},
};
use morpheus_sdk::contracts::GGUF;
use morpheus_testkit::Devnet;
use tempfile::TempDir;

/// `morpheus ARGS` with its home in `home`, the password in the environment, optional stdin.
fn morpheus(home: &Path, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_morpheus"));
    cmd.args(args)
        .env("MORPHEUS_HOME", home)
        .env("MORPHEUS_PASSWORD", "a test password")
        .env_remove("MORPHEUS_KEY")
        .env_remove("MORPHEUS_CONFIG")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run morpheus");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write stdin");
    }
    child.wait_with_output().expect("morpheus output")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts `out` failed with an error mentioning every one of `words`.
fn assert_failed(out: &Output, words: &[&str]) {
    assert!(!out.status.success(), "should fail: {}", stdout(out));
    let err = stderr(out);
    for w in words {
        assert!(err.contains(w), "{err:?} should mention {w:?}");
    }
}

#[test]
fn keys_are_created_imported_and_shown_never_echoed() {
    let home = TempDir::new().expect("tempdir");
    let created = morpheus(home.path(), &["key", "new"], &[], None);
    assert!(created.status.success(), "{}", stderr(&created));
    let address = stdout(&created).trim().to_string();
    assert!(
        address.starts_with("0x") && address.len() == 42,
        "{address}"
    );
    let shown = morpheus(home.path(), &["key", "show"], &[], None);
    assert_eq!(stdout(&shown).trim(), address);

    // A second key is refused unless forced; an import from stdin replaces it when forced.
    let key = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
    let refused = morpheus(home.path(), &["key", "import"], &[], Some(key));
    assert_failed(&refused, &["--force"]);
    let imported = morpheus(home.path(), &["key", "import", "--force"], &[], Some(key));
    assert!(imported.status.success(), "{}", stderr(&imported));
    assert_eq!(
        stdout(&imported).trim().to_lowercase(),
        "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
    );
    let text = std::fs::read_to_string(home.path().join("key.json")).expect("keystore");
    assert!(
        !text.contains(key.trim_start_matches("0x")),
        "encrypted at rest"
    );

    // A bad key names its source and is not echoed; a wrong password says so.
    let bad = morpheus(
        home.path(),
        &["key", "import", "--force"],
        &[],
        Some("0xsecretsecret"),
    );
    assert_failed(&bad, &["standard input"]);
    assert!(!stderr(&bad).contains("secretsecret"));
    let json = morpheus(home.path(), &["key", "show", "--json"], &[], None);
    let value: serde_json::Value = serde_json::from_str(&stdout(&json)).expect("json");
    assert_eq!(
        value["address"].as_str().map(str::to_lowercase).as_deref(),
        Some("0x70997970c51812dc3a010c7d01b50e0d17dc79c8")
    );
}

#[test]
fn bad_settings_fail_with_one_line_naming_them() {
    let home = TempDir::new().expect("tempdir");
    let missing = morpheus(
        home.path(),
        &["--config", "/nonexistent/m.toml", "models"],
        &[],
        None,
    );
    assert_failed(&missing, &["/nonexistent/m.toml"]);
    std::fs::write(home.path().join("config.toml"), "routr_url = \"x\"\n").expect("write");
    let unknown = morpheus(home.path(), &["models"], &[], None);
    assert_failed(&unknown, &["routr_url", "config.toml"]);
    std::fs::remove_file(home.path().join("config.toml")).expect("rm");
    let no_key = morpheus(home.path(), &["allowance"], &[], None);
    assert_failed(&no_key, &["morpheus key new"]);
    let amount = morpheus(
        home.path(),
        &["stake", "-3"],
        &[("MORPHEUS_KEY", &hex::encode_prefixed([7u8; 32]))],
        None,
    );
    assert_failed(&amount, &["stake", "negative"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stake_unstake_withdraw_and_the_allowance_on_a_devnet() {
    let devnet = Devnet::start().await.expect("devnet");
    let home = TempDir::new().expect("tempdir");
    let deployment = home.path().join("deployment.json");
    devnet
        .deployment()
        .save(&deployment)
        .expect("save deployment");
    let user = devnet.signer(5);
    let key = hex::encode_prefixed(user.credential().to_bytes());
    let rpc = devnet.rpc_url();
    let env = [
        ("MORPHEUS_KEY", key.as_str()),
        ("MORPHEUS_RPC_URL", rpc.as_str()),
        (
            "MORPHEUS_DEPLOYMENT",
            deployment.to_str().expect("utf-8 path"),
        ),
        // No router runs: the chain's figures still show, the router's say why not.
        ("MORPHEUS_ROUTER_URL", "http://127.0.0.1:9"),
    ];
    let run = |args: &'static [&'static str]| {
        let home = home.path().to_path_buf();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        async move {
            tokio::task::spawn_blocking(move || {
                let env: Vec<(&str, &str)> =
                    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                morpheus(&home, args, &env, None)
            })
            .await
            .expect("join")
        }
    };
    let staked = run(&["stake", "5", "--json"]).await;
    assert!(staked.status.success(), "{}", stderr(&staked));
    let view: serde_json::Value = serde_json::from_str(&stdout(&staked)).expect("json");
    let wei = |v: &serde_json::Value| {
        v.as_str()
            .and_then(|s| s.parse::<U256>().ok())
            .expect("amount")
    };
    assert_eq!(wei(&view["staked"]), parse_ether("5").expect("5"));
    assert!(view["transaction"].is_string());
    assert!(
        view["routerError"].is_string(),
        "the router is down: {view}"
    );
    let chain_stake = devnet
        .protocol(0)
        .await
        .expect("connect")
        .session_router()
        .stake_of(user.address())
        .await
        .expect("stake");
    assert_eq!(chain_stake.staked, parse_ether("5").expect("5"));

    let too_much = run(&["unstake", "50"]).await;
    assert_failed(&too_much, &["unstake", "5"]);
    let unstaked = run(&["unstake", "2"]).await;
    assert!(unstaked.status.success(), "{}", stderr(&unstaked));
    let early = run(&["withdraw"]).await;
    assert!(
        !early.status.success(),
        "withdrawable only from the next UTC day"
    );
    devnet.advance_days(1).await.expect("a day");
    let withdrawn = run(&["withdraw"]).await;
    assert!(withdrawn.status.success(), "{}", stderr(&withdrawn));
    let shown = run(&["allowance"]).await;
    let text = stdout(&shown);
    assert!(text.contains("staked    3"), "{text}");
    assert!(text.contains("router    unreachable"), "{text}");

    // `models` lists what the registry holds, by name and format.
    let registry = devnet.protocol(2).await.expect("connect").registry();
    let id = registry
        .register_model(
            alloy::primitives::B256::repeat_byte(4),
            3,
            GGUF,
            "tiny-for-the-cli",
        )
        .await
        .expect("register");
    let listed = run(&["models"]).await;
    let text = stdout(&listed);
    assert!(
        text.contains(&id.to_string())
            && text.contains("tiny-for-the-cli (gguf, 3 MiB)")
            && text.contains("no bids"),
        "{text}"
    );
    let down = run(&["--rpc-url", "http://127.0.0.1:9", "models"]).await;
    assert_failed(&down, &["127.0.0.1:9"]);
}
