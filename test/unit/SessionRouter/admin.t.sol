// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {SessionRouter} from "../../../contracts/SessionRouter.sol";
import {IComputePool} from "../../../contracts/interfaces/IComputePool.sol";
import {IPriceSource} from "../../../contracts/interfaces/IPriceSource.sol";
import {ISessionRouter} from "../../../contracts/interfaces/ISessionRouter.sol";
import {Base} from "../../Base.t.sol";

contract Admin_Unit_Test is Base {
    function test_Constructor() external view {
        assertEq(address(router.mor()), address(mor));
        assertEq(address(router.pool()), address(pool));
        assertEq(address(router.priceSource()), address(prices));
        assertEq(router.owner(), owner);
    }

    function test_RevertWhen_ConstructorZeroAddress() external {
        vm.expectRevert(ISessionRouter.SessionRouterZeroAddress.selector);
        new SessionRouter(owner, IERC20(address(0)), pool, prices);
        vm.expectRevert(ISessionRouter.SessionRouterZeroAddress.selector);
        new SessionRouter(owner, mor, IComputePool(address(0)), prices);
        vm.expectRevert(ISessionRouter.SessionRouterZeroAddress.selector);
        new SessionRouter(owner, mor, pool, IPriceSource(address(0)));
    }

    function test_AddRouter() external {
        vm.expectEmit(address(router));
        emit ISessionRouter.RouterAdded(eve, 2500);
        vm.prank(owner);
        router.addRouter(eve, 2500);
        (bool authorised, uint256 share, uint256 spent) = router.routerInfo(eve);
        assertTrue(authorised);
        assertTrue(router.isRouter(eve));
        assertEq(share, 2500);
        assertEq(spent, 0);
        assertEq(router.routers().length, 3);
    }

    function testFuzz_AddRouter(address who, uint256 share) external {
        vm.assume(who != address(0) && who != routerSigner && who != router2Signer);
        share = bound(share, 0, 10_000);
        vm.prank(owner);
        router.addRouter(who, share);
        (bool authorised, uint256 got,) = router.routerInfo(who);
        assertTrue(authorised);
        assertEq(got, share);
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

    function test_RemoveRouter_ReaddKeepsListOnce() external {
        vm.startPrank(owner);
        vm.expectEmit(address(router));
        emit ISessionRouter.RouterRemoved(routerSigner);
        router.removeRouter(routerSigner);
        assertFalse(router.isRouter(routerSigner));
        router.addRouter(routerSigner, 10);
        vm.stopPrank();
        assertEq(router.routers().length, 2);
    }

    function test_RevertWhen_RemoveRouterUnknown() external {
        vm.expectRevert(abi.encodeWithSelector(ISessionRouter.SessionRouterUnauthorisedRouter.selector, eve));
        vm.prank(owner);
        router.removeRouter(eve);
    }

    function test_RevertWhen_RemoveRouterNotOwner() external {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, eve));
        vm.prank(eve);
        router.removeRouter(routerSigner);
    }

    function test_SetRouterShare() external {
        vm.expectEmit(address(router));
        emit ISessionRouter.RouterShareSet(routerSigner, 42);
        vm.prank(owner);
        router.setRouterShare(routerSigner, 42);
        (, uint256 share,) = router.routerInfo(routerSigner);
        assertEq(share, 42);
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
}
