// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ComputePool} from "../../contracts/ComputePool.sol";
import {SessionRouter} from "../../contracts/SessionRouter.sol";
import {FixedPriceSource} from "../../contracts/oracles/FixedPriceSource.sol";
import {TestMOR} from "../../contracts/token/TestMOR.sol";
import {Test} from "forge-std/Test.sol";

/// @notice The seed's worked example through the deployed contracts: supply 10,000,000 MOR, budget
/// 3,000 MOR, MOR $20, $0.002 per 1000 tokens -> maxT 3e10, accessRate 3,000, userMax(5 MOR) 15,000.
contract WorkedExample_Integration_Test is Test {
    function test_WorkedExample() external {
        vm.warp(1_767_225_600);
        TestMOR mor = new TestMOR(address(this));
        FixedPriceSource prices = new FixedPriceSource(address(this), 20e18, 0.002e18);
        ComputePool pool = new ComputePool(address(this), mor, 100, 0);
        SessionRouter router =
            new SessionRouter(address(this), mor, pool, prices, 2 days, new address[](0), new uint256[](0));
        pool.setSessionRouter(address(router));

        address user = makeAddr("user");
        mor.mint(address(this), 300_000e18); // 1% of 300,000 = 3,000 MOR
        mor.mint(user, 5e18);
        mor.mint(makeAddr("holders"), 10_000_000e18 - 300_000e18 - 5e18);
        assertEq(mor.totalSupply(), 10_000_000e18);
        mor.approve(address(pool), 300_000e18);
        pool.deposit(300_000e18);
        vm.warp(block.timestamp + 1 days);

        vm.startPrank(user);
        mor.approve(address(router), 5e18);
        router.stake(5e18);
        vm.stopPrank();

        assertEq(pool.todayBudget(), 3000e18);
        assertEq(router.maxT(), 30_000_000_000);
        assertEq(router.accessRate(), 3000);
        assertEq(router.userMax(user), 15_000);
    }
}
