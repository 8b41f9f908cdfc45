//! The provider's commands beside `run`: `status`, `bid set`, `bid delete`, `deregister`,
//! `withdraw`. Each reads the node's `worker.toml` for the chain and the routers, and prints
//! lines for people or, with `--json`, one JSON object for scripts.

use alloy::primitives::{Address, B256, U256, utils::format_ether};
use eyre::{Result, WrapErr, bail, eyre};
use morpheus_sdk::{Deployment, contracts::Protocol};
use morpheus_worker::{
    claim,
    node::{NodeConfig, config::check_bid},
    store::Store,
};
use serde_json::{Value, json};

use crate::cli::{BidCmd, NodeArgs};

/// The connection the command acts through, as the provider.
async fn connect(args: &NodeArgs) -> Result<(NodeConfig, Protocol, Address)> {
    let cfg = NodeConfig::load(&args.config)?;
    let signer = cfg.signer(args.provider_key.as_deref())?;
    let provider = signer.address();
    let deployment = Deployment::load(&cfg.deployment)
        .wrap_err_with(|| format!("deployment: reading {}", cfg.deployment.display()))?;
    let protocol = Protocol::connect(&cfg.rpc_url, deployment, Some(signer))
        .await
        .wrap_err_with(|| format!("rpc_url: connecting to {}", cfg.rpc_url))?;
    Ok((cfg, protocol, provider))
}

fn print(args: &NodeArgs, value: &Value, lines: &[String]) {
    if args.json {
        println!("{value}");
    } else {
        for l in lines {
            println!("{l}");
        }
    }
}

const STATUS: [&str; 3] = ["not registered", "active", "deregistered"];

/// `morpheus-worker status`.
pub(crate) async fn status(args: NodeArgs) -> Result<()> {
    let (cfg, protocol, provider) = connect(&args).await?;
    let registry = protocol.registry();
    let sessions = protocol.session_router();
    let pool = protocol.pool();
    let (record, bids, budget, reputation) = tokio::try_join!(
        registry.provider(provider),
        registry.bids_of_provider(provider, 0, 100),
        pool.today(),
        sessions.reputation(provider),
    )?;
    let status = STATUS
        .get(record.status as usize)
        .copied()
        .unwrap_or("unknown");
    let mut lines = vec![format!(
        "provider {provider}: {status} at {:?}, {} MOR staked{}",
        record.endpoint,
        format_ether(record.stake),
        if record.unlockAt.is_zero() {
            String::new()
        } else {
            format!(", unlocking at {}", record.unlockAt)
        }
    )];
    let mut bids_json = Vec::new();
    for bid in &bids {
        let name = registry
            .model(bid.modelId)
            .await
            .map(|m| m.name)
            .unwrap_or_default();
        lines.push(format!(
            "bid: {name:?} ({}) at {} MOR per token, {} sessions",
            bid.modelId,
            format_ether(bid.pricePerToken),
            bid.capacity
        ));
        bids_json.push(json!({"modelId": bid.modelId, "name": name, "pricePerToken": bid.pricePerToken.to_string(), "capacity": bid.capacity.to_string()}));
    }
    let routers = claim::router_clients(&cfg.claims.router_urls)?;
    let mut routers_json = Vec::new();
    for answer in claim::owed(&protocol, &routers, provider).await {
        match &answer.owed {
            Ok(Some(o)) => {
                let record = sessions.claim_record(o.router, provider).await?;
                let paid = U256::from(record.paid) + U256::from(record.bootstrapPaid);
                lines.push(format!(
                    "router {} ({}): owes {} MOR, paid {} MOR",
                    answer.url,
                    o.router,
                    format_ether(o.total()),
                    format_ether(paid)
                ));
                routers_json.push(json!({"url": answer.url, "router": o.router, "owed": o.total().to_string(), "paid": paid.to_string()}));
            }
            Ok(None) => {
                lines.push(format!("router {}: no session reported yet", answer.url));
                routers_json.push(json!({"url": answer.url, "owed": "0", "paid": "0"}));
            }
            Err(e) => {
                lines.push(format!("router {}: unreachable: {e}", answer.url));
                routers_json.push(json!({"url": answer.url, "error": e}));
            }
        }
    }
    lines.push(format!(
        "today's budget: {} MOR, {} MOR left",
        format_ether(budget.budget),
        format_ether(budget.remaining())
    ));
    lines.push(format!(
        "reputation: {} tokens, {} sessions, {} failed, {} MOR earned (+{} bootstrap)",
        reputation.tokens,
        reputation.sessions,
        reputation.failed,
        format_ether(reputation.earned),
        format_ether(reputation.bootstrapEarned)
    ));
    let db = cfg.db_path();
    let (totals, last) = if db.exists() {
        let store = Store::open(&db)?;
        (Some(store.claim_totals()?), store.last_claim()?)
    } else {
        (None, None)
    };
    if let Some(t) = &totals {
        lines.push(format!(
            "claims: {} mined, {} MOR paid, {} gas{}",
            t.claims,
            format_ether(t.paid),
            t.gas_used,
            last.as_ref().map_or(String::new(), |l| format!(
                "; last {:?}{}",
                l.state,
                l.tx.map_or(String::new(), |tx| format!(" in {tx}"))
            ))
        ));
    }
    let value = json!({
        "provider": provider,
        "status": status,
        "endpoint": record.endpoint,
        "stake": record.stake.to_string(),
        "unlockAt": record.unlockAt.to_string(),
        "bids": bids_json,
        "routers": routers_json,
        "budget": {"budget": budget.budget.to_string(), "spent": budget.spent.to_string(), "left": budget.remaining().to_string()},
        "reputation": {"tokens": reputation.tokens.to_string(), "sessions": reputation.sessions.to_string(), "failed": reputation.failed.to_string(), "earned": reputation.earned.to_string(), "bootstrapEarned": reputation.bootstrapEarned.to_string()},
        "claims": totals.map(|t| json!({"claims": t.claims, "paid": t.paid.to_string(), "gasUsed": t.gas_used, "lastAt": t.last_at})),
    });
    print(&args, &value, &lines);
    Ok(())
}

/// The model of the provider's bid: `given`, or its only bid.
async fn bid_model(protocol: &Protocol, provider: Address, given: Option<B256>) -> Result<B256> {
    if let Some(id) = given {
        return Ok(id);
    }
    let bids = protocol
        .registry()
        .bids_of_provider(provider, 0, 100)
        .await?;
    match bids.as_slice() {
        [one] => Ok(one.modelId),
        [] => bail!("provider {provider} has no bid"),
        _ => bail!(
            "provider {provider} has {} bids: name one with --model-id",
            bids.len()
        ),
    }
}

/// `morpheus-worker bid set|delete`.
pub(crate) async fn bid(cmd: BidCmd) -> Result<()> {
    match cmd {
        BidCmd::Set {
            node,
            price,
            capacity,
            model_id,
        } => {
            let price_wei = alloy::primitives::utils::parse_ether(price.trim())
                .map_err(|e| eyre!("--price {price:?} is not a MOR amount ({e})"))?;
            check_bid(price_wei, capacity)?;
            let (_, protocol, provider) = connect(&node).await?;
            let model_id = bid_model(&protocol, provider, model_id).await?;
            let receipt = protocol
                .registry()
                .update_bid(model_id, price_wei, U256::from(capacity))
                .await?;
            print(
                &node,
                &json!({"modelId": model_id, "pricePerToken": price_wei.to_string(), "capacity": capacity, "tx": receipt.transaction_hash}),
                &[format!(
                    "bid for {model_id}: {} MOR per token, {capacity} sessions (tx {}); set the \
                     same in worker.toml, or `run` sets its own on the next start",
                    format_ether(price_wei),
                    receipt.transaction_hash
                )],
            );
            Ok(())
        }
        BidCmd::Delete { node, model_id } => {
            let (_, protocol, provider) = connect(&node).await?;
            let model_id = bid_model(&protocol, provider, model_id).await?;
            let receipt = protocol.registry().delete_bid(model_id).await?;
            print(
                &node,
                &json!({"modelId": model_id, "deleted": true, "tx": receipt.transaction_hash}),
                &[format!(
                    "bid for {model_id} deleted (tx {})",
                    receipt.transaction_hash
                )],
            );
            Ok(())
        }
    }
}

/// `morpheus-worker deregister`.
pub(crate) async fn deregister(args: NodeArgs) -> Result<()> {
    let (_, protocol, provider) = connect(&args).await?;
    let registry = protocol.registry();
    let bids = registry.bids_of_provider(provider, 0, 100).await?;
    for bid in &bids {
        registry.delete_bid(bid.modelId).await?;
    }
    let receipt = registry.deregister().await?;
    let record = registry.provider(provider).await?;
    print(
        &args,
        &json!({"provider": provider, "bidsDeleted": bids.len(), "unlockAt": record.unlockAt.to_string(), "tx": receipt.transaction_hash}),
        &[format!(
            "deregistered {provider} ({} bids deleted, tx {}); the stake of {} MOR unlocks at {}: \
             then `morpheus-worker withdraw`",
            bids.len(),
            receipt.transaction_hash,
            format_ether(record.stake),
            record.unlockAt
        )],
    );
    Ok(())
}

/// `morpheus-worker withdraw`.
pub(crate) async fn withdraw(args: NodeArgs) -> Result<()> {
    let (_, protocol, provider) = connect(&args).await?;
    let registry = protocol.registry();
    let record = registry.provider(provider).await?;
    let now = protocol.latest_block_time().await?;
    if record.status as usize != 2 {
        bail!("provider {provider} is not deregistered: `morpheus-worker deregister` first");
    }
    if record.unlockAt > U256::from(now) {
        bail!(
            "the stake unlocks at {} (chain time now {now}): withdraw then",
            record.unlockAt
        );
    }
    let before = protocol.mor().balance_of(provider).await?;
    let receipt = registry.withdraw_stake().await?;
    let got = protocol
        .mor()
        .balance_of(provider)
        .await?
        .saturating_sub(before);
    print(
        &args,
        &json!({"provider": provider, "withdrawn": got.to_string(), "tx": receipt.transaction_hash}),
        &[format!(
            "withdrew {} MOR to {provider} (tx {})",
            format_ether(got),
            receipt.transaction_hash
        )],
    );
    Ok(())
}
