//! Attacks on the router, each from the attacker's side: what it holds, what it sends, what it
//! must not get (docs/security.md, "The router").

use alloy::primitives::{Address, U256};
use morpheus_sdk::{
    messages::{Assignment, Signed},
    router::{Outcome, UsageReceipt},
};
use rusqlite::{Connection, params};
use tokio::task::JoinSet;

use crate::common::{Net, PRICE, PROVIDER, REFERENCE_PRICE, USER, assert_refused, stake};

/// The share of today's budget that `user`'s stake buys: `budget * staked / supply`, from the
/// chain's own views. `userMax` is this share in tokens at the reference price.
async fn stake_share_of_budget(net: &Net, user: Address) -> (U256, U256) {
    let chain = net.devnet.protocol(USER).await.expect("connect");
    let budget = chain.pool().today().await.expect("budget").budget;
    let supply = chain.mor().total_supply().await.expect("supply");
    let staked = chain
        .session_router()
        .stake_of(user)
        .await
        .expect("stake")
        .staked;
    (budget * staked / supply, budget)
}

/// The user asks for `token_max` tokens and reports every one served, at 1 ms a token; the report
/// must be credited. Returns the tokens, the assignment and the receipt.
async fn spend(net: &Net, token_max: U256) -> (u64, Signed<Assignment>, UsageReceipt) {
    let tokens = u64::try_from(token_max).expect("fits");
    let assignment = net
        .router
        .request_compute(&net.request(|r| r.tokenMax = token_max))
        .await
        .expect("assignment");
    let report = net.report_as(
        &net.user(),
        assignment.message.sessionId,
        tokens,
        tokens,
        true,
    );
    let receipt = net.router.report_usage(&report).await.expect("report");
    assert_eq!(receipt.outcome, Outcome::Credited, "{}", receipt.detail);
    (tokens, assignment, receipt)
}

/// The attacker is a provider that registered its own model and stakes for its own user. It bids
/// the most the registry takes (`type(uint112).max` MOR wei per token), asks for its user's whole
/// allowance, and reports every token served. It must be credited no more than those tokens at
/// the reference price: its stake's share of the day's budget, not the router's whole share.
#[tokio::test]
async fn attack_self_priced_bid_takes_the_daily_share() {
    let net = Net::start().await;
    // Holds: the model (Net's provider registered it), a user with 10,005 MOR staked.
    let user = net.user().address();
    stake(&net.devnet, USER, "10000").await;
    // Sends: the highest bid, a request for the whole allowance, a report of all of it.
    let max_bid = (U256::from(1) << 112) - U256::from(1);
    net.bid(max_bid, 16).await;
    let allowance = net.router.allowance(user).await.expect("allowance");
    let (tokens, _, receipt) = spend(&net, allowance.remaining).await;

    // The provider claims its voucher.
    let provider = net.devnet.signer(PROVIDER).address();
    let voucher = net.voucher(provider).await;
    let paid = net.claim(PROVIDER, voucher).await;
    let chain = net.devnet.protocol(PROVIDER).await.expect("connect");

    // Must not get: more than its stake's share of the day's budget.
    let (share, budget) = stake_share_of_budget(&net, user).await;
    assert!(
        paid <= share,
        "{tokens} tokens at a self-set price were paid {paid} MOR wei (credited {}), more than \
         the {share} its stake's share of today's budget ({budget}) buys",
        receipt.amount
    );
    assert_eq!(
        receipt.amount,
        U256::from(tokens) * U256::from(REFERENCE_PRICE),
        "every token is credited at the reference price"
    );
    assert_eq!(paid, receipt.amount, "the claim pays the capped credit");
    let today = chain.pool().today().await.expect("budget");
    assert_eq!(
        today.remaining(),
        budget - paid,
        "the rest of the day's budget is left"
    );
    net.stop().await;
}

/// Ordinary traffic at 20 times the reference price: a user spends its whole allowance
/// (`userMax`, computed at the reference price) with a provider bidding 20x. The tokens must
/// cost the budget what `userMax` assumed, not 20 times it; the assignment says so.
#[tokio::test]
async fn attack_traffic_above_the_reference_price_overspends_the_budget() {
    let net = Net::start().await;
    let user = net.user().address();
    net.bid(U256::from(20 * REFERENCE_PRICE), 16).await;
    let allowance = net.router.allowance(user).await.expect("allowance");
    let (tokens, assignment, receipt) = spend(&net, allowance.user_max).await;

    let (share, budget) = stake_share_of_budget(&net, user).await;
    assert!(
        receipt.amount <= share,
        "the user's whole allowance ({tokens} tokens) was credited {} MOR wei, more than the \
         {share} its stake's share of today's budget ({budget}) buys",
        receipt.amount
    );
    // What one token earns is the price `maxT` (and so `userMax`) is computed at, by the
    // contract's own view: the day's tokens at that price cost the budget, no more.
    let per_token = receipt.amount / U256::from(tokens);
    assert_eq!(per_token, U256::from(REFERENCE_PRICE));
    let max_t = net
        .devnet
        .protocol(USER)
        .await
        .expect("connect")
        .session_router()
        .max_t()
        .await
        .expect("maxT");
    assert!(per_token * max_t <= budget && (per_token + U256::from(1)) * max_t > budget);
    assert_eq!(
        assignment.message.pricePerToken,
        U256::from(REFERENCE_PRICE),
        "the assignment carries the price the provider is credited, not its bid"
    );
    net.stop().await;
}

/// Several staked users send 3N requests at once for a provider with capacity N. Exactly N get
/// the provider; the others are refused as full, and the database holds exactly N sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_concurrent_requests_overbook_a_provider() {
    const CAPACITY: u64 = 3;
    let net = Net::start().await;
    let users = [USER, 5, 6];
    for &u in &users[1..] {
        stake(&net.devnet, u, "5").await;
    }
    net.bid(U256::from(PRICE), CAPACITY).await;

    let mut requests = JoinSet::new();
    for i in 0..3 * CAPACITY as usize {
        let signer = net.devnet.signer(users[i % users.len()]);
        let request = net.request_as(&signer, |r| r.user = signer.address());
        let router = net.router.clone();
        requests.spawn(async move { router.request_compute(&request).await });
    }
    let mut granted = 0;
    while let Some(result) = requests.join_next().await {
        match result.expect("request task") {
            Ok(_) => granted += 1,
            refused => assert_refused(refused, 503, "full"),
        }
    }
    assert_eq!(
        granted, CAPACITY,
        "assignments granted for capacity {CAPACITY}"
    );

    let provider = net.devnet.signer(PROVIDER).address();
    let db = Connection::open(net.db_path()).expect("open the router's database");
    db.busy_timeout(std::time::Duration::from_secs(5))
        .expect("busy timeout");
    let assigned: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM sessions WHERE provider = ?1 AND reported = 0",
            params![provider.to_string().to_lowercase()],
            |r| r.get(0),
        )
        .expect("count assigned");
    assert_eq!(
        assigned, CAPACITY as i64,
        "open sessions of the provider in the database"
    );
    let sessions: i64 = db
        .query_row("SELECT COUNT(*) FROM sessions", [], |r| r.get(0))
        .expect("count sessions");
    assert_eq!(
        sessions, CAPACITY as i64,
        "the refused requests left no reservation behind"
    );
    net.stop().await;
}
