// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Test} from "forge-std/Test.sol";

import {ComputePool} from "../../contracts/ComputePool.sol";
import {SessionRouter} from "../../contracts/SessionRouter.sol";
import {FixedPriceSource} from "../../contracts/oracles/FixedPriceSource.sol";
import {TestMOR} from "../../contracts/token/TestMOR.sol";
import {Handler} from "./Handler.sol";

/// @notice The protocol's invariants (docs/protocol.md, "Invariants"), through a handler with ghost totals.
/// Invariant 7 (a user's credited tokens within userMax) is enforced by the router off-chain; on-chain its
/// basis, that an allowance follows the stake at once and staked MOR cannot move the same day, is
/// `invariant_StakesNeverLost` plus the stake tests.
contract Invariants_Test is Test {
    TestMOR internal mor;
    ComputePool internal pool;
    SessionRouter internal router;
    Handler internal handler;

    function setUp() external {
        vm.warp(1_767_225_600 + 1 hours);
        mor = new TestMOR(address(this));
        FixedPriceSource prices = new FixedPriceSource(address(this), 20e18, 0.002e18);
        pool = new ComputePool(address(this), mor, 100, 1000);
        router = new SessionRouter(address(this), mor, pool, prices);
        pool.setSessionRouter(address(router));
        uint256[2] memory keys = [uint256(keccak256("router0")), uint256(keccak256("router1"))];
        router.addRouter(vm.addr(keys[0]), 6000);
        router.addRouter(vm.addr(keys[1]), 6000);

        handler = new Handler(mor, pool, router, keys);
        mor.transferOwnership(address(handler));
        handler.deposit(1_000_000e18);
        vm.warp(block.timestamp + 1 days);

        // Every action of the handler and nothing else (not its views or ghost getters). An action left out
        // is never called, and the invariants it feeds pass unexercised: without `claim`, a router that pays
        // a voucher's whole cumulative amount again still passes invariant_NoDoublePay.
        bytes4[] memory actions = new bytes4[](8);
        actions[0] = Handler.deposit.selector;
        actions[1] = Handler.warp.selector;
        actions[2] = Handler.claim.selector;
        actions[3] = Handler.claimForeign.selector;
        actions[4] = Handler.stake.selector;
        actions[5] = Handler.unstake.selector;
        actions[6] = Handler.withdraw.selector;
        actions[7] = Handler.claimBatchWithStale.selector;
        targetContract(address(handler));
        targetSelector(FuzzSelector({addr: address(handler), selectors: actions}));
    }

    /// @notice 1. Total paid to providers <= total deposited; the pool holds exactly what it accounts.
    function invariant_Solvency() external view {
        assertLe(handler.ghostPaid(), handler.ghostDeposited());
        assertEq(mor.balanceOf(address(pool)), pool.balance() + pool.reserve());
        assertEq(pool.balance() + pool.reserve() + handler.ghostPaid(), handler.ghostDeposited());
    }

    /// @notice 2. Paid during a UTC day <= 1% of the pool's balance at the start of that day.
    function invariant_DailyBudget() external view {
        assertFalse(handler.ghostBudgetExceeded());
        assertLe(pool.spentToday(), pool.todayBudget());
    }

    /// @notice 3. For each (router, provider), paid <= the largest cumulativeAmount a valid voucher carried.
    function invariant_NoDoublePay() external view {
        address[2] memory routers = handler.routers();
        address[3] memory providers = handler.providers();
        for (uint256 r; r < 2; ++r) {
            for (uint256 p; p < 3; ++p) {
                assertLe(
                    router.claimRecord(routers[r], providers[p]).paid,
                    handler.ghostCumulative(routers[r], providers[p])
                );
            }
        }
    }

    /// @notice 4. Every user's stake is held in full and is withdrawable by its owner after its lock.
    function invariant_StakesNeverLost() external view {
        address[3] memory users = handler.users();
        uint256 sum;
        for (uint256 i; i < 3; ++i) {
            (uint256 staked, uint256 pending,) = router.stakeOf(users[i]);
            assertEq(staked + pending, handler.ghostUserMor(users[i]));
            sum += staked + pending;
        }
        assertEq(router.totalStaked(), sum);
        assertEq(mor.balanceOf(address(router)), sum);
    }

    /// @notice 5. A voucher from an unauthorised signer or another chain pays nothing.
    function invariant_ForeignVouchersPayNothing() external view {
        assertEq(handler.ghostForeignPaid(), 0);
    }

    /// @notice 8. A stale voucher in a batch of several is skipped: it pays nothing and moves nothing of its
    /// pair's record, and the batch pays its other voucher exactly what that voucher alone is owed.
    function invariant_StaleVoucherInBatchSkipped() external view {
        assertEq(handler.ghostStalePaid(), 0);
        assertFalse(handler.ghostBatchMisaccounted());
    }
}
