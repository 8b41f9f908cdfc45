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

    /*//////////////////////////////////////////////////////////////
                     THE STAKE HELD ACROSS MIDNIGHT
    //////////////////////////////////////////////////////////////*/

    /// @dev No time weighting: MOR staked for one second across 00:00 gives its holder a whole day's
    /// allowance, and the next address a whole next day's. That is the bound, and it holds: the same MOR
    /// counts at most once per UTC day, because unstaked MOR stops counting at once and cannot leave the
    /// contract until the next day.
    function test_MidnightStake_EachMorCountsOncePerDay() external {
        uint256 amount = 1000e18;
        uint256 d = block.timestamp / 1 days;
        uint256 supply = mor.totalSupply();

        // Day d, 23:59:59: alice stakes; her stake counts for day d in full.
        vm.warp((d + 1) * 1 days - 1);
        vm.startPrank(alice);
        router.stake(amount);
        uint256 aliceDayD = router.userMax(alice);
        assertEq(aliceDayD, router.maxT() * amount / supply);
        assertGt(aliceDayD, 0);
        // She unstakes in the same second: it stops counting at once, and cannot move today.
        router.unstake(amount);
        assertEq(router.userMax(alice), 0);
        vm.expectRevert(abi.encodeWithSelector(ISessionRouter.SessionRouterWithdrawLocked.selector, d + 1, d));
        router.withdraw();

        // Day d+1, 00:00:00, one second after the stake: she withdraws and hands the MOR to bob.
        vm.warp((d + 1) * 1 days);
        assertEq(router.withdraw(), amount);
        assertTrue(mor.transfer(bob, amount));
        vm.stopPrank();
        vm.prank(bob);
        router.stake(amount);
        // Bob has day d+1's allowance for it; alice has nothing on day d+1.
        assertEq(router.userMax(bob), router.maxT() * amount / supply);
        assertGt(router.userMax(bob), 0);
        assertEq(router.userMax(alice), 0);
    }

    /// @dev MOR still staked at 00:00 counts for its holder on both days, and is then locked a day longer:
    /// it can reach another address only on the day after the unstake.
    function test_MidnightStake_HeldPastMidnightLockedUntilTheNextDay() external {
        uint256 d = block.timestamp / 1 days;
        vm.warp((d + 1) * 1 days - 1);
        vm.startPrank(alice);
        router.stake(1000e18);
        vm.warp((d + 1) * 1 days);
        assertGt(router.userMax(alice), 0); // counts on day d+1 too
        router.unstake(1000e18);
        vm.warp((d + 2) * 1 days - 1); // day d+1's last second
        vm.expectRevert(
            abi.encodeWithSelector(ISessionRouter.SessionRouterWithdrawLocked.selector, d + 2, d + 1)
        );
        router.withdraw();
        vm.warp((d + 2) * 1 days);
        assertEq(router.withdraw(), 1000e18);
        vm.stopPrank();
    }

    /// @dev For any stake, unstake and withdrawal times: the MOR leaves (and can count for someone else) only
    /// on a day after the last day it counted for its staker, the day of the unstake.
    function testFuzz_MidnightStake_NoDayCountsTwice(uint256 stakeAt, uint256 heldFor, uint256 waited)
        external
    {
        stakeAt = block.timestamp + bound(stakeAt, 0, 3 days);
        heldFor = bound(heldFor, 0, 2 days);
        waited = bound(waited, 0, 2 days);
        vm.warp(stakeAt);
        vm.startPrank(alice);
        router.stake(1e18);
        vm.warp(stakeAt + heldFor);
        uint256 lastCountedDay = block.timestamp / 1 days;
        router.unstake(1e18);
        vm.warp(block.timestamp + waited);
        uint256 today = block.timestamp / 1 days;
        if (today > lastCountedDay) {
            assertEq(router.withdraw(), 1e18);
        } else {
            vm.expectRevert(
                abi.encodeWithSelector(
                    ISessionRouter.SessionRouterWithdrawLocked.selector, lastCountedDay + 1, today
                )
            );
            router.withdraw();
        }
        vm.stopPrank();
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
