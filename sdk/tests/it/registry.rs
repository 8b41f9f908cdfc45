//! ProviderRegistryClient against the deployed registry.

use alloy::primitives::{B256, U256, b256, keccak256, utils::parse_ether};
use morpheus_sdk::{
    contracts::{
        GGUF, bindings::provider_registry::ProviderRegistry::ProviderRegistryErrors, format_label,
    },
    merkle::{CHUNK_SIZE, ModelTree, PIECE_SIZE},
};
use morpheus_testkit::Devnet;

#[tokio::test]
async fn provider_registers_claims_a_model_and_bids() -> eyre::Result<()> {
    let devnet = Devnet::start().await?;
    let owner = devnet.protocol(0).await?;
    let provider = devnet.protocol(2).await?;
    let me = devnet.signer(2).address();

    // A 3.5 MiB "model": its tree is registered, every chunk proves on-chain.
    let weights: Vec<u8> = (0..(3 * CHUNK_SIZE + CHUNK_SIZE / 2))
        .map(|i| (i * 7 % 256) as u8)
        .collect();
    let tree = ModelTree::from_bytes(&weights)?;
    let model_id = owner
        .registry()
        .register_model(tree.root(), tree.leaf_count(), GGUF, "tiny-test")
        .await?;
    let model = owner.registry().model(model_id).await?;
    assert_eq!(
        (
            model.merkleRoot,
            model.chunkCount,
            format_label(&model.format)
        ),
        (tree.root(), U256::from(4), GGUF.to_string())
    );
    for i in 0..tree.leaf_count() {
        assert!(
            owner
                .registry()
                .verify_model_chunk(model_id, &tree.proof(i)?)
                .await?
        );
    }
    let mut forged = tree.proof(1)?;
    forged.leaf = keccak256("not chunk 1");
    assert!(
        !owner
            .registry()
            .verify_model_chunk(model_id, &forged)
            .await?
    );

    let registry = provider.registry();
    registry
        .register("http://127.0.0.1:9000", parse_ether("10")?)
        .await?;
    let record = registry.provider(me).await?;
    assert_eq!(record.endpoint, "http://127.0.0.1:9000");
    assert_eq!(record.stake, parse_ether("10")?);

    let signature = registry
        .sign_model_claim(model_id, &devnet.signer(2))
        .await?;
    // Anyone may submit the provider's signed claim.
    owner
        .registry()
        .claim_model(me, model_id, signature)
        .await?;
    assert!(registry.has_model_claim(me, model_id).await?);

    registry
        .post_bid(model_id, U256::from(1_000_000_000u64), U256::from(4))
        .await?;
    let bids = registry.bids_for_model(model_id, 0, 10).await?;
    assert_eq!(bids.len(), 1);
    assert_eq!((bids[0].provider, bids[0].capacity), (me, U256::from(4)));
    registry
        .update_bid(model_id, U256::from(2_000_000_000u64), U256::from(8))
        .await?;
    assert_eq!(
        registry.bid(me, model_id).await?.pricePerToken,
        U256::from(2_000_000_000u64)
    );

    // Deregistering with an active bid is refused, with the reason decoded.
    assert_reverted!(
        registry.deregister().await,
        ProviderRegistry(ProviderRegistryErrors::ProviderRegistryActiveBids(_))
    );
    registry.delete_bid(model_id).await?;
    registry.deregister().await?;
    // The stake stays locked through the cooldown.
    assert_reverted!(
        registry.withdraw_stake().await,
        ProviderRegistry(ProviderRegistryErrors::ProviderRegistryStakeLocked(_))
    );
    devnet.advance_days(8).await?;
    let before = provider.mor().balance_of(me).await?;
    registry.withdraw_stake().await?;
    assert_eq!(
        provider.mor().balance_of(me).await? - before,
        parse_ether("10")?
    );
    Ok(())
}

/// A chunk's leaf is the root of its 4 KiB piece tree (`0x00 || piece` leaves, `0x01 || l || r`
/// nodes); the contract, which never looks below a leaf, proves such leaves against the root
/// with the registry's chunk count, and no longer a leaf made the old way (`keccak256(chunk)`).
#[tokio::test]
async fn piece_tree_leaves_prove_on_chain() -> eyre::Result<()> {
    let devnet = Devnet::start().await?;
    let owner = devnet.protocol(0).await?;

    // 2 MiB + 12,345 bytes: the last chunk has four pieces, the last of 57 bytes.
    let weights: Vec<u8> = (0..(2 * CHUNK_SIZE + 12_345))
        .map(|i| (i % 251) as u8)
        .collect();
    let tree = ModelTree::from_bytes(&weights)?;
    let last = &weights[2 * CHUNK_SIZE..];
    let piece = |i: usize| {
        let bytes = &last[i * PIECE_SIZE..last.len().min((i + 1) * PIECE_SIZE)];
        keccak256([&[0x00][..], bytes].concat())
    };
    let node = |l: B256, r: B256| keccak256([&[0x01][..], l.as_slice(), r.as_slice()].concat());
    let by_hand = node(node(piece(0), piece(1)), node(piece(2), piece(3)));
    assert_eq!(tree.leaves()[2], by_hand);
    // The same root as an independent keccak (js-sha3) over the same rule gives.
    assert_eq!(
        tree.root(),
        b256!("8c9e1bc01dfa3b04e3fb21aa34f171afa3d6d3f35edf7f202e0145459a824930")
    );

    let model_id = owner
        .registry()
        .register_model(tree.root(), tree.leaf_count(), GGUF, "piece-tree")
        .await?;
    for i in 0..tree.leaf_count() {
        assert!(
            owner
                .registry()
                .verify_model_chunk(model_id, &tree.proof(i)?)
                .await?,
            "chunk {i}"
        );
    }
    let mut old_rule = tree.proof(2)?;
    old_rule.leaf = keccak256(last);
    assert!(
        !owner
            .registry()
            .verify_model_chunk(model_id, &old_rule)
            .await?
    );
    Ok(())
}

#[tokio::test]
async fn bad_registrations_are_typed_errors() -> eyre::Result<()> {
    let devnet = Devnet::start().await?;
    let provider = devnet.protocol(3).await?;
    let registry = provider.registry();

    assert_reverted!(
        registry.register("http://x", parse_ether("1")?).await,
        ProviderRegistry(ProviderRegistryErrors::ProviderRegistryStakeTooLow(_))
    );

    registry.register("http://x", parse_ether("10")?).await?;
    assert_reverted!(
        registry.register("http://x", parse_ether("10")?).await,
        ProviderRegistry(ProviderRegistryErrors::ProviderRegistryAlreadyRegistered(_))
    );

    assert_reverted!(
        registry
            .post_bid(keccak256("no such model"), U256::from(1), U256::from(1))
            .await,
        ProviderRegistry(ProviderRegistryErrors::ProviderRegistryModelNotClaimed(_))
    );

    assert_reverted!(
        registry
            .sign_model_claim(keccak256("no such model"), &devnet.signer(3))
            .await,
        ProviderRegistry(ProviderRegistryErrors::ProviderRegistryUnknownModel(_))
    );

    Ok(())
}
