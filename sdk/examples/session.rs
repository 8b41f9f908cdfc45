//! One session of the real flow through a running `morpheus-router` and `morpheus-worker`, with
//! this program as the provider's on-chain set-up and as the user's client:
//!
//! ```sh
//! # 1. the provider registers at ENDPOINT, registers the model by its published weights file
//! #    (WEIGHTS_FILE, in FORMAT: `gguf`) and NAME, claims it and bids; prints the model id (the
//! #    worker is then started with it)
//! cargo run -p morpheus-sdk --example session -- register RPC DEPLOYMENT ENDPOINT WEIGHTS_FILE FORMAT NAME
//! # 2. a signed request to the router (which checks the provider's liveness and assigns it), a
//! #    streamed chat with the provider, the usage report, the router's voucher, the claim
//! cargo run -p morpheus-sdk --example session -- chat RPC DEPLOYMENT ROUTER_URL MODEL_ID "question"
//! ```
//! Keys are anvil's default accounts: 2 is the provider, 3 the user.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use alloy::{
    primitives::{B256, U256, utils::format_ether, utils::parse_ether},
    signers::{Signer, local::PrivateKeySigner},
};
use futures::StreamExt;
use morpheus_sdk::{
    Deployment,
    contracts::Protocol,
    merkle::ModelTree,
    messages::{ComputeRequest, Signed, UsageReport},
    openai::{ChatCompletionRequest, ChatMessage, StreamOptions},
    provider::ProviderClient,
    router::RouterClient,
};

const PROVIDER_KEY: &str = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";
const USER_KEY: &str = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6";
/// MOR (wei) per token the provider bids: 2e-6 MOR.
const PRICE_PER_TOKEN: u64 = 2_000_000_000_000;

#[tokio::main]
async fn main() -> eyre::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [
            "register",
            rpc,
            deployment,
            endpoint,
            weights_file,
            format,
            name,
        ] => {
            register(
                rpc,
                &Deployment::load(deployment)?,
                endpoint,
                (weights_file, format),
                name,
            )
            .await
        }
        ["chat", rpc, deployment, endpoint, model_id, question] => {
            chat(
                rpc,
                &Deployment::load(deployment)?,
                endpoint,
                model_id.parse()?,
                question,
            )
            .await
        }
        _ => eyre::bail!(
            "usage: session register RPC DEPLOYMENT ENDPOINT WEIGHTS_FILE FORMAT NAME\n       \
             session chat RPC DEPLOYMENT ROUTER_URL MODEL_ID QUESTION"
        ),
    }
}

fn key(hex: &str, deployment: &Deployment) -> eyre::Result<PrivateKeySigner> {
    Ok(hex
        .parse::<PrivateKeySigner>()?
        .with_chain_id(Some(deployment.chain_id)))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

async fn register(
    rpc: &str,
    deployment: &Deployment,
    endpoint: &str,
    (weights_file, format): (&str, &str),
    name: &str,
) -> eyre::Result<()> {
    let provider_key = key(PROVIDER_KEY, deployment)?;
    let provider = Protocol::connect(rpc, *deployment, Some(provider_key.clone())).await?;
    let registry = provider.registry();
    let me = provider_key.address();

    let tree = ModelTree::from_file(weights_file, |_, _| {})?;
    eprintln!(
        "weights file {weights_file} ({format}): {} chunks of 1 MiB, Merkle root {}",
        tree.leaf_count(),
        tree.root()
    );
    registry.register(endpoint, parse_ether("10")?).await?;
    let model_id = registry
        .register_model(tree.root(), tree.leaf_count(), format, name)
        .await?;
    let claim = registry.sign_model_claim(model_id, &provider_key).await?;
    registry.claim_model(me, model_id, claim).await?;
    registry
        .post_bid(model_id, U256::from(PRICE_PER_TOKEN), U256::from(16))
        .await?;
    eprintln!(
        "provider {me} registered at {endpoint}, claimed model {model_id}, bid {PRICE_PER_TOKEN} wei/token"
    );
    println!("{model_id}");
    Ok(())
}

async fn chat(
    rpc: &str,
    deployment: &Deployment,
    router_url: &str,
    model_id: B256,
    question: &str,
) -> eyre::Result<()> {
    let domain = deployment.domain();
    let (provider_key, user_key) = (key(PROVIDER_KEY, deployment)?, key(USER_KEY, deployment)?);
    let user = Protocol::connect(rpc, *deployment, Some(user_key.clone())).await?;
    let provider = Protocol::connect(rpc, *deployment, Some(provider_key.clone())).await?;
    let router = RouterClient::new(router_url)?;

    // User: stake once; the allowance follows the stake, day by day.
    let sessions = user.session_router();
    if sessions
        .stake_of(user_key.address())
        .await?
        .staked
        .is_zero()
    {
        sessions.stake(parse_ether("5")?).await?;
    }
    let allowance = router.allowance(user_key.address()).await?;
    println!(
        "user: 5 MOR staked -> {} tokens today, {} used",
        allowance.user_max, allowance.used
    );

    // User -> router: a signed request; the router checks it, picks the cheapest live provider
    // (after a Merkle-chunk liveness check against the on-chain root) and signs the assignment.
    let request = Signed::sign(
        ComputeRequest {
            user: user_key.address(),
            modelId: model_id,
            tokenMax: U256::from(256),
            nonce: U256::from(unix_now()),
            deadline: U256::from(unix_now() + 60),
        },
        &domain,
        &user_key,
    )?;
    let started = Instant::now();
    let assignment = router.request_compute(&request).await?;
    let a = &assignment.message;
    println!(
        "router {}: assigned provider {} at {} for up to {} tokens at {} wei/token ({:?}, liveness included)",
        assignment.recover(&domain)?,
        a.provider,
        a.endpoint,
        a.tokenMax,
        a.pricePerToken,
        started.elapsed()
    );

    // User -> provider: the prompt goes straight to the provider; the router never sees it.
    let client = ProviderClient::new(&a.endpoint)?;
    let models = client.models().await?;
    let chat = ChatCompletionRequest {
        model: models
            .data
            .first()
            .map(|m| m.id.clone())
            .unwrap_or_default(),
        // SmolLM2's chat template adds a default system prompt when there is none, with which this
        // small quantised model tends to answer in French; an explicit one keeps it in English.
        messages: vec![
            ChatMessage::system("You are a helpful assistant."),
            ChatMessage::user(question),
        ],
        max_tokens: Some(64),
        temperature: Some(0.0),
        stream_options: Some(StreamOptions {
            include_usage: true,
        }),
        ..Default::default()
    };
    println!("user: {question}");
    print!("assistant: ");
    let started = Instant::now();
    let mut stream = client.chat_stream(&assignment, &chat).await?;
    let (mut answer, mut ttft, mut usage) = (String::new(), None, None);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        for choice in &chunk.choices {
            if let Some(text) = choice.delta.content.as_ref().filter(|t| !t.is_empty()) {
                ttft.get_or_insert_with(|| started.elapsed());
                print!("{text}");
                answer.push_str(text);
            }
        }
        usage = chunk.usage.or(usage);
    }
    let duration = started.elapsed();
    let usage = usage.ok_or_else(|| eyre::eyre!("the provider sent no usage counts"))?;
    println!();
    println!(
        "provider: {} prompt + {} completion tokens, first token after {:?}, {:?} in all",
        usage.prompt_tokens,
        usage.completion_tokens,
        ttft.unwrap_or(duration),
        duration
    );

    // User -> router: the signed usage report; the router credits the provider.
    let report = Signed::sign(
        UsageReport {
            sessionId: a.sessionId,
            tokens: U256::from(usage.total_tokens),
            ttftMs: U256::from(ttft.unwrap_or(duration).as_millis()),
            durationMs: U256::from(duration.as_millis()),
            passed: !answer.trim().is_empty(),
        },
        &domain,
        &user_key,
    )?;
    let receipt = router.report_usage(&report).await?;
    println!(
        "router: report {:?}: {} tokens, {} MOR credited ({})",
        receipt.outcome,
        receipt.tokens,
        format_ether(receipt.amount),
        receipt.detail
    );
    // The provider's signed count closes the session; only it gives the reservation back.
    let signed = receipt
        .provider_count
        .ok_or_else(|| eyre::eyre!("the router got no receipt from the provider"))?;
    println!(
        "router: the provider signed {signed} tokens served; the session counts {} of the user's day",
        receipt.counted
    );

    // Provider: fetch the newest cumulative voucher and claim it on-chain.
    let voucher = router
        .voucher(provider_key.address())
        .await?
        .ok_or_else(|| eyre::eyre!("the router has no voucher for the provider"))?;
    let before = provider.mor().balance_of(provider_key.address()).await?;
    let tx = provider.session_router().claim(&[voucher]).await?;
    let paid = provider.mor().balance_of(provider_key.address()).await? - before;
    println!(
        "provider: claimed the voucher on-chain in tx {} ({} gas): {} MOR paid",
        tx.transaction_hash,
        tx.gas_used,
        format_ether(paid)
    );
    // The demo (and CI, which runs it) fails unless the claim paid what the router credited.
    eyre::ensure!(
        paid == receipt.amount && !paid.is_zero(),
        "the claim paid {paid} wei, the router credited {}",
        receipt.amount
    );
    Ok(())
}
