// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {ComputePool} from "../contracts/ComputePool.sol";
import {ProviderRegistry} from "../contracts/ProviderRegistry.sol";
import {SessionRouter} from "../contracts/SessionRouter.sol";
import {IPriceSource} from "../contracts/interfaces/IPriceSource.sol";
import {FixedPriceSource} from "../contracts/oracles/FixedPriceSource.sol";
import {TestMOR} from "../contracts/token/TestMOR.sol";
import {BaseScript} from "./Base.s.sol";

/// @title Deploy
/// @notice Deploys and wires the whole protocol, and writes `deployments/<chainId>.json`.
/// @dev On anvil (31337): TestMOR, FixedPriceSource (MOR $20, $0.002 per 1000 tokens), the three contracts;
/// mints test MOR to the first ten anvil accounts, whitelists them, deposits 1,000,000 MOR into the pool,
/// authorises the router signer (env ROUTER_SIGNER, default anvil account #1) with the whole daily budget,
/// and registers an example model (env MODEL_ROOT, MODEL_CHUNKS, MODEL_FORMAT (default gguf), MODEL_NAME).
/// On Arbitrum Sepolia (421614) and Arbitrum One (42161): takes env MOR and PRICE_SOURCE, deploys the three
/// contracts, authorises ROUTER_SIGNER if set, registers the model if MODEL_ROOT is set.
/// The router signer is an initial router of the SessionRouter's constructor, so it is authorised at
/// deployment; any later router change waits ROUTER_DELAY.
/// Optional everywhere: MIN_STAKE (wei, default 10 MOR, not 0), COOLDOWN (seconds, default 7 days),
/// ROUTER_DELAY (seconds, default 2 days, within 1 to 30 days).
contract Deploy is BaseScript {
    /// @notice What the script deployed; `deployBlock` is the block before the first deployment, where an
    /// indexer can start.
    struct Deployment {
        uint256 chainId;
        address mor;
        address priceSource;
        address providerRegistry;
        address computePool;
        address sessionRouter;
        uint256 deployBlock;
    }

    uint256 internal constant _ANVIL = 31_337;
    uint256 internal constant _ARBITRUM_SEPOLIA = 421_614;
    uint256 internal constant _ARBITRUM_ONE = 42_161;

    /// @dev The default router signer on anvil: account #1.
    address internal constant _ANVIL_ROUTER = 0x70997970C51812dc3A010C7d01b50e0d17dc79C8;

    /// @dev The mnemonic anvil derives its accounts from.
    string internal constant _ANVIL_MNEMONIC = "test test test test test test test test test test test junk";

    uint256 internal constant _ANVIL_ACCOUNTS = 10;
    uint256 internal constant _MINT_PER_ACCOUNT = 100_000e18;
    uint256 internal constant _POOL_DEPOSIT = 1_000_000e18;
    uint256 internal constant _ROUTER_DELAY = 2 days;

    function run() external returns (Deployment memory d) {
        d = _deploy();
        _write(d);
    }

    function _deploy() internal broadcast returns (Deployment memory d) {
        d.chainId = block.chainid;
        d.deployBlock = block.number;
        bool local = block.chainid == _ANVIL;
        if (!local && block.chainid != _ARBITRUM_SEPOLIA && block.chainid != _ARBITRUM_ONE) {
            revert(string.concat("Deploy: unsupported chain ", vm.toString(block.chainid)));
        }

        IERC20 mor;
        IPriceSource priceSource;
        if (local) {
            TestMOR testMor = new TestMOR(broadcaster);
            mor = testMor;
            priceSource = new FixedPriceSource(broadcaster, 20e18, 0.002e18);
        } else {
            mor = IERC20(vm.envAddress("MOR"));
            priceSource = IPriceSource(vm.envAddress("PRICE_SOURCE"));
        }

        ProviderRegistry registry = new ProviderRegistry(
            broadcaster, mor, vm.envOr("MIN_STAKE", uint256(10e18)), vm.envOr("COOLDOWN", uint256(7 days))
        );
        ComputePool pool = new ComputePool(broadcaster, mor, 100, 1000);
        address signer = vm.envOr("ROUTER_SIGNER", local ? _ANVIL_ROUTER : address(0));
        (address[] memory routers, uint256[] memory shares) = initialRouters(signer);
        SessionRouter router = new SessionRouter(
            broadcaster, mor, pool, priceSource, vm.envOr("ROUTER_DELAY", _ROUTER_DELAY), routers, shares
        );
        pool.setSessionRouter(address(router));

        if (local) _seedLocal(TestMOR(address(mor)), registry, pool);

        bytes32 modelRoot = vm.envOr("MODEL_ROOT", local ? keccak256("morpheus example model") : bytes32(0));
        if (modelRoot != bytes32(0)) {
            registry.registerModel(
                modelRoot,
                vm.envOr("MODEL_CHUNKS", uint256(1)),
                bytes16(bytes(vm.envOr("MODEL_FORMAT", string("gguf")))),
                vm.envOr("MODEL_NAME", string("example-model"))
            );
        }

        d.mor = address(mor);
        d.priceSource = address(priceSource);
        d.providerRegistry = address(registry);
        d.computePool = address(pool);
        d.sessionRouter = address(router);
    }

    /// @notice The SessionRouter's initial routers: `signer` with the whole budget, or none when it is zero.
    function initialRouters(address signer)
        public
        pure
        returns (address[] memory routers, uint256[] memory shares)
    {
        if (signer == address(0)) return (new address[](0), new uint256[](0));
        routers = new address[](1);
        shares = new uint256[](1);
        routers[0] = signer;
        shares[0] = 10_000;
    }

    /// @dev Test MOR for the first anvil accounts, whitelisted as providers, and a funded pool.
    function _seedLocal(TestMOR mor, ProviderRegistry registry, ComputePool pool) internal {
        for (uint32 i; i < _ANVIL_ACCOUNTS; ++i) {
            address account = vm.addr(vm.deriveKey(_ANVIL_MNEMONIC, i));
            mor.mint(account, _MINT_PER_ACCOUNT);
            registry.addToWhitelist(account);
        }
        mor.mint(broadcaster, _POOL_DEPOSIT);
        mor.approve(address(pool), _POOL_DEPOSIT);
        pool.deposit(_POOL_DEPOSIT);
    }

    function _write(Deployment memory d) internal {
        string memory key = "deployment";
        vm.serializeUint(key, "chainId", d.chainId);
        vm.serializeAddress(key, "mor", d.mor);
        vm.serializeAddress(key, "priceSource", d.priceSource);
        vm.serializeAddress(key, "providerRegistry", d.providerRegistry);
        vm.serializeAddress(key, "computePool", d.computePool);
        vm.serializeAddress(key, "sessionRouter", d.sessionRouter);
        string memory json = vm.serializeUint(key, "deployBlock", d.deployBlock);
        vm.createDir("deployments", true);
        vm.writeJson(json, string.concat("deployments/", vm.toString(d.chainId), ".json"));
    }
}
