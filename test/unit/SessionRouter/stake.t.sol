// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ISessionRouter} from "../../../contracts/interfaces/ISessionRouter.sol";
import {Base} from "../../Base.t.sol";

contract Stake_Unit_Test is Base {
    function test_RevertWhen_StakeZero() external {
        vm.expectRevert(ISessionRouter.SessionRouterZeroAmount.selector);
        vm.prank(alice);
        router.stake(0);
    }

    function test_RevertWhen_StakeTooLarge() external {
        uint256 amount = uint256(type(uint112).max) + 1;
        vm.expectRevert(abi.encodeWithSelector(ISessionRouter.SessionRouterStakeTooLarge.selector, amount));
        vm.prank(alice);
        router.stake(amount);
    }

    function test_Stake() external {
        vm.expectEmit(address(router));
        emit ISessionRouter.Staked(alice, 5e18, 5e18);
        vm.prank(alice);
        router.stake(5e18);
        (uint256 staked, uint256 pending, uint256 unlockDay) = router.stakeOf(alice);
        assertEq(staked, 5e18);
        assertEq(pending, 0);
        assertEq(unlockDay, 0);
        assertEq(router.totalStaked(), 5e18);
        assertEq(mor.balanceOf(address(router)), 5e18);
    }

    function testFuzz_Stake(uint256 a, uint256 b) external {
        a = bound(a, 1, ACTOR_MOR / 2);
        b = bound(b, 1, ACTOR_MOR / 2);
        vm.startPrank(alice);
        router.stake(a);
        router.stake(b);
        vm.stopPrank();
        (uint256 staked,,) = router.stakeOf(alice);
        assertEq(staked, a + b);
        assertEq(router.totalStaked(), a + b);
    }

    function test_RevertWhen_UnstakeZero() external {
        vm.expectRevert(ISessionRouter.SessionRouterZeroAmount.selector);
        vm.prank(alice);
        router.unstake(0);
    }

    function test_RevertWhen_UnstakeMoreThanStaked() external {
        vm.startPrank(alice);
        router.stake(5e18);
        vm.expectRevert(
            abi.encodeWithSelector(ISessionRouter.SessionRouterInsufficientStake.selector, 5e18, 6e18)
        );
        router.unstake(6e18);
        vm.stopPrank();
    }

    function test_Unstake() external {
        vm.startPrank(alice);
        router.stake(5e18);
        uint256 unlockDay = block.timestamp / 1 days + 1;
        vm.expectEmit(address(router));
        emit ISessionRouter.Unstaked(alice, 2e18, unlockDay);
        router.unstake(2e18);
        vm.stopPrank();
        (uint256 staked, uint256 pending, uint256 day) = router.stakeOf(alice);
        assertEq(staked, 3e18);
        assertEq(pending, 2e18);
        assertEq(day, unlockDay);
        assertEq(router.totalStaked(), 5e18);
    }

    function test_RevertWhen_WithdrawNothing() external {
        vm.expectRevert(ISessionRouter.SessionRouterNothingToWithdraw.selector);
        vm.prank(alice);
        router.withdraw();
    }

    function test_RevertWhen_WithdrawSameDay() external {
        vm.startPrank(alice);
        router.stake(5e18);
        router.unstake(5e18);
        uint256 today = block.timestamp / 1 days;
        // Even at the last second of the day.
        vm.warp((today + 1) * 1 days - 1);
        vm.expectRevert(
            abi.encodeWithSelector(ISessionRouter.SessionRouterWithdrawLocked.selector, today + 1, today)
        );
        router.withdraw();
        vm.stopPrank();
    }

    function test_Withdraw_NextDay() external {
        vm.startPrank(alice);
        router.stake(5e18);
        router.unstake(5e18);
        vm.warp((block.timestamp / 1 days + 1) * 1 days); // first second of the next day
        uint256 before = mor.balanceOf(alice);
        vm.expectEmit(address(router));
        emit ISessionRouter.Withdrawn(alice, 5e18);
        uint256 amount = router.withdraw();
        vm.stopPrank();
        assertEq(amount, 5e18);
        assertEq(mor.balanceOf(alice) - before, 5e18);
        assertEq(router.totalStaked(), 0);
    }

    function testFuzz_StakeUnstakeWithdraw(uint256 stakeAmount, uint256 unstakeAmount, uint256 wait)
        external
    {
        stakeAmount = bound(stakeAmount, 1, ACTOR_MOR);
        unstakeAmount = bound(unstakeAmount, 1, stakeAmount);
        wait = bound(wait, 0, 3 days);
        vm.startPrank(alice);
        router.stake(stakeAmount);
        router.unstake(unstakeAmount);
        uint256 unlockDay = block.timestamp / 1 days + 1;
        vm.warp(block.timestamp + wait);
        if (block.timestamp / 1 days < unlockDay) {
            vm.expectPartialRevert(ISessionRouter.SessionRouterWithdrawLocked.selector);
            router.withdraw();
        } else {
            assertEq(router.withdraw(), unstakeAmount);
            assertEq(mor.balanceOf(alice), ACTOR_MOR - stakeAmount + unstakeAmount);
        }
        vm.stopPrank();
    }
}
