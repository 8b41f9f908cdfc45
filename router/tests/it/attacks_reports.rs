//! Attacks through usage reports, each from the attacker's side: a staked user signs reports on
//! its own sessions to steer the speed reference or a provider's record (docs/security.md, "The
//! router"). The rules are `speed_reference`/`is_slow` (router/src/speed.rs) and `bad_record`
//! (router/src/record.rs).

use alloy::{
    primitives::{B256, U256},
    signers::local::PrivateKeySigner,
};
use morpheus_sdk::router::{Outcome, UsageReceipt};

use crate::common::{Net, PRICE, PROVIDER, provide, stake};

/// The attacker's account: a user with 5 MOR staked.
const ATTACKER: usize = 5;
/// A second honest user.
const OTHER_USER: usize = 6;
/// The attacker's own provider, where it wants the traffic to go.
const ATTACKER_PROVIDER: usize = 4;

/// A session requested by `signer` for itself, then reported by it: `tokens` in `duration_ms`.
async fn serve_and_report(
    net: &Net,
    signer: &PrivateKeySigner,
    tokens: u64,
    duration_ms: u64,
    passed: bool,
) -> UsageReceipt {
    let session = session_of(net, signer).await;
    net.router
        .report_usage(&net.report_as(signer, session, tokens, duration_ms, passed))
        .await
        .expect("report")
}

/// A session requested by `signer` for itself.
async fn session_of(net: &Net, signer: &PrivateKeySigner) -> B256 {
    let request = net.request_as(signer, |r| r.user = signer.address());
    net.router
        .request_compute(&request)
        .await
        .expect("assignment")
        .message
        .sessionId
}

/// Two honest users each report a session at 10 ms/token, credited: the model's reference.
async fn honest_reference(net: &Net) -> [PrivateKeySigner; 2] {
    stake(&net.devnet, OTHER_USER, "5").await;
    let honest = [net.user(), net.devnet.signer(OTHER_USER)];
    for user in &honest {
        let r = serve_and_report(net, user, 100, 1_000, true).await;
        assert_eq!(r.outcome, Outcome::Credited, "{}", r.detail);
    }
    honest
}

/// The attacker holds a staked account and nothing else. It sends 20 reports (the whole speed
/// window) claiming 100 tokens took 0 ms, to drag the model's speed reference to 0: every
/// honest report after them would be "slow" and earn nothing. An honest report at the speed
/// honest users reported before must still be credited.
#[tokio::test]
async fn attack_zero_duration_reports_make_honest_providers_slow() {
    let net = Net::start().await;
    let honest = honest_reference(&net).await;
    let attacker = net.devnet.signer(ATTACKER);
    stake(&net.devnet, ATTACKER, "5").await;

    for _ in 0..20 {
        serve_and_report(&net, &attacker, 100, 0, true).await;
    }

    let r = serve_and_report(&net, &honest[0], 100, 1_000, true).await;
    assert_eq!(
        r.outcome,
        Outcome::Credited,
        "an honest 10 ms/token report after 20 reports of 0 ms: {}",
        r.detail
    );
    assert_eq!(r.amount, U256::from(100 * PRICE));
    net.stop().await;
}

/// The attacker wants slow service paid: it reports one session of 100 tokens as taking 10^15
/// ms, which earns nothing but, counted in a mean, lifts the model's speed reference so far that
/// a provider ten times slower than the honest ones is credited. A 100 ms/token session after it
/// (10x the honest 10 ms/token) must still earn nothing.
#[tokio::test]
async fn attack_huge_duration_hides_a_slow_provider() {
    let net = Net::start().await;
    let honest = honest_reference(&net).await;
    let attacker = net.devnet.signer(ATTACKER);
    stake(&net.devnet, ATTACKER, "5").await;

    let r = serve_and_report(&net, &attacker, 100, 1_000_000_000_000_000, true).await;
    assert_eq!(r.outcome, Outcome::Slow, "{}", r.detail);

    let r = serve_and_report(&net, &honest[1], 100, 10_000, true).await;
    assert_eq!(
        r.outcome,
        Outcome::Slow,
        "a 100 ms/token session against honest 10 ms/token ones: {}",
        r.detail
    );
    assert_eq!(r.amount, U256::ZERO);
    net.stop().await;
}

/// The attacker runs a provider bidding twice the honest provider's price, and holds one staked
/// user. It takes the honest provider's sessions and reports every one failed (a whole window of
/// them, one token each), to give it a bad record and so move the model's traffic to its own
/// pricier provider. The honest provider must stay first and keep getting the sessions.
#[tokio::test]
async fn attack_one_user_gives_an_honest_provider_a_bad_record() {
    // Liveness is not what is tested: the attacker's provider need not serve to be picked.
    let net = Net::with(|c| c.liveness = false).await;
    let honest_provider = net.devnet.signer(PROVIDER).address();
    let attacker_provider = net.devnet.signer(ATTACKER_PROVIDER).address();
    provide(
        &net.devnet,
        ATTACKER_PROVIDER,
        "http://127.0.0.1:9",
        net.model_id,
        2 * PRICE,
    )
    .await;
    let attacker = net.devnet.signer(ATTACKER);
    stake(&net.devnet, ATTACKER, "5").await;

    for i in 0..20 {
        let request = net.request_as(&attacker, |r| r.user = attacker.address());
        let assignment = net
            .router
            .request_compute(&request)
            .await
            .expect("assignment");
        assert_eq!(
            assignment.message.provider, honest_provider,
            "after {i} failed reports from one user, sessions moved to the attacker's pricier \
             provider {attacker_provider}"
        );
        let r = net
            .router
            .report_usage(&net.report_as(&attacker, assignment.message.sessionId, 1, 10, false))
            .await
            .expect("report");
        assert_eq!(r.outcome, Outcome::Failed);
    }

    let list = net.router.providers(net.model_id).await.expect("providers");
    let first = &list.providers[0];
    assert_eq!(
        (first.provider, first.record.bad_record),
        (honest_provider, false),
        "one user's failures moved the honest provider behind {attacker_provider}: {:?}",
        first.record
    );
    let assignment = net.assignment().await;
    assert_eq!(
        assignment.message.provider, honest_provider,
        "the next user's session went to the attacker's pricier provider"
    );
    net.stop().await;
}
