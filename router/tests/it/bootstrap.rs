//! The bootstrap incentive (docs/router.md, "Bootstrap"): once a UTC day is closed, the router
//! splits its daily part of `ComputePool`'s reserve among the day's top providers by MOR credited,
//! signs it as `cumulativeBootstrap`, and the claim pays it from the reserve; nothing after the
//! bootstrap period.

use alloy::primitives::{Address, U256};
use morpheus_sdk::router::Outcome;
use morpheus_testkit::Devnet;

use crate::common::{Net, PRICE, PROVIDER, provide};

const DAY: u64 = 86_400;

/// Anvil account of a second provider (not running a worker: liveness is off where it serves).
const SECOND_PROVIDER: usize = 4;

/// The user asks for a session and reports `tokens` served in 10 ms each; the report must be
/// credited. Returns the session's provider and the MOR credited.
async fn serve(net: &Net, tokens: u64) -> (Address, U256) {
    let assignment = net.assignment().await;
    let report = net.report_as(
        &net.user(),
        assignment.message.sessionId,
        tokens,
        tokens * 10,
        true,
    );
    let receipt = net.router.report_usage(&report).await.expect("report");
    assert_eq!(receipt.outcome, Outcome::Credited, "{}", receipt.detail);
    (receipt.provider, receipt.amount)
}

/// What the chain's figures give one day of the sole router (the whole budget share): the
/// reserve spread over the UTC days from the start of `day` up to `bootstrapEnd`, a partial
/// last day counting whole.
async fn day_share(net: &Net, day: u64) -> U256 {
    let chain = net.devnet.protocol(PROVIDER).await.expect("connect");
    let pool = chain.pool();
    let reserve = pool.reserve().await.expect("reserve");
    let end = u64::try_from(pool.bootstrap_end().await.expect("end")).expect("fits");
    let info = chain
        .session_router()
        .router_info(net.devnet.router_signer().address())
        .await
        .expect("routerInfo");
    assert_eq!(
        info.share_bps,
        U256::from(10_000),
        "the devnet's router has the whole"
    );
    let days_left = (end - day * DAY).div_ceil(DAY);
    reserve / U256::from(days_left)
}

async fn reserve(net: &Net) -> U256 {
    let chain = net.devnet.protocol(PROVIDER).await.expect("connect");
    chain.pool().reserve().await.expect("reserve")
}

async fn chain_day(net: &Net) -> u64 {
    net.devnet.now().await.expect("now") / DAY
}

#[tokio::test]
async fn a_credited_day_is_paid_from_the_reserve() {
    let net = Net::start().await;
    let provider = net.devnet.signer(PROVIDER).address();
    // The deployment's deposit sent 10% (bootstrapBps 1000) to the reserve.
    let before = reserve(&net).await;
    assert_eq!(before, Devnet::pool_deposit() / U256::from(10));

    let day = chain_day(&net).await;
    let (served_by, amount) = serve(&net, 100).await;
    assert_eq!(served_by, provider);
    let voucher = net.voucher(provider).await;
    assert_eq!(
        voucher.message.cumulativeBootstrap,
        U256::ZERO,
        "the day is not over: nothing allotted yet"
    );

    net.devnet.advance_days(1).await.expect("next day");
    let share = day_share(&net, day).await;
    assert!(share > U256::ZERO);
    let voucher = net.voucher(provider).await;
    assert_eq!(voucher.message.cumulativeAmount, amount);
    assert_eq!(
        voucher.message.cumulativeBootstrap, share,
        "the day's only credited provider is allotted the whole day's share"
    );

    let paid = net.claim(PROVIDER, voucher).await;
    assert_eq!(
        paid,
        amount + share,
        "the claim pays the credit and the bootstrap"
    );
    assert_eq!(
        reserve(&net).await,
        before - share,
        "the bootstrap came from the reserve"
    );
    let record = net
        .devnet
        .protocol(PROVIDER)
        .await
        .expect("connect")
        .session_router()
        .claim_record(net.devnet.router_signer().address(), provider)
        .await
        .expect("claimRecord");
    assert_eq!(U256::from(record.bootstrapPaid), share);

    // The day is computed once: a later voucher carries the same allotment.
    let again = net.voucher(provider).await;
    assert_eq!(again.message.cumulativeBootstrap, share);
    net.stop().await;
}

#[tokio::test]
async fn two_providers_share_a_day_pro_rata() {
    // The second provider runs no worker: liveness is not what is tested.
    let net = Net::with(|c| c.liveness = false).await;
    let (first, second) = (
        net.devnet.signer(PROVIDER).address(),
        net.devnet.signer(SECOND_PROVIDER).address(),
    );
    // Cheaper, so it gets the first session; then pricier, so the real provider gets the next.
    provide(
        &net.devnet,
        SECOND_PROVIDER,
        "http://127.0.0.1:9",
        net.model_id,
        PRICE / 2,
    )
    .await;
    let day = chain_day(&net).await;
    let (p, credit_second) = serve(&net, 100).await;
    assert_eq!(p, second);
    net.devnet
        .protocol(SECOND_PROVIDER)
        .await
        .expect("connect")
        .registry()
        .update_bid(net.model_id, U256::from(2 * PRICE), U256::from(16))
        .await
        .expect("raise the bid");
    let (p, credit_first) = serve(&net, 150).await;
    assert_eq!(p, first);
    let (_, more) = serve(&net, 150).await;
    let credit_first = credit_first + more;
    assert_eq!(
        credit_first,
        U256::from(6) * credit_second,
        "credited 6 : 1"
    );
    assert_eq!(chain_day(&net).await, day, "every session on one day");

    net.devnet.advance_days(1).await.expect("next day");
    let share = day_share(&net, day).await;
    let before = reserve(&net).await;
    let total = credit_first + credit_second;
    let (v_first, v_second) = (net.voucher(first).await, net.voucher(second).await);
    let (b_first, b_second) = (
        v_first.message.cumulativeBootstrap,
        v_second.message.cumulativeBootstrap,
    );
    assert_eq!(b_first, share * credit_first / total);
    assert_eq!(b_second, share * credit_second / total);
    assert!(
        b_first + b_second <= share,
        "a day never allots more than its share"
    );
    assert!(
        share - (b_first + b_second) <= U256::from(2),
        "but rounding"
    );
    assert!(b_first > U256::from(5) * b_second, "pro rata");

    assert_eq!(net.claim(PROVIDER, v_first).await, credit_first + b_first);
    assert_eq!(
        net.claim(SECOND_PROVIDER, v_second).await,
        credit_second + b_second
    );
    assert_eq!(reserve(&net).await, before - b_first - b_second);
    net.stop().await;
}

#[tokio::test]
async fn nothing_is_allotted_after_the_bootstrap_period() {
    let net = Net::start().await;
    let provider = net.devnet.signer(PROVIDER).address();
    let day = chain_day(&net).await;
    let (_, first_amount) = serve(&net, 100).await;
    net.devnet.advance_days(1).await.expect("next day");
    let share = day_share(&net, day).await;
    let allotted = net.voucher(provider).await.message.cumulativeBootstrap;
    assert_eq!(allotted, share);

    // To the first UTC day starting at or after bootstrapEnd.
    let end = net
        .devnet
        .protocol(PROVIDER)
        .await
        .expect("connect")
        .pool()
        .bootstrap_end()
        .await
        .expect("end");
    let end = u64::try_from(end).expect("fits");
    let first_day_after = end.div_ceil(DAY);
    let now = net.devnet.now().await.expect("now");
    net.devnet
        .advance_seconds(first_day_after * DAY - now + 60)
        .await
        .expect("past the end");
    let day = chain_day(&net).await;
    assert_eq!(day, first_day_after);
    assert!(reserve(&net).await > U256::ZERO, "the reserve is not empty");

    let (_, second_amount) = serve(&net, 100).await;
    net.devnet.advance_days(1).await.expect("next day");
    let voucher = net.voucher(provider).await;
    assert_eq!(
        voucher.message.cumulativeAmount,
        first_amount + second_amount
    );
    assert_eq!(
        voucher.message.cumulativeBootstrap, allotted,
        "a credited day after the period allots nothing"
    );
    // What was allotted in the period is still paid from what the reserve holds.
    let before = reserve(&net).await;
    let paid = net.claim(PROVIDER, voucher).await;
    assert_eq!(paid, first_amount + second_amount + allotted);
    assert_eq!(reserve(&net).await, before - allotted);
    net.stop().await;
}
