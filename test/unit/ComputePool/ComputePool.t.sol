// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {ComputePool} from "../../../contracts/ComputePool.sol";
import {IComputePool} from "../../../contracts/interfaces/IComputePool.sol";
import {Base} from "../../Base.t.sol";

contract ComputePool_Unit_Test is Base {
    uint256 internal constant BALANCE = 900_000e18;
    uint256 internal constant RESERVE = 100_000e18;
    uint256 internal constant BUDGET = 9000e18;

    function setUp() public override {
        super.setUp();
        vm.prank(owner);
        mor.mint(depositor, 10_000_000e18);
    }

    /*//////////////////////////////////////////////////////////////
                              CONSTRUCTOR
    //////////////////////////////////////////////////////////////*/

    function test_Constructor() external view {
        assertEq(pool.BUDGET_BPS(), BUDGET_BPS);
        assertEq(address(pool.mor()), address(mor));
        assertEq(pool.bootstrapBps(), BOOTSTRAP_BPS);
        assertEq(pool.bootstrapEnd(), START + 365 days);
        assertEq(pool.sessionRouter(), address(router));
        assertEq(pool.owner(), owner);
        assertEq(pool.currentDay(), block.timestamp / 1 days);
    }

    function test_RevertWhen_ConstructorBudgetBpsZero() external {
        vm.expectRevert(abi.encodeWithSelector(IComputePool.ComputePoolBpsOutOfRange.selector, 0, 10_000));
        new ComputePool(owner, mor, 0, 1000);
    }

    function test_RevertWhen_ConstructorBudgetBpsTooHigh() external {
        vm.expectRevert(
            abi.encodeWithSelector(IComputePool.ComputePoolBpsOutOfRange.selector, 10_001, 10_000)
        );
        new ComputePool(owner, mor, 10_001, 1000);
    }

    function test_RevertWhen_ConstructorBootstrapBpsTooHigh() external {
        vm.expectRevert(abi.encodeWithSelector(IComputePool.ComputePoolBpsOutOfRange.selector, 5001, 5000));
        new ComputePool(owner, mor, 100, 5001);
    }

    /*//////////////////////////////////////////////////////////////
                                 VIEWS
    //////////////////////////////////////////////////////////////*/

    function test_Today() external view {
        assertEq(pool.balance(), BALANCE);
        assertEq(pool.reserve(), RESERVE);
        (uint256 budget, uint256 spent, uint256 reserve) = pool.today();
        assertEq(budget, BUDGET);
        assertEq(spent, 0);
        assertEq(reserve, RESERVE);
        assertEq(pool.todayBudget(), BUDGET);
        assertEq(pool.spentToday(), 0);
        assertEq(pool.remainingToday(), BUDGET);
    }

    /*//////////////////////////////////////////////////////////////
                                DEPOSIT
    //////////////////////////////////////////////////////////////*/

    function test_RevertWhen_DepositZero() external {
        vm.expectRevert(IComputePool.ComputePoolZeroAmount.selector);
        pool.deposit(0);
    }

    function test_RevertWhen_DepositTooLarge() external {
        uint256 amount = uint256(type(uint112).max);
        vm.prank(owner);
        mor.mint(depositor, amount);
        vm.expectRevert(abi.encodeWithSelector(IComputePool.ComputePoolAmountTooLarge.selector, amount));
        vm.prank(depositor);
        pool.deposit(amount);
    }

    function test_Deposit_SplitsReserveAndOpensDay() external {
        vm.expectEmit(address(pool));
        emit IComputePool.DayOpened(block.timestamp / 1 days, BUDGET);
        vm.expectEmit(address(pool));
        emit IComputePool.Deposited(depositor, 1000e18, 100e18);
        vm.prank(depositor);
        pool.deposit(1000e18);
        assertEq(pool.balance(), BALANCE + 900e18);
        assertEq(pool.reserve(), RESERVE + 100e18);
        // The deposit does not raise today's budget.
        assertEq(pool.todayBudget(), BUDGET);
        assertEq(mor.balanceOf(address(pool)), POOL_DEPOSIT + 1000e18);
    }

    function test_Deposit_AfterBootstrap_AllToBalance() external {
        vm.warp(pool.bootstrapEnd());
        vm.prank(depositor);
        pool.deposit(1000e18);
        assertEq(pool.reserve(), RESERVE);
        assertEq(pool.balance(), BALANCE + 1000e18);
    }

    function testFuzz_Deposit(uint256 amount, uint256 bps) external {
        amount = bound(amount, 1, 5_000_000e18);
        bps = bound(bps, 0, 5000);
        vm.prank(owner);
        pool.setBootstrapBps(bps);
        uint256 budget = pool.todayBudget();
        vm.prank(depositor);
        pool.deposit(amount);
        assertEq(pool.balance() + pool.reserve(), POOL_DEPOSIT + amount);
        assertEq(pool.reserve(), RESERVE + amount * bps / 10_000);
        assertEq(pool.todayBudget(), budget);
        _nextDay();
        assertEq(pool.todayBudget(), pool.balance() / 100);
    }

    /*//////////////////////////////////////////////////////////////
                                  PAY
    //////////////////////////////////////////////////////////////*/

    function test_RevertWhen_PayCallerNotRouter() external {
        vm.expectRevert(abi.encodeWithSelector(IComputePool.ComputePoolCallerNotRouter.selector, eve));
        vm.prank(eve);
        pool.pay(eve, 1, 0);
    }

    function test_RevertWhen_PayZeroProvider() external {
        vm.expectRevert(IComputePool.ComputePoolZeroProvider.selector);
        vm.prank(address(router));
        pool.pay(address(0), 1, 0);
    }

    function test_RevertWhen_PayZeroAmount() external {
        vm.expectRevert(IComputePool.ComputePoolZeroAmount.selector);
        vm.prank(address(router));
        pool.pay(provider, 0, 0);
    }

    function test_RevertWhen_PayOverBudget() external {
        vm.expectRevert(
            abi.encodeWithSelector(IComputePool.ComputePoolBudgetExceeded.selector, BUDGET, BUDGET + 1)
        );
        vm.prank(address(router));
        pool.pay(provider, BUDGET + 1, 0);
    }

    function test_RevertWhen_PayOverReserve() external {
        vm.expectRevert(
            abi.encodeWithSelector(IComputePool.ComputePoolReserveExceeded.selector, RESERVE, RESERVE + 1)
        );
        vm.prank(address(router));
        pool.pay(provider, 0, RESERVE + 1);
    }

    function test_Pay() external {
        uint256 before = mor.balanceOf(provider);
        vm.expectEmit(address(pool));
        emit IComputePool.Paid(provider, 100e18, 5e18);
        vm.prank(address(router));
        pool.pay(provider, 100e18, 5e18);
        assertEq(mor.balanceOf(provider) - before, 105e18);
        assertEq(pool.spentToday(), 100e18);
        assertEq(pool.balance(), BALANCE - 100e18);
        assertEq(pool.reserve(), RESERVE - 5e18);
        // Next day: the budget is 1% of what is left.
        _nextDay();
        assertEq(pool.todayBudget(), (BALANCE - 100e18) / 100);
        assertEq(pool.balance(), BALANCE - 100e18);
    }

    function testFuzz_Pay(uint256 amount, uint256 bootstrapAmount) external {
        amount = bound(amount, 0, BUDGET);
        bootstrapAmount = bound(bootstrapAmount, amount == 0 ? 1 : 0, RESERVE);
        vm.prank(address(router));
        pool.pay(provider, amount, bootstrapAmount);
        assertEq(pool.remainingToday(), BUDGET - amount);
        assertEq(pool.reserve(), RESERVE - bootstrapAmount);
        assertEq(mor.balanceOf(address(pool)), pool.balance() + pool.reserve());
    }

    /*//////////////////////////////////////////////////////////////
                                 ADMIN
    //////////////////////////////////////////////////////////////*/

    function test_RevertWhen_SetSessionRouterTwice() external {
        vm.expectRevert(
            abi.encodeWithSelector(IComputePool.ComputePoolRouterAlreadySet.selector, address(router))
        );
        vm.prank(owner);
        pool.setSessionRouter(eve);
    }

    function test_RevertWhen_SetSessionRouterZero() external {
        ComputePool fresh = new ComputePool(owner, mor, 100, 1000);
        vm.expectRevert(abi.encodeWithSelector(IComputePool.ComputePoolRouterAlreadySet.selector, address(0)));
        vm.prank(owner);
        fresh.setSessionRouter(address(0));
    }

    function test_RevertWhen_SetSessionRouterNotOwner() external {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, eve));
        vm.prank(eve);
        pool.setSessionRouter(eve);
    }

    function test_SetSessionRouter() external {
        ComputePool fresh = new ComputePool(owner, mor, 100, 1000);
        vm.expectEmit(address(fresh));
        emit IComputePool.SessionRouterSet(eve);
        vm.prank(owner);
        fresh.setSessionRouter(eve);
        assertEq(fresh.sessionRouter(), eve);
    }

    function test_RevertWhen_SetBootstrapBpsTooHigh() external {
        vm.expectRevert(abi.encodeWithSelector(IComputePool.ComputePoolBpsOutOfRange.selector, 5001, 5000));
        vm.prank(owner);
        pool.setBootstrapBps(5001);
    }

    function test_RevertWhen_SetBootstrapBpsNotOwner() external {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, eve));
        vm.prank(eve);
        pool.setBootstrapBps(1);
    }

    function testFuzz_SetBootstrapBps(uint256 bps) external {
        bps = bound(bps, 0, 5000);
        vm.expectEmit(address(pool));
        emit IComputePool.BootstrapBpsSet(bps);
        vm.prank(owner);
        pool.setBootstrapBps(bps);
        assertEq(pool.bootstrapBps(), bps);
    }

    function test_RevertWhen_ReleaseReserveDuringBootstrap() external {
        vm.expectRevert(
            abi.encodeWithSelector(IComputePool.ComputePoolBootstrapNotOver.selector, START + 365 days)
        );
        pool.releaseReserve();
    }

    function test_RevertWhen_ReleaseReserveEmpty() external {
        ComputePool fresh = new ComputePool(owner, mor, 100, 1000);
        vm.warp(fresh.bootstrapEnd());
        vm.expectRevert(IComputePool.ComputePoolZeroAmount.selector);
        fresh.releaseReserve();
    }

    function test_ReleaseReserve() external {
        vm.warp(pool.bootstrapEnd());
        uint256 budget = pool.todayBudget();
        vm.expectEmit(address(pool));
        emit IComputePool.ReserveReleased(RESERVE);
        pool.releaseReserve();
        assertEq(pool.reserve(), 0);
        assertEq(pool.balance(), BALANCE + RESERVE);
        assertEq(pool.todayBudget(), budget); // not raised today
    }

    function test_RevertWhen_ReleaseReserveTooLarge() external {
        // A pool whose balance is near the cap cannot absorb the reserve.
        ComputePool fresh = new ComputePool(owner, IERC20(address(mor)), 100, 0);
        uint256 big = uint256(type(uint112).max) - 1;
        vm.startPrank(owner);
        mor.mint(owner, big + 10e18);
        mor.approve(address(fresh), type(uint256).max);
        fresh.setBootstrapBps(5000);
        fresh.deposit(10e18);
        fresh.setBootstrapBps(0);
        fresh.deposit(big - 5e18);
        vm.stopPrank();
        vm.warp(fresh.bootstrapEnd());
        vm.expectRevert(abi.encodeWithSelector(IComputePool.ComputePoolAmountTooLarge.selector, 5e18));
        fresh.releaseReserve();
    }
}
