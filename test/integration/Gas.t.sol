// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Messages} from "../../contracts/libraries/Messages.sol";
import {Base} from "../Base.t.sol";

/// @notice Records the gas of the calls that matter into snapshots/<Contract>.json (checked in CI). Each
/// figure is the execution gas of the external call, without the 21,000 base and calldata of a transaction
/// (docs/gas.md adds them).
contract Gas_Test is Base {
    uint256 internal constant PROVIDERS = 10;

    address[] internal _providers;

    /// @dev Figures are recorded only when each call runs as its own transaction (`forge test --isolate`),
    /// with cold storage and the transaction's base cost, as on chain. Without isolation the test is skipped,
    /// so a plain `forge test` never rewrites snapshots/ with warm-storage figures.
    modifier onlyIsolated() {
        mor.approve(address(1), 0); // isolation applies to state-changing calls only
        vm.skip(vm.lastCallGas().gasTotalUsed < 21_000);
        _;
    }

    function setUp() public override {
        super.setUp();
        for (uint256 i; i < PROVIDERS; ++i) {
            address p = makeAddr(string.concat("gasProvider", vm.toString(i)));
            _providers.push(p);
            vm.prank(owner);
            mor.mint(p, 1e18); // providers already hold MOR, as they do after staking rewards or a first claim
        }
    }

    function _batch(uint256 n, uint256 amount)
        internal
        view
        returns (Messages.CreditVoucher[] memory vs, bytes[] memory sigs)
    {
        vs = new Messages.CreditVoucher[](n);
        sigs = new bytes[](n);
        for (uint256 i; i < n; ++i) {
            vs[i] = _voucher(routerSigner, _providers[i], amount, 0);
            sigs[i] = _sign(routerKey, vs[i]);
        }
    }

    function test_Gas_Claim() external onlyIsolated {
        Messages.CreditVoucher[] memory vs;
        bytes[] memory sigs;

        (vs, sigs) = _batch(1, 1e18);
        router.claim(vs, sigs);
        vm.snapshotGasLastCall("SessionRouter", "claim one voucher (first)");

        // Later claims: every provider has claimed before.
        (vs, sigs) = _batch(PROVIDERS, 1e18);
        router.claim(vs, sigs);
        vm.warp(block.timestamp + 1);

        (vs, sigs) = _batch(1, 2e18);
        router.claim(vs, sigs);
        vm.snapshotGasLastCall("SessionRouter", "claim one voucher (later)");
        vm.warp(block.timestamp + 1);

        (vs, sigs) = _batch(2, 3e18);
        router.claim(vs, sigs);
        vm.snapshotGasLastCall("SessionRouter", "claim two vouchers (later)");
        vm.warp(block.timestamp + 1);

        (vs, sigs) = _batch(PROVIDERS, 4e18);
        router.claim(vs, sigs);
        vm.snapshotGasLastCall("SessionRouter", "claim ten vouchers (later)");
    }

    /// @dev A voucher covering one session and one covering a million cost the same: the claim reads only
    /// the cumulative totals.
    function test_Gas_ClaimIndependentOfRequests() external onlyIsolated {
        (Messages.CreditVoucher[] memory vs, bytes[] memory sigs) = _batch(2, 1e18);
        router.claim(vs, sigs);
        vm.warp(block.timestamp + 1);

        Messages.CreditVoucher memory small = _voucher(routerSigner, _providers[0], 2e18, 0);
        small.sessions = 1002;
        small.cumulativeTokens = 2e9;
        router.claim(_one(small), _one(_sign(routerKey, small)));
        uint256 gasSmall = vm.lastCallGas().gasTotalUsed;

        Messages.CreditVoucher memory large = _voucher(routerSigner, _providers[1], 2e18, 0);
        large.sessions = 1_000_000;
        large.cumulativeTokens = 1_000_000_000;
        router.claim(_one(large), _one(_sign(routerKey, large)));
        uint256 gasLarge = vm.lastCallGas().gasTotalUsed;
        // Equal but for calldata: the larger counters have more non-zero bytes (16 gas each, not 4).
        assertApproxEqAbs(gasSmall, gasLarge, 100);
    }

    function test_Gas_Stake() external onlyIsolated {
        vm.startPrank(alice);
        router.stake(100e18);
        vm.snapshotGasLastCall("SessionRouter", "stake (first)");
        router.stake(100e18);
        vm.snapshotGasLastCall("SessionRouter", "stake (later)");
        router.unstake(50e18);
        vm.snapshotGasLastCall("SessionRouter", "unstake");
        _nextDay();
        router.withdraw();
        vm.snapshotGasLastCall("SessionRouter", "withdraw");
        vm.stopPrank();
    }

    function test_Gas_Registry() external onlyIsolated {
        // The registry already holds a stake, as it will in production.
        vm.prank(owner);
        registry.addToWhitelist(alice);
        _registerProvider(alice);

        vm.prank(provider);
        registry.register("https://gpu1.example.org/v1", MIN_STAKE);
        vm.snapshotGasLastCall("ProviderRegistry", "register (whitelisted, endpoint <= 31 bytes)");
        vm.prank(provider2);
        registry.register("https://inference.provider.example.org:8443/v1", MIN_STAKE);
        vm.snapshotGasLastCall("ProviderRegistry", "register (whitelisted, endpoint 32..63 bytes)");
        vm.prank(owner);
        registry.disableWhitelist();
        vm.prank(bob);
        registry.register("https://gpu2.example.org/v1", MIN_STAKE);
        vm.snapshotGasLastCall("ProviderRegistry", "register (no whitelist, endpoint <= 31 bytes)");

        vm.prank(alice);
        bytes32 modelId = registry.registerModel(keccak256("weights"), 3, "gguf", "llama-3-8b");
        vm.snapshotGasLastCall("ProviderRegistry", "registerModel");
        vm.prank(alice);
        bytes32 modelId2 = registry.registerModel(keccak256("weights2"), 5, "gguf", "qwen-2.5-7b");

        bytes memory sig = _signModelClaim(providerKey, provider, modelId);
        registry.claimModel(provider, modelId, sig);
        vm.snapshotGasLastCall("ProviderRegistry", "claimModel");
        _claimModel(providerKey, provider, modelId2);
        _claimModel(provider2Key, provider2, modelId);
        vm.prank(provider2);
        registry.postBid(modelId, 1e11, 8);

        vm.startPrank(provider);
        registry.postBid(modelId, 1e11, 8);
        vm.snapshotGasLastCall("ProviderRegistry", "postBid (first of provider)");
        registry.postBid(modelId2, 1e11, 8);
        vm.snapshotGasLastCall("ProviderRegistry", "postBid (later)");
        registry.updateBid(modelId, 2e11, 16);
        vm.snapshotGasLastCall("ProviderRegistry", "updateBid");
        registry.deleteBid(modelId);
        vm.snapshotGasLastCall("ProviderRegistry", "deleteBid");
        registry.deleteBid(modelId2);
        registry.deregister();
        vm.snapshotGasLastCall("ProviderRegistry", "deregister");
        vm.stopPrank();
    }

    function test_Gas_Pool() external onlyIsolated {
        vm.prank(owner);
        mor.mint(depositor, 2000e18);
        vm.prank(depositor);
        pool.deposit(1000e18);
        vm.snapshotGasLastCall("ComputePool", "deposit (opens day)");
        vm.prank(depositor);
        pool.deposit(1000e18);
        vm.snapshotGasLastCall("ComputePool", "deposit");
    }
}
