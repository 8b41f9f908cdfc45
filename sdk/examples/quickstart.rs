//! The protocol end to end on a local chain, through the SDK's typed clients:
//! a provider registers, proves it holds a model and bids; a user stakes MOR and gets a daily
//! allowance; the router signs a cumulative voucher; the provider claims it on-chain.
//!
//! ```sh
//! cargo run -p morpheus-sdk --example quickstart                 # starts its own anvil
//! cargo run -p morpheus-sdk --example quickstart -- RPC_URL deployments/31337.json
//! ```
//! With an RPC URL it uses a chain deployed by `script/Deploy.s.sol` (anvil's default accounts).

use alloy::{
    primitives::{U256, utils::format_ether, utils::parse_ether},
    signers::{Signer, local::PrivateKeySigner},
};
use morpheus_sdk::{
    Deployment,
    contracts::{GGUF, Protocol},
    merkle::ModelTree,
    messages::{CreditVoucher, Signed},
};
use morpheus_testkit::Devnet;

/// anvil's default accounts 1 (the router signer), 2 (a provider) and 3 (a user).
const ROUTER_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
const PROVIDER_KEY: &str = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";
const USER_KEY: &str = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6";

#[tokio::main]
async fn main() -> eyre::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Keeps a self-started devnet alive until the end.
    let (_devnet, rpc_url, deployment) = match args.as_slice() {
        [] => {
            let devnet = Devnet::start().await?;
            let (url, deployment) = (devnet.rpc_url(), devnet.deployment());
            (Some(devnet), url, deployment)
        }
        [url, file] => (None, url.clone(), Deployment::load(file)?),
        _ => eyre::bail!("usage: quickstart [RPC_URL DEPLOYMENT_JSON]"),
    };
    let key = |hex: &str| -> eyre::Result<PrivateKeySigner> {
        Ok(hex
            .parse::<PrivateKeySigner>()?
            .with_chain_id(Some(deployment.chain_id)))
    };
    let (router_key, provider_key, user_key) =
        (key(ROUTER_KEY)?, key(PROVIDER_KEY)?, key(USER_KEY)?);
    let provider = Protocol::connect(&rpc_url, deployment, Some(provider_key.clone())).await?;
    let user = Protocol::connect(&rpc_url, deployment, Some(user_key.clone())).await?;
    println!(
        "chain {} | SessionRouter {}",
        deployment.chain_id, deployment.session_router
    );

    let pool = provider.pool().today().await?;
    println!(
        "pool: {} MOR, today's budget {} MOR (1% of the start-of-day balance), spent {}",
        format_ether(provider.pool().balance().await?),
        format_ether(pool.budget),
        format_ether(pool.spent)
    );
    if pool.budget.is_zero() {
        eyre::bail!(
            "today's budget is 0: the pool was funded today; move the chain a day on first"
        );
    }

    // 1. The provider registers a model by the Merkle root of its weights, claims it and bids.
    let weights: Vec<u8> = (0..3_500_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let tree = ModelTree::from_bytes(&weights)?;
    let registry = provider.registry();
    let me = provider_key.address();
    if registry.provider(me).await?.stake.is_zero() {
        registry
            .register("http://127.0.0.1:8080", parse_ether("10")?)
            .await?;
    }
    let name = format!("quickstart-{}", tree.root());
    let model_id = registry
        .register_model(tree.root(), tree.leaf_count(), GGUF, &name)
        .await?;
    let claim = registry.sign_model_claim(model_id, &provider_key).await?;
    registry.claim_model(me, model_id, claim).await?;
    let price = U256::from(2_000_000_000_000u64); // 2e-6 MOR per token
    registry.post_bid(model_id, price, U256::from(8)).await?;
    println!(
        "provider {me}: registered, model {model_id} ({} chunks) claimed, bid {price} wei/token",
        tree.leaf_count()
    );
    let proof = tree.proof(2)?;
    println!(
        "chunk 2 proves on-chain against the registered root: {}",
        registry.verify_model_chunk(model_id, &proof).await?
    );

    // 2. A user stakes MOR: the daily allowance follows the stake.
    let sessions = user.session_router();
    sessions.stake(parse_ether("5")?).await?;
    println!(
        "user {}: staked 5 MOR -> access rate {} tokens/MOR/day, allowance {} tokens today",
        user_key.address(),
        sessions.access_rate().await?,
        sessions.user_max(user_key.address()).await?
    );

    // 3. The router credits served sessions in a cumulative voucher; the provider claims it.
    let record = sessions.claim_record(router_key.address(), me).await?;
    let tokens = U256::from(1_500);
    let voucher = CreditVoucher {
        router: router_key.address(),
        provider: me,
        cumulativeAmount: U256::from(record.paid) + tokens * price,
        cumulativeBootstrap: U256::from(record.bootstrapPaid),
        cumulativeTokens: U256::from(record.tokens) + tokens,
        sessions: U256::from(record.sessions) + U256::from(3),
        failed: U256::from(record.failed),
        issuedAt: U256::from(provider.latest_block_time().await?),
    };
    let signed = Signed::sign(voucher, &deployment.domain(), &router_key)?;
    let before = provider.mor().balance_of(me).await?;
    let receipt = provider.session_router().claim(&[signed]).await?;
    let paid = provider.mor().balance_of(me).await? - before;
    println!(
        "claim: {} MOR paid to the provider for {tokens} tokens, gas used {}",
        format_ether(paid),
        receipt.gas_used
    );
    let rep = provider.session_router().reputation(me).await?;
    println!(
        "reputation: {} tokens, {} sessions, {} failed, {} MOR earned",
        rep.tokens,
        rep.sessions,
        rep.failed,
        format_ether(rep.earned)
    );
    Ok(())
}
