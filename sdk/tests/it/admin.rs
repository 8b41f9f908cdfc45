//! The remaining client methods: router signers, the whitelist, paging views, pool deposits.

use alloy::primitives::{Address, U256, keccak256, utils::parse_ether};
use morpheus_sdk::contracts::{
    GGUF, bindings::session_router::SessionRouter::SessionRouterErrors, format_label,
};
use morpheus_testkit::Devnet;

#[tokio::test]
async fn the_owner_manages_router_signers() -> eyre::Result<()> {
    let devnet = Devnet::start().await?;
    let owner = devnet.protocol(0).await?;
    let router = owner.session_router();
    let (first, second) = (devnet.router_signer().address(), devnet.signer(8).address());
    assert_eq!(router.routers().await?, vec![first]);
    assert_eq!(
        router.router_delay().await?,
        U256::from(Devnet::ROUTER_DELAY)
    );

    // The shares of all routers stay within the whole budget: room first, then the announcement.
    assert_reverted!(
        router.add_router(second, 2_500).await,
        SessionRouter(SessionRouterErrors::SessionRouterTotalShareTooHigh(_))
    );
    router.set_router_share(first, 7_500).await?;
    router.add_router(second, 2_500).await?;
    let (share, effective_at) = router
        .pending_router_change(second)
        .await?
        .expect("announced");
    assert_eq!(share, U256::from(2_500));
    assert!(!router.is_router(second).await?, "not before the delay");
    assert_reverted!(
        router.add_router(second, 2_500).await,
        SessionRouter(SessionRouterErrors::SessionRouterChangePending(_))
    );
    assert_reverted!(
        router.add_router(Address::repeat_byte(9), 10_001).await,
        SessionRouter(SessionRouterErrors::SessionRouterShareOutOfRange(_))
    );
    devnet.advance_seconds(Devnet::ROUTER_DELAY).await?;
    assert!(devnet.now().await? >= u64::try_from(effective_at)?);
    assert!(router.is_router(second).await?, "effective after the delay");
    assert_eq!(router.pending_router_change(second).await?, None);

    // Each router's part of a user's allowance follows its share.
    let user = devnet.signer(3).address();
    let staker = devnet.protocol(3).await?;
    staker.session_router().stake(parse_ether("5")?).await?;
    let user_max = router.user_max(user).await?;
    let (a, b) = (
        router.router_user_max(first, user).await?,
        router.router_user_max(second, user).await?,
    );
    assert_eq!(a, user_max * U256::from(7_500) / U256::from(10_000));
    assert_eq!(b, user_max * U256::from(2_500) / U256::from(10_000));
    assert!(a + b <= user_max);

    router.remove_router(second).await?;
    assert!(
        !router.is_router(second).await?,
        "a removal applies at once"
    );
    assert_eq!(router.router_user_max(second, user).await?, U256::ZERO);

    // Only the owner may do any of it.
    let stranger = devnet.protocol(5).await?;
    assert_reverted!(
        stranger.session_router().add_router(second, 1).await,
        SessionRouter(SessionRouterErrors::OwnableUnauthorizedAccount(_))
    );
    Ok(())
}

#[tokio::test]
async fn whitelist_paging_and_endpoints() -> eyre::Result<()> {
    let devnet = Devnet::start().await?;
    let owner = devnet.protocol(0).await?;
    let registry = owner.registry();
    let p = devnet.signer(2).address();
    assert!(registry.whitelist_active().await?);
    assert!(registry.is_whitelisted(p).await?);
    registry.remove_from_whitelist(p).await?;
    assert!(!registry.is_whitelisted(p).await?);
    registry.add_to_whitelist(p).await?;

    for i in 2..5 {
        devnet
            .protocol(i)
            .await?
            .registry()
            .register(
                &format!("http://10.0.0.{i}:80"),
                registry.min_stake().await?,
            )
            .await?;
    }
    assert_eq!(registry.provider_count().await?, U256::from(3));
    let page = registry.providers(1, 5).await?;
    assert_eq!(
        page.iter().map(|r| r.provider).collect::<Vec<_>>(),
        vec![devnet.signer(3).address(), devnet.signer(4).address()]
    );

    let provider = devnet.protocol(2).await?;
    provider
        .registry()
        .update_endpoint("http://moved:81")
        .await?;
    assert_eq!(registry.provider(p).await?.endpoint, "http://moved:81");

    let a = registry
        .register_model(keccak256("a"), 1, GGUF, "a")
        .await?;
    let b = registry
        .register_model(keccak256("b"), 2, "onnx", "b")
        .await?;
    assert_eq!(
        registry
            .models(0, 10)
            .await?
            .iter()
            .map(|m| (m.modelId, format_label(&m.format)))
            .collect::<Vec<_>>(),
        vec![(a, GGUF.to_string()), (b, "onnx".to_string())]
    );
    for model in [a, b] {
        let sig = provider
            .registry()
            .sign_model_claim(model, &devnet.signer(2))
            .await?;
        provider.registry().claim_model(p, model, sig).await?;
        provider
            .registry()
            .post_bid(model, U256::from(5), U256::from(1))
            .await?;
    }
    assert_eq!(registry.bids_of_provider(p, 0, 10).await?.len(), 2);

    registry.disable_whitelist().await?;
    assert!(!registry.whitelist_active().await?);
    Ok(())
}

#[tokio::test]
async fn deposits_fund_tomorrows_budget_and_the_reserve() -> eyre::Result<()> {
    let devnet = Devnet::start().await?;
    let funder = devnet.protocol(6).await?;
    let pool = funder.pool();
    let today = pool.today().await?;
    let (balance, reserve) = (pool.balance().await?, pool.reserve().await?);
    assert!(pool.bootstrap_end().await? > U256::from(devnet.now().await?));

    pool.deposit(parse_ether("1000")?).await?;
    // During the bootstrap year 10% of a deposit goes to the reserve.
    assert_eq!(pool.reserve().await? - reserve, parse_ether("100")?);
    assert_eq!(pool.balance().await? - balance, parse_ether("900")?);
    // A deposit never raises today's budget (flash deposits gain nothing)...
    assert_eq!(pool.today().await?.budget, today.budget);
    devnet.advance_days(1).await?;
    // ...but counts from the next day on.
    assert_eq!(
        pool.today().await?.budget,
        (balance + parse_ether("900")?) / U256::from(100)
    );

    let before = funder.session_router().total_staked().await?;
    funder.session_router().stake(parse_ether("3")?).await?;
    assert_eq!(
        funder.session_router().total_staked().await? - before,
        parse_ether("3")?
    );

    let mor = funder.mor();
    mor.transfer(devnet.signer(7).address(), parse_ether("1")?)
        .await?;
    assert_eq!(
        mor.balance_of(devnet.signer(7).address()).await?,
        Devnet::mint_per_account() + parse_ether("1")?
    );
    Ok(())
}
