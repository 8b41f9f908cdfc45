//! A long-running router's hygiene: rate limits per client address and per user with
//! `Retry-After`, a request id on every answer, the figures in `/metrics`, and reconciliation of
//! a lost database with what the chain already paid.

use alloy::primitives::U256;
use morpheus_router::{REQUEST_ID, RateLimit};

use crate::common::{Net, PRICE, PROVIDER, assert_refused};

/// The value of the metric line starting with `name` (labels included), if any.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
}

#[tokio::test]
async fn rate_limits_refuse_with_retry_after_and_every_answer_has_a_request_id() {
    let net = Net::with(|c| {
        c.user_rate_limit = RateLimit {
            per_second: 0.1,
            burst: 2.0,
        };
        c.ip_rate_limit = RateLimit {
            per_second: 0.1,
            burst: 5.0,
        };
    })
    .await;
    // The user's burst: two assignments, then 429 naming the user, with Retry-After.
    net.assignment().await;
    net.assignment().await;
    let http = reqwest::Client::new();
    let body = serde_json::to_value(net.request(|_| {})).expect("json");
    let refused = http
        .post(net.router_url("/v1/compute"))
        .header(REQUEST_ID.as_str(), "trace-me-1")
        .json(&body)
        .send()
        .await
        .expect("post");
    assert_eq!(refused.status(), 429);
    assert_eq!(
        refused.headers()[REQUEST_ID.as_str()],
        "trace-me-1",
        "the client's id comes back"
    );
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=10).contains(&retry), "Retry-After {retry}");
    let text = refused.text().await.expect("body");
    assert!(
        text.contains("rate_limited") && text.contains(&format!("{}", net.user().address())),
        "{text}"
    );
    // The address's burst (5): three requests so far, two more pass, the sixth is refused.
    let user = net.user().address();
    net.router.allowance(user).await.expect("fourth");
    net.router.allowance(user).await.expect("fifth");
    assert_refused(
        net.router.allowance(user).await,
        429,
        "client address 127.0.0.1",
    );
    // Health and metrics are never limited, and an answer without a client id gets a new one.
    let metrics = http
        .get(net.router_url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(metrics.status(), 200);
    assert_eq!(metrics.headers()[REQUEST_ID.as_str()].len(), 16);
    let text = metrics.text().await.expect("text");
    assert_eq!(
        metric(
            &text,
            "morpheus_router_refusals_total{code=\"rate_limited\"}"
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "morpheus_router_assignments_total"),
        Some(2.0)
    );
    assert_eq!(
        metric(
            &text,
            "morpheus_router_requests_total{route=\"/v1/compute\",status=\"200\"}"
        ),
        Some(2.0),
        "{text}"
    );
    assert!(metric(&text, "morpheus_router_db_calls_total").is_some_and(|n| n > 0.0));
    assert!(metric(&text, "morpheus_router_chain_calls_total").is_some_and(|n| n > 0.0));
    net.stop().await;
}

#[tokio::test]
async fn a_lost_database_is_raised_to_what_the_chain_paid() {
    let mut net = Net::start().await;
    let provider = net.devnet.signer(PROVIDER).address();
    let served = net.assignment().await;
    net.router
        .report_usage(&net.report_as(&net.user(), served.message.sessionId, 100, 100, true))
        .await
        .expect("report");
    let voucher = net.voucher(provider).await;
    assert_eq!(net.claim(PROVIDER, voucher).await, U256::from(100 * PRICE));

    net.restart_router_losing_its_database().await;

    // The new, empty database signs nothing below what the chain paid.
    let again = net.voucher(provider).await;
    assert_eq!(again.message.cumulativeAmount, U256::from(100 * PRICE));
    assert_eq!(again.message.sessions, U256::from(1));
    assert_eq!(again.message.cumulativeTokens, U256::from(100));
    // New credit counts on from there, and the next claim pays exactly it.
    let next = net.assignment().await;
    net.router
        .report_usage(&net.report_as(&net.user(), next.message.sessionId, 50, 50, true))
        .await
        .expect("report");
    let voucher = net.voucher(provider).await;
    assert_eq!(voucher.message.cumulativeAmount, U256::from(150 * PRICE));
    assert_eq!(net.claim(PROVIDER, voucher).await, U256::from(50 * PRICE));
    net.stop().await;
}
