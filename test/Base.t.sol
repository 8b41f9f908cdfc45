// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Test} from "forge-std/Test.sol";

import {ComputePool} from "../contracts/ComputePool.sol";
import {ProviderRegistry} from "../contracts/ProviderRegistry.sol";
import {SessionRouter} from "../contracts/SessionRouter.sol";
import {Messages} from "../contracts/libraries/Messages.sol";
import {FixedPriceSource} from "../contracts/oracles/FixedPriceSource.sol";
import {TestMOR} from "../contracts/token/TestMOR.sol";
import {Signing} from "./utils/Signing.sol";

/// @notice Actors and a wired deployment shared by every test. The clock starts one hour into a UTC day;
/// the pool is funded on day 0 and tests start on day 1, when its budget is 1% of 900,000 MOR = 9,000 MOR.
/// The two router keys are authorised by the constructor with 60% and 40% of the budget (5,400 and 3,600
/// MOR a day); router changes wait `ROUTER_DELAY` (2 days).
abstract contract Base is Test, Signing {
    uint256 internal constant START = 1_767_225_600 + 1 hours; // 2026-01-01T01:00:00Z
    uint256 internal constant MIN_STAKE = 10e18;
    uint256 internal constant COOLDOWN = 7 days;
    uint256 internal constant BUDGET_BPS = 100;
    uint256 internal constant BOOTSTRAP_BPS = 1000;
    uint256 internal constant POOL_DEPOSIT = 1_000_000e18;
    uint256 internal constant MOR_USD = 20e18;
    uint256 internal constant TOKENS_USD = 0.002e18;
    uint256 internal constant ACTOR_MOR = 1_000_000e18;
    uint256 internal constant ROUTER_DELAY = 2 days;
    uint256 internal constant ROUTER_SHARE = 6000;
    uint256 internal constant ROUTER2_SHARE = 4000;

    address internal owner = makeAddr("owner");
    address internal depositor = makeAddr("depositor");
    address internal alice = makeAddr("alice");
    address internal bob = makeAddr("bob");
    address internal eve = makeAddr("eve");
    address internal routerSigner;
    uint256 internal routerKey;
    address internal router2Signer;
    uint256 internal router2Key;
    address internal provider;
    uint256 internal providerKey;
    address internal provider2;
    uint256 internal provider2Key;

    TestMOR internal mor;
    FixedPriceSource internal prices;
    ProviderRegistry internal registry;
    ComputePool internal pool;
    SessionRouter internal router;

    function setUp() public virtual {
        vm.warp(START);
        (routerSigner, routerKey) = makeAddrAndKey("router");
        (router2Signer, router2Key) = makeAddrAndKey("router2");
        (provider, providerKey) = makeAddrAndKey("provider");
        (provider2, provider2Key) = makeAddrAndKey("provider2");

        mor = new TestMOR(owner);
        prices = new FixedPriceSource(owner, MOR_USD, TOKENS_USD);
        registry = new ProviderRegistry(owner, mor, MIN_STAKE, COOLDOWN);
        pool = new ComputePool(owner, mor, BUDGET_BPS, BOOTSTRAP_BPS);
        router = _newRouter(pool, _pair(routerSigner, router2Signer), _pair(ROUTER_SHARE, ROUTER2_SHARE));

        vm.startPrank(owner);
        pool.setSessionRouter(address(router));
        registry.addToWhitelist(provider);
        registry.addToWhitelist(provider2);
        address[6] memory actors = [depositor, alice, bob, eve, provider, provider2];
        for (uint256 i; i < actors.length; ++i) {
            mor.mint(actors[i], ACTOR_MOR);
        }
        vm.stopPrank();

        for (uint256 i; i < 6; ++i) {
            address actor = [depositor, alice, bob, eve, provider, provider2][i];
            vm.startPrank(actor);
            mor.approve(address(pool), type(uint256).max);
            mor.approve(address(router), type(uint256).max);
            mor.approve(address(registry), type(uint256).max);
            vm.stopPrank();
        }

        vm.prank(depositor);
        pool.deposit(POOL_DEPOSIT);
        _nextDay();
    }

    /*//////////////////////////////////////////////////////////////
                                HELPERS
    //////////////////////////////////////////////////////////////*/

    function _nextDay() internal {
        vm.warp((block.timestamp / 1 days + 1) * 1 days + 1 hours);
    }

    /// @dev A SessionRouter owned by `owner` over `mor` and `prices`, with `ROUTER_DELAY`.
    function _newRouter(ComputePool pool_, address[] memory routers, uint256[] memory shares)
        internal
        returns (SessionRouter)
    {
        return new SessionRouter(owner, mor, pool_, prices, ROUTER_DELAY, routers, shares);
    }

    function _pair(address a, address b) internal pure returns (address[] memory list) {
        list = new address[](2);
        list[0] = a;
        list[1] = b;
    }

    function _pair(uint256 a, uint256 b) internal pure returns (uint256[] memory list) {
        list = new uint256[](2);
        list[0] = a;
        list[1] = b;
    }

    function _single(address a) internal pure returns (address[] memory list) {
        list = new address[](1);
        list[0] = a;
    }

    function _single(uint256 a) internal pure returns (uint256[] memory list) {
        list = new uint256[](1);
        list[0] = a;
    }

    /// @dev Gives `routerSigner` `shareBps` of the budget as the owner would: a decrease at once, an increase
    /// announced (after lowering `router2Signer` as far as the 10,000 bps total needs) and waited out. The
    /// wait keeps the time of day, and the pool's budget stays 9,000 MOR while nothing has been paid.
    function _setRouterShare(uint256 shareBps) internal {
        (, uint256 current,) = router.routerInfo(routerSigner);
        vm.startPrank(owner);
        if (shareBps > current) {
            (, uint256 other,) = router.routerInfo(router2Signer);
            if (shareBps + other > 10_000) router.setRouterShare(router2Signer, 10_000 - shareBps);
            router.setRouterShare(routerSigner, shareBps);
            vm.warp(block.timestamp + ROUTER_DELAY);
        } else {
            router.setRouterShare(routerSigner, shareBps);
        }
        vm.stopPrank();
    }

    function _voucher(address signer, address to, uint256 amount, uint256 bootstrap)
        internal
        view
        returns (Messages.CreditVoucher memory)
    {
        return Messages.CreditVoucher({
            router: signer,
            provider: to,
            cumulativeAmount: amount,
            cumulativeBootstrap: bootstrap,
            cumulativeTokens: amount / 1e9,
            sessions: amount / 1e15 + 1,
            failed: amount / 1e17,
            issuedAt: block.timestamp
        });
    }

    function _digest(Messages.CreditVoucher memory voucher) internal view returns (bytes32) {
        return _digest(address(router), voucher);
    }

    /// @dev Signs without calling the router, so it can sit between `vm.expectRevert` and the call.
    function _sign(uint256 key, Messages.CreditVoucher memory voucher) internal view returns (bytes memory) {
        return _sign(key, address(router), voucher);
    }

    function _one(Messages.CreditVoucher memory voucher)
        internal
        pure
        returns (Messages.CreditVoucher[] memory vs)
    {
        vs = new Messages.CreditVoucher[](1);
        vs[0] = voucher;
    }

    function _one(bytes memory signature) internal pure returns (bytes[] memory sigs) {
        sigs = new bytes[](1);
        sigs[0] = signature;
    }

    function _claim(uint256 key, Messages.CreditVoucher memory voucher) internal returns (uint256, uint256) {
        return router.claim(_one(voucher), _one(_sign(key, voucher)));
    }

    function _registerProvider(address who) internal {
        vm.prank(who);
        registry.register("https://provider.example:8443/v1", MIN_STAKE);
    }

    function _registerModel() internal returns (bytes32 modelId) {
        vm.prank(alice);
        modelId = registry.registerModel(keccak256("weights"), 3, "gguf", "llama-3-8b");
    }

    function _signModelClaim(uint256 key, address who, bytes32 modelId) internal view returns (bytes memory) {
        return _sign(key, registry.hashModelClaim(who, modelId));
    }

    function _claimModel(uint256 key, address who, bytes32 modelId) internal {
        registry.claimModel(who, modelId, _signModelClaim(key, who, modelId));
    }
}
