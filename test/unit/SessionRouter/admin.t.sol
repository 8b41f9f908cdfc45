// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {SessionRouter} from "../../../contracts/SessionRouter.sol";
import {IComputePool} from "../../../contracts/interfaces/IComputePool.sol";
import {IPriceSource} from "../../../contracts/interfaces/IPriceSource.sol";
import {ISessionRouter} from "../../../contracts/interfaces/ISessionRouter.sol";
import {Base} from "../../Base.t.sol";

/// @notice Follows admin.tree: the constructor's initial routers, and router changes behind the timelock.
contract Admin_Unit_Test is Base {
    /*//////////////////////////////////////////////////////////////
                              CONSTRUCTOR
    //////////////////////////////////////////////////////////////*/

    function test_Constructor() external view {
        assertEq(address(router.mor()), address(mor));
        assertEq(address(router.pool()), address(pool));
        assertEq(address(router.priceSource()), address(prices));
        assertEq(router.owner(), owner);
        assertEq(router.ROUTER_DELAY(), ROUTER_DELAY);
        assertEq(router.MIN_ROUTER_DELAY(), 1 days);
        assertEq(router.MAX_ROUTER_DELAY(), 30 days);
        assertEq(router.REMOVED_ROUTER_GRACE(), 7 days);
    }

    /// @dev The initial routers are authorised at once, with their shares: they are part of the deployment.
    function test_Constructor_InitialRoutersEffectiveAtOnce() external {
        vm.expectEmit();
        emit ISessionRouter.RouterAdded(eve, 7000);
        vm.expectEmit();
        emit ISessionRouter.RouterAdded(bob, 3000);
        SessionRouter fresh = _newRouter(pool, _pair(eve, bob), _pair(7000, 3000));
        assertTrue(fresh.isRouter(eve));
        assertTrue(fresh.isRouter(bob));
        (bool authorised, uint256 share, uint256 spent) = fresh.routerInfo(eve);
        assertTrue(authorised);
        assertEq(share, 7000);
        assertEq(spent, 0);
        (, share,) = fresh.routerInfo(bob);
        assertEq(share, 3000);
        (uint256 pendingShare, uint256 effectiveAt) = fresh.pendingRouterChange(eve);
        assertEq(pendingShare + effectiveAt, 0);
        assertEq(fresh.totalRouterShareBps(), 10_000);
        address[] memory list = fresh.routers();
        assertEq(list.length, 2);
        assertEq(list[0], eve);
        assertEq(list[1], bob);
    }

    function test_Constructor_NoInitialRouters() external {
        SessionRouter fresh = _newRouter(pool, new address[](0), new uint256[](0));
        assertEq(fresh.routers().length, 0);
        assertEq(fresh.totalRouterShareBps(), 0);
    }

    function testFuzz_Constructor_RouterDelay(uint256 delay) external {
        delay = bound(delay, 1 days, 30 days);
        SessionRouter fresh = new SessionRouter(owner, mor, pool, prices, delay, _single(eve), _single(1));
        assertEq(fresh.ROUTER_DELAY(), delay);
    }

    function test_RevertWhen_ConstructorZeroAddress() external {
        address[] memory rs = _single(eve);
        uint256[] memory ss = _single(1);
        vm.expectRevert(ISessionRouter.SessionRouterZeroAddress.selector);
        new SessionRouter(owner, IERC20(address(0)), pool, prices, ROUTER_DELAY, rs, ss);
        vm.expectRevert(ISessionRouter.SessionRouterZeroAddress.selector);
        new SessionRouter(owner, mor, IComputePool(address(0)), prices, ROUTER_DELAY, rs, ss);
        vm.expectRevert(ISessionRouter.SessionRouterZeroAddress.selector);
        new SessionRouter(owner, mor, pool, IPriceSource(address(0)), ROUTER_DELAY, rs, ss);
        vm.expectRevert(ISessionRouter.SessionRouterZeroAddress.selector);
        new SessionRouter(owner, mor, pool, prices, ROUTER_DELAY, _single(address(0)), ss);
    }

    function test_RevertWhen_ConstructorRouterDelayTooShort() external {
        vm.expectRevert(
            abi.encodeWithSelector(
                ISessionRouter.SessionRouterRouterDelayOutOfRange.selector, 1 days - 1, 1 days, 30 days
            )
        );
        new SessionRouter(owner, mor, pool, prices, 1 days - 1, _single(eve), _single(1));
    }

    function test_RevertWhen_ConstructorRouterDelayTooLong() external {
        vm.expectRevert(
            abi.encodeWithSelector(
                ISessionRouter.SessionRouterRouterDelayOutOfRange.selector, 30 days + 1, 1 days, 30 days
            )
        );
        new SessionRouter(owner, mor, pool, prices, 30 days + 1, _single(eve), _single(1));
    }

    function test_RevertWhen_ConstructorRoutersAndSharesDiffer() external {
        vm.expectRevert(
            abi.encodeWithSelector(ISessionRouter.SessionRouterInitialRoutersMismatch.selector, 2, 1)
        );
        _newRouter(pool, _pair(eve, bob), _single(1));
    }

    function test_RevertWhen_ConstructorShareTooHigh() external {
        vm.expectRevert(abi.encodeWithSelector(ISessionRouter.SessionRouterShareOutOfRange.selector, 10_001));
        _newRouter(pool, _single(eve), _single(10_001));
    }

    function test_RevertWhen_ConstructorRouterTwice() external {
        vm.expectRevert(abi.encodeWithSelector(ISessionRouter.SessionRouterRouterExists.selector, eve));
        _newRouter(pool, _pair(eve, eve), _pair(1, 1));
    }

    function test_RevertWhen_ConstructorSharesAboveWhole() external {
        vm.expectRevert(
            abi.encodeWithSelector(ISessionRouter.SessionRouterTotalShareTooHigh.selector, 10_001, 10_000)
        );
        _newRouter(pool, _pair(eve, bob), _pair(6000, 4001));
    }

    /*//////////////////////////////////////////////////////////////
                               ADD ROUTER
    //////////////////////////////////////////////////////////////*/

    function test_AddRouter_AnnouncedThenEffectiveAfterDelay() external {
        vm.startPrank(owner);
        router.setRouterShare(router2Signer, 1500); // room for 2,500 bps
        uint256 effectiveAt = block.timestamp + ROUTER_DELAY;
        vm.expectEmit(address(router));
        emit ISessionRouter.RouterChangeAnnounced(eve, 2500, effectiveAt);
        router.addRouter(eve, 2500);
        vm.stopPrank();

        // Listed and counted in the total at once, authorised only from effectiveAt.
        assertEq(router.routers().length, 3);
        assertEq(router.routers()[2], eve);
        assertEq(router.totalRouterShareBps(), 10_000);
        _assertRouter(eve, false, 0);
        (uint256 pendingShare, uint256 pendingAt) = router.pendingRouterChange(eve);
        assertEq(pendingShare, 2500);
        assertEq(pendingAt, effectiveAt);

        vm.warp(effectiveAt - 1);
        _assertRouter(eve, false, 0);
        vm.warp(effectiveAt);
        _assertRouter(eve, true, 2500);
        (pendingShare, pendingAt) = router.pendingRouterChange(eve);
        assertEq(pendingShare + pendingAt, 0);
        assertEq(router.totalRouterShareBps(), 10_000);
    }

    function testFuzz_AddRouter(address who, uint256 share, uint256 wait) external {
        vm.assume(who != address(0) && who != routerSigner && who != router2Signer);
        share = bound(share, 0, 10_000);
        wait = bound(wait, 0, 2 * ROUTER_DELAY);
        vm.startPrank(owner);
        router.setRouterShare(routerSigner, 0);
        router.setRouterShare(router2Signer, 0);
        router.addRouter(who, share);
        vm.stopPrank();
        vm.warp(block.timestamp + wait);
        bool effective = wait >= ROUTER_DELAY;
        _assertRouter(who, effective, effective ? share : 0);
        assertEq(router.totalRouterShareBps(), share);
    }

    function test_RevertWhen_AddRouterNotOwner() external {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, eve));
        vm.prank(eve);
        router.addRouter(eve, 1);
    }

    function test_RevertWhen_AddRouterZero() external {
        vm.expectRevert(ISessionRouter.SessionRouterZeroAddress.selector);
        vm.prank(owner);
        router.addRouter(address(0), 1);
    }

    function test_RevertWhen_AddRouterShareTooHigh() external {
        vm.expectRevert(abi.encodeWithSelector(ISessionRouter.SessionRouterShareOutOfRange.selector, 10_001));
        vm.prank(owner);
        router.addRouter(eve, 10_001);
    }

    function test_RevertWhen_AddRouterTwice() external {
        vm.expectRevert(
            abi.encodeWithSelector(ISessionRouter.SessionRouterRouterExists.selector, routerSigner)
        );
        vm.prank(owner);
        router.addRouter(routerSigner, 1);
    }

    function test_RevertWhen_AddRouterPending() external {
        vm.startPrank(owner);
        router.setRouterShare(router2Signer, 0);
        router.addRouter(eve, 10);
        vm.expectRevert(
            abi.encodeWithSelector(
                ISessionRouter.SessionRouterChangePending.selector, eve, 10, block.timestamp + ROUTER_DELAY
            )
        );
        router.addRouter(eve, 20);
        vm.stopPrank();
    }

    function test_RevertWhen_AddRouterAboveWholeShare() external {
        vm.expectRevert(
            abi.encodeWithSelector(ISessionRouter.SessionRouterTotalShareTooHigh.selector, 10_001, 10_000)
        );
        vm.prank(owner);
        router.addRouter(eve, 1);
    }

    /// @dev Pending adds count toward the total as soon as they are announced, not when they apply.
    function test_RevertWhen_AddRoutersPendingAboveWholeShare() external {
        vm.startPrank(owner);
        router.setRouterShare(routerSigner, 0);
        router.setRouterShare(router2Signer, 0);
        router.addRouter(eve, 6000);
        vm.expectRevert(
            abi.encodeWithSelector(ISessionRouter.SessionRouterTotalShareTooHigh.selector, 10_001, 10_000)
        );
        router.addRouter(bob, 4001);
        vm.stopPrank();
    }

    /*//////////////////////////////////////////////////////////////
                          CANCEL ROUTER CHANGE
    //////////////////////////////////////////////////////////////*/

    function test_CancelRouterChange_Add() external {
        vm.startPrank(owner);
        router.setRouterShare(router2Signer, 0);
        router.addRouter(eve, 4000);
        uint256 effectiveAt = block.timestamp + ROUTER_DELAY;
        vm.expectEmit(address(router));
        emit ISessionRouter.RouterChangeCancelled(eve, 4000, effectiveAt);
        router.cancelRouterChange(eve);
        vm.stopPrank();
        assertEq(router.totalRouterShareBps(), ROUTER_SHARE);
        vm.warp(effectiveAt);
        _assertRouter(eve, false, 0);
        (uint256 pendingShare, uint256 pendingAt) = router.pendingRouterChange(eve);
        assertEq(pendingShare + pendingAt, 0);
        assertEq(router.routers().length, 3); // announced keys stay listed
    }

    function test_CancelRouterChange_Increase() external {
        vm.startPrank(owner);
        router.setRouterShare(router2Signer, 0);
        router.setRouterShare(routerSigner, 9000);
        assertEq(router.totalRouterShareBps(), 9000);
        router.cancelRouterChange(routerSigner);
        vm.stopPrank();
        assertEq(router.totalRouterShareBps(), ROUTER_SHARE);
        vm.warp(block.timestamp + ROUTER_DELAY);
        _assertRouter(routerSigner, true, ROUTER_SHARE);
    }

    function test_RevertWhen_CancelRouterChangeNonePending() external {
        vm.expectRevert(
            abi.encodeWithSelector(ISessionRouter.SessionRouterNoPendingChange.selector, routerSigner)
        );
        vm.prank(owner);
        router.cancelRouterChange(routerSigner);
    }

    /// @dev Once its time has come a change has applied, with no transaction, and there is nothing to cancel.
    function test_RevertWhen_CancelRouterChangeAlreadyApplied() external {
        vm.startPrank(owner);
        router.setRouterShare(router2Signer, 0);
        router.addRouter(eve, 4000);
        vm.warp(block.timestamp + ROUTER_DELAY);
        vm.expectRevert(abi.encodeWithSelector(ISessionRouter.SessionRouterNoPendingChange.selector, eve));
        router.cancelRouterChange(eve);
        vm.stopPrank();
    }

    function test_RevertWhen_CancelRouterChangeNotOwner() external {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, eve));
        vm.prank(eve);
        router.cancelRouterChange(routerSigner);
    }

    /*//////////////////////////////////////////////////////////////
                             REMOVE ROUTER
    //////////////////////////////////////////////////////////////*/

    function test_RemoveRouter_AtOnce() external {
        vm.expectEmit(address(router));
        emit ISessionRouter.RouterRemoved(routerSigner);
        vm.prank(owner);
        router.removeRouter(routerSigner);
        // Not authorised, but its share as at removal is what its old vouchers may still pay in the grace.
        _assertRouter(routerSigner, false, ROUTER_SHARE);
        (uint256 removedAt, uint256 graceEnd) = router.routerRemoval(routerSigner);
        assertEq(removedAt, block.timestamp);
        assertEq(graceEnd, block.timestamp + 7 days);
        assertEq(router.totalRouterShareBps(), ROUTER2_SHARE); // a removed share no longer counts
        assertEq(router.routers().length, 2);
    }

    function test_RemoveRouter_CancelsPendingIncrease() external {
        vm.startPrank(owner);
        router.setRouterShare(router2Signer, 0);
        router.setRouterShare(routerSigner, 8000);
        vm.expectEmit(address(router));
        emit ISessionRouter.RouterChangeCancelled(routerSigner, 8000, block.timestamp + ROUTER_DELAY);
        vm.expectEmit(address(router));
        emit ISessionRouter.RouterRemoved(routerSigner);
        router.removeRouter(routerSigner);
        vm.stopPrank();
        assertEq(router.totalRouterShareBps(), 0);
        vm.warp(block.timestamp + ROUTER_DELAY);
        _assertRouter(routerSigner, false, ROUTER_SHARE);
    }

    function test_RemoveRouter_ReaddAnnouncedAndListedOnce() external {
        vm.startPrank(owner);
        router.removeRouter(routerSigner);
        router.addRouter(routerSigner, 10);
        vm.stopPrank();
        assertEq(router.routers().length, 2);
        // Still removed (in its grace) until the add applies; then authorised, the removal forgotten.
        _assertRouter(routerSigner, false, ROUTER_SHARE);
        vm.warp(block.timestamp + ROUTER_DELAY);
        _assertRouter(routerSigner, true, 10);
        (uint256 removedAt, uint256 graceEnd) = router.routerRemoval(routerSigner);
        assertEq(removedAt + graceEnd, 0);
        assertEq(router.totalRouterShareBps(), ROUTER2_SHARE + 10);
    }

    function test_RevertWhen_RemoveRouterUnknown() external {
        vm.expectRevert(abi.encodeWithSelector(ISessionRouter.SessionRouterUnauthorisedRouter.selector, eve));
        vm.prank(owner);
        router.removeRouter(eve);
    }

    function test_RevertWhen_RemoveRouterTwice() external {
        vm.startPrank(owner);
        router.removeRouter(routerSigner);
        vm.expectRevert(
            abi.encodeWithSelector(ISessionRouter.SessionRouterUnauthorisedRouter.selector, routerSigner)
        );
        router.removeRouter(routerSigner);
        vm.stopPrank();
    }

    /// @dev An announced add that has not applied is cancelled, not removed.
    function test_RevertWhen_RemoveRouterNotYetEffective() external {
        vm.startPrank(owner);
        router.setRouterShare(router2Signer, 0);
        router.addRouter(eve, 1);
        vm.expectRevert(abi.encodeWithSelector(ISessionRouter.SessionRouterUnauthorisedRouter.selector, eve));
        router.removeRouter(eve);
        vm.stopPrank();
    }

    function test_RevertWhen_RemoveRouterNotOwner() external {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, eve));
        vm.prank(eve);
        router.removeRouter(routerSigner);
    }

    /*//////////////////////////////////////////////////////////////
                            SET ROUTER SHARE
    //////////////////////////////////////////////////////////////*/

    function test_SetRouterShare_DecreaseAtOnce() external {
        vm.expectEmit(address(router));
        emit ISessionRouter.RouterShareSet(routerSigner, 42);
        vm.prank(owner);
        router.setRouterShare(routerSigner, 42);
        _assertRouter(routerSigner, true, 42);
        assertEq(router.totalRouterShareBps(), 42 + ROUTER2_SHARE);
    }

    function test_SetRouterShare_IncreaseAnnouncedThenEffective() external {
        vm.startPrank(owner);
        router.setRouterShare(router2Signer, 1000);
        uint256 effectiveAt = block.timestamp + ROUTER_DELAY;
        vm.expectEmit(address(router));
        emit ISessionRouter.RouterChangeAnnounced(routerSigner, 9000, effectiveAt);
        router.setRouterShare(routerSigner, 9000);
        vm.stopPrank();
        assertEq(router.totalRouterShareBps(), 10_000); // the pending share counts at once
        vm.warp(effectiveAt - 1);
        _assertRouter(routerSigner, true, ROUTER_SHARE);
        vm.warp(effectiveAt);
        _assertRouter(routerSigner, true, 9000);
    }

    function test_SetRouterShare_DecreaseCancelsPendingIncrease() external {
        vm.startPrank(owner);
        router.setRouterShare(router2Signer, 0);
        router.setRouterShare(routerSigner, 9000);
        uint256 effectiveAt = block.timestamp + ROUTER_DELAY;
        vm.expectEmit(address(router));
        emit ISessionRouter.RouterChangeCancelled(routerSigner, 9000, effectiveAt);
        vm.expectEmit(address(router));
        emit ISessionRouter.RouterShareSet(routerSigner, 100);
        router.setRouterShare(routerSigner, 100);
        vm.stopPrank();
        assertEq(router.totalRouterShareBps(), 100);
        vm.warp(effectiveAt);
        _assertRouter(routerSigner, true, 100);
    }

    /// @dev The emergency lever: a removed key's share is lowered at once, so its old vouchers pay less
    /// (or nothing) within the grace.
    function test_SetRouterShare_RemovedRouterLoweredAtOnce() external {
        vm.startPrank(owner);
        router.removeRouter(routerSigner);
        router.setRouterShare(routerSigner, 0);
        vm.stopPrank();
        _assertRouter(routerSigner, false, 0);
        assertEq(router.totalRouterShareBps(), ROUTER2_SHARE);
    }

    function test_RevertWhen_SetRouterShareRemovedRouterRaised() external {
        vm.startPrank(owner);
        router.removeRouter(routerSigner);
        vm.expectRevert(
            abi.encodeWithSelector(ISessionRouter.SessionRouterUnauthorisedRouter.selector, routerSigner)
        );
        router.setRouterShare(routerSigner, ROUTER_SHARE + 1);
        vm.stopPrank();
    }

    function test_RevertWhen_SetRouterShareIncreaseAboveWhole() external {
        vm.expectRevert(
            abi.encodeWithSelector(ISessionRouter.SessionRouterTotalShareTooHigh.selector, 10_001, 10_000)
        );
        vm.prank(owner);
        router.setRouterShare(routerSigner, ROUTER_SHARE + 1);
    }

    function test_RevertWhen_SetRouterShareIncreasePending() external {
        vm.startPrank(owner);
        router.setRouterShare(router2Signer, 0);
        router.setRouterShare(routerSigner, 7000);
        vm.expectRevert(
            abi.encodeWithSelector(
                ISessionRouter.SessionRouterChangePending.selector,
                routerSigner,
                7000,
                block.timestamp + ROUTER_DELAY
            )
        );
        router.setRouterShare(routerSigner, 8000);
        vm.stopPrank();
    }

    function test_RevertWhen_SetRouterShareUnknown() external {
        vm.expectRevert(abi.encodeWithSelector(ISessionRouter.SessionRouterUnauthorisedRouter.selector, eve));
        vm.prank(owner);
        router.setRouterShare(eve, 1);
    }

    function test_RevertWhen_SetRouterShareTooHigh() external {
        vm.expectRevert(abi.encodeWithSelector(ISessionRouter.SessionRouterShareOutOfRange.selector, 10_001));
        vm.prank(owner);
        router.setRouterShare(routerSigner, 10_001);
    }

    function test_RevertWhen_SetRouterShareNotOwner() external {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, eve));
        vm.prank(eve);
        router.setRouterShare(routerSigner, 1);
    }

    /*//////////////////////////////////////////////////////////////
                              PRICE SOURCE
    //////////////////////////////////////////////////////////////*/

    function test_SetPriceSource() external {
        vm.expectEmit(address(router));
        emit ISessionRouter.PriceSourceSet(eve);
        vm.prank(owner);
        router.setPriceSource(IPriceSource(eve));
        assertEq(address(router.priceSource()), eve);
    }

    function test_RevertWhen_SetPriceSourceZero() external {
        vm.expectRevert(ISessionRouter.SessionRouterZeroAddress.selector);
        vm.prank(owner);
        router.setPriceSource(IPriceSource(address(0)));
    }

    function test_RevertWhen_SetPriceSourceNotOwner() external {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, eve));
        vm.prank(eve);
        router.setPriceSource(IPriceSource(eve));
    }

    /*//////////////////////////////////////////////////////////////
                                HELPERS
    //////////////////////////////////////////////////////////////*/

    function _assertRouter(address who, bool authorised, uint256 shareBps) internal view {
        (bool gotAuthorised, uint256 gotShare,) = router.routerInfo(who);
        assertEq(gotAuthorised, authorised, "routerInfo.authorised");
        assertEq(router.isRouter(who), authorised, "isRouter");
        assertEq(gotShare, shareBps, "routerInfo.shareBps");
    }
}
