//! Attacks on the router, each from the attacker's side: what it holds, what it sends, what it
//! must not get (docs/security.md, "The router").

use alloy::primitives::{Address, U256};
use morpheus_sdk::{
    messages::{Assignment, Signed},
    router::{Outcome, UsageReceipt},
};
use tokio::task::JoinSet;

use crate::common::{
    Net, PRICE, PROVIDER, REFERENCE_PRICE, SECOND_ROUTER, USER, assert_refused, stake,
};

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
    // The refused wait their turn for a second, in vain: no session ends.
    let net = Net::with(|c| c.queue_wait = std::time::Duration::from_secs(1)).await;
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
    let assigned = net.db_count(&format!(
        "SELECT COUNT(*) FROM sessions WHERE provider = '{}' AND reported = 0",
        provider.to_string().to_lowercase()
    ));
    assert_eq!(
        assigned, CAPACITY as i64,
        "open sessions of the provider in the database"
    );
    let sessions = net.db_count("SELECT COUNT(*) FROM sessions");
    assert_eq!(
        sessions, CAPACITY as i64,
        "the refused requests left no reservation behind"
    );
    net.stop().await;
}

/// The attacker is a staked user of a network with two authorised routers. Each router counts
/// the user's usage alone, so were each to grant the whole `userMax`, the user would get it
/// twice a day. Together they must never grant more than `userMax`: each grants its share
/// (`routerUserMax`), and the contract keeps the shares within the whole budget.
#[tokio::test]
async fn attack_two_routers_grant_twice_the_allowance() {
    let net = Net::start().await;
    let user = net.user().address();
    stake(&net.devnet, USER, "10000").await;
    // The owner gives half the budget to a second router key (which the provider trusts): the first router's
    // share goes down at once, the second's is announced and applies after ROUTER_DELAY.
    let owner = net
        .devnet
        .protocol(0)
        .await
        .expect("connect")
        .session_router();
    let (first, second) = (net.devnet.router_signer(), net.devnet.signer(SECOND_ROUTER));
    owner
        .set_router_share(first.address(), 5_000)
        .await
        .expect("lower the first router's share");
    owner
        .add_router(second.address(), 5_000)
        .await
        .expect("announce the second router");
    net.devnet
        .advance_seconds(morpheus_testkit::Devnet::ROUTER_DELAY)
        .await
        .expect("past the delay");
    let mut config = net.config.clone();
    config.signer = second;
    config.db_path = net.config.db_path.with_file_name("second.db");
    config.postgres_url = morpheus_testkit::test_database().expect("a second database");
    let (url, stop_second, second_task) = crate::common::serve(config).await;
    let routers = [
        net.router.clone(),
        morpheus_sdk::router::RouterClient::new(&url).expect("client"),
    ];

    // Sends: a request for all each router will grant, to each router, reported in full.
    let user_max = owner.user_max(user).await.expect("userMax");
    let mut granted = U256::ZERO;
    for router in &routers {
        let allowance = router.allowance(user).await.expect("allowance");
        assert!(allowance.remaining > U256::ZERO);
        let assignment = router
            .request_compute(&net.request(|r| r.tokenMax = allowance.remaining))
            .await
            .expect("assignment");
        granted += assignment.message.tokenMax;
        // And one token more is refused by this router.
        assert_refused(
            router
                .request_compute(&net.request(|r| r.tokenMax = U256::from(1)))
                .await,
            429,
            "left today",
        );
    }
    // Must not get: more than userMax from the two together.
    assert!(
        granted <= user_max,
        "two routers granted {granted} tokens, more than userMax {user_max}"
    );
    assert!(
        granted + U256::from(2) >= user_max,
        "the two shares together ({granted}) are the whole allowance ({user_max}) but rounding"
    );
    let _ = stop_second.send(());
    second_task
        .await
        .expect("task")
        .expect("second router stops");
    net.stop().await;
}
