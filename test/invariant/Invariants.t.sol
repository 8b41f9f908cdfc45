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
/// `invariant_StakesNeverLost`, `invariant_EachMorCountsOncePerDay` and `invariant_RouterSharesWithinTheWhole`
/// plus the stake tests. The handler owns the router and drives its router changes too.
contract Invariants_Test is Test {
    uint256 internal constant KEYS = 4;

    TestMOR internal mor;
    ComputePool internal pool;
    SessionRouter internal router;
    Handler internal handler;

    function setUp() external {
        vm.warp(1_767_225_600 + 1 hours);
        mor = new TestMOR(address(this));
        FixedPriceSource prices = new FixedPriceSource(address(this), 20e18, 0.002e18);
        pool = new ComputePool(address(this), mor, 100, 1000);
        uint256[KEYS] memory keys = [
            uint256(keccak256("router0")),
            uint256(keccak256("router1")),
            uint256(keccak256("router2")),
            uint256(keccak256("router3"))
        ];
        uint256[2] memory shares = [uint256(5000), 3000];
        address[] memory initial = new address[](2);
        uint256[] memory initialShares = new uint256[](2);
        for (uint256 i; i < 2; ++i) {
            initial[i] = vm.addr(keys[i]);
            initialShares[i] = shares[i];
        }
        // The shortest delay, so announced changes apply within a run (each warp moves up to 2 days).
        router = new SessionRouter(address(this), mor, pool, prices, 1 days, initial, initialShares);
        pool.setSessionRouter(address(router));

        handler = new Handler(mor, pool, router, keys, shares);
        mor.transferOwnership(address(handler));
        router.transferOwnership(address(handler));
        vm.prank(address(handler));
        router.acceptOwnership();
        handler.deposit(1_000_000e18);
        vm.warp(block.timestamp + 1 days);

        // Every action of the handler and nothing else (not its views or ghost getters). An action left out
        // is never called, and the invariants it feeds pass unexercised: without `claim`, a router that pays
        // a voucher's whole cumulative amount again still passes invariant_NoDoublePay.
        bytes4[] memory actions = new bytes4[](16);
        actions[0] = Handler.deposit.selector;
        actions[1] = Handler.warp.selector;
        actions[2] = Handler.claim.selector;
        actions[3] = Handler.claimForeign.selector;
        actions[4] = Handler.stake.selector;
        actions[5] = Handler.unstake.selector;
        actions[6] = Handler.withdraw.selector;
        actions[7] = Handler.claimBatchWithStale.selector;
        actions[8] = Handler.passStake.selector;
        actions[9] = Handler.announceRouter.selector;
        actions[10] = Handler.raiseRouterShare.selector;
        actions[11] = Handler.lowerRouterShare.selector;
        actions[12] = Handler.cancelRouterChange.selector;
        actions[13] = Handler.removeRouter.selector;
        actions[14] = Handler.claimNearEffectiveAt.selector;
        actions[15] = Handler.claimNearGraceEnd.selector;
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
        address[KEYS] memory routers = handler.routers();
        address[3] memory providers = handler.providers();
        for (uint256 r; r < KEYS; ++r) {
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

    /// @notice 9. Router changes wait for the delay: every view shows each key as the rules say (an add or
    /// increase only from its announcement plus ROUTER_DELAY, a decrease or removal at once), and every claim
    /// paid each key exactly what that share allowed.
    function invariant_RouterChangesWaitForTheDelay() external view {
        address[KEYS] memory keys = handler.routers();
        for (uint256 i; i < KEYS; ++i) {
            Handler.GhostRouter memory g = handler.ghostRouter(i);
            (bool authorised, uint256 shareBps,) = router.routerInfo(keys[i]);
            assertEq(authorised, g.authorised, "authorised");
            assertEq(router.isRouter(keys[i]), g.authorised, "isRouter");
            assertEq(shareBps, g.share, "share");
            (uint256 pendingShare, uint256 effectiveAt) = router.pendingRouterChange(keys[i]);
            assertEq(pendingShare, g.pendingShare, "pending share");
            assertEq(effectiveAt, g.pendingAt, "effectiveAt");
        }
        assertFalse(handler.ghostRouterMispaid());
    }

    /// @notice 10. Removal strands nothing and opens nothing: a removed key's vouchers issued up to its
    /// removal pay what they are owed within its share until the grace ends; later ones, and all of them
    /// after the grace, revert with the error naming why.
    function invariant_RemovedRouterPaysOnlyOldVouchersWithinGrace() external view {
        address[KEYS] memory keys = handler.routers();
        for (uint256 i; i < KEYS; ++i) {
            Handler.GhostRouter memory g = handler.ghostRouter(i);
            (uint256 removedAt, uint256 graceEnd) = router.routerRemoval(keys[i]);
            assertEq(removedAt, g.removedAt, "removedAt");
            assertEq(graceEnd, g.removedAt == 0 ? 0 : g.removedAt + 7 days, "graceEnd");
        }
        assertFalse(handler.ghostRemovedMispaid());
    }

    /// @notice 11. The shares of the authorised keys plus the pending adds and increases never pass 10,000
    /// bps, so the routers' parts of a user's allowance (routerUserMax) never sum above userMax.
    function invariant_RouterSharesWithinTheWhole() external view {
        address[KEYS] memory keys = handler.routers();
        uint256 committed;
        uint256 authorisedShares;
        for (uint256 i; i < KEYS; ++i) {
            committed += handler.ghostCommitted(i);
            (bool authorised, uint256 shareBps,) = router.routerInfo(keys[i]);
            if (authorised) authorisedShares += shareBps;
        }
        assertFalse(handler.ghostShareOverflowed());
        assertEq(router.totalRouterShareBps(), committed, "total");
        assertLe(committed, 10_000);
        assertLe(authorisedShares, committed);
        address[3] memory users = handler.users();
        address[] memory listed = router.routers();
        assertLe(listed.length, KEYS);
        for (uint256 u; u < 3; ++u) {
            uint256 granted;
            for (uint256 r; r < listed.length; ++r) {
                granted += router.routerUserMax(listed[r], users[u]);
            }
            assertLe(granted, router.userMax(users[u]));
        }
    }

    /// @notice 12. Each MOR counts at most once per UTC day: on no day does the sum of each user's largest
    /// stake exceed the MOR held at the day's start plus the fresh MOR staked during it, however fast the
    /// handler passes withdrawn MOR from one user to another; and no MOR leaves on the day it last counted.
    function invariant_EachMorCountsOncePerDay() external view {
        assertFalse(handler.ghostMorCountedTwice());
        uint256 today = block.timestamp / 1 days;
        assertLe(handler.ghostCountedOnDay(today), handler.ghostCountableOnDay(today));
    }
}
