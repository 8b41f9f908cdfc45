// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {CommonBase} from "forge-std/Base.sol";
import {StdCheats} from "forge-std/StdCheats.sol";
import {StdUtils} from "forge-std/StdUtils.sol";

import {ComputePool} from "../../contracts/ComputePool.sol";
import {SessionRouter} from "../../contracts/SessionRouter.sol";
import {Messages} from "../../contracts/libraries/Messages.sol";
import {TestMOR} from "../../contracts/token/TestMOR.sol";
import {Signing} from "../utils/Signing.sol";

/// @notice Drives the pool and the router with bounded inputs and keeps ghost totals to check against.
contract Handler is CommonBase, StdCheats, StdUtils, Signing {
    TestMOR internal immutable _mor;
    ComputePool internal immutable _pool;
    SessionRouter internal immutable _router;

    uint256[2] internal _routerKeys;
    address[2] internal _routers;
    uint256 internal _rogueKey;
    address[3] internal _providers;
    address[3] internal _users;

    // Ghosts.
    uint256 public ghostDeposited;
    uint256 public ghostPaid;
    uint256 public ghostForeignPaid;
    uint256 public ghostForeignAttempts;
    bool public ghostBudgetExceeded;
    mapping(uint256 day => uint256) public ghostPaidOnDay;
    mapping(uint256 day => uint256) public ghostBudgetOfDay;
    mapping(address router => mapping(address provider => uint256)) public ghostCumulative;
    mapping(address user => uint256) public ghostUserMor;

    constructor(TestMOR mor_, ComputePool pool_, SessionRouter router_, uint256[2] memory routerKeys) {
        _mor = mor_;
        _pool = pool_;
        _router = router_;
        _routerKeys = routerKeys;
        _routers = [vm.addr(routerKeys[0]), vm.addr(routerKeys[1])];
        _rogueKey = uint256(keccak256("rogue"));
        _providers = [makeAddr("p0"), makeAddr("p1"), makeAddr("p2")];
        _users = [makeAddr("u0"), makeAddr("u1"), makeAddr("u2")];
        for (uint256 i; i < 3; ++i) {
            vm.prank(_users[i]);
            _mor.approve(address(_router), type(uint256).max);
        }
        _mor.approve(address(_pool), type(uint256).max);
    }

    function routers() external view returns (address[2] memory) {
        return _routers;
    }

    function providers() external view returns (address[3] memory) {
        return _providers;
    }

    function users() external view returns (address[3] memory) {
        return _users;
    }

    /*//////////////////////////////////////////////////////////////
                                ACTIONS
    //////////////////////////////////////////////////////////////*/

    function deposit(uint256 amount) external {
        amount = bound(amount, 1, 1_000_000e18);
        _mor.mint(address(this), amount);
        _pool.deposit(amount);
        ghostDeposited += amount;
    }

    function warp(uint256 seconds_) external {
        vm.warp(block.timestamp + bound(seconds_, 1, 2 days));
    }

    function claim(uint256 routerIndex, uint256 providerIndex, uint256 more, uint256 moreBootstrap) external {
        routerIndex = bound(routerIndex, 0, 1);
        Messages.CreditVoucher memory v = _nextVoucher(
            _routers[routerIndex],
            _providers[bound(providerIndex, 0, 2)],
            bound(more, 0, 20_000e18),
            moreBootstrap
        );
        uint256 today = block.timestamp / 1 days;
        if (ghostBudgetOfDay[today] == 0) ghostBudgetOfDay[today] = _pool.todayBudget() + 1; // +1: "recorded"
        (uint256 paid, uint256 bootstrapPaid) =
            _router.claim(_one(v), _one(_sign(_routerKeys[routerIndex], address(_router), v)));
        ghostPaid += paid + bootstrapPaid;
        ghostPaidOnDay[today] += paid;
        if (ghostPaidOnDay[today] > ghostBudgetOfDay[today] - 1) ghostBudgetExceeded = true;
    }

    function _nextVoucher(address router, address provider, uint256 more, uint256 moreBootstrap)
        internal
        returns (Messages.CreditVoucher memory v)
    {
        uint256 cumulative = ghostCumulative[router][provider] + more;
        ghostCumulative[router][provider] = cumulative;
        v.router = router;
        v.provider = provider;
        v.cumulativeAmount = cumulative;
        v.cumulativeBootstrap = cumulative / 10 + bound(moreBootstrap, 0, 10e18);
        v.cumulativeTokens = cumulative / 1e12;
        v.sessions = cumulative / 1e18;
        v.issuedAt = block.timestamp;
    }

    /// @dev A voucher from an unauthorised key, or signed for another chain: must revert and pay nothing.
    function claimForeign(uint256 kind, uint256 amount) external {
        amount = bound(amount, 1, 1000e18);
        Messages.CreditVoucher memory v = Messages.CreditVoucher({
            router: kind % 2 == 0 ? vm.addr(_rogueKey) : _routers[0],
            provider: _providers[0],
            cumulativeAmount: ghostCumulative[_routers[0]][_providers[0]] + amount,
            cumulativeBootstrap: 0,
            cumulativeTokens: 0,
            sessions: 0,
            failed: 0,
            issuedAt: block.timestamp
        });
        bytes memory sig;
        if (kind % 2 == 0) {
            sig = _sign(_rogueKey, address(_router), v);
        } else {
            uint256 chainId = block.chainid;
            vm.chainId(chainId + 1);
            sig = _sign(_routerKeys[0], address(_router), v);
            vm.chainId(chainId);
        }
        uint256 before = _mor.balanceOf(_providers[0]);
        ++ghostForeignAttempts;
        try _router.claim(_one(v), _one(sig)) returns (uint256 paid, uint256 bootstrapPaid) {
            ghostForeignPaid += paid + bootstrapPaid + 1; // any success is a failure of the invariant
        } catch {}
        ghostForeignPaid += _mor.balanceOf(_providers[0]) - before;
    }

    function stake(uint256 userIndex, uint256 amount) external {
        address user = _users[bound(userIndex, 0, 2)];
        amount = bound(amount, 1, 1_000_000e18);
        _mor.mint(user, amount);
        vm.prank(user);
        _router.stake(amount);
        ghostUserMor[user] += amount;
    }

    function unstake(uint256 userIndex, uint256 amount) external {
        address user = _users[bound(userIndex, 0, 2)];
        (uint256 staked,,) = _router.stakeOf(user);
        if (staked == 0) return;
        vm.prank(user);
        _router.unstake(bound(amount, 1, staked));
    }

    function withdraw(uint256 userIndex) external {
        address user = _users[bound(userIndex, 0, 2)];
        (, uint256 pending, uint256 unlockDay) = _router.stakeOf(user);
        if (pending == 0 || block.timestamp / 1 days < unlockDay) return;
        uint256 before = _mor.balanceOf(user);
        vm.prank(user);
        _router.withdraw();
        ghostUserMor[user] -= _mor.balanceOf(user) - before;
    }

    /*//////////////////////////////////////////////////////////////
                                HELPERS
    //////////////////////////////////////////////////////////////*/

    function _one(Messages.CreditVoucher memory v)
        internal
        pure
        returns (Messages.CreditVoucher[] memory vs)
    {
        vs = new Messages.CreditVoucher[](1);
        vs[0] = v;
    }

    function _one(bytes memory sig) internal pure returns (bytes[] memory sigs) {
        sigs = new bytes[](1);
        sigs[0] = sig;
    }
}
