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

    /// @notice Thrown when a voucher names a router that is not (or no longer) authorised.
    /// @param router The router named.
    error SessionRouterUnauthorisedRouter(address router);

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

    /// @notice Thrown when adding a router that is already authorised.
    /// @param router The router.
    error SessionRouterRouterExists(address router);

    /// @notice Thrown when a router's share is above 10,000 bps.
    /// @param shareBps The share given.
    error SessionRouterShareOutOfRange(uint256 shareBps);

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

    /// @notice Emitted when a router key is authorised.
    /// @param router The router's signing address.
    /// @param shareBps The share of each day's budget its vouchers may pay, in bps.
    event RouterAdded(address indexed router, uint256 shareBps);

    /// @notice Emitted when a router key is removed; its vouchers pay nothing from then on.
    /// @param router The router's signing address.
    event RouterRemoved(address indexed router);

    /// @notice Emitted when a router's share of the daily budget changes.
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

    /// @notice Whether `router` may sign vouchers.
    /// @param router The router's signing address.
    function isRouter(address router) external view returns (bool);

    /// @notice A router key's state.
    /// @param router The router's signing address.
    /// @return authorised Whether its vouchers pay.
    /// @return shareBps The share of each day's budget its vouchers may pay (including bootstrap payments).
    /// @return spentToday What its vouchers have paid today.
    function routerInfo(address router)
        external
        view
        returns (bool authorised, uint256 shareBps, uint256 spentToday);

    /// @notice Every router key ever authorised, removed ones included (their records feed reputation).
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

    /*//////////////////////////////////////////////////////////////
                             STATE-CHANGING
    //////////////////////////////////////////////////////////////*/

    /// @notice Pays providers what routers' vouchers say they are owed. Anyone may submit; MOR always goes to
    /// each voucher's provider. Per voucher it pays `cumulativeAmount - paid` from the daily budget, capped
    /// by what is left of today's budget and of the router's share of it, and `cumulativeBootstrap -
    /// bootstrapPaid` from the reserve, capped by the reserve and the router's share; what is not paid stays
    /// owed for a later claim. Reverts on an unauthorised router, a bad signature or a voucher from the
    /// future. A stale voucher (older `issuedAt` than one already claimed for the pair) reverts a claim of
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

    /// @notice Authorises a router key. Owner only.
    /// @param router The router's signing address.
    /// @param shareBps The share of each day's budget its vouchers may pay, at most 10,000.
    function addRouter(address router, uint256 shareBps) external;

    /// @notice Removes a router key; its vouchers pay nothing from then on. Owner only.
    /// @param router The router's signing address.
    function removeRouter(address router) external;

    /// @notice Changes an authorised router's share of the daily budget. Owner only.
    /// @param router The router's signing address.
    /// @param shareBps The new share, at most 10,000.
    function setRouterShare(address router, uint256 shareBps) external;

    /// @notice Changes the price source. Owner only.
    /// @param priceSource_ The new source.
    function setPriceSource(IPriceSource priceSource_) external;
}
