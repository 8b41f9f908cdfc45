//! Reputation per provider and model (the FAQ's reputation system): what `/v1/providers`
//! shows, selection by reputation after price, and a request's own order and maximum price.

use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256, utils::parse_ether};
use morpheus_sdk::{
    messages::{Assignment, Signed},
    router::{Order, Preferences, ProviderInfo},
};
use morpheus_testkit::{TestWorker, WorkerOptions};

use crate::common::{Net, PRICE, PROVIDER, assert_refused, provide};

/// The second provider's account and its bid: dearer than the first.
const SECOND: usize = 4;
const SECOND_PRICE: u64 = PRICE + 30_000_000_000;

/// A worker for account [`SECOND`] serving the net's model, registered, claimed and bid on.
async fn second_provider(net: &Net) -> TestWorker {
    let deployment = net.devnet.deployment();
    let worker = TestWorker::with(WorkerOptions {
        threads: 1,
        provider: net.devnet.signer(SECOND),
        router: net.devnet.router_signer(),
        chain_id: deployment.chain_id,
        session_router: deployment.session_router,
        model_id: net.model_id,
        ..Default::default()
    })
    .await;
    provide(&net.devnet, SECOND, &worker.url, net.model_id, SECOND_PRICE).await;
    worker
}

async fn ask(net: &Net, preferences: Preferences) -> Signed<Assignment> {
    net.router
        .request_compute_with(&net.request(|_| {}), preferences)
        .await
        .expect("assignment")
}

/// Reports `session` as the user: `tokens` in `duration_ms`, passed or failed.
async fn report(
    net: &Net,
    session: &Signed<Assignment>,
    tokens: u64,
    duration_ms: u64,
    passed: bool,
) {
    net.router
        .report_usage(&net.report_as(
            &net.user(),
            session.message.sessionId,
            tokens,
            duration_ms,
            passed,
        ))
        .await
        .expect("report");
}

async fn listed(net: &Net, provider: Address) -> ProviderInfo {
    net.router
        .providers(net.model_id)
        .await
        .expect("providers")
        .providers
        .into_iter()
        .find(|p| p.provider == provider)
        .expect("listed")
}

fn order(order: Order) -> Preferences {
    Preferences {
        order,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reputation_orders_the_choice_and_a_request_may_ask_for_another() {
    let net = Net::start().await;
    let second = second_provider(&net).await;
    let (first_addr, second_addr) = (
        net.devnet.signer(PROVIDER).address(),
        net.devnet.signer(SECOND).address(),
    );

    // The cheaper provider serves one session well but slowly (50 ms/token), then fails two.
    let a = ask(&net, Preferences::default()).await;
    assert_eq!(a.message.provider, first_addr, "cheapest first");
    report(&net, &a, 100, 5_000, true).await;
    for _ in 0..2 {
        let s = ask(&net, Preferences::default()).await;
        assert_eq!(s.message.provider, first_addr);
        report(&net, &s, 0, 0, false).await;
    }
    // Its score, (1 + 1) / (3 + 2) = 0.4, is now below the untried provider's 0.5: a request
    // asking for reputation gets the dearer one; by price it is still the cheaper.
    let d = ask(&net, order(Order::Reputation)).await;
    assert_eq!(d.message.provider, second_addr, "by reputation");
    report(&net, &d, 100, 500, true).await;
    // The dearer one is faster (5 ms/token against 50): asked for speed, it is chosen.
    let e = ask(&net, order(Order::Speed)).await;
    assert_eq!(e.message.provider, second_addr, "by speed");
    report(&net, &e, 100, 500, true).await;
    let f = ask(&net, Preferences::default()).await;
    assert_eq!(f.message.provider, first_addr, "by price, the default");
    // Within the speed rule's limit of the user's newest credited speed (5 ms/token).
    report(&net, &f, 100, 600, true).await;

    // A maximum price below the dearer bid leaves the cheaper; below both, nobody.
    let capped = Preferences {
        order: Order::Speed,
        max_price_per_token: Some(U256::from(PRICE)),
        ..Default::default()
    };
    assert_eq!(
        ask(&net, capped).await.message.provider,
        first_addr,
        "within the maximum"
    );
    let below = Preferences {
        max_price_per_token: Some(U256::from(PRICE - 1)),
        ..Default::default()
    };
    assert_refused(
        net.router
            .request_compute_with(&net.request(|_| {}), below)
            .await,
        503,
        "above the request's maximum",
    );

    // A request excluding the cheaper (a gateway failing over from it) gets the other.
    let failover = Preferences {
        exclude: vec![first_addr],
        ..Default::default()
    };
    let g = ask(&net, failover).await;
    assert_eq!(g.message.provider, second_addr, "the cheaper excluded");
    report(&net, &g, 100, 500, true).await;

    // What /v1/providers shows for each.
    let first = listed(&net, first_addr).await;
    assert_eq!(
        (first.reputation.completed, first.reputation.failed),
        (2, 2)
    );
    assert_eq!(first.reputation.earned, U256::from(200 * PRICE));
    // The medians of its reports with tokens (50 and 6 ms/token) and of its passed reports'
    // times to first token (500 and 60 ms).
    assert_eq!(first.reputation.ms_per_token, Some(28.0));
    assert_eq!(first.reputation.ttft_ms, Some(280.0));
    assert_eq!(first.reputation.score, 0.5);
    assert_eq!(first.stake, parse_ether("10").expect("amount"));
    let second_info = listed(&net, second_addr).await;
    assert_eq!(
        (
            second_info.reputation.completed,
            second_info.reputation.failed
        ),
        (3, 0)
    );
    assert_eq!(
        second_info.reputation.earned,
        U256::from(300 * SECOND_PRICE)
    );
    assert_eq!(second_info.reputation.ms_per_token, Some(5.0));
    assert_eq!(second_info.reputation.ttft_ms, Some(50.0));
    assert_eq!(second_info.reputation.score, 0.8);
    assert_eq!(second_info.reputation.bids.len(), 1);
    assert_eq!(
        second_info.reputation.bids[0].price_per_token,
        U256::from(SECOND_PRICE)
    );

    // A changed bid joins the history, newest first.
    net.bid(U256::from(PRICE / 2), 4).await;
    let first = listed(&net, first_addr).await;
    let history: Vec<(U256, U256)> = first
        .reputation
        .bids
        .iter()
        .map(|b| (b.price_per_token, b.capacity))
        .collect();
    assert_eq!(
        history,
        vec![
            (U256::from(PRICE / 2), U256::from(4)),
            (U256::from(PRICE), U256::from(16))
        ]
    );
    assert!(first.reputation.bids[0].seen_at >= first.reputation.bids[1].seen_at);
    second.stop().await;
    net.stop().await;
}

#[tokio::test]
async fn a_session_assigned_and_never_used_is_cancelled() {
    let net = Net::with(|c| {
        c.assignment_lifetime = Duration::from_secs(2);
        c.settle_interval = Duration::from_millis(300);
    })
    .await;
    let provider = net.devnet.signer(PROVIDER).address();
    let _unused = net.assignment().await;
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let info = listed(&net, provider).await;
        if info.reputation.cancelled == 1 {
            assert_eq!((info.reputation.completed, info.reputation.failed), (0, 0));
            assert_eq!(
                info.reputation.score, 0.5,
                "a cancelled session does not count"
            );
            break;
        }
        assert!(
            Instant::now() < until,
            "the session was never counted cancelled"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    net.stop().await;
}
