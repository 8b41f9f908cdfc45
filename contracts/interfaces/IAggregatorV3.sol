// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IAggregatorV3
/// @notice The calls a price feed answers in the shape of Chainlink's aggregators (ETH/USD on every
/// chain the protocol targets): what a provider's node reads to price a claim's gas in MOR.
interface IAggregatorV3 {
    /// @notice The decimals of `answer`.
    function decimals() external view returns (uint8);

    /// @notice What the feed prices, e.g. "ETH / USD".
    function description() external view returns (string memory);

    /// @notice The latest round.
    /// @return roundId The round's id.
    /// @return answer The price, with `decimals()` decimals.
    /// @return startedAt When the round started (unix seconds).
    /// @return updatedAt When the answer was last updated (unix seconds): a reader refuses a stale one.
    /// @return answeredInRound The round the answer was computed in.
    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound);
}
