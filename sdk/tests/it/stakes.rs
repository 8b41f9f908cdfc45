//! User stakes and the access rate.

use alloy::primitives::{U256, utils::parse_ether};
use morpheus_sdk::contracts::bindings::session_router::SessionRouter::SessionRouterErrors;
use morpheus_testkit::Devnet;

#[tokio::test]
async fn allowance_follows_stake_and_unstaked_mor_waits_a_day() -> eyre::Result<()> {
    let devnet = Devnet::start().await?;
    let user = devnet.protocol(4).await?;
    let me = devnet.signer(4).address();
    let router = user.session_router();
    assert_eq!(router.user_max(me).await?, U256::ZERO);

    router.stake(parse_ether("5")?).await?;
    assert_eq!(router.stake_of(me).await?.staked, parse_ether("5")?);

    // maxT = budget * priceMOR / priceT * 1000 and userMax = maxT * stake / supply.
    let budget = user.pool().today().await?.budget;
    let supply = user.mor().total_supply().await?;
    let max_t = budget * U256::from(20) * U256::from(1000) / parse_ether("0.002")?;
    assert_eq!(router.max_t().await?, max_t);
    assert_eq!(
        router.user_max(me).await?,
        max_t * parse_ether("5")? / supply
    );
    assert_eq!(
        router.access_rate().await?,
        max_t * parse_ether("1")? / supply
    );

    router.unstake(parse_ether("2")?).await?;
    let stake = router.stake_of(me).await?;
    assert_eq!(
        (stake.staked, stake.pending),
        (parse_ether("3")?, parse_ether("2")?)
    );
    assert_reverted!(
        router.withdraw().await,
        SessionRouter(SessionRouterErrors::SessionRouterWithdrawLocked(_))
    );

    devnet.advance_days(1).await?;
    let before = user.mor().balance_of(me).await?;
    router.withdraw().await?;
    assert_eq!(user.mor().balance_of(me).await? - before, parse_ether("2")?);
    Ok(())
}

#[tokio::test]
async fn bad_stakes_are_typed_errors() -> eyre::Result<()> {
    let devnet = Devnet::start().await?;
    let user = devnet.protocol(5).await?;
    let router = user.session_router();
    assert_reverted!(
        router.stake(U256::ZERO).await,
        SessionRouter(SessionRouterErrors::SessionRouterZeroAmount(_))
    );
    assert_reverted!(
        router.unstake(parse_ether("1")?).await,
        SessionRouter(SessionRouterErrors::SessionRouterInsufficientStake(_))
    );
    // More than the wallet holds: the token's own error comes through decoded.
    assert_reverted!(router.stake(parse_ether("1000000000")?).await, Token(_));
    Ok(())
}
