// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @title IComputePool
/// @notice The Compute Contract's treasury: holds the compute bucket's MOR and pays providers, only through
/// the SessionRouter, at most a daily budget fixed at the start of each UTC day.
/// @dev Day d is `block.timestamp / 1 days`. The budget of day d is `BUDGET_BPS` of the pool's accounted
/// balance when the pool is first touched on day d (any deposit or payment), so nothing done during a day
/// raises that day's budget. During the first 365 days a share of each deposit goes to a separate bootstrap
/// reserve, paid out through the SessionRouter and capped by what the reserve holds.
interface IComputePool {
    /*//////////////////////////////////////////////////////////////
                                 ERRORS
    //////////////////////////////////////////////////////////////*/

    /// @notice Thrown when a payment exceeds what is left of today's budget.
    /// @param remaining What is left of today's budget.
    /// @param requested The amount asked for.
    error ComputePoolBudgetExceeded(uint256 remaining, uint256 requested);

    /// @notice Thrown when a bootstrap payment exceeds the bootstrap reserve.
    /// @param reserve The reserve's balance.
    /// @param requested The amount asked for.
    error ComputePoolReserveExceeded(uint256 reserve, uint256 requested);

    /// @notice Thrown when someone other than the SessionRouter asks to pay.
    /// @param caller The caller.
    error ComputePoolCallerNotRouter(address caller);

    /// @notice Thrown when the SessionRouter is set a second time, or to the zero address.
    /// @param current The SessionRouter already set (zero if none).
    error ComputePoolRouterAlreadySet(address current);

    /// @notice Thrown when the SessionRouter is needed but not set yet.
    error ComputePoolRouterNotSet();

    /// @notice Thrown on a deposit or payment of nothing.
    error ComputePoolZeroAmount();

    /// @notice Thrown when a payment names the zero address as provider.
    error ComputePoolZeroProvider();

    /// @notice Thrown when a bps parameter is out of range.
    /// @param bps The value given.
    /// @param max The largest allowed.
    error ComputePoolBpsOutOfRange(uint256 bps, uint256 max);

    /// @notice Thrown when the reserve is released before the bootstrap period ended.
    /// @param bootstrapEnd When the bootstrap period ends (unix seconds).
    error ComputePoolBootstrapNotOver(uint256 bootstrapEnd);

    /// @notice Thrown when an accounted amount would not fit its storage field.
    /// @param amount The amount.
    error ComputePoolAmountTooLarge(uint256 amount);

    /*//////////////////////////////////////////////////////////////
                                 EVENTS
    //////////////////////////////////////////////////////////////*/

    /// @notice Emitted on a deposit.
    /// @param from The depositor.
    /// @param amount The MOR deposited, in wei.
    /// @param toReserve The part of `amount` that went to the bootstrap reserve.
    event Deposited(address indexed from, uint256 amount, uint256 toReserve);

    /// @notice Emitted when a day's budget is fixed, at the day's first touch.
    /// @param day The UTC day (`timestamp / 1 days`).
    /// @param budget The day's budget in MOR wei.
    event DayOpened(uint256 indexed day, uint256 budget);

    /// @notice Emitted when a provider is paid.
    /// @param provider The provider paid.
    /// @param amount The MOR paid from today's budget.
    /// @param bootstrapAmount The MOR paid from the bootstrap reserve.
    event Paid(address indexed provider, uint256 amount, uint256 bootstrapAmount);

    /// @notice Emitted once, when the SessionRouter is set.
    /// @param sessionRouter The SessionRouter.
    event SessionRouterSet(address indexed sessionRouter);

    /// @notice Emitted when the share of deposits kept for the bootstrap reserve changes.
    /// @param bps The new share, in basis points.
    event BootstrapBpsSet(uint256 bps);

    /// @notice Emitted when the reserve left after the bootstrap period joins the pool's balance.
    /// @param amount The MOR moved.
    event ReserveReleased(uint256 amount);

    /*//////////////////////////////////////////////////////////////
                                 VIEWS
    //////////////////////////////////////////////////////////////*/

    /// @notice The share of the day-start balance that a day may pay, in basis points (100 = 1%).
    function BUDGET_BPS() external view returns (uint256);

    /// @notice The MOR token.
    function mor() external view returns (IERC20);

    /// @notice The only contract that may call {pay}.
    function sessionRouter() external view returns (address);

    /// @notice When the bootstrap period ends (unix seconds): 365 days after deployment.
    function bootstrapEnd() external view returns (uint256);

    /// @notice The share of each deposit kept for the bootstrap reserve during the bootstrap period (bps).
    function bootstrapBps() external view returns (uint256);

    /// @notice The pool's accounted balance (without the reserve) in MOR wei.
    function balance() external view returns (uint256);

    /// @notice The bootstrap reserve's balance in MOR wei.
    function reserve() external view returns (uint256);

    /// @notice The current UTC day number.
    function currentDay() external view returns (uint256);

    /// @notice Today's state, as it is or as the first touch of today will fix it.
    /// @return budget Today's budget.
    /// @return spent What today's budget has paid so far.
    /// @return reserve_ The bootstrap reserve's balance.
    function today() external view returns (uint256 budget, uint256 spent, uint256 reserve_);

    /// @notice Today's budget in MOR wei.
    function todayBudget() external view returns (uint256);

    /// @notice What today's budget has paid so far.
    function spentToday() external view returns (uint256);

    /// @notice What is left of today's budget.
    function remainingToday() external view returns (uint256);

    /*//////////////////////////////////////////////////////////////
                             STATE-CHANGING
    //////////////////////////////////////////////////////////////*/

    /// @notice Deposits MOR (emissions) into the pool; needs an allowance. Anyone may deposit. During the
    /// bootstrap period `bootstrapBps` of it goes to the reserve. It never raises today's budget.
    /// @param amount The MOR to deposit, in wei, not zero.
    function deposit(uint256 amount) external;

    /// @notice Pays a provider from today's budget and from the reserve. SessionRouter only.
    /// @param provider The receiver.
    /// @param amount The MOR to pay from today's budget; at most what is left of it.
    /// @param bootstrapAmount The MOR to pay from the reserve; at most the reserve.
    function pay(address provider, uint256 amount, uint256 bootstrapAmount) external;

    /// @notice Sets the SessionRouter, once. Owner only.
    /// @param sessionRouter_ The SessionRouter.
    function setSessionRouter(address sessionRouter_) external;

    /// @notice Sets the share of later deposits kept for the reserve. Owner only; at most 5000 (50%).
    /// @param bps The share in basis points.
    function setBootstrapBps(uint256 bps) external;

    /// @notice After the bootstrap period, moves what is left in the reserve to the pool's balance. Anyone.
    function releaseReserve() external;
}
