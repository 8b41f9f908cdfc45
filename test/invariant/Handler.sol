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

/// @notice Drives the pool and the router with bounded inputs and keeps ghost totals to check against. It
/// owns the router, and keeps its own model of every router key (the ghost routers): an add or increase
/// counts from its announcement plus `ROUTER_DELAY`, a decrease or removal at once, a removed key's
/// vouchers issued up to the removal for `REMOVED_ROUTER_GRACE`.
contract Handler is CommonBase, StdCheats, StdUtils, Signing {
    uint256 internal constant _KEYS = 4;
    uint256 internal constant _BPS = 10_000;

    TestMOR internal immutable _mor;
    ComputePool internal immutable _pool;
    SessionRouter internal immutable _router;
    uint256 internal immutable _delay;
    uint256 internal immutable _grace;

    uint256[_KEYS] internal _routerKeys;
    address[_KEYS] internal _routers;
    uint256 internal _rogueKey;
    address[3] internal _providers;
    address[3] internal _users;

    /// @dev A router key as the protocol's rules say it should be.
    struct GhostRouter {
        bool authorised;
        uint256 share;
        uint256 pendingShare;
        uint256 pendingAt;
        uint256 removedAt;
    }

    GhostRouter[_KEYS] internal _ghostRouters;

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
    /// @dev A claim paid a router other than its share under the ghost model (a change applied early or late).
    bool public ghostRouterMispaid;
    /// @dev A removed router's voucher paid (or reverted) against the grace rule.
    bool public ghostRemovedMispaid;
    uint256 public ghostRemovedClaims;
    /// @dev A change that would take the total share over 10,000 bps went through (or failed otherwise).
    bool public ghostShareOverflowed;
    /// @dev On some day, the MOR counted for users (the sum of each user's largest stake that day) exceeded
    /// the MOR that could count that day (held at its start plus fresh MOR staked during it).
    bool public ghostMorCountedTwice;
    mapping(uint256 day => bool) internal _dayOpened;
    mapping(uint256 day => uint256) public ghostCountableOnDay;
    mapping(uint256 day => uint256) public ghostCountedOnDay;
    mapping(uint256 day => mapping(address user => uint256)) internal _largestStakeOnDay;
    mapping(address user => uint256) internal _lastUnstakeDay;

    constructor(
        TestMOR mor_,
        ComputePool pool_,
        SessionRouter router_,
        uint256[_KEYS] memory routerKeys,
        uint256[2] memory initialShares
    ) {
        _mor = mor_;
        _pool = pool_;
        _router = router_;
        _delay = router_.ROUTER_DELAY();
        _grace = router_.REMOVED_ROUTER_GRACE();
        _routerKeys = routerKeys;
        for (uint256 i; i < _KEYS; ++i) {
            _routers[i] = vm.addr(routerKeys[i]);
        }
        // Keys 0 and 1 are the constructor's initial routers; 2 and 3 start unknown.
        _ghostRouters[0].authorised = true;
        _ghostRouters[0].share = initialShares[0];
        _ghostRouters[1].authorised = true;
        _ghostRouters[1].share = initialShares[1];
        _rogueKey = uint256(keccak256("rogue"));
        _providers = [makeAddr("p0"), makeAddr("p1"), makeAddr("p2")];
        _users = [makeAddr("u0"), makeAddr("u1"), makeAddr("u2")];
        for (uint256 i; i < 3; ++i) {
            vm.prank(_users[i]);
            _mor.approve(address(_router), type(uint256).max);
        }
        _mor.approve(address(_pool), type(uint256).max);
    }

    function routers() external view returns (address[_KEYS] memory) {
        return _routers;
    }

    function providers() external view returns (address[3] memory) {
        return _providers;
    }

    function users() external view returns (address[3] memory) {
        return _users;
    }

    /// @notice Router key `i` now under the ghost model, a pending change applied once its time has come.
    function ghostRouter(uint256 i) public view returns (GhostRouter memory g) {
        g = _ghostRouters[i];
        if (g.pendingAt != 0 && block.timestamp >= g.pendingAt) {
            g.authorised = true;
            g.share = g.pendingShare;
            g.pendingShare = 0;
            g.pendingAt = 0;
            g.removedAt = 0;
        }
    }

    /// @notice What key `i` counts for in the total share under the ghost model.
    function ghostCommitted(uint256 i) public view returns (uint256) {
        GhostRouter memory g = ghostRouter(i);
        if (g.pendingAt != 0) return g.pendingShare;
        return g.authorised ? g.share : 0;
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

    /// @dev A claim for key `keyIndex` the second before, at, or after its pending change applies, where an
    /// off-by-one in the timelock would show (plain warps of up to 2 days seldom land there).
    function claimNearEffectiveAt(uint256 keyIndex, uint256 offset, uint256 providerIndex, uint256 more)
        external
    {
        uint256 i = bound(keyIndex, 0, _KEYS - 1);
        uint256 pendingAt = _ghostRouters[i].pendingAt;
        if (pendingAt == 0) return;
        uint256 target = pendingAt - 1 + bound(offset, 0, 2);
        if (target > block.timestamp) vm.warp(target);
        _claimAny(i, bound(providerIndex, 0, 2), more, more >> 128);
    }

    /// @dev A claim for key `keyIndex` the second before, at, or after the end of its grace (7 days after its
    /// removal, more than a run's plain warps usually cover).
    function claimNearGraceEnd(uint256 keyIndex, uint256 offset, uint256 providerIndex, uint256 more)
        external
    {
        uint256 i = bound(keyIndex, 0, _KEYS - 1);
        uint256 removedAt = _ghostRouters[i].removedAt;
        if (removedAt == 0) return;
        uint256 target = removedAt + _grace - 1 + bound(offset, 0, 2);
        if (target > block.timestamp) vm.warp(target);
        _claimAny(i, bound(providerIndex, 0, 2), more, more >> 128);
    }

    /// @dev A claim for any key: one authorised now pays its share; a removed one within its grace pays its
    /// vouchers issued up to the removal; any other must revert with the error the rules name.
    function claim(uint256 routerIndex, uint256 providerIndex, uint256 more, uint256 moreBootstrap) external {
        _claimAny(bound(routerIndex, 0, _KEYS - 1), bound(providerIndex, 0, 2), more, moreBootstrap);
    }

    /// @dev The front-run of a batch: a fresher voucher for pair B lands first, then a batch of B's stale
    /// voucher (for more than B was ever signed) and a new voucher for pair A (another provider), in either
    /// order. The batch must not revert (fail_on_revert), must pay B nothing, and must pay A exactly what
    /// A's voucher alone is owed within today's budget, the reserve and its router's share. `pick` draws the
    /// two routers (among the authorised ones), the two providers and the order.
    function claimBatchWithStale(uint256 pick, uint256 more, uint256 moreBootstrap) external {
        (uint256[_KEYS] memory authorised, uint256 count) = _authorisedKeys();
        if (count == 0) return;
        uint256 routerA = authorised[pick % count];
        uint256 routerB = authorised[(pick >> 8) % count];
        uint256 providerA = (pick >> 2) % 3;
        uint256 providerB = (providerA + 1 + (pick >> 4) % 2) % 3;
        _claimAny(routerB, providerB, more / 2, moreBootstrap / 2);

        StaleBatch memory b;
        b.stale = _nextVoucher(_routers[routerB], _providers[providerB], 0, 0);
        b.stale.cumulativeAmount += 1000e18;
        b.stale.cumulativeBootstrap += 1000e18;
        b.stale.issuedAt = block.timestamp - 1;
        b.fresh =
            _nextVoucher(_routers[routerA], _providers[providerA], bound(more, 0, 20_000e18), moreBootstrap);
        (b.expected, b.expectedBootstrap) = _owedAlone(routerA, b.fresh);
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
        _remember(b.fresh);
        _checkStaleBatch(b, paid, bootstrapPaid);
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
        _openDay();
        address user = _users[bound(userIndex, 0, 2)];
        amount = bound(amount, 1, 1_000_000e18);
        _mor.mint(user, amount);
        vm.prank(user);
        _router.stake(amount);
        ghostUserMor[user] += amount;
        ghostCountableOnDay[block.timestamp / 1 days] += amount; // fresh MOR
        _countStake(user);
    }

    function unstake(uint256 userIndex, uint256 amount) external {
        _openDay();
        address user = _users[bound(userIndex, 0, 2)];
        (uint256 staked,,) = _router.stakeOf(user);
        if (staked == 0) return;
        vm.prank(user);
        _router.unstake(bound(amount, 1, staked));
        _lastUnstakeDay[user] = block.timestamp / 1 days;
    }

    function withdraw(uint256 userIndex) external {
        _openDay();
        address user = _users[bound(userIndex, 0, 2)];
        (, uint256 pending, uint256 unlockDay) = _router.stakeOf(user);
        if (pending == 0 || block.timestamp / 1 days < unlockDay) return;
        uint256 before = _mor.balanceOf(user);
        vm.prank(user);
        _router.withdraw();
        ghostUserMor[user] -= _mor.balanceOf(user) - before;
    }

    /// @dev The MOR of one user moves to another as fast as it can: `from` withdraws (whether or not its
    /// lock has passed: a locked withdrawal must revert) and `to` stakes what came out, the same second. Each
    /// MOR must count for at most one address a day.
    function passStake(uint256 fromIndex, uint256 toIndex, uint256 amount) external {
        _openDay();
        address from = _users[bound(fromIndex, 0, 2)];
        address to = _users[(bound(fromIndex, 0, 2) + 1 + bound(toIndex, 0, 1)) % 3];
        (uint256 staked, uint256 pending,) = _router.stakeOf(from);
        uint256 today = block.timestamp / 1 days;
        if (pending == 0) {
            if (staked == 0) return;
            vm.prank(from);
            _router.unstake(bound(amount, 1, staked));
            _lastUnstakeDay[from] = today;
        }
        uint256 before = _mor.balanceOf(from);
        vm.prank(from);
        try _router.withdraw() {}
        catch (bytes memory reason) {
            // Locked: it must be the day of the last unstake, and the error must say so.
            if (
                today > _lastUnstakeDay[from]
                    || bytes4(reason) != ISessionRouter.SessionRouterWithdrawLocked.selector
            ) {
                ghostMorCountedTwice = true;
            }
            return;
        }
        if (today <= _lastUnstakeDay[from]) ghostMorCountedTwice = true; // out on the day it last counted
        uint256 moved = _mor.balanceOf(from) - before;
        ghostUserMor[from] -= moved;
        vm.prank(from);
        require(_mor.transfer(to, moved), "transfer");
        vm.prank(to);
        _router.stake(moved);
        ghostUserMor[to] += moved;
        _countStake(to);
    }

    /// @dev The owner announces key `keyIndex` (when it is neither authorised nor pending), within the room
    /// the 10,000 bps total leaves; first, one time in four, one bps over it, which must revert.
    function announceRouter(uint256 keyIndex, uint256 shareBps) external {
        uint256 i = bound(keyIndex, 0, _KEYS - 1);
        GhostRouter memory g = _syncGhost(i);
        if (g.authorised || g.pendingAt != 0) return;
        uint256 room = _room(i);
        if (shareBps % 4 == 0 && room < _BPS) {
            try _router.addRouter(_routers[i], room + 1) {
                ghostShareOverflowed = true;
            } catch (bytes memory reason) {
                _expectTotalTooHigh(reason);
            }
        }
        shareBps = bound(shareBps, 0, room);
        _router.addRouter(_routers[i], shareBps);
        _ghostRouters[i].pendingShare = shareBps;
        _ghostRouters[i].pendingAt = block.timestamp + _delay;
    }

    /// @dev The owner raises an authorised key's share (announced), within the room left.
    function raiseRouterShare(uint256 keyIndex, uint256 shareBps) external {
        uint256 i = bound(keyIndex, 0, _KEYS - 1);
        GhostRouter memory g = _syncGhost(i);
        uint256 room = _room(i);
        if (!g.authorised || g.pendingAt != 0) return;
        if (shareBps % 4 == 0 && room < _BPS) {
            try _router.setRouterShare(_routers[i], room + 1) {
                ghostShareOverflowed = true;
            } catch (bytes memory reason) {
                _expectTotalTooHigh(reason);
            }
        }
        if (room <= g.share) return;
        shareBps = bound(shareBps, g.share + 1, room);
        _router.setRouterShare(_routers[i], shareBps);
        _ghostRouters[i].pendingShare = shareBps;
        _ghostRouters[i].pendingAt = block.timestamp + _delay;
    }

    /// @dev The owner lowers an authorised or removed key's share (at once; cancels what is pending).
    function lowerRouterShare(uint256 keyIndex, uint256 shareBps) external {
        uint256 i = bound(keyIndex, 0, _KEYS - 1);
        GhostRouter memory g = _syncGhost(i);
        if (!g.authorised && g.removedAt == 0) return;
        shareBps = bound(shareBps, 0, g.share);
        _router.setRouterShare(_routers[i], shareBps);
        _ghostRouters[i].share = shareBps;
        _ghostRouters[i].pendingShare = 0;
        _ghostRouters[i].pendingAt = 0;
    }

    function cancelRouterChange(uint256 keyIndex) external {
        uint256 i = bound(keyIndex, 0, _KEYS - 1);
        GhostRouter memory g = _syncGhost(i);
        if (g.pendingAt == 0) return;
        _router.cancelRouterChange(_routers[i]);
        _ghostRouters[i].pendingShare = 0;
        _ghostRouters[i].pendingAt = 0;
    }

    function removeRouter(uint256 keyIndex) external {
        uint256 i = bound(keyIndex, 0, _KEYS - 1);
        GhostRouter memory g = _syncGhost(i);
        if (!g.authorised) return;
        _router.removeRouter(_routers[i]);
        _ghostRouters[i].authorised = false;
        _ghostRouters[i].pendingShare = 0;
        _ghostRouters[i].pendingAt = 0;
        _ghostRouters[i].removedAt = block.timestamp;
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

    /// @dev Claims one voucher of key `i` for provider `p` and checks the outcome against the ghost model.
    function _claimAny(uint256 i, uint256 p, uint256 more, uint256 moreBootstrap) internal {
        GhostRouter memory g = ghostRouter(i);
        Messages.CreditVoucher memory v =
            _nextVoucher(_routers[i], _providers[p], bound(more, 0, 20_000e18), moreBootstrap);
        bool inGrace = !g.authorised && g.removedAt != 0 && block.timestamp < g.removedAt + _grace;
        bool afterRemoval;
        if (inGrace) {
            ++ghostRemovedClaims;
            // The router signed it before its removal; one in four times, a voucher signed after it.
            afterRemoval = more % 4 == 0;
            v.issuedAt = afterRemoval ? g.removedAt + 1 : g.removedAt;
        }
        bytes memory sig = _sign(_routerKeys[i], address(_router), v);
        if (g.authorised || (inGrace && !afterRemoval)) {
            (uint256 expected, uint256 expectedBootstrap) = _owedAlone(i, v);
            (uint256 paid, uint256 bootstrapPaid) = _account(_one(v), _one(sig));
            _remember(v);
            if (paid != expected || bootstrapPaid != expectedBootstrap) {
                if (inGrace) ghostRemovedMispaid = true;
                else ghostRouterMispaid = true;
            }
            return;
        }
        bytes memory expectedError;
        if (inGrace) {
            expectedError = abi.encodeWithSelector(
                ISessionRouter.SessionRouterVoucherAfterRemoval.selector, v.router, v.issuedAt, g.removedAt
            );
        } else if (g.removedAt != 0) {
            expectedError = abi.encodeWithSelector(
                ISessionRouter.SessionRouterRouterGraceEnded.selector, v.router, g.removedAt + _grace
            );
        } else {
            expectedError =
                abi.encodeWithSelector(ISessionRouter.SessionRouterUnauthorisedRouter.selector, v.router);
        }
        try _router.claim(_one(v), _one(sig)) {
            if (g.removedAt != 0) ghostRemovedMispaid = true;
            else ghostRouterMispaid = true;
        } catch (bytes memory reason) {
            if (keccak256(reason) != keccak256(expectedError)) {
                if (g.removedAt != 0) ghostRemovedMispaid = true;
                else ghostRouterMispaid = true;
            }
        }
    }

    /// @dev The next voucher for a pair: `more` on top of the largest cumulative amount signed for it.
    function _nextVoucher(address router, address provider, uint256 more, uint256 moreBootstrap)
        internal
        view
        returns (Messages.CreditVoucher memory v)
    {
        uint256 cumulative = ghostCumulative[router][provider] + more;
        v.router = router;
        v.provider = provider;
        v.cumulativeAmount = cumulative;
        v.cumulativeBootstrap = cumulative / 10 + bound(moreBootstrap, 0, 10e18);
        v.cumulativeTokens = cumulative / 1e12;
        v.sessions = cumulative / 1e18;
        v.issuedAt = block.timestamp;
    }

    /// @dev Records a voucher that was claimed: the largest cumulative amount signed for its pair.
    function _remember(Messages.CreditVoucher memory v) internal {
        if (v.cumulativeAmount > ghostCumulative[v.router][v.provider]) {
            ghostCumulative[v.router][v.provider] = v.cumulativeAmount;
        }
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

    /// @dev What key `i`'s voucher `v` would be paid if claimed alone now: the protocol's rule, with the
    /// share the ghost model gives the key (not the router's view of it).
    function _owedAlone(uint256 i, Messages.CreditVoucher memory v)
        internal
        view
        returns (uint256 amount, uint256 bootstrapAmount)
    {
        (uint256 budget, uint256 spent, uint256 reserve) = _pool.today();
        (,, uint256 routerSpent) = _router.routerInfo(v.router);
        uint256 limit = budget * ghostRouter(i).share / _BPS;
        uint256 routerLeft = limit > routerSpent ? limit - routerSpent : 0;
        ISessionRouter.ClaimRecord memory r = _router.claimRecord(v.router, v.provider);
        amount = v.cumulativeAmount > r.paid ? v.cumulativeAmount - r.paid : 0;
        amount = _min(amount, _min(budget - spent, routerLeft));
        routerLeft -= amount;
        bootstrapAmount =
            v.cumulativeBootstrap > r.bootstrapPaid ? v.cumulativeBootstrap - r.bootstrapPaid : 0;
        bootstrapAmount = _min(bootstrapAmount, _min(reserve, routerLeft));
    }

    /// @dev `reason` must be the total-share error for one bps over the limit.
    function _expectTotalTooHigh(bytes memory reason) internal {
        bytes memory expected =
            abi.encodeWithSelector(ISessionRouter.SessionRouterTotalShareTooHigh.selector, _BPS + 1, _BPS);
        if (keccak256(reason) != keccak256(expected)) ghostShareOverflowed = true;
    }

    /// @dev The keys authorised now under the ghost model.
    function _authorisedKeys() internal view returns (uint256[_KEYS] memory keys, uint256 count) {
        for (uint256 i; i < _KEYS; ++i) {
            if (ghostRouter(i).authorised) keys[count++] = i;
        }
    }

    /// @dev Applies key `i`'s pending change in the ghost's storage once its time has come.
    function _syncGhost(uint256 i) internal returns (GhostRouter memory g) {
        g = ghostRouter(i);
        _ghostRouters[i] = g;
    }

    /// @dev The most key `i` may count for: 10,000 bps less what the other keys count for.
    function _room(uint256 i) internal view returns (uint256) {
        uint256 others;
        for (uint256 j; j < _KEYS; ++j) {
            if (j != i) others += ghostCommitted(j);
        }
        return _BPS - others;
    }

    /// @dev On a day's first stake action: all MOR the router holds (staked and pending) may count that day.
    function _openDay() internal {
        uint256 today = block.timestamp / 1 days;
        if (_dayOpened[today]) return;
        _dayOpened[today] = true;
        ghostCountableOnDay[today] += _router.totalStaked();
        for (uint256 i; i < 3; ++i) {
            _countStake(_users[i]);
        }
    }

    /// @dev Counts `user`'s stake for today (its largest of the day), and checks the day's bound.
    function _countStake(address user) internal {
        uint256 today = block.timestamp / 1 days;
        (uint256 staked,,) = _router.stakeOf(user);
        uint256 largest = _largestStakeOnDay[today][user];
        if (staked <= largest) return;
        ghostCountedOnDay[today] += staked - largest;
        _largestStakeOnDay[today][user] = staked;
        if (ghostCountedOnDay[today] > ghostCountableOnDay[today]) ghostMorCountedTwice = true;
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
