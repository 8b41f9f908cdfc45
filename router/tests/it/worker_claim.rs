//! The provider's claim (`morpheus_worker::claim`): what the router owes by its newest voucher
//! less what the chain paid, a claim only once it is worth its gas, and the balance rising by
//! exactly the credit.

use alloy::primitives::U256;
use morpheus_sdk::{
    messages::{CreditVoucher, Signed},
    openai::{ChatCompletionRequest, ChatMessage},
    provider::ProviderClient,
    router::{Outcome, RouterClient},
};
use morpheus_worker::{
    claim::{self, ClaimDecision, ClaimPolicy, Owed},
    metrics::Metrics,
    node::{EthPrice, auto_claim::AutoClaim},
    store::Store,
};

use crate::common::{Net, PROVIDER};

/// One chat served and reported; returns the MOR wei credited.
pub(crate) async fn serve_one(net: &Net) -> U256 {
    let assignment = net.assignment().await;
    let a = &assignment.message;
    let answer = ProviderClient::new(&a.endpoint)
        .expect("client")
        .chat(
            &assignment,
            &ChatCompletionRequest {
                model: "tiny".into(),
                messages: vec![ChatMessage::user("Count to three.")],
                max_tokens: Some(8),
                temperature: Some(0.0),
                ..Default::default()
            },
        )
        .await
        .expect("chat");
    let tokens = u64::from(answer.usage.total_tokens);
    let receipt = net
        .router
        .report_usage(&net.report_as(&net.user(), a.sessionId, tokens, 200, true))
        .await
        .expect("report");
    assert_eq!(receipt.outcome, Outcome::Credited, "{}", receipt.detail);
    receipt.amount
}

fn owing(answers: &[claim::RouterOwed]) -> Vec<&Owed> {
    answers
        .iter()
        .map(|a| a.owed.as_ref().expect("the router answers"))
        .filter_map(Option::as_ref)
        .filter(|o| !o.total().is_zero())
        .collect()
}

#[tokio::test]
async fn the_provider_claims_what_the_router_owes_once_it_pays_its_gas() {
    let net = Net::start().await;
    let provider = net.devnet.signer(PROVIDER).address();
    let chain = net.devnet.protocol(PROVIDER).await.expect("connect");
    let url = net.router_url("");
    let routers = vec![(url.clone(), RouterClient::new(&url).expect("client"))];

    let answers = claim::owed(&chain, &routers, provider).await;
    assert!(
        matches!(answers[0].owed, Ok(None)),
        "no voucher before a report"
    );
    let credited = serve_one(&net).await + serve_one(&net).await;
    let answers = claim::owed(&chain, &routers, provider).await;
    let owed = owing(&answers);
    assert_eq!(owed.len(), 1);
    assert_eq!(owed[0].amount, credited, "the voucher, nothing paid yet");

    // Priced at 1000 MOR per ETH, the claim's gas costs far more than a few tokens' credit.
    let now = chain.latest_block_time().await.expect("time");
    let cost = claim::cost(&chain, &owed, now).await.expect("cost");
    assert!(cost.gas > 50_000, "{cost:?}");
    let decision = claim::claim_due(&ClaimPolicy::default(), &cost);
    assert!(
        matches!(&decision, ClaimDecision::Wait(why) if why.contains("under 10x")),
        "{decision:?}"
    );
    // Gas nearly free in MOR: worth it.
    let cheap = ClaimPolicy {
        mor_per_eth: U256::from(1),
        ..ClaimPolicy::default()
    };
    assert!(
        matches!(claim::claim_due(&cheap, &cost), ClaimDecision::Claim(_)),
        "{cost:?}"
    );

    let store = Store::in_memory().expect("store");
    let before = chain.mor().balance_of(provider).await.expect("balance");
    let claimed = claim::claim(&chain, &store, &owed, provider)
        .await
        .expect("claim");
    assert_eq!(claimed.paid, credited, "paid exactly what was credited");
    assert_eq!(
        chain.mor().balance_of(provider).await.expect("balance") - before,
        credited,
        "the balance rose by as much"
    );
    assert!(claimed.gas_used > 0);
    let totals = store.claim_totals().expect("journal");
    assert_eq!(
        (totals.claims, totals.paid),
        (1, credited),
        "journaled once"
    );
    let answers = claim::owed(&chain, &routers, provider).await;
    assert!(owing(&answers).is_empty(), "nothing owed after the claim");

    // More credit later: owed is only the new part.
    let more = serve_one(&net).await;
    let answers = claim::owed(&chain, &routers, provider).await;
    let owed = owing(&answers);
    assert_eq!(owed[0].amount, more);
    assert!(owed[0].last_claimed_at > 0, "the pair was claimed before");
    net.stop().await;
}

#[tokio::test]
async fn a_budget_exhausted_day_pays_part_and_the_rest_the_next_day() {
    let net = Net::start().await;
    let provider = net.devnet.signer(PROVIDER).address();
    let chain = net.devnet.protocol(PROVIDER).await.expect("connect");
    let router = net.devnet.router_signer();

    // A voucher for half again what the router may still pay today.
    let today = chain.pool().today().await.expect("budget");
    let info = chain
        .session_router()
        .router_info(router.address())
        .await
        .expect("router");
    let payable = (today.budget * info.share_bps / U256::from(10_000))
        .saturating_sub(info.spent_today)
        .min(today.remaining());
    assert!(!payable.is_zero(), "{today:?} {info:?}");
    let credit = payable * U256::from(3) / U256::from(2);
    let now = chain.latest_block_time().await.expect("time");
    let voucher = Signed::sign(
        CreditVoucher {
            router: router.address(),
            provider,
            cumulativeAmount: credit,
            cumulativeBootstrap: U256::ZERO,
            cumulativeTokens: U256::from(1000),
            sessions: U256::from(1),
            failed: U256::ZERO,
            issuedAt: U256::from(now),
        },
        &net.devnet.deployment().domain(),
        &router,
    )
    .expect("sign");
    let store = Store::in_memory().expect("store");
    store.put_voucher(&voucher, now).expect("kept");
    let before = chain.mor().balance_of(provider).await.expect("balance");

    let owed = claim::stored_owed(&chain, &store, provider, &[])
        .await
        .expect("owed");
    let first = claim::claim(&chain, &store, &owed.iter().collect::<Vec<_>>(), provider)
        .await
        .expect("claim");
    assert_eq!(first.paid, payable, "today pays what is left of the budget");
    let owed = claim::stored_owed(&chain, &store, provider, &[])
        .await
        .expect("owed");
    assert_eq!(owed[0].amount, credit - payable, "the rest stays owed");
    // A claim now would pay nothing: the rule waits, even with gas nearly free.
    let cheap = ClaimPolicy {
        mor_per_eth: U256::from(1),
        ..ClaimPolicy::default()
    };
    let refs: Vec<&Owed> = owed.iter().collect();
    let now = chain.latest_block_time().await.expect("time");
    let decided = claim::decide(&chain, &store, &cheap, &refs, now)
        .await
        .expect("decide");
    assert!(
        matches!(&decided.decision, ClaimDecision::Wait(why) if why.contains("nothing is payable today")),
        "{decided:?}"
    );

    net.devnet.advance_days(1).await.expect("the next day");
    let now = chain.latest_block_time().await.expect("time");
    let decided = claim::decide(&chain, &store, &cheap, &refs, now)
        .await
        .expect("decide");
    assert_eq!(decided.payable, credit - payable, "{decided:?}");
    assert!(
        matches!(decided.decision, ClaimDecision::Claim(_)),
        "{decided:?}"
    );
    let second = claim::claim(&chain, &store, &owed.iter().collect::<Vec<_>>(), provider)
        .await
        .expect("claim");
    assert_eq!(second.paid, credit - payable, "the next day pays the rest");
    assert_eq!(
        chain.mor().balance_of(provider).await.expect("balance") - before,
        credit,
        "exactly the credit over the two days"
    );
    let owed = claim::stored_owed(&chain, &store, provider, &[])
        .await
        .expect("owed");
    assert!(owed[0].total().is_zero(), "nothing owed");
    net.stop().await;
}

#[tokio::test]
async fn gas_is_priced_from_an_on_chain_eth_feed_and_a_stale_one_is_refused() {
    let net = Net::start().await;
    let provider = net.devnet.signer(PROVIDER).address();
    let chain = net.devnet.protocol(PROVIDER).await.expect("connect");
    // ETH at $3000 (8 decimals, as Chainlink's USD feeds), MOR at the devnet's $20.
    let feed = net
        .devnet
        .deploy_eth_usd_feed(3000_0000_0000)
        .await
        .expect("feed");
    let url = net.router_url("");
    let node = AutoClaim {
        protocol: chain.clone(),
        store: Store::in_memory().expect("store"),
        routers: vec![(url.clone(), RouterClient::new(&url).expect("client"))],
        provider,
        policy: ClaimPolicy::default(),
        eth_price: EthPrice::Feed {
            address: feed,
            max_age: 3600,
        },
        metrics: std::sync::Arc::new(Metrics::new()),
    };
    let credited = serve_one(&net).await;

    // 150 MOR per ETH: a few tokens' credit is far under 10x the claim's gas.
    let round = node.round().await.expect("a round");
    assert!(
        matches!(&round.decision, ClaimDecision::Wait(why) if why.contains("under 10x")),
        "{:?}",
        round.decision
    );
    // ETH at $0.00000001: the gas costs next to nothing in MOR, so the round claims.
    net.devnet.set_feed_answer(feed, 1).await.expect("answer");
    let before = chain.mor().balance_of(provider).await.expect("balance");
    let round = node.round().await.expect("a round");
    assert_eq!(
        round.claimed.expect("claimed").paid,
        credited,
        "{:?}",
        round.decision
    );
    assert_eq!(
        chain.mor().balance_of(provider).await.expect("balance") - before,
        credited
    );

    // Two hours on, the feed's answer is older than the hour allowed: the round refuses to
    // price gas with it, naming the feed, and claims nothing.
    serve_one(&net).await;
    net.devnet.advance_seconds(7200).await.expect("time");
    let refused = node.round().await.expect_err("stale").to_string();
    assert!(
        refused.contains("eth_usd_feed") && refused.contains("older than the 3600 s"),
        "{refused}"
    );
    net.stop().await;
}
