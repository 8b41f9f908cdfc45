// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Ownable, Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

import {IComputePool} from "./interfaces/IComputePool.sol";
import {IPriceSource} from "./interfaces/IPriceSource.sol";
import {ISessionRouter} from "./interfaces/ISessionRouter.sol";
import {AccessRate} from "./libraries/AccessRate.sol";
import {Messages} from "./libraries/Messages.sol";

/// @title SessionRouter
/// @notice Authorised router keys, user stakes, and the claim that pays providers their router-signed
/// cumulative credit from the ComputePool.
contract SessionRouter is ISessionRouter, Ownable2Step, ReentrancyGuardTransient, EIP712 {
    using SafeERC20 for IERC20;

    /*//////////////////////////////////////////////////////////////
                               CONSTANTS
    //////////////////////////////////////////////////////////////*/

    /// @dev The denominator of every bps value, and the most the routers' shares may sum to.
    uint256 internal constant _BPS = 10_000;

    /// @inheritdoc ISessionRouter
    uint256 public constant MIN_ROUTER_DELAY = 1 days;

    /// @inheritdoc ISessionRouter
    uint256 public constant MAX_ROUTER_DELAY = 30 days;

    /// @inheritdoc ISessionRouter
    uint256 public constant REMOVED_ROUTER_GRACE = 7 days;

    /// @inheritdoc ISessionRouter
    uint256 public immutable ROUTER_DELAY;

    /// @inheritdoc ISessionRouter
    IERC20 public immutable mor;

    /// @inheritdoc ISessionRouter
    IComputePool public immutable pool;

    /*//////////////////////////////////////////////////////////////
                                STORAGE
    //////////////////////////////////////////////////////////////*/

    /// @dev One slot per router key (8 + 8 + 16 + 32 + 112 + 16 + 32 + 32 = 256 bits): read once and written
    /// once per run of its vouchers in a claim. A pending add or increase (`pendingAt != 0`) is applied in
    /// memory by `_applyPending` wherever the state is read, so it takes effect at `pendingAt` by itself.
    /// Timestamps fit 32 bits until 2106.
    struct RouterState {
        // Authorised now (before any pending change applies).
        bool authorised;
        // In `_routerList`.
        bool listed;
        // The share of each day's budget its vouchers may pay; for a removed router, within the grace.
        uint16 shareBps;
        // The UTC day `spent` counts.
        uint32 day;
        // What its vouchers paid on `day`.
        uint112 spent;
        // The share a pending add or increase gives it.
        uint16 pendingShareBps;
        // When the pending change applies; 0 when none is pending.
        uint32 pendingAt;
        // When it was removed; 0 when it is not removed.
        uint32 removedAt;
    }

    /// @dev One slot per user.
    struct UserStake {
        uint112 staked;
        uint112 pending;
        uint32 unlockDay;
    }

    /// @inheritdoc ISessionRouter
    IPriceSource public priceSource;

    uint256 internal _totalStaked;

    /// @dev The shares of the authorised routers, each pending add or increase counted at its announced
    /// share instead (the share it will have, which is above its current one); at most `_BPS`.
    uint256 internal _totalShareBps;

    mapping(address router => RouterState) internal _routers;

    address[] internal _routerList;

    mapping(address router => mapping(address provider => ClaimRecord)) internal _records;

    mapping(address user => UserStake) internal _stakes;

    /*//////////////////////////////////////////////////////////////
                              CONSTRUCTOR
    //////////////////////////////////////////////////////////////*/

    /// @param owner_ The account that manages router keys and the price source.
    /// @param mor_ The MOR token (staked by users).
    /// @param pool_ The pool that pays providers; it must name this contract as its SessionRouter.
    /// @param priceSource_ The source of the MOR and token prices.
    /// @param routerDelay_ `ROUTER_DELAY`, in [`MIN_ROUTER_DELAY`, `MAX_ROUTER_DELAY`].
    /// @param initialRouters The router keys authorised at once, part of the deployment (distinct, non-zero).
    /// @param initialShares Their shares, one per key, summing to at most 10,000 bps.
    constructor(
        address owner_,
        IERC20 mor_,
        IComputePool pool_,
        IPriceSource priceSource_,
        uint256 routerDelay_,
        address[] memory initialRouters,
        uint256[] memory initialShares
    ) Ownable(owner_) EIP712(Messages.DOMAIN_NAME, Messages.DOMAIN_VERSION) {
        if (
            address(mor_) == address(0) || address(pool_) == address(0) || address(priceSource_) == address(0)
        ) {
            revert SessionRouterZeroAddress();
        }
        if (routerDelay_ < MIN_ROUTER_DELAY || routerDelay_ > MAX_ROUTER_DELAY) {
            revert SessionRouterRouterDelayOutOfRange(routerDelay_, MIN_ROUTER_DELAY, MAX_ROUTER_DELAY);
        }
        uint256 count = initialRouters.length;
        if (count != initialShares.length) {
            revert SessionRouterInitialRoutersMismatch(count, initialShares.length);
        }
        mor = mor_;
        pool = pool_;
        priceSource = priceSource_;
        ROUTER_DELAY = routerDelay_;
        emit PriceSourceSet(address(priceSource_));

        uint256 total = 0;
        for (uint256 i; i < count; ++i) {
            address router = initialRouters[i];
            uint256 shareBps = initialShares[i];
            if (router == address(0)) revert SessionRouterZeroAddress();
            if (shareBps > _BPS) revert SessionRouterShareOutOfRange(shareBps);
            if (_routers[router].listed) revert SessionRouterRouterExists(router);
            total += shareBps;
            _routers[router] = RouterState({
                authorised: true,
                listed: true,
                shareBps: uint16(shareBps),
                day: 0,
                spent: 0,
                pendingShareBps: 0,
                pendingAt: 0,
                removedAt: 0
            });
            _routerList.push(router);
            emit RouterAdded(router, shareBps);
        }
        if (total > _BPS) revert SessionRouterTotalShareTooHigh(total, _BPS);
        _totalShareBps = total;
    }

    /*//////////////////////////////////////////////////////////////
                                 VIEWS
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc ISessionRouter
    function isRouter(address router) external view returns (bool) {
        return _load(router).authorised;
    }

    /// @inheritdoc ISessionRouter
    function routerInfo(address router)
        external
        view
        returns (bool authorised, uint256 shareBps, uint256 spentToday)
    {
        RouterState memory state = _load(router);
        spentToday = state.day == block.timestamp / 1 days ? state.spent : 0;
        return (state.authorised, state.shareBps, spentToday);
    }

    /// @inheritdoc ISessionRouter
    function pendingRouterChange(address router)
        external
        view
        returns (uint256 shareBps, uint256 effectiveAt)
    {
        RouterState memory state = _load(router);
        return (state.pendingShareBps, state.pendingAt);
    }

    /// @inheritdoc ISessionRouter
    function routerRemoval(address router) external view returns (uint256 removedAt, uint256 graceEnd) {
        removedAt = _load(router).removedAt;
        if (removedAt != 0) graceEnd = removedAt + REMOVED_ROUTER_GRACE;
    }

    /// @inheritdoc ISessionRouter
    function totalRouterShareBps() external view returns (uint256) {
        return _totalShareBps;
    }

    /// @inheritdoc ISessionRouter
    function routers() external view returns (address[] memory) {
        return _routerList;
    }

    /// @inheritdoc ISessionRouter
    function claimRecord(address router, address provider) external view returns (ClaimRecord memory) {
        return _records[router][provider];
    }

    /// @inheritdoc ISessionRouter
    function reputation(address provider) external view returns (Reputation memory rep) {
        uint256 count = _routerList.length;
        for (uint256 i; i < count; ++i) {
            ClaimRecord memory record = _records[_routerList[i]][provider];
            rep.tokens += record.tokens;
            rep.sessions += record.sessions;
            rep.failed += record.failed;
            rep.earned += record.paid;
            rep.bootstrapEarned += record.bootstrapPaid;
        }
    }

    /// @inheritdoc ISessionRouter
    function maxT() public view returns (uint256) {
        (uint256 morUsd, uint256 tokensUsd) = priceSource.prices();
        return AccessRate.maxT(pool.todayBudget(), morUsd, tokensUsd);
    }

    /// @inheritdoc ISessionRouter
    function accessRate() external view returns (uint256) {
        return AccessRate.accessRate(maxT(), mor.totalSupply());
    }

    /// @inheritdoc ISessionRouter
    function userMax(address user) public view returns (uint256) {
        return AccessRate.userMax(maxT(), _stakes[user].staked, mor.totalSupply());
    }

    /// @inheritdoc ISessionRouter
    function routerUserMax(address router, address user) external view returns (uint256) {
        RouterState memory state = _load(router);
        if (!state.authorised) return 0;
        return Math.mulDiv(userMax(user), state.shareBps, _BPS);
    }

    /// @inheritdoc ISessionRouter
    function stakeOf(address user)
        external
        view
        returns (uint256 staked, uint256 pending, uint256 unlockDay)
    {
        UserStake memory s = _stakes[user];
        return (s.staked, s.pending, s.unlockDay);
    }

    /// @inheritdoc ISessionRouter
    function totalStaked() external view returns (uint256) {
        return _totalStaked;
    }

    /// @inheritdoc ISessionRouter
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @inheritdoc ISessionRouter
    function hashTypedData(bytes32 structHash) external view returns (bytes32) {
        return _hashTypedDataV4(structHash);
    }

    /// @inheritdoc ISessionRouter
    function hashComputeRequest(Messages.ComputeRequest calldata request) external view returns (bytes32) {
        return _hashTypedDataV4(Messages.hash(request));
    }

    /// @inheritdoc ISessionRouter
    function hashAssignment(Messages.Assignment calldata assignment) external view returns (bytes32) {
        return _hashTypedDataV4(Messages.hash(assignment));
    }

    /// @inheritdoc ISessionRouter
    function hashUsageReport(Messages.UsageReport calldata report) external view returns (bytes32) {
        return _hashTypedDataV4(Messages.hash(report));
    }

    /// @inheritdoc ISessionRouter
    function hashCreditVoucher(Messages.CreditVoucher calldata voucher) external view returns (bytes32) {
        return _hashTypedDataV4(Messages.hashCalldata(voucher));
    }

    /// @inheritdoc ISessionRouter
    function hashLivenessChallenge(Messages.LivenessChallenge calldata challenge)
        external
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(Messages.hash(challenge));
    }

    /// @inheritdoc ISessionRouter
    function hashLivenessResponse(Messages.LivenessResponse calldata response)
        external
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(Messages.hash(response));
    }

    /// @inheritdoc ISessionRouter
    function hashServiceReceipt(Messages.ServiceReceipt calldata receipt) external view returns (bytes32) {
        return _hashTypedDataV4(Messages.hash(receipt));
    }

    /// @inheritdoc ISessionRouter
    function hashReceiptRequest(Messages.ReceiptRequest calldata request) external view returns (bytes32) {
        return _hashTypedDataV4(Messages.hash(request));
    }

    /// @inheritdoc ISessionRouter
    function hashServiceReceipts(Messages.ServiceReceipts calldata receipts) external view returns (bytes32) {
        return _hashTypedDataV4(Messages.hash(receipts));
    }

    /*//////////////////////////////////////////////////////////////
                             STATE-CHANGING
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc ISessionRouter
    function claim(Messages.CreditVoucher[] calldata vouchers, bytes[] calldata signatures)
        external
        nonReentrant
        returns (uint256 paid, uint256 bootstrapPaid)
    {
        uint256 count = vouchers.length;
        if (count == 0) revert SessionRouterNoVouchers();
        if (count != signatures.length) revert SessionRouterLengthMismatch(count, signatures.length);

        // Zero-initialised on purpose: every running total starts at zero.
        // slither-disable-next-line uninitialized-local
        ClaimContext memory c;
        c.payments = new Payment[](count);
        (c.budget, c.spent, c.reserveLeft) = pool.today();
        // Cannot underflow: the pool's `spent` never passes its `budget`.
        unchecked {
            c.budgetLeft = c.budget - c.spent;
        }
        c.day = uint32(block.timestamp / 1 days);
        // A lone stale voucher reverts so its submitter learns nothing was settled; in a batch it is skipped,
        // so a third party's fresher voucher claimed first cannot revert the others.
        c.skipStale = count > 1;

        for (uint256 i; i < count; ++i) {
            Messages.CreditVoucher calldata voucher = vouchers[i];
            address router = voucher.router;
            address provider = voucher.provider;
            if (provider == address(0)) revert SessionRouterZeroAddress();
            _checkSignature(voucher, router, signatures[i]);
            if (router != c.router) {
                _switchRouter(c, router);
            }
            if (provider != c.provider) {
                _queuePayment(c);
                c.provider = provider;
            }
            _settle(c, voucher, router, provider);
        }
        _queuePayment(c);
        _switchRouter(c, address(0));

        // Interactions last: every record and router state is written before the pool sends any MOR.
        uint256 paymentCount = c.paymentCount;
        for (uint256 i; i < paymentCount; ++i) {
            Payment memory payment = c.payments[i];
            // slither-disable-next-line calls-loop
            pool.pay(payment.provider, payment.amount, payment.bootstrapAmount);
        }
        return (c.totalPaid, c.totalBootstrapPaid);
    }

    /// @inheritdoc ISessionRouter
    function stake(uint256 amount) external nonReentrant {
        if (amount == 0) revert SessionRouterZeroAmount();
        UserStake storage s = _stakes[msg.sender];
        uint256 staked = s.staked + amount;
        if (staked > type(uint112).max) revert SessionRouterStakeTooLarge(amount);
        s.staked = uint112(staked);
        _totalStaked += amount;
        emit Staked(msg.sender, amount, staked);
        mor.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @inheritdoc ISessionRouter
    function unstake(uint256 amount) external {
        if (amount == 0) revert SessionRouterZeroAmount();
        UserStake memory s = _stakes[msg.sender];
        if (amount > s.staked) revert SessionRouterInsufficientStake(s.staked, amount);
        uint256 pending = uint256(s.pending) + amount;
        if (pending > type(uint112).max) revert SessionRouterStakeTooLarge(amount);
        uint256 unlockDay = block.timestamp / 1 days + 1;
        // Cannot underflow: checked against `s.staked` above.
        unchecked {
            _stakes[msg.sender] = UserStake({
                staked: uint112(s.staked - amount), pending: uint112(pending), unlockDay: uint32(unlockDay)
            });
        }
        emit Unstaked(msg.sender, amount, unlockDay);
    }

    /// @inheritdoc ISessionRouter
    function withdraw() external nonReentrant returns (uint256 amount) {
        UserStake memory s = _stakes[msg.sender];
        amount = s.pending;
        if (amount == 0) revert SessionRouterNothingToWithdraw();
        uint256 today = block.timestamp / 1 days;
        if (today < s.unlockDay) revert SessionRouterWithdrawLocked(s.unlockDay, today);
        _stakes[msg.sender].pending = 0;
        // Cannot underflow: `_totalStaked` counts every pending amount.
        unchecked {
            _totalStaked -= amount;
        }
        emit Withdrawn(msg.sender, amount);
        mor.safeTransfer(msg.sender, amount);
    }

    /// @inheritdoc ISessionRouter
    function addRouter(address router, uint256 shareBps) external onlyOwner {
        if (router == address(0)) revert SessionRouterZeroAddress();
        if (shareBps > _BPS) revert SessionRouterShareOutOfRange(shareBps);
        RouterState memory state = _load(router);
        if (state.authorised) revert SessionRouterRouterExists(router);
        _revertIfPending(router, state);
        // Not authorised and nothing pending: the key counts for nothing in the total yet.
        _setTotal(_totalShareBps + shareBps);
        // A key added back keeps its day's spending, so removing and re-adding cannot reset its share.
        if (!state.listed) {
            state.listed = true;
            _routerList.push(router);
        }
        _announce(router, state, shareBps);
    }

    /// @inheritdoc ISessionRouter
    function cancelRouterChange(address router) external onlyOwner {
        RouterState memory state = _load(router);
        if (state.pendingAt == 0) revert SessionRouterNoPendingChange(router);
        // Cannot underflow: the total counts the pending share.
        unchecked {
            _totalShareBps = _totalShareBps - state.pendingShareBps + (state.authorised ? state.shareBps : 0);
        }
        _cancelPending(router, state);
        _store(router, state);
    }

    /// @inheritdoc ISessionRouter
    function removeRouter(address router) external onlyOwner {
        RouterState memory state = _load(router);
        if (!state.authorised) revert SessionRouterUnauthorisedRouter(router);
        // Cannot underflow: the total counts this router's share, or its pending one.
        unchecked {
            _totalShareBps -= _committedShare(state);
        }
        _cancelPending(router, state);
        state.authorised = false;
        // block.timestamp fits 32 bits until 2106; never 0 on a live chain.
        state.removedAt = uint32(block.timestamp);
        _store(router, state);
        emit RouterRemoved(router);
    }

    /// @inheritdoc ISessionRouter
    function setRouterShare(address router, uint256 shareBps) external onlyOwner {
        if (shareBps > _BPS) revert SessionRouterShareOutOfRange(shareBps);
        RouterState memory state = _load(router);
        bool removed = !state.authorised && state.removedAt != 0;
        if (!state.authorised && !removed) revert SessionRouterUnauthorisedRouter(router);
        if (shareBps > state.shareBps) {
            // A removed router is added back with `addRouter`, never raised.
            if (removed) revert SessionRouterUnauthorisedRouter(router);
            _revertIfPending(router, state);
            // Cannot underflow: the total counts this router's current share.
            unchecked {
                _setTotal(_totalShareBps - state.shareBps + shareBps);
            }
            _announce(router, state, shareBps);
            return;
        }
        // A decrease applies at once and cancels any pending change.
        // Cannot underflow: the total counts this router's share, or its pending one; a removed router's
        // counts only while it has a pending add.
        unchecked {
            _totalShareBps = _totalShareBps - _committedShare(state) + (removed ? 0 : shareBps);
        }
        _cancelPending(router, state);
        state.shareBps = uint16(shareBps);
        _store(router, state);
        emit RouterShareSet(router, shareBps);
    }

    /// @inheritdoc ISessionRouter
    function setPriceSource(IPriceSource priceSource_) external onlyOwner {
        if (address(priceSource_) == address(0)) revert SessionRouterZeroAddress();
        priceSource = priceSource_;
        emit PriceSourceSet(address(priceSource_));
    }

    /*//////////////////////////////////////////////////////////////
                                INTERNAL
    //////////////////////////////////////////////////////////////*/

    /// @dev The working state of one claim, kept in memory so each router's and provider's storage is
    /// touched once per run of consecutive vouchers.
    struct Payment {
        address provider;
        uint256 amount;
        uint256 bootstrapAmount;
    }

    /// @dev The working state of one claim (see above).
    struct ClaimContext {
        uint256 budget;
        uint256 spent;
        uint256 budgetLeft;
        uint256 reserveLeft;
        uint32 day;
        bool skipStale;
        address router;
        RouterState routerState;
        uint256 routerLeft;
        // The latest `issuedAt` the current router's vouchers may carry: now, or its removal.
        uint256 issuedLimit;
        address provider;
        uint256 providerAmount;
        uint256 providerBootstrap;
        uint256 totalPaid;
        uint256 totalBootstrapPaid;
        Payment[] payments;
        uint256 paymentCount;
    }

    /// @dev `router`'s state now: its stored state with any pending change whose time has come applied.
    function _load(address router) internal view returns (RouterState memory state) {
        state = _routers[router];
        _applyPending(state);
    }

    /// @dev Writes `state` to `router`'s slot in one SSTORE. Solidity would copy a memory struct to storage
    /// member by member, each a read-modify-write of the same slot (about 250 gas more per run of a router's
    /// vouchers in a claim). The word follows the compiler's layout of `RouterState` (members packed from the
    /// low-order bits up, in declaration order), which every read decodes: each view after each write in
    /// the tests holds the two to each other.
    function _store(address router, RouterState memory state) internal {
        uint256 word = (state.authorised ? 1 : 0) | (state.listed ? 1 << 8 : 0)
            | (uint256(state.shareBps) << 16) | (uint256(state.day) << 32) | (uint256(state.spent) << 64)
            | (uint256(state.pendingShareBps) << 176) | (uint256(state.pendingAt) << 192)
            | (uint256(state.removedAt) << 224);
        RouterState storage slot = _routers[router];
        assembly ("memory-safe") {
            sstore(slot.slot, word)
        }
    }

    /// @dev Applies the pending add or increase in `state` once its time has come: the lazy half of the
    /// timelock, so a change takes effect at `pendingAt` without a transaction.
    function _applyPending(RouterState memory state) internal view {
        uint256 pendingAt = state.pendingAt;
        if (pendingAt == 0 || block.timestamp < pendingAt) return;
        state.authorised = true;
        state.shareBps = state.pendingShareBps;
        state.pendingShareBps = 0;
        state.pendingAt = 0;
        state.removedAt = 0;
    }

    /// @dev What `state` counts for in `_totalShareBps`: its pending share while a change is pending (an add
    /// or an increase, so above its current share), else its share while authorised, else nothing.
    function _committedShare(RouterState memory state) internal pure returns (uint256) {
        if (state.pendingAt != 0) return state.pendingShareBps;
        return state.authorised ? state.shareBps : 0;
    }

    function _revertIfPending(address router, RouterState memory state) internal pure {
        if (state.pendingAt != 0) {
            revert SessionRouterChangePending(router, state.pendingShareBps, state.pendingAt);
        }
    }

    function _setTotal(uint256 total) internal {
        if (total > _BPS) revert SessionRouterTotalShareTooHigh(total, _BPS);
        _totalShareBps = total;
    }

    /// @dev Records an add or increase to `shareBps`, effective `ROUTER_DELAY` from now, and stores `state`.
    function _announce(address router, RouterState memory state, uint256 shareBps) internal {
        uint256 effectiveAt = block.timestamp + ROUTER_DELAY;
        state.pendingShareBps = uint16(shareBps);
        // At most 30 days past block.timestamp: fits 32 bits until 2106.
        state.pendingAt = uint32(effectiveAt);
        _store(router, state);
        emit RouterChangeAnnounced(router, shareBps, effectiveAt);
    }

    /// @dev Clears the pending change in `state`, if any (the caller stores it and fixes the total).
    function _cancelPending(address router, RouterState memory state) internal {
        uint256 pendingAt = state.pendingAt;
        if (pendingAt == 0) return;
        uint256 pendingShareBps = state.pendingShareBps;
        state.pendingShareBps = 0;
        state.pendingAt = 0;
        emit RouterChangeCancelled(router, pendingShareBps, pendingAt);
    }

    /// @dev Reverts unless `signature` is `router`'s low-s signature of the voucher under this domain.
    function _checkSignature(
        Messages.CreditVoucher calldata voucher,
        address router,
        bytes calldata signature
    ) internal view {
        bytes32 digest = _hashTypedDataV4(Messages.hashCalldata(voucher));
        // The third value (the bad `s` or length) only details an error we report by the signer alone.
        // slither-disable-next-line unused-return
        (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecoverCalldata(digest, signature);
        if (err != ECDSA.RecoverError.NoError || recovered != router) {
            revert SessionRouterInvalidSignature(router, recovered);
        }
    }

    /// @dev Stores the current router's state and loads `next`'s (none when `next` is zero).
    function _switchRouter(ClaimContext memory c, address next) internal {
        if (c.router != address(0)) {
            _store(c.router, c.routerState);
        }
        if (next == address(0)) return;
        RouterState memory state = _routers[next];
        if (state.pendingAt != 0) _applyPending(state);
        if (state.authorised) {
            c.issuedLimit = block.timestamp;
        } else {
            // A removed router's vouchers issued up to its removal pay during its grace, within its share.
            uint256 removedAt = state.removedAt;
            if (removedAt == 0) revert SessionRouterUnauthorisedRouter(next);
            uint256 graceEnd = removedAt + REMOVED_ROUTER_GRACE;
            if (block.timestamp >= graceEnd) revert SessionRouterRouterGraceEnded(next, graceEnd);
            c.issuedLimit = removedAt;
        }
        if (state.day != c.day) {
            state.day = c.day;
            state.spent = 0;
        }
        uint256 limit = c.budget * state.shareBps / _BPS;
        c.routerLeft = limit > state.spent ? limit - state.spent : 0;
        c.router = next;
        c.routerState = state;
    }

    /// @dev Queues what the current provider's run of vouchers settled, as one payment.
    function _queuePayment(ClaimContext memory c) internal pure {
        uint256 amount = c.providerAmount;
        uint256 bootstrapAmount = c.providerBootstrap;
        if (amount == 0 && bootstrapAmount == 0) return;
        c.providerAmount = 0;
        c.providerBootstrap = 0;
        c.payments[c.paymentCount] =
            Payment({provider: c.provider, amount: amount, bootstrapAmount: bootstrapAmount});
        // Cannot overflow: at most one payment per voucher, and `payments` has one slot per voucher.
        unchecked {
            ++c.paymentCount;
        }
    }

    /// @dev Settles one voucher: works out what it may pay now, and records it. A stale voucher is skipped
    /// (nothing paid, nothing recorded) when `c.skipStale`, and reverts the claim otherwise.
    function _settle(
        ClaimContext memory c,
        Messages.CreditVoucher calldata voucher,
        address router,
        address provider
    ) internal {
        ClaimRecord memory record = _records[router][provider];
        uint256 issuedAt = voucher.issuedAt;
        if (issuedAt < record.issuedAt) {
            if (!c.skipStale) revert SessionRouterStaleVoucher(router, provider, issuedAt, record.issuedAt);
            emit VoucherSkipped(router, provider, issuedAt, record.issuedAt);
            return;
        }
        if (issuedAt > c.issuedLimit) {
            if (c.routerState.authorised) revert SessionRouterVoucherFromFuture(issuedAt, block.timestamp);
            revert SessionRouterVoucherAfterRemoval(router, issuedAt, c.issuedLimit);
        }

        uint256 amount = _owed(voucher.cumulativeAmount, record.paid);
        amount = _min(amount, _min(c.budgetLeft, c.routerLeft));
        uint256 bootstrapAmount = _owed(voucher.cumulativeBootstrap, record.bootstrapPaid);
        // Cannot underflow: `amount` is at most `routerLeft` and at most `budgetLeft`.
        unchecked {
            c.budgetLeft -= amount;
            c.routerLeft -= amount;
        }
        bootstrapAmount = _min(bootstrapAmount, _min(c.reserveLeft, c.routerLeft));
        // Cannot overflow or underflow: `bootstrapAmount` is at most `reserveLeft` and `routerLeft`; every
        // sum is bounded by the pool's budget or reserve (< 2^128), and `routerState.spent` by the day's
        // budget (< 2^112); the totals `paid + amount` are at most `cumulativeAmount`, checked below to fit.
        unchecked {
            c.reserveLeft -= bootstrapAmount;
            c.routerLeft -= bootstrapAmount;
            c.routerState.spent += uint112(amount + bootstrapAmount);
            c.providerAmount += amount;
            c.providerBootstrap += bootstrapAmount;
            c.totalPaid += amount;
            c.totalBootstrapPaid += bootstrapAmount;
            amount += record.paid;
            bootstrapAmount += record.bootstrapPaid;
        }
        if (amount > type(uint128).max) revert SessionRouterCounterTooLarge(amount);
        if (bootstrapAmount > type(uint128).max) revert SessionRouterCounterTooLarge(bootstrapAmount);

        uint256 tokens = _max(voucher.cumulativeTokens, record.tokens);
        uint256 sessions = _max(voucher.sessions, record.sessions);
        uint256 failed = _max(voucher.failed, record.failed);
        if (tokens > type(uint96).max) revert SessionRouterCounterTooLarge(tokens);
        if (sessions > type(uint64).max) revert SessionRouterCounterTooLarge(sessions);
        if (failed > type(uint64).max) revert SessionRouterCounterTooLarge(failed);

        // issuedAt <= block.timestamp, which fits 32 bits until 2106.
        _records[router][provider] = ClaimRecord({
            paid: uint128(amount),
            bootstrapPaid: uint128(bootstrapAmount),
            tokens: uint96(tokens),
            sessions: uint64(sessions),
            failed: uint64(failed),
            issuedAt: uint32(issuedAt)
        });
        emit VoucherClaimed(
            router,
            provider,
            amount - record.paid,
            bootstrapAmount - record.bootstrapPaid,
            amount,
            bootstrapAmount
        );
    }

    function _owed(uint256 cumulative, uint256 alreadyPaid) internal pure returns (uint256) {
        // Cannot underflow: subtracted only when larger.
        unchecked {
            return cumulative > alreadyPaid ? cumulative - alreadyPaid : 0;
        }
    }

    function _min(uint256 a, uint256 b) internal pure returns (uint256) {
        return a < b ? a : b;
    }

    function _max(uint256 a, uint256 b) internal pure returns (uint256) {
        return a > b ? a : b;
    }
}
