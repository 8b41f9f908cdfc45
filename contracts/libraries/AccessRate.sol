// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

/// @title AccessRate
/// @notice How many tokens of inference the protocol can buy in a day, and how many of them a staked MOR
/// entitles its holder to. Prices are in USD with 18 decimals; MOR amounts are in wei (18 decimals).
/// @dev Worked example (tested): supply 10,000,000 MOR, budget 3,000 MOR, MOR $20, 1000 tokens $0.002 ->
/// maxT = 30,000,000,000 tokens, accessRate = 3,000 tokens per MOR, userMax(5 MOR) = 15,000 tokens.
/// Every division rounds down, so a user is never promised more than the budget buys.
library AccessRate {
    /// @notice Thrown when the price of tokens is zero, which would make the day's tokens unbounded.
    error AccessRateZeroTokenPrice();

    /// @dev One MOR in wei, and the 1000 tokens that `priceT` is quoted for, folded into one divisor:
    /// tokens = budgetWei / 1e18 * priceMOR / priceT * 1000 = budgetWei * priceMOR / (priceT * 1e15).
    uint256 internal constant _WEI_PER_MOR_PER_1000 = 1e15;

    /// @notice The tokens the day's budget buys: `budget * priceMOR / priceT * 1000`, in whole tokens.
    /// @param budget The day's budget in MOR wei.
    /// @param priceMOR The USD price of 1 MOR, 18 decimals.
    /// @param priceT The USD price of 1000 tokens, 18 decimals; must not be zero.
    function maxT(uint256 budget, uint256 priceMOR, uint256 priceT) internal pure returns (uint256) {
        if (priceT == 0) revert AccessRateZeroTokenPrice();
        // Checked: priceT above ~1.2e62 (USD 1.2e44 per 1000 tokens) reverts instead of wrapping.
        return Math.mulDiv(budget, priceMOR, priceT * _WEI_PER_MOR_PER_1000);
    }

    /// @notice Tokens per whole staked MOR: `maxT / supply`, with supply in wei.
    /// @param maxTokens The day's tokens, from {maxT}.
    /// @param supply The MOR total supply in wei; zero gives zero.
    function accessRate(uint256 maxTokens, uint256 supply) internal pure returns (uint256) {
        if (supply == 0) return 0;
        return Math.mulDiv(maxTokens, 1e18, supply);
    }

    /// @notice A staker's daily tokens: `maxT * stake / supply`, so fractional MOR stakes count exactly.
    /// @param maxTokens The day's tokens, from {maxT}.
    /// @param stake The user's staked MOR in wei.
    /// @param supply The MOR total supply in wei; zero gives zero.
    function userMax(uint256 maxTokens, uint256 stake, uint256 supply) internal pure returns (uint256) {
        if (supply == 0) return 0;
        return Math.mulDiv(maxTokens, stake, supply);
    }
}
