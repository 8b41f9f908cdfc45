// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ComputePool} from "../../contracts/ComputePool.sol";
import {ProviderRegistry} from "../../contracts/ProviderRegistry.sol";
import {SessionRouter} from "../../contracts/SessionRouter.sol";
import {IProviderRegistry} from "../../contracts/interfaces/IProviderRegistry.sol";
import {ISessionRouter} from "../../contracts/interfaces/ISessionRouter.sol";
import {Messages} from "../../contracts/libraries/Messages.sol";
import {Base} from "../Base.t.sol";
import {HookToken} from "../mocks/HookToken.sol";
import {ReentrantProvider} from "../mocks/ReentrantProvider.sol";

/// @notice One test per attack the threat model names.
contract Attacks_Integration_Test is Base {
    uint256 internal constant SECP256K1_N =
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;

    function test_Attack_ReplayAcrossChains() external {
        Messages.CreditVoucher memory v = _voucher(routerSigner, provider, 100e18, 0);
        bytes memory sig = _sign(routerKey, v); // signed for this chain
        vm.chainId(42_161);
        vm.expectPartialRevert(ISessionRouter.SessionRouterInvalidSignature.selector);
        router.claim(_one(v), _one(sig));
    }

    function test_Attack_ReplayAcrossContracts() external {
        ComputePool pool2 = new ComputePool(owner, mor, BUDGET_BPS, 0);
        SessionRouter router2 = _newRouter(pool2, _single(routerSigner), _single(10_000));
        vm.prank(owner);
        pool2.setSessionRouter(address(router2));
        vm.prank(depositor);
        mor.approve(address(pool2), type(uint256).max);
        vm.prank(owner);
        mor.mint(depositor, 100_000e18);
        vm.prank(depositor);
        pool2.deposit(100_000e18);
        _nextDay();

        Messages.CreditVoucher memory v = _voucher(routerSigner, provider, 100e18, 0);
        bytes memory sig = _sign(routerKey, v); // signed for `router`
        router.claim(_one(v), _one(sig));
        vm.expectPartialRevert(ISessionRouter.SessionRouterInvalidSignature.selector);
        router2.claim(_one(v), _one(sig));
    }

    function test_Attack_SignatureMalleability() external {
        Messages.CreditVoucher memory v = _voucher(routerSigner, provider, 100e18, 0);
        (uint8 sv, bytes32 r, bytes32 s) = vm.sign(routerKey, _digest(v));
        bytes memory high =
            abi.encodePacked(r, bytes32(SECP256K1_N - uint256(s)), sv == 27 ? uint8(28) : uint8(27));
        vm.expectRevert(
            abi.encodeWithSelector(
                ISessionRouter.SessionRouterInvalidSignature.selector, routerSigner, address(0)
            )
        );
        router.claim(_one(v), _one(high));
        // The low-s form works once; its replay pays nothing.
        (uint256 paid,) = router.claim(_one(v), _one(abi.encodePacked(r, s, sv)));
        assertEq(paid, 100e18);
        (paid,) = router.claim(_one(v), _one(abi.encodePacked(r, s, sv)));
        assertEq(paid, 0);
    }

    function test_Attack_UnauthorisedRouter() external {
        (address rogue, uint256 rogueKey) = makeAddrAndKey("rogue");
        Messages.CreditVoucher memory v = _voucher(rogue, provider, 100e18, 0);
        bytes memory sig = _sign(rogueKey, v);
        vm.expectRevert(
            abi.encodeWithSelector(ISessionRouter.SessionRouterUnauthorisedRouter.selector, rogue)
        );
        router.claim(_one(v), _one(sig));
        // A voucher naming an authorised router but signed by the rogue key pays nothing either.
        v.router = routerSigner;
        sig = _sign(rogueKey, v);
        vm.expectRevert(
            abi.encodeWithSelector(ISessionRouter.SessionRouterInvalidSignature.selector, routerSigner, rogue)
        );
        router.claim(_one(v), _one(sig));
    }

    function test_Attack_CompromisedRouterBoundedByShare() external {
        vm.prank(owner);
        router.setRouterShare(routerSigner, 1000); // 10% of the day's budget
        Messages.CreditVoucher memory v = _voucher(routerSigner, eve, 1e30, 1e30);
        (uint256 paid, uint256 bootstrapPaid) = _claim(routerKey, v);
        assertEq(paid + bootstrapPaid, pool.todayBudget() / 10);
    }

    function test_Attack_FlashDepositDoesNotRaiseBudget() external {
        _nextDay(); // a fresh day nobody has touched
        uint256 budget = pool.todayBudget();
        vm.prank(owner);
        mor.mint(eve, 100_000_000e18);
        vm.startPrank(eve);
        mor.approve(address(pool), type(uint256).max);
        pool.deposit(100_000_000e18); // the first touch of the day: the budget is fixed before it counts
        vm.stopPrank();
        assertEq(pool.todayBudget(), budget);
        // Both routers' shares together are the whole budget, as fixed before the deposit, and no more.
        (uint256 paid,) = _claim(routerKey, _voucher(routerSigner, eve, 1e30, 0));
        (uint256 paid2,) = _claim(router2Key, _voucher(router2Signer, eve, 1e30, 0));
        assertEq(paid + paid2, budget);
        // Direct transfers are not deposits and never count.
        vm.prank(owner);
        mor.mint(address(pool), 1e30);
        _nextDay();
        assertEq(pool.todayBudget(), pool.balance() / 100);
    }

    function test_Attack_StakeRecyclingWithinADay() external {
        vm.startPrank(alice);
        router.stake(1000e18);
        uint256 allowance = router.userMax(alice);
        assertGt(allowance, 0);
        router.unstake(1000e18);
        assertEq(router.userMax(alice), 0); // the allowance goes with the stake at once
        vm.expectPartialRevert(ISessionRouter.SessionRouterWithdrawLocked.selector);
        router.withdraw(); // and the MOR cannot move to another address today
        vm.stopPrank();
        // Not even at the day's last second.
        vm.warp((block.timestamp / 1 days + 1) * 1 days - 1);
        vm.prank(alice);
        vm.expectPartialRevert(ISessionRouter.SessionRouterWithdrawLocked.selector);
        router.withdraw();
    }

    function test_Attack_ReentrancyThroughTokenAndContractProvider() external {
        HookToken hmor = new HookToken();
        ComputePool hpool = new ComputePool(owner, hmor, BUDGET_BPS, 0);
        SessionRouter hrouter = new SessionRouter(
            owner, hmor, hpool, prices, ROUTER_DELAY, _single(routerSigner), _single(10_000)
        );
        vm.prank(owner);
        hpool.setSessionRouter(address(hrouter));
        hmor.mint(address(this), 1_000_000e18);
        hmor.approve(address(hpool), type(uint256).max);
        hpool.deposit(1_000_000e18);
        _nextDay();

        ReentrantProvider attacker = new ReentrantProvider(hrouter);
        Messages.CreditVoucher memory v = _voucher(routerSigner, address(attacker), 100e18, 0);
        (uint8 sv, bytes32 r, bytes32 s) = vm.sign(routerKey, hrouter.hashCreditVoucher(v));
        bytes memory sig = abi.encodePacked(r, s, sv);
        attacker.arm(v, sig);

        (uint256 paid,) = hrouter.claim(_one(v), _one(sig));
        assertEq(paid, 100e18);
        assertEq(attacker.attempts(), 1);
        assertEq(bytes4(attacker.lastError()), bytes4(keccak256("ReentrancyGuardReentrantCall()")));
        assertEq(hmor.balanceOf(address(attacker)), 100e18);
        assertEq(hrouter.claimRecord(routerSigner, address(attacker)).paid, 100e18);
    }

    function test_Attack_StaleVoucher() external {
        Messages.CreditVoucher memory old = _voucher(routerSigner, provider, 100e18, 0);
        bytes memory oldSig = _sign(routerKey, old);
        vm.warp(block.timestamp + 1 hours);
        _claim(routerKey, _voucher(routerSigner, provider, 300e18, 0));
        vm.expectPartialRevert(ISessionRouter.SessionRouterStaleVoucher.selector);
        router.claim(_one(old), _one(oldSig));
        assertEq(router.claimRecord(routerSigner, provider).paid, 300e18);
    }

    function test_Attack_FrontRunFresherVoucherRevertsBatch() external {
        // A keeper holds one voucher each for two providers and submits them in one claim.
        Messages.CreditVoucher[] memory batch = new Messages.CreditVoucher[](2);
        bytes[] memory sigs = new bytes[](2);
        batch[0] = _voucher(routerSigner, provider, 100e18, 0);
        batch[1] = _voucher(routerSigner, provider2, 200e18, 0);
        sigs[0] = _sign(routerKey, batch[0]);
        sigs[1] = _sign(routerKey, batch[1]);
        // Eve holds a fresher voucher for the first provider (anyone may submit one) and lands it first.
        vm.warp(block.timestamp + 1 minutes);
        Messages.CreditVoucher memory fresher = _voucher(routerSigner, provider, 150e18, 0);
        vm.prank(eve);
        _claim(routerKey, fresher);
        uint256 p1 = mor.balanceOf(provider);
        uint256 p2 = mor.balanceOf(provider2);

        // Eve must not get the keeper's claim reverted: the stale entry pays nothing, the other pays in full.
        vm.expectEmit(address(router));
        emit ISessionRouter.VoucherSkipped(routerSigner, provider, batch[0].issuedAt, fresher.issuedAt);
        vm.prank(alice);
        (uint256 paid,) = router.claim(batch, sigs);
        assertEq(paid, 200e18);
        assertEq(mor.balanceOf(provider2) - p2, 200e18);
        assertEq(mor.balanceOf(provider), p1);
        ISessionRouter.ClaimRecord memory r = router.claimRecord(routerSigner, provider);
        assertEq(r.paid, 150e18);
        assertEq(r.issuedAt, fresher.issuedAt);
        assertEq(router.claimRecord(routerSigner, provider2).paid, 200e18);
    }

    function test_Attack_ZeroStakeSybilProviders() external {
        // Eve wants many provider identities for free, to fill the bid book once the whitelist is off.
        vm.prank(owner);
        registry.disableWhitelist();
        // The owner cannot open the door by mistake: no minimum stake of zero, at deployment or later.
        vm.expectRevert(IProviderRegistry.ProviderRegistryZeroMinStake.selector);
        new ProviderRegistry(owner, mor, 0, COOLDOWN);
        vm.expectRevert(IProviderRegistry.ProviderRegistryZeroMinStake.selector);
        vm.prank(owner);
        registry.setMinStake(0);
        // So every identity costs at least MIN_STAKE, locked.
        vm.expectRevert(
            abi.encodeWithSelector(IProviderRegistry.ProviderRegistryStakeTooLow.selector, 0, MIN_STAKE)
        );
        vm.prank(eve);
        registry.register("https://sybil.example/v1", 0);
    }

    function test_Attack_TwoVouchersOneBlock() external {
        // Two vouchers for the same pair in one call (and so one block) pay the larger total once.
        Messages.CreditVoucher[] memory vs = new Messages.CreditVoucher[](2);
        bytes[] memory sigs = new bytes[](2);
        vs[0] = _voucher(routerSigner, provider, 100e18, 0);
        vs[1] = _voucher(routerSigner, provider, 150e18, 0);
        sigs[0] = _sign(routerKey, vs[0]);
        sigs[1] = _sign(routerKey, vs[1]);
        (uint256 paid,) = router.claim(vs, sigs);
        assertEq(paid, 150e18);
        // The same pair again in the same block pays nothing.
        (paid,) = router.claim(vs, sigs);
        assertEq(paid, 0);
    }

    function test_Attack_TwoBidsOneBlock() external {
        _registerProvider(provider);
        _registerProvider(provider2);
        bytes32 modelId = _registerModel();
        _claimModel(providerKey, provider, modelId);
        _claimModel(provider2Key, provider2, modelId);
        vm.prank(provider);
        registry.postBid(modelId, 1e11, 1);
        vm.prank(provider2);
        registry.postBid(modelId, 1e11, 1);
        IProviderRegistry.Bid[] memory bids = registry.getBidsForModel(modelId, 0, 10);
        assertEq(bids.length, 2);
        assertEq(bids[0].provider, provider);
        assertEq(bids[1].provider, provider2);
        // A second bid by the same provider on the same model cannot shadow the first.
        vm.expectPartialRevert(IProviderRegistry.ProviderRegistryBidExists.selector);
        vm.prank(provider);
        registry.postBid(modelId, 1, 1);
    }

    /*//////////////////////////////////////////////////////////////
                    THE OWNER AND THE ROUTER KEYS
    //////////////////////////////////////////////////////////////*/

    /// @dev The owner holds a key of its own and wants the day's budget through it, today. It cannot: the
    /// shares already sum to 10,000 bps, so it must first lower the honest routers (at once, and visible), and
    /// its own key is only announced: it pays nothing for ROUTER_DELAY, while everyone watching
    /// `RouterChangeAnnounced` can leave.
    function test_Attack_OwnerAddsOwnKeyToTakeTheBudget() external {
        (address ownerKey, uint256 ownerKeyPk) = makeAddrAndKey("ownerKey");
        Messages.CreditVoucher memory v = _voucher(ownerKey, eve, 1e30, 1e30);

        vm.prank(owner);
        vm.expectRevert(
            abi.encodeWithSelector(ISessionRouter.SessionRouterTotalShareTooHigh.selector, 20_000, 10_000)
        );
        router.addRouter(ownerKey, 10_000);

        vm.startPrank(owner);
        router.setRouterShare(routerSigner, 0);
        router.setRouterShare(router2Signer, 0);
        uint256 effectiveAt = block.timestamp + ROUTER_DELAY;
        vm.expectEmit(address(router));
        emit ISessionRouter.RouterChangeAnnounced(ownerKey, 10_000, effectiveAt);
        router.addRouter(ownerKey, 10_000);
        vm.stopPrank();

        // Today, and up to the last second before effectiveAt, the key pays nothing.
        vm.expectRevert(
            abi.encodeWithSelector(ISessionRouter.SessionRouterUnauthorisedRouter.selector, ownerKey)
        );
        router.claim(_one(v), _one(_sign(ownerKeyPk, v)));
        vm.warp(effectiveAt - 1);
        v.issuedAt = block.timestamp;
        vm.expectRevert(
            abi.encodeWithSelector(ISessionRouter.SessionRouterUnauthorisedRouter.selector, ownerKey)
        );
        router.claim(_one(v), _one(_sign(ownerKeyPk, v)));
        assertEq(mor.balanceOf(eve), ACTOR_MOR);
        (uint256 shareBps, uint256 at) = router.pendingRouterChange(ownerKey);
        assertEq(shareBps, 10_000);
        assertEq(at, effectiveAt);
    }

    /// @dev The owner holds one of the routers' keys at a small share and raises it to take the budget:
    /// the increase waits ROUTER_DELAY, and the claim pays within the old share meanwhile.
    function test_Attack_OwnerRaisesItsKeysShareAtOnce() external {
        vm.startPrank(owner);
        router.setRouterShare(routerSigner, 100); // 1%: 90 MOR a day
        router.setRouterShare(router2Signer, 0);
        router.setRouterShare(routerSigner, 10_000);
        vm.stopPrank();
        (uint256 paid, uint256 bootstrapPaid) = _claim(routerKey, _voucher(routerSigner, eve, 1e30, 1e30));
        assertEq(paid + bootstrapPaid, 90e18);
        (, uint256 share,) = router.routerInfo(routerSigner);
        assertEq(share, 100);
    }

    /// @dev The owner removes a router while providers hold its unpaid vouchers: they are not stranded. The
    /// vouchers it signed up to the removal stay claimable for the grace, within its share.
    function test_Attack_RouterRemovalStrandsProviderCredit() external {
        Messages.CreditVoucher memory owed = _voucher(routerSigner, provider, 1000e18, 10e18);
        bytes memory sig = _sign(routerKey, owed);
        vm.warp(block.timestamp + 1 hours);
        vm.prank(owner);
        router.removeRouter(routerSigner);
        _nextDay();
        uint256 before = mor.balanceOf(provider);
        (uint256 paid, uint256 bootstrapPaid) = router.claim(_one(owed), _one(sig));
        assertEq(paid, 1000e18);
        assertEq(bootstrapPaid, 10e18);
        assertEq(mor.balanceOf(provider) - before, 1010e18);
    }

    /// @dev A removed key, perhaps compromised, keeps signing. Vouchers issued after its removal pay nothing;
    /// backdated ones pay at most its share a day within the grace, and nothing once the owner lowers that
    /// share to 0 (at once) or the grace ends.
    function test_Attack_RemovedKeyKeepsSigning() external {
        vm.prank(owner);
        router.removeRouter(routerSigner);
        uint256 removedAt = block.timestamp;
        vm.warp(block.timestamp + 1);
        Messages.CreditVoucher memory fresh = _voucher(routerSigner, eve, 1e30, 1e30);
        vm.expectRevert(
            abi.encodeWithSelector(
                ISessionRouter.SessionRouterVoucherAfterRemoval.selector,
                routerSigner,
                fresh.issuedAt,
                removedAt
            )
        );
        _claim(routerKey, fresh);

        Messages.CreditVoucher memory backdated = _voucher(routerSigner, eve, 1e30, 1e30);
        backdated.issuedAt = removedAt;
        (uint256 paid, uint256 bootstrapPaid) = _claim(routerKey, backdated);
        assertEq(paid + bootstrapPaid, pool.todayBudget() * ROUTER_SHARE / 10_000);

        vm.prank(owner);
        router.setRouterShare(routerSigner, 0); // the emergency lever
        _nextDay();
        (paid, bootstrapPaid) = _claim(routerKey, backdated);
        assertEq(paid + bootstrapPaid, 0);

        vm.warp(removedAt + 7 days);
        vm.expectRevert(
            abi.encodeWithSelector(
                ISessionRouter.SessionRouterRouterGraceEnded.selector, routerSigner, removedAt + 7 days
            )
        );
        _claim(routerKey, backdated);
    }

    /// @dev A user asks every router for its whole userMax, to get a multiple of its allowance. Routers that
    /// grant no more than routerUserMax grant at most userMax together, and the owner cannot add routers
    /// (pending or not) whose shares sum above 10,000 bps.
    function test_Attack_AllowanceMultipliesWithRouters() external {
        vm.prank(alice);
        router.stake(10_000e18);
        uint256 userMax = router.userMax(alice);
        uint256 granted =
            router.routerUserMax(routerSigner, alice) + router.routerUserMax(router2Signer, alice);
        assertLe(granted, userMax);
        assertGe(granted + 1, userMax); // each rounds down
        // A third router cannot be announced on top of the two.
        vm.expectRevert(
            abi.encodeWithSelector(ISessionRouter.SessionRouterTotalShareTooHigh.selector, 10_001, 10_000)
        );
        vm.prank(owner);
        router.addRouter(eve, 1);
        // Removing one and announcing two more is bounded the same way: the removed share is free, no more.
        vm.startPrank(owner);
        router.removeRouter(router2Signer);
        router.addRouter(eve, ROUTER2_SHARE / 2);
        // 6,000 + 2,000 + 4,001
        vm.expectRevert(
            abi.encodeWithSelector(ISessionRouter.SessionRouterTotalShareTooHigh.selector, 12_001, 10_000)
        );
        router.addRouter(bob, ROUTER2_SHARE + 1);
        vm.stopPrank();
        vm.warp(block.timestamp + ROUTER_DELAY);
        uint256 sum = router.routerUserMax(routerSigner, alice) + router.routerUserMax(router2Signer, alice)
            + router.routerUserMax(eve, alice);
        assertLe(sum, router.userMax(alice));
    }

    /// @dev Alice stakes one second before 00:00 and hands the MOR to bob one second after, to have it count
    /// for two addresses on one day. It counts for her on day d and for him on day d+1, each once.
    function test_Attack_MidnightStakeCountsForTwoAddresses() external {
        uint256 d = block.timestamp / 1 days;
        vm.warp((d + 1) * 1 days - 1);
        vm.startPrank(alice);
        router.stake(1000e18);
        assertGt(router.userMax(alice), 0);
        router.unstake(1000e18);
        // Day d: the MOR no longer counts for alice and cannot reach bob.
        assertEq(router.userMax(alice), 0);
        vm.expectPartialRevert(ISessionRouter.SessionRouterWithdrawLocked.selector);
        router.withdraw();
        vm.warp((d + 1) * 1 days);
        router.withdraw();
        assertTrue(mor.transfer(bob, 1000e18));
        vm.stopPrank();
        vm.prank(bob);
        router.stake(1000e18);
        assertEq(block.timestamp / 1 days, d + 1);
        assertGt(router.userMax(bob), 0);
    }

    function test_Attack_ModelIdFrontRun() external {
        // Eve sees alice's registerModel in the mempool and sends the same arguments first.
        vm.prank(eve);
        bytes32 eveId = registry.registerModel(keccak256("weights"), 3, "gguf", "llama-3-8b");
        bytes32 aliceId = _registerModel(); // still succeeds, with alice's own id
        assertTrue(eveId != aliceId);
        ProviderRegistry(address(registry)).getModel(aliceId);
    }
}
