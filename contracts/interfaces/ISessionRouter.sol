// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {Messages} from "../libraries/Messages.sol";
import {IComputePool} from "./IComputePool.sol";
import {IPriceSource} from "./IPriceSource.sol";

/// @title ISessionRouter
/// @notice The on-chain half of the router: which router keys may sign credit, what users stake for their
/// allowance, and the claim that pays providers their router-signed cumulative credit from the ComputePool.
/// @dev All messages are EIP-712 typed data under {name: "Morpheus Compute", version: "1", chainId,
/// verifyingContract: this}. A UTC day is `block.timestamp / 1 days`.
///
/// Router keys and their shares of the daily budget: the initial keys are set by the constructor, part of
/// the deployment. After it, every change that lets a key pay more (an add, a share increase) is announced
/// and takes effect `ROUTER_DELAY` later (`RouterChangeAnnounced`), so users and providers can see it coming
/// and leave before it applies; a change that lets a key pay less (a decrease, a removal) takes effect at
/// once. An announced change applies by itself at its `effectiveAt`: every view and the claim see it from
/// then on, without a transaction. The shares of the authorised keys plus the pending adds and increases
/// never sum above 10,000 bps, so the keys together never grant more than the whole budget or a user more
/// than `userMax` (see `routerUserMax`).
interface ISessionRouter {
    /*//////////////////////////////////////////////////////////////
                                 TYPES
    //////////////////////////////////////////////////////////////*/

    /// @notice What has been settled for one (router, provider) pair: one storage record, two slots.
    /// @param paid MOR paid from the daily budget, in total.
    /// @param bootstrapPaid MOR paid from the bootstrap reserve, in total.
    /// @param tokens The largest `cumulativeTokens` claimed.
    /// @param sessions The largest `sessions` claimed.
    /// @param failed The largest `failed` claimed.
    /// @param issuedAt The `issuedAt` of the newest voucher claimed.
    struct ClaimRecord {
        uint128 paid;
        uint128 bootstrapPaid;
        uint96 tokens;
        uint64 sessions;
        uint64 failed;
        uint32 issuedAt;
    }

    /// @notice A provider's record summed over every router ever authorised.
    /// @param tokens Tokens served and credited.
    /// @param sessions Sessions served.
    /// @param failed Sessions reported failed or slow.
    /// @param earned MOR paid from the daily budget.
    /// @param bootstrapEarned MOR paid from the bootstrap reserve.
    struct Reputation {
        uint256 tokens;
        uint256 sessions;
        uint256 failed;
        uint256 earned;
        uint256 bootstrapEarned;
    }

    /*//////////////////////////////////////////////////////////////
                                 ERRORS
    //////////////////////////////////////////////////////////////*/

    /// @notice Thrown when a claim carries no voucher.
    error SessionRouterNoVouchers();

    /// @notice Thrown when vouchers and signatures differ in number.
    /// @param vouchers The number of vouchers.
    /// @param signatures The number of signatures.
    error SessionRouterLengthMismatch(uint256 vouchers, uint256 signatures);

    /// @notice Thrown when a voucher names a router that is not authorised and was never removed (never
    /// added, or added but not yet effective); when an admin call names such a router; and when a removed
    /// router's share would rise.
    /// @param router The router named.
    error SessionRouterUnauthorisedRouter(address router);

    /// @notice Thrown when a voucher of a removed router was issued after its removal.
    /// @param router The voucher's router.
    /// @param issuedAt The voucher's `issuedAt`.
    /// @param removedAt When the router was removed.
    error SessionRouterVoucherAfterRemoval(address router, uint256 issuedAt, uint256 removedAt);

    /// @notice Thrown when a voucher names a removed router whose grace (`REMOVED_ROUTER_GRACE` after its
    /// removal) has ended: none of its vouchers pays any more.
    /// @param router The voucher's router.
    /// @param graceEnd The first second its vouchers stopped paying.
    error SessionRouterRouterGraceEnded(address router, uint256 graceEnd);

    /// @notice Thrown when a voucher's signature is not the named router's (including high-s signatures).
    /// @param router The router named by the voucher.
    /// @param recovered The signer recovered, or zero if the signature is malformed.
    error SessionRouterInvalidSignature(address router, address recovered);

    /// @notice Thrown when the only voucher of a claim is older than the newest one already claimed for its
    /// pair (in a claim of several, such a voucher is skipped: `VoucherSkipped`).
    /// @param router The voucher's router.
    /// @param provider The voucher's provider.
    /// @param issuedAt The voucher's `issuedAt`.
    /// @param lastIssuedAt The `issuedAt` of the newest voucher claimed.
    error SessionRouterStaleVoucher(address router, address provider, uint256 issuedAt, uint256 lastIssuedAt);

    /// @notice Thrown when a voucher's `issuedAt` is later than the block's timestamp.
    /// @param issuedAt The voucher's `issuedAt`.
    /// @param timestamp The block's timestamp.
    error SessionRouterVoucherFromFuture(uint256 issuedAt, uint256 timestamp);

    /// @notice Thrown when a voucher's counters do not fit their fields (tokens 96 bits, sessions and failed
    /// 64 bits).
    /// @param value The value too large.
    error SessionRouterCounterTooLarge(uint256 value);

    /// @notice Thrown when an address argument or a voucher's provider is zero.
    error SessionRouterZeroAddress();

    /// @notice Thrown when adding a router that is already authorised (or named twice in the constructor).
    /// @param router The router.
    error SessionRouterRouterExists(address router);

    /// @notice Thrown when a router's share is above 10,000 bps.
    /// @param shareBps The share given.
    error SessionRouterShareOutOfRange(uint256 shareBps);

    /// @notice Thrown when a change would bring the shares of the authorised routers plus the pending adds
    /// and increases above 10,000 bps.
    /// @param totalShareBps The total the change would make.
    /// @param limitBps The limit, 10,000.
    error SessionRouterTotalShareTooHigh(uint256 totalShareBps, uint256 limitBps);

    /// @notice Thrown when announcing a change for a router that already has one pending (cancel it first).
    /// @param router The router.
    /// @param shareBps The pending share.
    /// @param effectiveAt When the pending change applies.
    error SessionRouterChangePending(address router, uint256 shareBps, uint256 effectiveAt);

    /// @notice Thrown when cancelling a change for a router that has none pending (none announced, or it has
    /// already applied).
    /// @param router The router.
    error SessionRouterNoPendingChange(address router);

    /// @notice Thrown when the constructor's router delay is outside [`MIN_ROUTER_DELAY`, `MAX_ROUTER_DELAY`].
    /// @param delay The delay given, in seconds.
    /// @param minDelay The shortest delay allowed.
    /// @param maxDelay The longest delay allowed.
    error SessionRouterRouterDelayOutOfRange(uint256 delay, uint256 minDelay, uint256 maxDelay);

    /// @notice Thrown when the constructor's initial routers and shares differ in number.
    /// @param routers The number of routers.
    /// @param shares The number of shares.
    error SessionRouterInitialRoutersMismatch(uint256 routers, uint256 shares);

    /// @notice Thrown when staking or unstaking nothing.
    error SessionRouterZeroAmount();

    /// @notice Thrown when unstaking more than is staked.
    /// @param staked The user's stake.
    /// @param requested The amount asked for.
    error SessionRouterInsufficientStake(uint256 staked, uint256 requested);

    /// @notice Thrown when a stake would not fit its 112-bit field.
    /// @param amount The amount.
    error SessionRouterStakeTooLarge(uint256 amount);

    /// @notice Thrown when withdrawing with nothing unstaked.
    error SessionRouterNothingToWithdraw();

    /// @notice Thrown when withdrawing on the day of the unstake (or before the unlock day).
    /// @param unlockDay The first day the unstaked MOR can be withdrawn.
    /// @param today The current day.
    error SessionRouterWithdrawLocked(uint256 unlockDay, uint256 today);

    /*//////////////////////////////////////////////////////////////
                                 EVENTS
    //////////////////////////////////////////////////////////////*/

    /// @notice Emitted by the constructor for each initial router key, authorised at once.
    /// @param router The router's signing address.
    /// @param shareBps The share of each day's budget its vouchers may pay, in bps.
    event RouterAdded(address indexed router, uint256 shareBps);

    /// @notice Emitted when an add or a share increase is announced: from `effectiveAt` on, `router` is
    /// authorised with `shareBps`, without any further transaction. Users and providers watch this event.
    /// @param router The router's signing address.
    /// @param shareBps The share it will have, in bps.
    /// @param effectiveAt When the change applies: the announcement's timestamp plus `ROUTER_DELAY`.
    event RouterChangeAnnounced(address indexed router, uint256 shareBps, uint256 effectiveAt);

    /// @notice Emitted when a pending add or share increase is cancelled (by `cancelRouterChange`, a
    /// decrease, or a removal) before it applied.
    /// @param router The router's signing address.
    /// @param shareBps The share that was announced.
    /// @param effectiveAt When it would have applied.
    event RouterChangeCancelled(address indexed router, uint256 shareBps, uint256 effectiveAt);

    /// @notice Emitted when a router key is removed, at once. Its vouchers issued up to now stay claimable
    /// within its share for `REMOVED_ROUTER_GRACE`; later ones never pay.
    /// @param router The router's signing address.
    event RouterRemoved(address indexed router);

    /// @notice Emitted when a router's share is lowered (or set to what it is), at once.
    /// @param router The router's signing address.
    /// @param shareBps The new share, in bps.
    event RouterShareSet(address indexed router, uint256 shareBps);

    /// @notice Emitted when the price source changes.
    /// @param priceSource The new price source.
    event PriceSourceSet(address indexed priceSource);

    /// @notice Emitted when a user stakes.
    /// @param user The user.
    /// @param amount The MOR staked now.
    /// @param staked The user's stake after it.
    event Staked(address indexed user, uint256 amount, uint256 staked);

    /// @notice Emitted when a user unstakes.
    /// @param user The user.
    /// @param amount The MOR unstaked now.
    /// @param unlockDay The first UTC day the user's unstaked MOR can be withdrawn.
    event Unstaked(address indexed user, uint256 amount, uint256 unlockDay);

    /// @notice Emitted when a user withdraws unstaked MOR.
    /// @param user The user.
    /// @param amount The MOR withdrawn.
    event Withdrawn(address indexed user, uint256 amount);

    /// @notice Emitted for every voucher settled by a claim, even one that paid nothing.
    /// @param router The voucher's router.
    /// @param provider The voucher's provider, who received the MOR.
    /// @param amount MOR paid now from the daily budget.
    /// @param bootstrapAmount MOR paid now from the bootstrap reserve.
    /// @param paid MOR paid from the daily budget to this pair in total (`cumulativeAmount - paid` is owed).
    /// @param bootstrapPaid MOR paid from the reserve to this pair in total.
    event VoucherClaimed(
        address indexed router,
        address indexed provider,
        uint256 amount,
        uint256 bootstrapAmount,
        uint256 paid,
        uint256 bootstrapPaid
    );

    /// @notice Emitted for a voucher a claim of several skipped because it is older than the newest one
    /// already claimed for its pair (in this claim or before): it paid nothing and changed no record. Someone
    /// claimed a fresher voucher first; claim the newest voucher for what is still owed.
    /// @param router The voucher's router.
    /// @param provider The voucher's provider.
    /// @param issuedAt The voucher's `issuedAt`.
    /// @param lastIssuedAt The `issuedAt` of the newest voucher claimed for the pair.
    event VoucherSkipped(
        address indexed router, address indexed provider, uint256 issuedAt, uint256 lastIssuedAt
    );

    /*//////////////////////////////////////////////////////////////
                                 VIEWS
    //////////////////////////////////////////////////////////////*/

    /// @notice The MOR token.
    function mor() external view returns (IERC20);

    /// @notice The pool that pays providers.
    function pool() external view returns (IComputePool);

    /// @notice The source of the MOR and token prices.
    function priceSource() external view returns (IPriceSource);

    /// @notice The shortest `ROUTER_DELAY` the constructor accepts: 1 day.
    function MIN_ROUTER_DELAY() external view returns (uint256);

    /// @notice The longest `ROUTER_DELAY` the constructor accepts: 30 days.
    function MAX_ROUTER_DELAY() external view returns (uint256);

    /// @notice How long an add or a share increase waits between its announcement and its effect, in
    /// seconds; fixed at deployment.
    function ROUTER_DELAY() external view returns (uint256);

    /// @notice How long after its removal a router's vouchers issued up to the removal stay claimable: 7 days.
    function REMOVED_ROUTER_GRACE() external view returns (uint256);

    /// @notice Whether `router` is authorised now (an announced add counts from its `effectiveAt`; false
    /// once removed, even within the grace).
    /// @param router The router's signing address.
    function isRouter(address router) external view returns (bool);

    /// @notice A router key's state now, pending changes applied from their `effectiveAt`.
    /// @param router The router's signing address.
    /// @return authorised Whether it is authorised (false once removed).
    /// @return shareBps The share of each day's budget its vouchers may pay (including bootstrap payments);
    /// for a removed router, the share its vouchers issued up to the removal may still pay within the grace.
    /// @return spentToday What its vouchers have paid today.
    function routerInfo(address router)
        external
        view
        returns (bool authorised, uint256 shareBps, uint256 spentToday);

    /// @notice The add or share increase announced for `router` that has not applied yet.
    /// @param router The router's signing address.
    /// @return shareBps The share it will have.
    /// @return effectiveAt When it applies; 0 (and `shareBps` 0) when none is pending.
    function pendingRouterChange(address router) external view returns (uint256 shareBps, uint256 effectiveAt);

    /// @notice When `router` was removed and when its grace ends.
    /// @param router The router's signing address.
    /// @return removedAt The removal's timestamp; 0 when it is not removed (never, or added back since).
    /// @return graceEnd `removedAt + REMOVED_ROUTER_GRACE`: from then on none of its vouchers pays; 0 when
    /// it is not removed.
    function routerRemoval(address router) external view returns (uint256 removedAt, uint256 graceEnd);

    /// @notice The sum, in bps, of the shares of the authorised routers, each pending add or increase
    /// counted at its announced share instead; never above 10,000. A removed router's share is not in it.
    function totalRouterShareBps() external view returns (uint256);

    /// @notice Every router key ever authorised or announced, removed and cancelled ones included (their
    /// records feed reputation).
    function routers() external view returns (address[] memory);

    /// @notice What has been settled for a (router, provider) pair.
    /// @param router The router.
    /// @param provider The provider.
    function claimRecord(address router, address provider) external view returns (ClaimRecord memory);

    /// @notice A provider's cumulative counters over every router: tokens, sessions, failed, earned.
    /// @param provider The provider.
    function reputation(address provider) external view returns (Reputation memory);

    /// @notice The tokens today's budget buys at current prices.
    function maxT() external view returns (uint256);

    /// @notice Tokens per whole staked MOR today: `maxT / supply`, supply = MOR total supply.
    function accessRate() external view returns (uint256);

    /// @notice A user's daily tokens: `maxT * stake / supply`.
    /// @param user The user.
    function userMax(address user) external view returns (uint256);

    /// @notice The part of a user's daily allowance an honest router may grant:
    /// `mulDiv(userMax(user), shareBps, 10_000)` with the router's share now, 0 for a router that is not
    /// authorised. The authorised shares sum to at most 10,000 bps, so honest routers together never grant
    /// a user more than `userMax` a day.
    /// @param router The router's signing address.
    /// @param user The user.
    function routerUserMax(address router, address user) external view returns (uint256);

    /// @notice A user's stake.
    /// @param user The user.
    /// @return staked MOR counting for the allowance.
    /// @return pending MOR unstaked, withdrawable from `unlockDay`.
    /// @return unlockDay The first UTC day `pending` can be withdrawn.
    function stakeOf(address user) external view returns (uint256 staked, uint256 pending, uint256 unlockDay);

    /// @notice MOR held for users: staked plus pending, over all users.
    function totalStaked() external view returns (uint256);

    /// @notice This contract's EIP-712 domain separator.
    function domainSeparator() external view returns (bytes32);

    /// @notice The EIP-712 digest of `structHash` under this contract's domain.
    /// @param structHash An EIP-712 struct hash.
    function hashTypedData(bytes32 structHash) external view returns (bytes32);

    /// @notice The EIP-712 digest a user signs for a compute request.
    /// @param request The request.
    function hashComputeRequest(Messages.ComputeRequest calldata request) external view returns (bytes32);

    /// @notice The EIP-712 digest a router signs for an assignment.
    /// @param assignment The assignment.
    function hashAssignment(Messages.Assignment calldata assignment) external view returns (bytes32);

    /// @notice The EIP-712 digest a user signs for a usage report.
    /// @param report The report.
    function hashUsageReport(Messages.UsageReport calldata report) external view returns (bytes32);

    /// @notice The EIP-712 digest a router signs for a credit voucher.
    /// @param voucher The voucher.
    function hashCreditVoucher(Messages.CreditVoucher calldata voucher) external view returns (bytes32);

    /// @notice The EIP-712 digest a router signs for a liveness challenge.
    /// @param challenge The challenge.
    function hashLivenessChallenge(Messages.LivenessChallenge calldata challenge)
        external
        view
        returns (bytes32);

    /// @notice The EIP-712 digest a provider signs for a liveness response.
    /// @param response The response.
    function hashLivenessResponse(Messages.LivenessResponse calldata response) external view returns (bytes32);

    /// @notice The EIP-712 digest a provider signs for a service receipt: the provider's signed count of the
    /// tokens it charged a session (prompt and completion), final: the provider serves the session no more
    /// once it has signed it; the router refunds a user's reservation only against it.
    /// @param receipt The receipt.
    function hashServiceReceipt(Messages.ServiceReceipt calldata receipt) external view returns (bytes32);

    /// @notice The EIP-712 digest a router signs to ask a provider for the receipts of several of its sessions
    /// at once (their assignments, one model).
    /// @param request The sessions' assignments.
    function hashReceiptRequest(Messages.ReceiptRequest calldata request) external view returns (bytes32);

    /// @notice The EIP-712 digest a provider signs for its receipts of several sessions, in the order the
    /// router's request named them; each entry means what one service receipt means.
    /// @param receipts The receipts.
    function hashServiceReceipts(Messages.ServiceReceipts calldata receipts) external view returns (bytes32);

    /*//////////////////////////////////////////////////////////////
                             STATE-CHANGING
    //////////////////////////////////////////////////////////////*/

    /// @notice Pays providers what routers' vouchers say they are owed. Anyone may submit; MOR always goes to
    /// each voucher's provider. Per voucher it pays `cumulativeAmount - paid` from the daily budget, capped
    /// by what is left of today's budget and of the router's share of it, and `cumulativeBootstrap -
    /// bootstrapPaid` from the reserve, capped by the reserve and the router's share; what is not paid stays
    /// owed for a later claim. Reverts on an unauthorised router, a bad signature or a voucher from the
    /// future. A removed router's vouchers issued up to its removal still pay, within its share, until
    /// `REMOVED_ROUTER_GRACE` after the removal (`SessionRouterVoucherAfterRemoval` for a later voucher,
    /// `SessionRouterRouterGraceEnded` after the grace). A stale voucher (older `issuedAt` than one already claimed for the pair) reverts a claim of
    /// one voucher (`SessionRouterStaleVoucher`); in a claim of several it is skipped (`VoucherSkipped`) and
    /// the others pay, so nobody can revert a batch by claiming a fresher voucher for one of its pairs first.
    /// @param vouchers The vouchers, for one or many routers and providers; consecutive vouchers for the
    /// same provider are paid in one transfer.
    /// @param signatures The routers' 65-byte signatures, one per voucher.
    /// @return paid MOR paid from the daily budget.
    /// @return bootstrapPaid MOR paid from the reserve.
    function claim(Messages.CreditVoucher[] calldata vouchers, bytes[] calldata signatures)
        external
        returns (uint256 paid, uint256 bootstrapPaid);

    /// @notice Stakes MOR for the caller's daily allowance; needs an allowance.
    /// @param amount MOR in wei, not zero.
    function stake(uint256 amount) external;

    /// @notice Unstakes MOR: it stops counting at once and is withdrawable from the next UTC day. Unstaking
    /// again before withdrawing moves all pending MOR's unlock to the next day.
    /// @param amount MOR in wei, not zero, at most the stake.
    function unstake(uint256 amount) external;

    /// @notice Withdraws all unstaked MOR whose unlock day has come.
    /// @return amount The MOR withdrawn.
    function withdraw() external returns (uint256 amount);

    /// @notice Announces a router key: it is authorised with `shareBps` from `block.timestamp + ROUTER_DELAY`
    /// on (`RouterChangeAnnounced`), and listed in `routers()` at once. A removed key may be added back this
    /// way; it keeps its day's spending. Owner only. Reverts when the key is authorised
    /// (`SessionRouterRouterExists`), has a change pending (`SessionRouterChangePending`), or when the total
    /// share would pass 10,000 bps (`SessionRouterTotalShareTooHigh`).
    /// @param router The router's signing address.
    /// @param shareBps The share of each day's budget its vouchers may pay, at most 10,000.
    function addRouter(address router, uint256 shareBps) external;

    /// @notice Cancels the add or share increase pending for `router` (`RouterChangeCancelled`). Owner only.
    /// @param router The router's signing address.
    function cancelRouterChange(address router) external;

    /// @notice Removes an authorised router key at once, cancelling any pending increase. Its vouchers issued
    /// up to now stay claimable, within its share as at removal, for `REMOVED_ROUTER_GRACE`; later vouchers
    /// never pay. Owner only.
    /// @param router The router's signing address.
    function removeRouter(address router) external;

    /// @notice Changes a router's share of the daily budget. An increase is announced and applies
    /// `ROUTER_DELAY` later (`RouterChangeAnnounced`; the total share must stay within 10,000 bps); a
    /// decrease (or the same share) applies at once (`RouterShareSet`) and cancels any pending change. A
    /// removed router's share can only be lowered: the emergency lever for a compromised key within its
    /// grace, which strands what that key's vouchers still owe. Owner only.
    /// @param router The router's signing address (authorised, or removed).
    /// @param shareBps The new share, at most 10,000.
    function setRouterShare(address router, uint256 shareBps) external;

    /// @notice Changes the price source. Owner only.
    /// @param priceSource_ The new source.
    function setPriceSource(IPriceSource priceSource_) external;
}
