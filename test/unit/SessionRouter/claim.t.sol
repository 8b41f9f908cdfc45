// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IComputePool} from "../../../contracts/interfaces/IComputePool.sol";
import {ISessionRouter} from "../../../contracts/interfaces/ISessionRouter.sol";
import {Messages} from "../../../contracts/libraries/Messages.sol";
import {Base} from "../../Base.t.sol";

/// @notice Follows claim.tree.
contract Claim_Unit_Test is Base {
    uint256 internal constant BUDGET = 9000e18; // 1% of 900,000 MOR
    uint256 internal constant ROUTER_LIMIT = 5400e18; // ROUTER_SHARE (60%) of it
    uint256 internal constant ROUTER2_LIMIT = 3600e18; // ROUTER2_SHARE (40%) of it

    /*//////////////////////////////////////////////////////////////
                                REVERTS
    //////////////////////////////////////////////////////////////*/

    function test_RevertWhen_NoVouchers() external {
        vm.expectRevert(ISessionRouter.SessionRouterNoVouchers.selector);
        router.claim(new Messages.CreditVoucher[](0), new bytes[](0));
    }

    function test_RevertWhen_LengthMismatch() external {
        vm.expectRevert(abi.encodeWithSelector(ISessionRouter.SessionRouterLengthMismatch.selector, 1, 0));
        router.claim(_one(_voucher(routerSigner, provider, 1e18, 0)), new bytes[](0));
    }

    function test_RevertWhen_SignatureMalformed() external {
        Messages.CreditVoucher memory v = _voucher(routerSigner, provider, 1e18, 0);
        vm.expectRevert(
            abi.encodeWithSelector(
                ISessionRouter.SessionRouterInvalidSignature.selector, routerSigner, address(0)
            )
        );
        router.claim(_one(v), _one(hex"1234"));
    }

    function test_RevertWhen_SignatureNotRouters() external {
        Messages.CreditVoucher memory v = _voucher(routerSigner, provider, 1e18, 0);
        vm.expectRevert(
            abi.encodeWithSelector(
                ISessionRouter.SessionRouterInvalidSignature.selector, routerSigner, router2Signer
            )
        );
        router.claim(_one(v), _one(_sign(router2Key, v)));
    }

    function test_RevertWhen_SignatureOverOtherVoucher() external {
        Messages.CreditVoucher memory v = _voucher(routerSigner, provider, 1e18, 0);
        bytes memory sig = _sign(routerKey, v);
        v.cumulativeAmount = 2e18;
        vm.expectPartialRevert(ISessionRouter.SessionRouterInvalidSignature.selector);
        router.claim(_one(v), _one(sig));
    }

    function test_RevertWhen_RouterNeverAdded() external {
        (address stranger, uint256 strangerKey) = makeAddrAndKey("stranger");
        Messages.CreditVoucher memory v = _voucher(stranger, provider, 1e18, 0);
        vm.expectRevert(
            abi.encodeWithSelector(ISessionRouter.SessionRouterUnauthorisedRouter.selector, stranger)
        );
        _claim(strangerKey, v);
    }

    /// @dev An announced router pays nothing before its `effectiveAt`.
    function test_RevertWhen_RouterAnnouncedNotYetEffective() external {
        (address next, uint256 nextKey) = makeAddrAndKey("next");
        vm.startPrank(owner);
        router.setRouterShare(router2Signer, 0);
        router.addRouter(next, 4000);
        vm.stopPrank();
        vm.warp(block.timestamp + ROUTER_DELAY - 1);
        Messages.CreditVoucher memory v = _voucher(next, provider, 1e18, 0);
        vm.expectRevert(abi.encodeWithSelector(ISessionRouter.SessionRouterUnauthorisedRouter.selector, next));
        _claim(nextKey, v);
    }

    function test_RevertWhen_RemovedRouterVoucherIssuedAfterRemoval() external {
        vm.prank(owner);
        router.removeRouter(routerSigner);
        uint256 removedAt = block.timestamp;
        vm.warp(block.timestamp + 1);
        Messages.CreditVoucher memory v = _voucher(routerSigner, provider, 1e18, 0);
        vm.expectRevert(
            abi.encodeWithSelector(
                ISessionRouter.SessionRouterVoucherAfterRemoval.selector, routerSigner, v.issuedAt, removedAt
            )
        );
        _claim(routerKey, v);
    }

    function test_RevertWhen_RemovedRouterGraceEnded() external {
        Messages.CreditVoucher memory v = _voucher(routerSigner, provider, 1e18, 0);
        vm.prank(owner);
        router.removeRouter(routerSigner);
        uint256 graceEnd = block.timestamp + 7 days;
        vm.warp(graceEnd);
        vm.expectRevert(
            abi.encodeWithSelector(
                ISessionRouter.SessionRouterRouterGraceEnded.selector, routerSigner, graceEnd
            )
        );
        _claim(routerKey, v);
    }

    /// @dev Issued after removal and after the grace: the grace's end is reported first.
    function test_RevertWhen_RemovedRouterGraceEndedAndVoucherAfterRemoval() external {
        vm.prank(owner);
        router.removeRouter(routerSigner);
        uint256 graceEnd = block.timestamp + 7 days;
        vm.warp(graceEnd + 1 days);
        vm.expectRevert(
            abi.encodeWithSelector(
                ISessionRouter.SessionRouterRouterGraceEnded.selector, routerSigner, graceEnd
            )
        );
        _claim(routerKey, _voucher(routerSigner, provider, 1e18, 0));
    }

    /// @dev Only staleness is skipped: a removed router's voucher issued after its removal reverts the batch.
    function test_RevertWhen_VoucherAfterRemovalInBatch() external {
        vm.prank(owner);
        router.removeRouter(routerSigner);
        uint256 removedAt = block.timestamp;
        vm.warp(block.timestamp + 1);
        Messages.CreditVoucher[] memory vs = new Messages.CreditVoucher[](2);
        bytes[] memory sigs = new bytes[](2);
        vs[0] = _voucher(router2Signer, provider2, 20e18, 0);
        vs[1] = _voucher(routerSigner, provider, 10e18, 0);
        sigs[0] = _sign(router2Key, vs[0]);
        sigs[1] = _sign(routerKey, vs[1]);
        vm.expectRevert(
            abi.encodeWithSelector(
                ISessionRouter.SessionRouterVoucherAfterRemoval.selector,
                routerSigner,
                vs[1].issuedAt,
                removedAt
            )
        );
        router.claim(vs, sigs);
    }

    function test_RevertWhen_ProviderZero() external {
        Messages.CreditVoucher memory v = _voucher(routerSigner, address(0), 1e18, 0);
        vm.expectRevert(ISessionRouter.SessionRouterZeroAddress.selector);
        _claim(routerKey, v);
    }

    function test_RevertWhen_OnlyVoucherStale() external {
        Messages.CreditVoucher memory old = _voucher(routerSigner, provider, 1e18, 0);
        vm.warp(block.timestamp + 60);
        Messages.CreditVoucher memory fresh = _voucher(routerSigner, provider, 2e18, 0);
        _claim(routerKey, fresh);
        vm.expectRevert(
            abi.encodeWithSelector(
                ISessionRouter.SessionRouterStaleVoucher.selector,
                routerSigner,
                provider,
                old.issuedAt,
                fresh.issuedAt
            )
        );
        _claim(routerKey, old);
    }

    /*//////////////////////////////////////////////////////////////
                          STALE IN A BATCH
    //////////////////////////////////////////////////////////////*/

    function test_WhenStaleVoucherInBatch_SkipsItAndPaysTheRest() external {
        Messages.CreditVoucher memory old = _voucher(routerSigner, provider, BUDGET, 0); // the whole budget
        vm.warp(block.timestamp + 60);
        Messages.CreditVoucher memory fresh = _voucher(routerSigner, provider, 2e18, 0);
        _claim(routerKey, fresh);
        ISessionRouter.ClaimRecord memory before = router.claimRecord(routerSigner, provider);
        uint256 providerBefore = mor.balanceOf(provider);
        uint256 provider2Before = mor.balanceOf(provider2);

        Messages.CreditVoucher[] memory vs = new Messages.CreditVoucher[](2);
        bytes[] memory sigs = new bytes[](2);
        vs[0] = old;
        vs[1] = _voucher(routerSigner, provider2, 30e18, 1e18);
        sigs[0] = _sign(routerKey, vs[0]);
        sigs[1] = _sign(routerKey, vs[1]);
        vm.expectEmit(address(router));
        emit ISessionRouter.VoucherSkipped(routerSigner, provider, old.issuedAt, fresh.issuedAt);
        vm.expectEmit(address(router));
        emit ISessionRouter.VoucherClaimed(routerSigner, provider2, 30e18, 1e18, 30e18, 1e18);
        (uint256 paid, uint256 bootstrapPaid) = router.claim(vs, sigs);

        // The other voucher pays as if the stale one were absent: it took none of the budget or the share.
        assertEq(paid, 30e18);
        assertEq(bootstrapPaid, 1e18);
        assertEq(mor.balanceOf(provider2) - provider2Before, 31e18);
        assertEq(pool.spentToday(), 32e18);
        (,, uint256 spent) = router.routerInfo(routerSigner);
        assertEq(spent, 33e18);
        // The stale one paid nothing and left its pair's record as it was.
        assertEq(mor.balanceOf(provider), providerBefore);
        ISessionRouter.ClaimRecord memory afterwards = router.claimRecord(routerSigner, provider);
        assertEq(abi.encode(afterwards), abi.encode(before));
    }

    function test_WhenOlderVoucherFollowsNewerInBatch_SkipsOlder() external {
        Messages.CreditVoucher memory older = _voucher(routerSigner, provider, 300e18, 0);
        older.sessions = 1000;
        vm.warp(block.timestamp + 60);
        Messages.CreditVoucher memory newer = _voucher(routerSigner, provider, 200e18, 0);
        Messages.CreditVoucher[] memory vs = new Messages.CreditVoucher[](2);
        bytes[] memory sigs = new bytes[](2);
        vs[0] = newer;
        vs[1] = older;
        sigs[0] = _sign(routerKey, newer);
        sigs[1] = _sign(routerKey, older);
        vm.expectEmit(address(router));
        emit ISessionRouter.VoucherClaimed(routerSigner, provider, 200e18, 0, 200e18, 0);
        vm.expectEmit(address(router));
        emit ISessionRouter.VoucherSkipped(routerSigner, provider, older.issuedAt, newer.issuedAt);
        (uint256 paid,) = router.claim(vs, sigs);
        assertEq(paid, 200e18);
        ISessionRouter.ClaimRecord memory r = router.claimRecord(routerSigner, provider);
        assertEq(r.paid, 200e18);
        assertEq(r.sessions, newer.sessions);
        assertEq(r.issuedAt, newer.issuedAt);
    }

    function test_WhenEveryVoucherOfBatchStale_PaysNothing() external {
        Messages.CreditVoucher[] memory vs = new Messages.CreditVoucher[](2);
        bytes[] memory sigs = new bytes[](2);
        vs[0] = _voucher(routerSigner, provider, 10e18, 0);
        vs[1] = _voucher(routerSigner, provider2, 20e18, 0);
        sigs[0] = _sign(routerKey, vs[0]);
        sigs[1] = _sign(routerKey, vs[1]);
        vm.warp(block.timestamp + 60);
        _claim(routerKey, _voucher(routerSigner, provider, 11e18, 0));
        _claim(routerKey, _voucher(routerSigner, provider2, 21e18, 0));
        uint256 spentBefore = pool.spentToday();
        uint256 p1 = mor.balanceOf(provider);
        uint256 p2 = mor.balanceOf(provider2);
        vm.expectEmit(address(router));
        emit ISessionRouter.VoucherSkipped(routerSigner, provider, vs[0].issuedAt, block.timestamp);
        vm.expectEmit(address(router));
        emit ISessionRouter.VoucherSkipped(routerSigner, provider2, vs[1].issuedAt, block.timestamp);
        (uint256 paid, uint256 bootstrapPaid) = router.claim(vs, sigs);
        assertEq(paid + bootstrapPaid, 0);
        assertEq(pool.spentToday(), spentBefore);
        assertEq(mor.balanceOf(provider), p1);
        assertEq(mor.balanceOf(provider2), p2);
    }

    function test_RevertWhen_StaleVoucherInBatchHasBadSignature() external {
        // Skipping is for stale vouchers only: a forged one still reverts the batch, whatever its age.
        Messages.CreditVoucher memory old = _voucher(routerSigner, provider, 1e18, 0);
        vm.warp(block.timestamp + 60);
        _claim(routerKey, _voucher(routerSigner, provider, 2e18, 0));
        Messages.CreditVoucher[] memory vs = new Messages.CreditVoucher[](2);
        bytes[] memory sigs = new bytes[](2);
        vs[0] = old;
        vs[1] = _voucher(routerSigner, provider2, 20e18, 0);
        sigs[0] = _sign(router2Key, old);
        sigs[1] = _sign(routerKey, vs[1]);
        vm.expectRevert(
            abi.encodeWithSelector(
                ISessionRouter.SessionRouterInvalidSignature.selector, routerSigner, router2Signer
            )
        );
        router.claim(vs, sigs);
    }

    function test_RevertWhen_VoucherFromFuture() external {
        Messages.CreditVoucher memory v = _voucher(routerSigner, provider, 1e18, 0);
        v.issuedAt = block.timestamp + 1;
        vm.expectRevert(
            abi.encodeWithSelector(
                ISessionRouter.SessionRouterVoucherFromFuture.selector, block.timestamp + 1, block.timestamp
            )
        );
        _claim(routerKey, v);
    }

    function test_RevertWhen_TokensTooLarge() external {
        Messages.CreditVoucher memory v = _voucher(routerSigner, provider, 1e18, 0);
        v.cumulativeTokens = uint256(type(uint96).max) + 1;
        vm.expectRevert(
            abi.encodeWithSelector(ISessionRouter.SessionRouterCounterTooLarge.selector, v.cumulativeTokens)
        );
        _claim(routerKey, v);
    }

    function test_RevertWhen_SessionsTooLarge() external {
        Messages.CreditVoucher memory v = _voucher(routerSigner, provider, 1e18, 0);
        v.sessions = uint256(type(uint64).max) + 1;
        vm.expectRevert(
            abi.encodeWithSelector(ISessionRouter.SessionRouterCounterTooLarge.selector, v.sessions)
        );
        _claim(routerKey, v);
    }

    function test_RevertWhen_FailedTooLarge() external {
        Messages.CreditVoucher memory v = _voucher(routerSigner, provider, 1e18, 0);
        v.failed = uint256(type(uint64).max) + 1;
        vm.expectRevert(
            abi.encodeWithSelector(ISessionRouter.SessionRouterCounterTooLarge.selector, v.failed)
        );
        _claim(routerKey, v);
    }

    /*//////////////////////////////////////////////////////////////
                                 PAYS
    //////////////////////////////////////////////////////////////*/

    function test_WhenOwedFits_PaysAllToProvider() external {
        Messages.CreditVoucher memory v = _voucher(routerSigner, provider, 100e18, 0);
        uint256 before = mor.balanceOf(provider);
        vm.expectEmit(address(router));
        emit ISessionRouter.VoucherClaimed(routerSigner, provider, 100e18, 0, 100e18, 0);
        vm.prank(eve); // anyone may submit
        (uint256 paid, uint256 bootstrapPaid) = _claim(routerKey, v);
        assertEq(paid, 100e18);
        assertEq(bootstrapPaid, 0);
        assertEq(mor.balanceOf(provider) - before, 100e18);
        assertEq(mor.balanceOf(eve), ACTOR_MOR);
        assertEq(pool.spentToday(), 100e18);
        ISessionRouter.ClaimRecord memory r = router.claimRecord(routerSigner, provider);
        assertEq(r.paid, 100e18);
        assertEq(r.tokens, v.cumulativeTokens);
        assertEq(r.sessions, v.sessions);
        assertEq(r.failed, v.failed);
        assertEq(r.issuedAt, v.issuedAt);
    }

    function test_WhenNothingOwed_PaysNothing() external {
        Messages.CreditVoucher memory v = _voucher(routerSigner, provider, 100e18, 0);
        _claim(routerKey, v);
        vm.expectEmit(address(router));
        emit ISessionRouter.VoucherClaimed(routerSigner, provider, 0, 0, 100e18, 0);
        (uint256 paid,) = _claim(routerKey, v);
        assertEq(paid, 0);
        assertEq(router.claimRecord(routerSigner, provider).paid, 100e18);
    }

    function test_WhenCumulativeGrows_PaysTheDifference() external {
        _claim(routerKey, _voucher(routerSigner, provider, 100e18, 0));
        vm.warp(block.timestamp + 1);
        (uint256 paid,) = _claim(routerKey, _voucher(routerSigner, provider, 250e18, 0));
        assertEq(paid, 150e18);
    }

    function test_WhenOwedExceedsBudget_PaysRemainingThenRestLater() external {
        _setRouterShare(10_000); // the whole budget, so that the budget binds before the share
        Messages.CreditVoucher memory v = _voucher(routerSigner, provider, BUDGET + 500e18, 0);
        (uint256 paid,) = _claim(routerKey, v);
        assertEq(paid, BUDGET);
        assertEq(pool.remainingToday(), 0);
        // Same day: nothing left.
        (paid,) = _claim(routerKey, v);
        assertEq(paid, 0);
        // Next day the same voucher pays the rest.
        _nextDay();
        (paid,) = _claim(routerKey, v);
        assertEq(paid, 500e18);
        assertEq(router.claimRecord(routerSigner, provider).paid, BUDGET + 500e18);
    }

    function test_WhenOwedExceedsRouterShare_PaysShare() external {
        vm.prank(owner);
        router.setRouterShare(routerSigner, 2500); // 25% of 9,000 = 2,250 MOR
        (uint256 paid,) = _claim(routerKey, _voucher(routerSigner, provider, 5000e18, 0));
        assertEq(paid, 2250e18);
        (,, uint256 spent) = router.routerInfo(routerSigner);
        assertEq(spent, 2250e18);
        // The other router pays its own share, whatever the first one left of the budget.
        (paid,) = _claim(router2Key, _voucher(router2Signer, provider, 8000e18, 0));
        assertEq(paid, ROUTER2_LIMIT);
    }

    function test_WhenBootstrapOwed_PaysFromReserve() external {
        uint256 reserveBefore = pool.reserve();
        (uint256 paid, uint256 bootstrapPaid) =
            _claim(routerKey, _voucher(routerSigner, provider, 10e18, 5e18));
        assertEq(paid, 10e18);
        assertEq(bootstrapPaid, 5e18);
        assertEq(pool.reserve(), reserveBefore - 5e18);
        assertEq(router.claimRecord(routerSigner, provider).bootstrapPaid, 5e18);
    }

    function test_WhenBootstrapExceedsReserve_PaysReserve() external {
        _setRouterShare(10_000);
        uint256 reserve = pool.reserve(); // 100,000 MOR, above the budget: lower the cap by share instead
        Messages.CreditVoucher memory v = _voucher(routerSigner, provider, 0, reserve + 1e18);
        (, uint256 bootstrapPaid) = _claim(routerKey, v);
        // Bounded by the router's share (the whole budget) first.
        assertEq(bootstrapPaid, BUDGET);
        // Drain the reserve over the following days; the cap is then the reserve itself.
        for (uint256 i; i < 11; ++i) {
            _nextDay();
            _claim(routerKey, v);
        }
        assertEq(pool.reserve(), 0);
        assertEq(router.claimRecord(routerSigner, provider).bootstrapPaid, reserve);
        _nextDay();
        (, bootstrapPaid) = _claim(routerKey, v);
        assertEq(bootstrapPaid, 0);
    }

    function test_WhenSameProviderTwice_PaysOneTransfer() external {
        Messages.CreditVoucher[] memory vs = new Messages.CreditVoucher[](2);
        bytes[] memory sigs = new bytes[](2);
        vs[0] = _voucher(routerSigner, provider, 10e18, 0);
        vs[1] = _voucher(router2Signer, provider, 20e18, 0);
        sigs[0] = _sign(routerKey, vs[0]);
        sigs[1] = _sign(router2Key, vs[1]);
        vm.expectEmit(address(pool));
        emit IComputePool.Paid(provider, 30e18, 0);
        (uint256 paid,) = router.claim(vs, sigs);
        assertEq(paid, 30e18);
    }

    function test_WhenSeveralRoutersAndProviders_PaysEach() external {
        Messages.CreditVoucher[] memory vs = new Messages.CreditVoucher[](3);
        bytes[] memory sigs = new bytes[](3);
        vs[0] = _voucher(routerSigner, provider, 10e18, 1e18);
        vs[1] = _voucher(routerSigner, provider2, 20e18, 0);
        vs[2] = _voucher(router2Signer, provider, 30e18, 0);
        for (uint256 i; i < 3; ++i) {
            sigs[i] = _sign(i == 2 ? router2Key : routerKey, vs[i]);
        }
        uint256 p1 = mor.balanceOf(provider);
        uint256 p2 = mor.balanceOf(provider2);
        (uint256 paid, uint256 bootstrapPaid) = router.claim(vs, sigs);
        assertEq(paid, 60e18);
        assertEq(bootstrapPaid, 1e18);
        assertEq(mor.balanceOf(provider) - p1, 41e18);
        assertEq(mor.balanceOf(provider2) - p2, 20e18);
        (,, uint256 spent1) = router.routerInfo(routerSigner);
        (,, uint256 spent2) = router.routerInfo(router2Signer);
        assertEq(spent1, 31e18);
        assertEq(spent2, 30e18);
    }

    function test_WhenRouterRepeatsNonConsecutively_KeepsShare() external {
        vm.prank(owner);
        router.setRouterShare(routerSigner, 100); // 90 MOR
        Messages.CreditVoucher[] memory vs = new Messages.CreditVoucher[](3);
        bytes[] memory sigs = new bytes[](3);
        vs[0] = _voucher(routerSigner, provider, 60e18, 0);
        vs[1] = _voucher(router2Signer, provider, 10e18, 0);
        vs[2] = _voucher(routerSigner, provider2, 60e18, 0);
        for (uint256 i; i < 3; ++i) {
            sigs[i] = _sign(i == 1 ? router2Key : routerKey, vs[i]);
        }
        (uint256 paid,) = router.claim(vs, sigs);
        assertEq(paid, 60e18 + 10e18 + 30e18);
    }

    function test_CountersNeverStepBack() external {
        Messages.CreditVoucher memory v = _voucher(routerSigner, provider, 10e18, 0);
        v.sessions = 50;
        _claim(routerKey, v);
        v.sessions = 40; // same issuedAt, lower counter
        _claim(routerKey, v);
        assertEq(router.claimRecord(routerSigner, provider).sessions, 50);
    }

    /*//////////////////////////////////////////////////////////////
                    ROUTER CHANGES, REMOVED ROUTERS
    //////////////////////////////////////////////////////////////*/

    /// @dev An announced router pays from its `effectiveAt` on, without anyone calling anything.
    function test_WhenAnnouncedRouterEffective_PaysWithoutTransaction() external {
        (address next, uint256 nextKey) = makeAddrAndKey("next");
        vm.startPrank(owner);
        router.setRouterShare(router2Signer, 0);
        router.addRouter(next, 4000);
        vm.stopPrank();
        vm.warp(block.timestamp + ROUTER_DELAY);
        (uint256 paid,) = _claim(nextKey, _voucher(next, provider, 10_000e18, 0));
        assertEq(paid, 3600e18);
        (bool authorised, uint256 share, uint256 spent) = router.routerInfo(next);
        assertTrue(authorised);
        assertEq(share, 4000);
        assertEq(spent, 3600e18);
    }

    /// @dev An increase is announced: until `effectiveAt` the claim pays within the old share.
    function test_WhenShareIncreaseAnnounced_PaysOldShareUntilEffective() external {
        vm.startPrank(owner);
        router.setRouterShare(router2Signer, 0);
        router.setRouterShare(routerSigner, 10_000);
        vm.stopPrank();
        uint256 effectiveAt = block.timestamp + ROUTER_DELAY;
        Messages.CreditVoucher memory v = _voucher(routerSigner, provider, 1e30, 0);
        (uint256 paid,) = _claim(routerKey, v);
        assertEq(paid, ROUTER_LIMIT);
        vm.warp(effectiveAt - 1); // a later day, still before effectiveAt
        (paid,) = _claim(routerKey, _voucher(routerSigner, provider, 1e30, 0));
        assertEq(paid, pool.todayBudget() * ROUTER_SHARE / 10_000);
        vm.warp(effectiveAt + 1 days);
        (paid,) = _claim(routerKey, _voucher(routerSigner, provider, 1e30, 0));
        assertEq(paid, pool.todayBudget());
    }

    /// @dev Removal strands nothing: a voucher issued up to the removal pays within the grace.
    function test_WhenRouterRemoved_PaysVouchersIssuedBeforeWithinGrace() external {
        Messages.CreditVoucher memory v = _voucher(routerSigner, provider, 100e18, 2e18);
        bytes memory sig = _sign(routerKey, v);
        vm.warp(block.timestamp + 1 hours);
        vm.prank(owner);
        router.removeRouter(routerSigner);
        Messages.CreditVoucher memory atRemoval = _voucher(routerSigner, provider2, 50e18, 0); // same second
        vm.warp(block.timestamp + 7 days - 1); // the grace's last second
        uint256 before = mor.balanceOf(provider);
        vm.expectEmit(address(router));
        emit ISessionRouter.VoucherClaimed(routerSigner, provider, 100e18, 2e18, 100e18, 2e18);
        (uint256 paid, uint256 bootstrapPaid) = router.claim(_one(v), _one(sig));
        assertEq(paid, 100e18);
        assertEq(bootstrapPaid, 2e18);
        assertEq(mor.balanceOf(provider) - before, 102e18);
        (paid,) = _claim(routerKey, atRemoval);
        assertEq(paid, 50e18);
    }

    /// @dev Within the grace, a removed router pays at most its share as at removal, per day.
    function test_WhenRouterRemoved_GraceBoundedByShareAtRemoval() external {
        Messages.CreditVoucher memory v = _voucher(routerSigner, provider, 2 * ROUTER_LIMIT + 1e18, 0);
        vm.prank(owner);
        router.removeRouter(routerSigner);
        (uint256 paid,) = _claim(routerKey, v);
        assertEq(paid, ROUTER_LIMIT);
        _nextDay();
        (paid,) = _claim(routerKey, v);
        assertEq(paid, pool.todayBudget() * ROUTER_SHARE / 10_000);
    }

    /// @dev The emergency lever: lowering a removed key's share to 0 stops its old vouchers paying at once,
    /// and strands what they still owe.
    function test_WhenRemovedRouterShareLowered_PaysNothing() external {
        Messages.CreditVoucher memory v = _voucher(routerSigner, provider, 100e18, 1e18);
        vm.startPrank(owner);
        router.removeRouter(routerSigner);
        router.setRouterShare(routerSigner, 0);
        vm.stopPrank();
        vm.expectEmit(address(router));
        emit ISessionRouter.VoucherClaimed(routerSigner, provider, 0, 0, 0, 0);
        (uint256 paid, uint256 bootstrapPaid) = _claim(routerKey, v);
        assertEq(paid + bootstrapPaid, 0);
    }

    /// @dev The stale-voucher skip works the same for a removed router within its grace.
    function test_WhenRemovedRouterVoucherStaleInBatch_SkipsIt() external {
        Messages.CreditVoucher memory old = _voucher(routerSigner, provider, 10e18, 0);
        vm.warp(block.timestamp + 60);
        Messages.CreditVoucher memory fresh = _voucher(routerSigner, provider, 20e18, 0);
        vm.prank(owner);
        router.removeRouter(routerSigner);
        _claim(routerKey, fresh);
        Messages.CreditVoucher[] memory vs = new Messages.CreditVoucher[](2);
        bytes[] memory sigs = new bytes[](2);
        vs[0] = old;
        vs[1] = _voucher(routerSigner, provider2, 30e18, 0);
        sigs[0] = _sign(routerKey, vs[0]);
        sigs[1] = _sign(routerKey, vs[1]);
        vm.expectEmit(address(router));
        emit ISessionRouter.VoucherSkipped(routerSigner, provider, old.issuedAt, fresh.issuedAt);
        (uint256 paid,) = router.claim(vs, sigs);
        assertEq(paid, 30e18);
    }

    /*//////////////////////////////////////////////////////////////
                                 FUZZ
    //////////////////////////////////////////////////////////////*/

    /// @dev A removed router's voucher pays (within its share) exactly when it was issued up to the removal
    /// and is claimed before the grace's end; otherwise it reverts with the error naming why.
    function testFuzz_ClaimRemovedRouter(uint256 issuedAfter, uint256 claimedAfter, uint256 amount) external {
        issuedAfter = bound(issuedAfter, 0, 2 hours);
        claimedAfter = bound(claimedAfter, issuedAfter > 1 hours ? issuedAfter : 1 hours, 10 days);
        amount = bound(amount, 1, 10_000e18);
        uint256 removedAt = block.timestamp + 1 hours;
        vm.warp(removedAt);
        vm.prank(owner);
        router.removeRouter(routerSigner);
        Messages.CreditVoucher memory v = _voucher(routerSigner, provider, amount, 0);
        v.issuedAt = block.timestamp - 1 hours + issuedAfter;
        vm.warp(block.timestamp - 1 hours + claimedAfter);
        uint256 graceEnd = removedAt + 7 days;
        if (block.timestamp >= graceEnd) {
            vm.expectRevert(
                abi.encodeWithSelector(
                    ISessionRouter.SessionRouterRouterGraceEnded.selector, routerSigner, graceEnd
                )
            );
            _claim(routerKey, v);
        } else if (v.issuedAt > removedAt) {
            vm.expectRevert(
                abi.encodeWithSelector(
                    ISessionRouter.SessionRouterVoucherAfterRemoval.selector,
                    routerSigner,
                    v.issuedAt,
                    removedAt
                )
            );
            _claim(routerKey, v);
        } else {
            (uint256 paid,) = _claim(routerKey, v);
            uint256 limit = pool.todayBudget() * ROUTER_SHARE / 10_000;
            assertEq(paid, amount < limit ? amount : limit);
        }
    }

    function testFuzz_Claim(uint256 amount, uint256 bootstrap, uint256 shareBps, address submitter) external {
        amount = bound(amount, 0, 20_000e18);
        bootstrap = bound(bootstrap, 0, 200_000e18);
        shareBps = bound(shareBps, 0, 10_000);
        _setRouterShare(shareBps);
        uint256 limit = BUDGET * shareBps / 10_000;
        uint256 reserve = pool.reserve();
        uint256 before = mor.balanceOf(provider);

        vm.prank(submitter);
        (uint256 paid, uint256 bootstrapPaid) =
            _claim(routerKey, _voucher(routerSigner, provider, amount, bootstrap));

        uint256 expectedPaid = amount < limit ? amount : limit;
        uint256 left = limit - expectedPaid;
        uint256 expectedBootstrap = bootstrap < left ? bootstrap : left;
        if (expectedBootstrap > reserve) expectedBootstrap = reserve;
        assertEq(paid, expectedPaid);
        assertEq(bootstrapPaid, expectedBootstrap);
        if (submitter != provider) assertEq(mor.balanceOf(provider) - before, paid + bootstrapPaid);
        assertLe(pool.spentToday(), pool.todayBudget());
    }

    function testFuzz_ClaimTwice_NeverPaysMoreThanCumulative(uint256 first, uint256 second) external {
        first = bound(first, 0, 5000e18);
        second = bound(second, 0, 5000e18);
        _claim(routerKey, _voucher(routerSigner, provider, first, 0));
        vm.warp(block.timestamp + 1);
        _claim(routerKey, _voucher(routerSigner, provider, second, 0));
        uint256 max = first > second ? first : second;
        assertEq(router.claimRecord(routerSigner, provider).paid, max);
    }
}
