//! `sol!` bindings generated from the ABIs in `sdk/abi/` (kept equal to the forge artifacts by
//! `make abi`; `make test` fails on drift). Each contract gets its own module because each ABI
//! carries its own copy of the shared structs.

#![allow(missing_docs, unreachable_pub, clippy::too_many_arguments)]

/// `ProviderRegistry`: providers, the whitelist, models and bids.
pub mod provider_registry {
    alloy::sol!(
        #[sol(rpc, all_derives)]
        ProviderRegistry,
        "abi/ProviderRegistry.json"
    );
}

/// `ComputePool`: the compute bucket's MOR and its daily budget.
pub mod compute_pool {
    alloy::sol!(
        #[sol(rpc, all_derives)]
        ComputePool,
        "abi/ComputePool.json"
    );
}

/// `SessionRouter`: router signers, user stakes, access rate, voucher claims.
pub mod session_router {
    alloy::sol!(
        #[sol(rpc, all_derives)]
        SessionRouter,
        "abi/SessionRouter.json"
    );
}

/// `FixedAggregator`: an owner-set price feed in Chainlink's shape, for local chains.
pub mod fixed_aggregator {
    alloy::sol!(
        #[sol(rpc, all_derives)]
        FixedAggregator,
        "abi/FixedAggregator.json"
    );
}

/// `IAggregatorV3` (`contracts/interfaces/IAggregatorV3.sol`): the calls a Chainlink-shaped price
/// feed answers (ETH/USD on the protocol's chains, `FixedAggregator` on local ones). Declared
/// here: the interface is not deployed and has no artifact in `abi/`.
pub mod aggregator_v3 {
    alloy::sol!(
        #[sol(rpc, all_derives)]
        interface IAggregatorV3 {
            function decimals() external view returns (uint8);
            function latestRoundData()
                external
                view
                returns (
                    uint80 roundId,
                    int256 answer,
                    uint256 startedAt,
                    uint256 updatedAt,
                    uint80 answeredInRound
                );
        }
    );
}

/// `FixedPriceSource`: owner-set prices for local chains.
pub mod fixed_price_source {
    alloy::sol!(
        #[sol(rpc, all_derives)]
        FixedPriceSource,
        "abi/FixedPriceSource.json"
    );
}

/// `IPriceSource` (`contracts/interfaces/IPriceSource.sol`): the one call every price source
/// answers, `FixedPriceSource` on local chains and a Chainlink adapter elsewhere. Declared here
/// rather than from an ABI file: the interface is not deployed and has no artifact in `abi/`.
pub mod price_source {
    alloy::sol!(
        #[sol(rpc, all_derives)]
        interface IPriceSource {
            /// Both in USD with 18 decimals: 1 MOR, and 1000 tokens of inference.
            function prices() external view returns (uint256 morUsd, uint256 tokensUsd);
        }
    );
}

/// `TestMOR`: the mintable MOR stand-in of local chains (an OpenZeppelin ERC20).
pub mod test_mor {
    alloy::sol!(
        #[sol(rpc, all_derives)]
        TestMOR,
        "abi/TestMOR.json"
    );
}
