//! `morpheus-worker claim`: what each router owes, and one claim for all of them when the rule
//! says so (`claim::claim_due`) or `--now`.

use std::time::Duration;

use alloy::{primitives::utils::parse_ether, signers::local::PrivateKeySigner};
use eyre::{Context, Result, bail};
use morpheus_sdk::{Deployment, contracts::Protocol};
use morpheus_worker::{
    claim::{self, ClaimDecision, ClaimPolicy, Owed},
    store::Store,
};
use serde_json::json;

use crate::cli::ClaimArgs;

pub(crate) async fn run(args: ClaimArgs) -> Result<()> {
    let signer: PrivateKeySigner = args
        .provider_key
        .trim()
        .parse()
        .wrap_err("invalid --provider-key (MORPHEUS_PROVIDER_KEY)")?;
    let provider = signer.address();
    let policy = ClaimPolicy {
        gas_multiple: args.gas_multiple,
        max_age: Duration::from_secs(args.max_age_hours.saturating_mul(3600)),
        max_gas_price: u128::from(args.max_gas_gwei).saturating_mul(1_000_000_000),
        mor_per_eth: parse_ether(&args.mor_per_eth)
            .wrap_err_with(|| format!("--mor-per-eth {:?} is not a number", args.mor_per_eth))?,
    };
    let deployment = Deployment::load(&args.deployment)
        .wrap_err_with(|| format!("reading {}", args.deployment.display()))?;
    let protocol = Protocol::connect(&args.rpc_url, deployment, Some(signer))
        .await
        .wrap_err_with(|| format!("connecting to {}", args.rpc_url))?;
    let routers = claim::router_clients(&args.router_urls)?;

    let store = match &args.db {
        Some(path) => Store::open(path)?,
        None => Store::in_memory()?,
    };
    // What an earlier run left unfinished is finished first: never a claim over a pending one.
    let recovered = claim::recover(&protocol, &store, provider)
        .await
        .wrap_err("finishing the claims an earlier run left unfinished")?;

    let gathered = claim::gather(&protocol, &store, &routers, provider).await?;
    let owing: Vec<&Owed> = gathered.owing();
    let decided = claim::decide(&protocol, &store, &policy, &owing, gathered.chain_now).await?;
    let decision = match decided.decision {
        // --now claims whatever the gas, but not what would pay nothing.
        ClaimDecision::Wait(why) if args.now && !decided.payable.is_zero() => {
            ClaimDecision::Claim(format!("--now ({why})"))
        }
        decision => decision,
    };
    let (answers, stored) = (&gathered.answers, &gathered.stored);
    let claimed = match &decision {
        ClaimDecision::Claim(_) => Some(claim::claim(&protocol, &store, &owing, provider).await?),
        ClaimDecision::Wait(_) => None,
    };

    let failed = answers.iter().filter(|a| a.owed.is_err()).count();
    if args.json {
        let mut routers: Vec<_> = answers
            .iter()
            .map(|a| match &a.owed {
                Ok(Some(o)) => json!({"url": a.url, "router": o.router, "owed": o.amount.to_string(), "bootstrap": o.bootstrap.to_string()}),
                Ok(None) => json!({"url": a.url, "owed": "0", "bootstrap": "0"}),
                Err(e) => json!({"url": a.url, "error": e}),
            })
            .collect();
        routers.extend(stored.iter().map(|o| json!({"url": null, "router": o.router, "owed": o.amount.to_string(), "bootstrap": o.bootstrap.to_string(), "stored": true})));
        let recovered: Vec<_> = recovered
            .iter()
            .map(|r| json!({"claim": r.row.id, "state": format!("{:?}", r.row.state).to_lowercase(), "tx": r.row.tx, "paid": r.claimed.map(|c| c.paid.to_string()), "detail": r.row.detail}))
            .collect();
        let (claimed_json, why) = match (&decision, claimed) {
            (ClaimDecision::Claim(why), Some(c)) => (
                json!({"tx": c.tx, "gasUsed": c.gas_used, "paid": c.paid.to_string()}),
                why.clone(),
            ),
            (ClaimDecision::Wait(why), _) | (ClaimDecision::Claim(why), None) => {
                (serde_json::Value::Null, why.clone())
            }
        };
        println!(
            "{}",
            json!({"provider": provider, "routers": routers, "recovered": recovered, "claimed": claimed_json, "why": why})
        );
    } else {
        for r in &recovered {
            match (&r.claimed, &r.row.detail) {
                (Some(c), _) => println!(
                    "finished an earlier claim: {} MOR wei paid in {} ({} gas)",
                    c.paid, c.tx, c.gas_used
                ),
                (None, detail) => println!(
                    "an earlier claim ended {:?}: {}",
                    r.row.state,
                    detail.as_deref().unwrap_or("reverted")
                ),
            }
        }
        for o in stored {
            println!(
                "router {} (stored voucher)  owes {} MOR wei (+{} bootstrap)",
                o.router, o.amount, o.bootstrap
            );
        }
        for a in answers {
            match &a.owed {
                Ok(Some(o)) => println!(
                    "{}  owes {} MOR wei (+{} bootstrap)",
                    a.url, o.amount, o.bootstrap
                ),
                Ok(None) => println!("{}  owes nothing (no session reported yet)", a.url),
                Err(e) => println!("{}  unreachable: {e}", a.url),
            }
        }
        match (&decision, claimed) {
            (ClaimDecision::Claim(why), Some(c)) => println!(
                "claimed: {} MOR wei paid to {provider} in {} ({} gas): {why}",
                c.paid, c.tx, c.gas_used
            ),
            (ClaimDecision::Wait(why), _) | (ClaimDecision::Claim(why), None) => {
                println!("not claimed: {why}")
            }
        }
    }
    if failed == answers.len() && stored.is_empty() {
        bail!("no router could be asked for a voucher");
    }
    Ok(())
}
