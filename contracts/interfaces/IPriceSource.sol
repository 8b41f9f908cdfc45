// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IPriceSource
/// @notice The prices the access rate is computed from. A Chainlink adapter (MOR/USD feed plus a configured
/// token price) or {FixedPriceSource} on local chains implements it.
interface IPriceSource {
    /// @notice The current prices, both in USD with 18 decimals.
    /// @return morUsd The USD price of 1 MOR.
    /// @return tokensUsd The USD price of 1000 tokens of inference.
    function prices() external view returns (uint256 morUsd, uint256 tokensUsd);
}
