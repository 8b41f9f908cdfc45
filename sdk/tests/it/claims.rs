//! Claiming router vouchers through SessionRouterClient.

use alloy::primitives::{U256, utils::parse_ether};
use morpheus_sdk::{
    Error,
    contracts::{Protocol, bindings::session_router::SessionRouter::SessionRouterErrors},
    messages::{Signed, protocol_domain},
};
use morpheus_testkit::Devnet;

use crate::{malleable, voucher};

#[tokio::test]
async fn a_voucher_pays_once_and_a_newer_one_pays_the_difference() -> eyre::Result<()> {
    let devnet = Devnet::start().await?;
    let provider = devnet.protocol(2).await?;
    let me = devnet.signer(2).address();
    let router_key = devnet.router_signer();
    let domain = devnet.deployment().domain();
    let now = devnet.now().await?;

    let first = Signed::sign(
        voucher(router_key.address(), me, parse_ether("100")?, now),
        &domain,
        &router_key,
    )?;
    let before = provider.mor().balance_of(me).await?;
    provider
        .session_router()
        .claim(std::slice::from_ref(&first))
        .await?;
    assert_eq!(
        provider.mor().balance_of(me).await? - before,
        parse_ether("100")?
    );

    // Replaying the same voucher pays nothing more, whether it reverts or not.
    let _ = provider
        .session_router()
        .claim(std::slice::from_ref(&first))
        .await;
    assert_eq!(
        provider.mor().balance_of(me).await? - before,
        parse_ether("100")?
    );

    devnet.advance_seconds(60).await?;
    let second = Signed::sign(
        voucher(router_key.address(), me, parse_ether("250")?, now + 60),
        &domain,
        &router_key,
    )?;
    provider.session_router().claim(&[second]).await?;
    assert_eq!(
        provider.mor().balance_of(me).await? - before,
        parse_ether("250")?
    );
    let record = provider
        .session_router()
        .claim_record(router_key.address(), me)
        .await?;
    assert_eq!(U256::from(record.paid), parse_ether("250")?);
    let rep = provider.session_router().reputation(me).await?;
    assert_eq!(
        (rep.tokens, rep.sessions, rep.failed),
        (U256::from(1000), U256::from(3), U256::from(1))
    );
    Ok(())
}

#[tokio::test]
async fn many_providers_settle_in_one_transaction_within_the_budget() -> eyre::Result<()> {
    let devnet = Devnet::start().await?;
    let anyone = devnet.protocol(6).await?;
    let router_key = devnet.router_signer();
    let domain = devnet.deployment().domain();
    let now = devnet.now().await?;
    let budget = anyone.pool().today().await?.budget;

    let (a, b) = (devnet.signer(2).address(), devnet.signer(3).address());
    let vouchers = [
        Signed::sign(
            voucher(router_key.address(), a, parse_ether("10")?, now),
            &domain,
            &router_key,
        )?,
        Signed::sign(
            voucher(router_key.address(), b, budget, now),
            &domain,
            &router_key,
        )?,
    ];
    let (a0, b0) = (
        anyone.mor().balance_of(a).await?,
        anyone.mor().balance_of(b).await?,
    );
    anyone.session_router().claim(&vouchers).await?;
    // The day's budget caps what is paid: the rest stays owed for a later day.
    let paid_a = anyone.mor().balance_of(a).await? - a0;
    let paid_b = anyone.mor().balance_of(b).await? - b0;
    assert_eq!(paid_a, parse_ether("10")?);
    assert_eq!(paid_a + paid_b, budget);
    assert_eq!(anyone.pool().today().await?.remaining(), U256::ZERO);

    devnet.advance_days(1).await?;
    anyone.session_router().claim(&vouchers[1..]).await?;
    assert_eq!(anyone.mor().balance_of(b).await? - b0, budget);
    Ok(())
}

#[tokio::test]
async fn a_front_run_voucher_reverts_alone_and_is_skipped_in_a_batch() -> eyre::Result<()> {
    let devnet = Devnet::start().await?;
    let keeper = devnet.protocol(6).await?;
    let router_key = devnet.router_signer();
    let domain = devnet.deployment().domain();
    let now = devnet.now().await?;
    let (a, b) = (devnet.signer(2).address(), devnet.signer(3).address());

    // The keeper holds a voucher each for two providers...
    let held = [
        Signed::sign(
            voucher(router_key.address(), a, parse_ether("100")?, now),
            &domain,
            &router_key,
        )?,
        Signed::sign(
            voucher(router_key.address(), b, parse_ether("20")?, now),
            &domain,
            &router_key,
        )?,
    ];
    // ...and someone else claims a fresher voucher for the first provider before it does.
    devnet.advance_seconds(60).await?;
    let fresher = Signed::sign(
        voucher(router_key.address(), a, parse_ether("150")?, now + 60),
        &domain,
        &router_key,
    )?;
    devnet
        .protocol(7)
        .await?
        .session_router()
        .claim(&[fresher])
        .await?;
    let (a0, b0) = (
        keeper.mor().balance_of(a).await?,
        keeper.mor().balance_of(b).await?,
    );

    // Alone, the stale voucher reverts: its submitter learns that nothing was settled.
    assert_reverted!(
        keeper.session_router().claim(&held[..1]).await,
        SessionRouter(SessionRouterErrors::SessionRouterStaleVoucher(e))
            if e.provider == a
                && e.issuedAt == U256::from(now)
                && e.lastIssuedAt == U256::from(now + 60)
    );

    // In a batch it is skipped, and the other voucher pays in full.
    let receipt = keeper.session_router().claim(&held).await?;
    let skipped = keeper.session_router().skipped(&receipt);
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(
        (
            skipped[0].router,
            skipped[0].provider,
            skipped[0].issuedAt,
            skipped[0].lastIssuedAt
        ),
        (
            router_key.address(),
            a,
            U256::from(now),
            U256::from(now + 60)
        )
    );
    assert_eq!(keeper.mor().balance_of(b).await? - b0, parse_ether("20")?);
    assert_eq!(keeper.mor().balance_of(a).await?, a0);
    let record = keeper
        .session_router()
        .claim_record(router_key.address(), a)
        .await?;
    assert_eq!(U256::from(record.paid), parse_ether("150")?);
    assert_eq!(U256::from(record.issuedAt), U256::from(now + 60));
    Ok(())
}

#[tokio::test]
async fn foreign_or_forged_vouchers_are_refused() -> eyre::Result<()> {
    let devnet = Devnet::start().await?;
    let provider = devnet.protocol(2).await?;
    let me = devnet.signer(2).address();
    let now = devnet.now().await?;
    let domain = devnet.deployment().domain();
    let amount = parse_ether("1")?;

    // Signed by a key that is not an authorised router.
    let stranger = devnet.signer(7);
    let forged = Signed::sign(
        voucher(stranger.address(), me, amount, now),
        &domain,
        &stranger,
    )?;
    assert_reverted!(
        provider.session_router().claim(&[forged]).await,
        SessionRouter(SessionRouterErrors::SessionRouterUnauthorisedRouter(_))
    );

    // The right router key, but for another chain: the signature does not recover to it.
    let router_key = devnet.router_signer();
    let other_chain = protocol_domain(42_161, devnet.deployment().session_router);
    let replayed = Signed::sign(
        voucher(router_key.address(), me, amount, now),
        &other_chain,
        &router_key,
    )?;
    assert_reverted!(
        provider.session_router().claim(&[replayed]).await,
        SessionRouter(SessionRouterErrors::SessionRouterInvalidSignature(_))
    );

    // A malleable twin of a valid signature: refused off-chain and on-chain.
    let valid = Signed::sign(
        voucher(router_key.address(), me, amount, now),
        &domain,
        &router_key,
    )?;
    let twin = malleable(&valid);
    assert!(matches!(
        twin.recover(&domain),
        Err(Error::MalleableSignature { .. })
    ));
    // On-chain, OpenZeppelin's ECDSA refuses the high-s form: no signer is recovered.
    assert_reverted!(
        provider.session_router().claim(&[twin]).await,
        SessionRouter(SessionRouterErrors::SessionRouterInvalidSignature(e))
            if e.router == router_key.address() && e.recovered.is_zero()
    );
    provider.session_router().claim(&[valid]).await?;

    // A voucher from the future.
    let future = Signed::sign(
        voucher(router_key.address(), me, amount * U256::from(2), now + 3600),
        &domain,
        &router_key,
    )?;
    assert_reverted!(
        provider.session_router().claim(&[future]).await,
        SessionRouter(SessionRouterErrors::SessionRouterVoucherFromFuture(_))
    );
    Ok(())
}

#[tokio::test]
async fn connecting_to_the_wrong_chain_is_refused() -> eyre::Result<()> {
    let devnet = Devnet::start().await?;
    let mut elsewhere = devnet.deployment();
    elsewhere.chain_id = 42_161;
    let err = Protocol::connect(&devnet.rpc_url(), elsewhere, None)
        .await
        .expect_err("wrong chain");
    assert!(
        matches!(
            err,
            Error::WrongChain {
                expected: 42_161,
                actual: 31_337
            }
        ),
        "{err}"
    );
    let err = Protocol::connect("not a url", devnet.deployment(), None)
        .await
        .expect_err("bad url");
    assert!(matches!(err, Error::Rpc(_)), "{err}");
    Ok(())
}
