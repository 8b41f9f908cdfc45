//! The chain index (`chain_index/`): the registry's facts followed through its events between
//! requests, resumed from the database after a restart, and indexed again from the fork after
//! a reorganisation (anvil's `evm_snapshot`/`evm_revert` replace blocks by others of the same
//! numbers).

use std::time::Duration;

use alloy::{
    primitives::{B256, U256},
    providers::{Provider, ProviderBuilder},
};

use crate::common::{Net, PRICE, PROVIDER, assert_refused, forward_on};

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("{name} in /metrics"))
        .round() as u64
}

async fn rpc(net: &Net, method: &'static str) -> serde_json::Value {
    let url = net.devnet.rpc_url().parse().expect("url");
    ProviderBuilder::new()
        .connect_http(url)
        .raw_request(method.into(), ())
        .await
        .unwrap_or_else(|e| panic!("{method}: {e}"))
}

async fn chain_head(net: &Net) -> u64 {
    let url = net.devnet.rpc_url().parse().expect("url");
    ProviderBuilder::new()
        .connect_http(url)
        .get_block_number()
        .await
        .expect("block number")
}

/// Waits (up to 10 s) until the router's index holds block `block` without any request.
async fn indexed(net: &Net, block: u64) -> String {
    for _ in 0..100 {
        let text = net.metrics().await;
        if metric(&text, "morpheus_router_index_block") >= block {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the index did not reach block {block} within 10 s");
}

async fn listed_price(net: &Net) -> U256 {
    let list = net.router.providers(net.model_id).await.expect("providers");
    assert_eq!(list.providers.len(), 1, "{list:?}");
    list.providers[0].price_per_token
}

#[tokio::test]
async fn the_index_follows_the_registry_between_requests_and_resumes_after_a_restart() {
    let mut net = Net::start().await;
    // No request yet: the follower indexes the chain from the deployment block by itself.
    let head = chain_head(&net).await;
    indexed(&net, head).await;
    assert_eq!(
        net.db_count("SELECT block FROM chain_index WHERE id = 1"),
        i64::try_from(head).expect("small")
    );
    assert_eq!(
        net.db_count("SELECT COUNT(*) FROM chain_facts WHERE kind IN ('model', 'bids', 'claim')"),
        3,
        "the tiny model, its one bid and the provider's claim on it"
    );

    // A new price, again without a request: in the database before any request asks.
    net.bid(U256::from(PRICE / 2), 16).await;
    indexed(&net, head + 1).await;
    assert_eq!(listed_price(&net).await, U256::from(PRICE / 2));

    // A restart resumes from the stored block: nothing to index, so no step is taken.
    net.restart_router().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let text = net.metrics().await;
    assert_eq!(metric(&text, "morpheus_router_index_block"), head + 1);
    assert_eq!(metric(&text, "morpheus_router_index_calls_total"), 0);
    assert_eq!(listed_price(&net).await, U256::from(PRICE / 2));

    // What changed while it was down is read from the events after the stored block.
    net.stop_router().await;
    net.bid(U256::from(PRICE / 4), 16).await;
    net.start_router().await;
    assert_eq!(listed_price(&net).await, U256::from(PRICE / 4));
    assert_eq!(
        metric(&net.metrics().await, "morpheus_router_index_calls_total"),
        1,
        "one step, from the stored block to the head"
    );
    net.stop().await;
}

#[tokio::test]
async fn a_reorganisation_is_indexed_again_from_its_fork() {
    let net = Net::start().await;
    let fork = chain_head(&net).await;
    indexed(&net, fork).await;
    let snapshot = rpc(&net, "evm_snapshot").await;

    // On the branch to be replaced: a new price, and a model registered only there.
    net.bid(U256::from(PRICE / 2), 16).await;
    let orphan = net
        .devnet
        .register_tiny_model(PROVIDER, "orphan")
        .await
        .expect("register");
    assert_eq!(listed_price(&net).await, U256::from(PRICE / 2));
    assert!(
        net.router.providers(orphan).await.is_ok(),
        "known on its branch"
    );
    let replaced = chain_head(&net).await;
    indexed(&net, replaced).await;

    // The replacement: back to the fork, another price, and one block more than the branch
    // replaced (so the router sees a higher head, whose ancestors are not the ones it indexed).
    let url = net.devnet.rpc_url().parse().expect("url");
    let reverted: bool = ProviderBuilder::new()
        .connect_http(url)
        .raw_request("evm_revert".into(), (snapshot,))
        .await
        .expect("evm_revert");
    assert!(reverted);
    assert_eq!(chain_head(&net).await, fork);
    net.bid(U256::from(PRICE / 4), 16).await;
    while chain_head(&net).await <= replaced {
        rpc(&net, "evm_mine").await;
    }

    assert_eq!(listed_price(&net).await, U256::from(PRICE / 4));
    assert_refused(net.router.providers(orphan).await, 404, "is not registered");
    let text = net.metrics().await;
    assert_eq!(metric(&text, "morpheus_router_index_reorgs_total"), 1);
    assert_eq!(
        net.db_count(&format!(
            "SELECT COUNT(*) FROM chain_facts WHERE kind = 'model' AND id = '{}'",
            format!("{orphan:?}").to_lowercase()
        )),
        0,
        "the orphaned model is gone from the database too"
    );
    assert_ne!(orphan, B256::ZERO);
    net.stop().await;
}

#[tokio::test]
async fn the_index_catches_up_by_itself_after_the_node_was_unreachable() {
    let (net, chain) = Net::with_chain_forwarded().await;
    let head = chain_head(&net).await;
    indexed(&net, head).await;

    // The node goes away for the router (the forwarder stops); meanwhile the bid changes.
    chain.abort();
    net.bid(U256::from(PRICE / 2), 16).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        net.router.providers(net.model_id).await.is_err(),
        "the chain is unreachable"
    );

    // Back at the same address: the follower, backing off meanwhile, catches up without a
    // request.
    let listen = net.config.rpc_url.trim_start_matches("http://").to_string();
    let (_, back) = forward_on(&listen, &net.devnet.rpc_url());
    indexed(&net, head + 1).await;
    assert_eq!(listed_price(&net).await, U256::from(PRICE / 2));
    back.abort();
    net.stop().await;
}
