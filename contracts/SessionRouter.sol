// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Ownable, Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";

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

    /// @dev The denominator of every bps value.
    uint256 internal constant _BPS = 10_000;

    /// @inheritdoc ISessionRouter
    IERC20 public immutable mor;

    /// @inheritdoc ISessionRouter
    IComputePool public immutable pool;

    /*//////////////////////////////////////////////////////////////
                                STORAGE
    //////////////////////////////////////////////////////////////*/

    /// @dev One slot per router key: read once and written once per run of its vouchers in a claim.
    struct RouterState {
        bool authorised;
        bool listed;
        uint16 shareBps;
        uint32 day;
        uint112 spent;
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
    constructor(address owner_, IERC20 mor_, IComputePool pool_, IPriceSource priceSource_)
        Ownable(owner_)
        EIP712(Messages.DOMAIN_NAME, Messages.DOMAIN_VERSION)
    {
        if (
            address(mor_) == address(0) || address(pool_) == address(0) || address(priceSource_) == address(0)
        ) {
            revert SessionRouterZeroAddress();
        }
        mor = mor_;
        pool = pool_;
        priceSource = priceSource_;
        emit PriceSourceSet(address(priceSource_));
    }

    /*//////////////////////////////////////////////////////////////
                                 VIEWS
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc ISessionRouter
    function isRouter(address router) external view returns (bool) {
        return _routers[router].authorised;
    }

    /// @inheritdoc ISessionRouter
    function routerInfo(address router)
        external
        view
        returns (bool authorised, uint256 shareBps, uint256 spentToday)
    {
        RouterState memory state = _routers[router];
        spentToday = state.day == block.timestamp / 1 days ? state.spent : 0;
        return (state.authorised, state.shareBps, spentToday);
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
    function userMax(address user) external view returns (uint256) {
        return AccessRate.userMax(maxT(), _stakes[user].staked, mor.totalSupply());
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
        RouterState storage state = _routers[router];
        if (state.authorised) revert SessionRouterRouterExists(router);
        // A key added back keeps its day's spending, so removing and re-adding cannot reset its share.
        if (!state.listed) {
            state.listed = true;
            _routerList.push(router);
        }
        state.authorised = true;
        state.shareBps = uint16(shareBps);
        emit RouterAdded(router, shareBps);
    }

    /// @inheritdoc ISessionRouter
    function removeRouter(address router) external onlyOwner {
        RouterState storage state = _routers[router];
        if (!state.authorised) revert SessionRouterUnauthorisedRouter(router);
        state.authorised = false;
        emit RouterRemoved(router);
    }

    /// @inheritdoc ISessionRouter
    function setRouterShare(address router, uint256 shareBps) external onlyOwner {
        RouterState storage state = _routers[router];
        if (!state.authorised) revert SessionRouterUnauthorisedRouter(router);
        if (shareBps > _BPS) revert SessionRouterShareOutOfRange(shareBps);
        state.shareBps = uint16(shareBps);
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
        address provider;
        uint256 providerAmount;
        uint256 providerBootstrap;
        uint256 totalPaid;
        uint256 totalBootstrapPaid;
        Payment[] payments;
        uint256 paymentCount;
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
            _routers[c.router] = c.routerState;
        }
        if (next == address(0)) return;
        RouterState memory state = _routers[next];
        if (!state.authorised) revert SessionRouterUnauthorisedRouter(next);
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
        if (issuedAt > block.timestamp) revert SessionRouterVoucherFromFuture(issuedAt, block.timestamp);

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
