// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Test} from "forge-std/Test.sol";

import {AccessRate} from "../../../contracts/libraries/AccessRate.sol";

contract AccessRate_Unit_Test is Test {
    function maxT(uint256 b, uint256 m, uint256 t) external pure returns (uint256) {
        return AccessRate.maxT(b, m, t);
    }

    /// @dev The seed's worked example, exactly.
    function test_WorkedExample() external pure {
        uint256 supply = 10_000_000e18;
        uint256 maxTokens = AccessRate.maxT(3000e18, 20e18, 0.002e18);
        assertEq(maxTokens, 30_000_000_000);
        assertEq(AccessRate.accessRate(maxTokens, supply), 3000);
        assertEq(AccessRate.userMax(maxTokens, 5e18, supply), 15_000);
        // Fractional stakes count: 0.5 MOR -> 1,500 tokens.
        assertEq(AccessRate.userMax(maxTokens, 0.5e18, supply), 1500);
    }

    function test_RevertWhen_TokenPriceZero() external {
        vm.expectRevert(AccessRate.AccessRateZeroTokenPrice.selector);
        this.maxT(1, 1, 0);
    }

    function test_ZeroSupply() external pure {
        assertEq(AccessRate.accessRate(1, 0), 0);
        assertEq(AccessRate.userMax(1, 1, 0), 0);
    }

    /// @dev Against a straightforward reference in ranges where plain arithmetic cannot overflow.
    function testFuzz_AgainstReference(
        uint256 budget,
        uint256 morUsd,
        uint256 tokensUsd,
        uint256 supply,
        uint256 stake
    ) external pure {
        budget = bound(budget, 0, 1e33);
        morUsd = bound(morUsd, 0, 1e24);
        tokensUsd = bound(tokensUsd, 1, 1e24);
        supply = bound(supply, 1, 1e33);
        stake = bound(stake, 0, supply);
        uint256 refMaxT = budget * morUsd * 1000 / (tokensUsd * 1e18);
        uint256 maxTokens = AccessRate.maxT(budget, morUsd, tokensUsd);
        assertEq(maxTokens, refMaxT);
        assertEq(AccessRate.accessRate(maxTokens, supply), refMaxT * 1e18 / supply);
        assertEq(AccessRate.userMax(maxTokens, stake, supply), refMaxT * stake / supply);
        assertLe(AccessRate.userMax(maxTokens, stake, supply), maxTokens);
    }

    /// @dev mulDiv never overflows where the plain product would.
    function testFuzz_NoOverflow(uint256 budget, uint256 morUsd, uint256 stake) external pure {
        budget = bound(budget, 0, type(uint128).max);
        morUsd = bound(morUsd, 0, type(uint128).max);
        uint256 supply = type(uint128).max;
        stake = bound(stake, 0, supply);
        uint256 maxTokens = AccessRate.maxT(budget, morUsd, 1);
        assertLe(AccessRate.userMax(maxTokens, stake, supply), maxTokens);
    }
}
