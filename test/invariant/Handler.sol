// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {CommonBase} from "forge-std/Base.sol";
import {StdCheats} from "forge-std/StdCheats.sol";
import {StdUtils} from "forge-std/StdUtils.sol";

import {ComputePool} from "../../contracts/ComputePool.sol";
import {SessionRouter} from "../../contracts/SessionRouter.sol";
import {ISessionRouter} from "../../contracts/interfaces/ISessionRouter.sol";
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
    uint256 public ghostStaleSkips;
    uint256 public ghostStalePaid;
    bool public ghostBatchMisaccounted;

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
        _claimOne(bound(routerIndex, 0, 1), bound(providerIndex, 0, 2), more, moreBootstrap);
    }

    /// @dev The front-run of a batch: a fresher voucher for pair B lands first, then a batch of B's stale
    /// voucher (for more than B was ever signed) and a new voucher for pair A (another provider), in either
    /// order. The batch must not revert (fail_on_revert), must pay B nothing, and must pay A exactly what
    /// A's voucher alone is owed within today's budget, the reserve and its router's share. `pick` draws the
    /// two routers, the two providers and the order.
    function claimBatchWithStale(uint256 pick, uint256 more, uint256 moreBootstrap) external {
        uint256 routerA = pick % 2;
        uint256 routerB = (pick >> 1) % 2;
        uint256 providerA = (pick >> 2) % 3;
        uint256 providerB = (providerA + 1 + (pick >> 4) % 2) % 3;
        _claimOne(routerB, providerB, more / 2, moreBootstrap / 2);

        StaleBatch memory b;
        b.stale = _nextVoucher(_routers[routerB], _providers[providerB], 0, 0);
        b.stale.cumulativeAmount += 1000e18;
        b.stale.cumulativeBootstrap += 1000e18;
        b.stale.issuedAt = block.timestamp - 1;
        b.fresh =
            _nextVoucher(_routers[routerA], _providers[providerA], bound(more, 0, 20_000e18), moreBootstrap);
        (b.expected, b.expectedBootstrap) = _owedAlone(b.fresh);
        b.staleBefore = _router.claimRecord(b.stale.router, b.stale.provider);
        b.balanceA = _mor.balanceOf(b.fresh.provider);
        b.balanceB = _mor.balanceOf(b.stale.provider);

        Messages.CreditVoucher[] memory vs = new Messages.CreditVoucher[](2);
        bytes[] memory sigs = new bytes[](2);
        uint256 s = (pick >> 5) % 2;
        vs[s] = b.stale;
        vs[1 - s] = b.fresh;
        sigs[s] = _sign(_routerKeys[routerB], address(_router), b.stale);
        sigs[1 - s] = _sign(_routerKeys[routerA], address(_router), b.fresh);
        (uint256 paid, uint256 bootstrapPaid) = _account(vs, sigs);
        _checkStaleBatch(b, paid, bootstrapPaid);
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

    /// @dev One `claimBatchWithStale`: its vouchers and what it expects.
    struct StaleBatch {
        Messages.CreditVoucher stale;
        Messages.CreditVoucher fresh;
        uint256 expected;
        uint256 expectedBootstrap;
        ISessionRouter.ClaimRecord staleBefore;
        uint256 balanceA;
        uint256 balanceB;
    }

    function _checkStaleBatch(StaleBatch memory b, uint256 paid, uint256 bootstrapPaid) internal {
        ISessionRouter.ClaimRecord memory staleAfter = _router.claimRecord(b.stale.router, b.stale.provider);
        ++ghostStaleSkips;
        ghostStalePaid += _mor.balanceOf(b.stale.provider) - b.balanceB;
        ghostStalePaid += staleAfter.paid - b.staleBefore.paid;
        ghostStalePaid += staleAfter.bootstrapPaid - b.staleBefore.bootstrapPaid;
        if (staleAfter.issuedAt != b.staleBefore.issuedAt) ++ghostStalePaid;
        if (
            paid != b.expected || bootstrapPaid != b.expectedBootstrap
                || _mor.balanceOf(b.fresh.provider) - b.balanceA != paid + bootstrapPaid
        ) ghostBatchMisaccounted = true;
    }

    function _claimOne(uint256 routerIndex, uint256 providerIndex, uint256 more, uint256 moreBootstrap)
        internal
    {
        Messages.CreditVoucher memory v = _nextVoucher(
            _routers[routerIndex], _providers[providerIndex], bound(more, 0, 20_000e18), moreBootstrap
        );
        _account(_one(v), _one(_sign(_routerKeys[routerIndex], address(_router), v)));
    }

    /// @dev Claims and adds what was paid to the ghost totals.
    function _account(Messages.CreditVoucher[] memory vs, bytes[] memory sigs)
        internal
        returns (uint256 paid, uint256 bootstrapPaid)
    {
        uint256 today = block.timestamp / 1 days;
        if (ghostBudgetOfDay[today] == 0) ghostBudgetOfDay[today] = _pool.todayBudget() + 1; // +1: "recorded"
        (paid, bootstrapPaid) = _router.claim(vs, sigs);
        ghostPaid += paid + bootstrapPaid;
        ghostPaidOnDay[today] += paid;
        if (ghostPaidOnDay[today] > ghostBudgetOfDay[today] - 1) ghostBudgetExceeded = true;
    }

    /// @dev What `v` would be paid if claimed alone now: the protocol's rule, from the contracts' views.
    function _owedAlone(Messages.CreditVoucher memory v)
        internal
        view
        returns (uint256 amount, uint256 bootstrapAmount)
    {
        (uint256 budget, uint256 spent, uint256 reserve) = _pool.today();
        (, uint256 shareBps, uint256 routerSpent) = _router.routerInfo(v.router);
        uint256 limit = budget * shareBps / 10_000;
        uint256 routerLeft = limit > routerSpent ? limit - routerSpent : 0;
        ISessionRouter.ClaimRecord memory r = _router.claimRecord(v.router, v.provider);
        amount = v.cumulativeAmount > r.paid ? v.cumulativeAmount - r.paid : 0;
        amount = _min(amount, _min(budget - spent, routerLeft));
        routerLeft -= amount;
        bootstrapAmount =
            v.cumulativeBootstrap > r.bootstrapPaid ? v.cumulativeBootstrap - r.bootstrapPaid : 0;
        bootstrapAmount = _min(bootstrapAmount, _min(reserve, routerLeft));
    }

    function _min(uint256 a, uint256 b) internal pure returns (uint256) {
        return a < b ? a : b;
    }

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
