// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Ownable, Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

import {IComputePool} from "./interfaces/IComputePool.sol";

/// @title ComputePool
/// @notice Holds the compute bucket's MOR and pays providers through the SessionRouter, at most the day's
/// budget: `BUDGET_BPS` of the balance at the day's first touch.
/// @dev The pool counts its own balance (`_balance`, `_reserve`) rather than reading `balanceOf`, so MOR sent
/// to it without {deposit} never enters a budget: a flash donation cannot move the day's budget either.
contract ComputePool is IComputePool, Ownable2Step {
    using SafeERC20 for IERC20;

    /*//////////////////////////////////////////////////////////////
                               CONSTANTS
    //////////////////////////////////////////////////////////////*/

    /// @dev The denominator of every bps value.
    uint256 internal constant _BPS = 10_000;

    /// @dev The largest share of deposits the owner may send to the reserve.
    uint256 internal constant _MAX_BOOTSTRAP_BPS = 5000;

    /// @dev How long the bootstrap period lasts from deployment.
    uint256 internal constant _BOOTSTRAP_PERIOD = 365 days;

    /// @inheritdoc IComputePool
    uint256 public immutable BUDGET_BPS;

    /// @inheritdoc IComputePool
    IERC20 public immutable mor;

    /// @inheritdoc IComputePool
    uint256 public immutable bootstrapEnd;

    /*//////////////////////////////////////////////////////////////
                                STORAGE
    //////////////////////////////////////////////////////////////*/

    /// @dev One slot: the day whose budget is fixed, that budget, and what it has paid.
    struct DayState {
        uint32 day;
        uint112 budget;
        uint112 spent;
    }

    DayState internal _day;

    /// @dev The pool's balance (what budgets are taken from) is `_balance - _day.spent`: a payment only
    /// raises `_day.spent`, and opening the next day folds that day's spending into `_balance`. So a payment
    /// writes one slot of pool accounting, not two. Kept below 2^112 so a budget always fits.
    uint128 internal _balance;

    uint16 internal _bootstrapBps;

    /// @dev `_sessionRouter` and `_reserve` share a slot: a payment reads both.
    address internal _sessionRouter;

    /// @dev The bootstrap reserve's balance.
    uint96 internal _reserve;

    /*//////////////////////////////////////////////////////////////
                              CONSTRUCTOR
    //////////////////////////////////////////////////////////////*/

    /// @param owner_ The account that sets the SessionRouter (once) and the bootstrap share.
    /// @param mor_ The MOR token.
    /// @param budgetBps The daily budget as a share of the day-start balance (100 = 1%), 1..10,000.
    /// @param bootstrapBps_ The share of deposits kept for the reserve in the first 365 days (1000 = 10%).
    constructor(address owner_, IERC20 mor_, uint256 budgetBps, uint256 bootstrapBps_) Ownable(owner_) {
        if (budgetBps == 0 || budgetBps > _BPS) revert ComputePoolBpsOutOfRange(budgetBps, _BPS);
        if (bootstrapBps_ > _MAX_BOOTSTRAP_BPS) {
            revert ComputePoolBpsOutOfRange(bootstrapBps_, _MAX_BOOTSTRAP_BPS);
        }
        BUDGET_BPS = budgetBps;
        mor = mor_;
        bootstrapEnd = block.timestamp + _BOOTSTRAP_PERIOD;
        _bootstrapBps = uint16(bootstrapBps_);
        _day.day = uint32(block.timestamp / 1 days);
    }

    /*//////////////////////////////////////////////////////////////
                                 VIEWS
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IComputePool
    function sessionRouter() external view returns (address) {
        return _sessionRouter;
    }

    /// @inheritdoc IComputePool
    function bootstrapBps() external view returns (uint256) {
        return _bootstrapBps;
    }

    /// @inheritdoc IComputePool
    function balance() external view returns (uint256) {
        return _balance - _day.spent;
    }

    /// @inheritdoc IComputePool
    function reserve() external view returns (uint256) {
        return _reserve;
    }

    /// @inheritdoc IComputePool
    function currentDay() external view returns (uint256) {
        return block.timestamp / 1 days;
    }

    /// @inheritdoc IComputePool
    function today() external view returns (uint256 budget, uint256 spent, uint256 reserve_) {
        (budget, spent) = _todayView();
        reserve_ = _reserve;
    }

    /// @inheritdoc IComputePool
    function todayBudget() external view returns (uint256 budget) {
        (budget,) = _todayView();
    }

    /// @inheritdoc IComputePool
    function spentToday() external view returns (uint256 spent) {
        (, spent) = _todayView();
    }

    /// @inheritdoc IComputePool
    function remainingToday() external view returns (uint256) {
        (uint256 budget, uint256 spent) = _todayView();
        return budget - spent;
    }

    /*//////////////////////////////////////////////////////////////
                             STATE-CHANGING
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IComputePool
    function deposit(uint256 amount) external {
        if (amount == 0) revert ComputePoolZeroAmount();
        // Fix today's budget before the deposit counts, so a deposit never raises the day it lands in.
        _openDay();
        uint256 toReserve = block.timestamp < bootstrapEnd ? amount * _bootstrapBps / _BPS : 0;
        uint256 newBalance = _balance + (amount - toReserve);
        uint256 newReserve = _reserve + toReserve;
        if (newBalance > type(uint112).max || newReserve > type(uint96).max) {
            revert ComputePoolAmountTooLarge(amount);
        }
        _balance = uint128(newBalance);
        _reserve = uint96(newReserve);
        emit Deposited(msg.sender, amount, toReserve);
        mor.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @inheritdoc IComputePool
    function pay(address provider, uint256 amount, uint256 bootstrapAmount) external {
        address sessionRouter_ = _sessionRouter;
        uint256 reserve_ = _reserve;
        if (msg.sender != sessionRouter_) revert ComputePoolCallerNotRouter(msg.sender);
        if (provider == address(0)) revert ComputePoolZeroProvider();
        if (amount == 0 && bootstrapAmount == 0) revert ComputePoolZeroAmount();
        DayState memory day = _openDay();
        uint256 remaining;
        // Cannot underflow: `spent` only grows through the check below, so it never passes `budget`.
        unchecked {
            remaining = uint256(day.budget) - day.spent;
        }
        if (amount > remaining) revert ComputePoolBudgetExceeded(remaining, amount);
        if (bootstrapAmount > reserve_) revert ComputePoolReserveExceeded(reserve_, bootstrapAmount);
        // Cannot overflow or underflow: spent + amount <= budget < 2^112 and bootstrapAmount <= reserve_.
        // The balance (`_balance - spent`) stays >= 0 because budget is a bps share of it when fixed.
        unchecked {
            _day.spent = uint112(day.spent + amount);
            if (bootstrapAmount != 0) _reserve = uint96(reserve_ - bootstrapAmount);
        }
        emit Paid(provider, amount, bootstrapAmount);
        mor.safeTransfer(provider, amount + bootstrapAmount);
    }

    /// @inheritdoc IComputePool
    function setSessionRouter(address sessionRouter_) external onlyOwner {
        if (_sessionRouter != address(0) || sessionRouter_ == address(0)) {
            revert ComputePoolRouterAlreadySet(_sessionRouter);
        }
        _sessionRouter = sessionRouter_;
        emit SessionRouterSet(sessionRouter_);
    }

    /// @inheritdoc IComputePool
    function setBootstrapBps(uint256 bps) external onlyOwner {
        if (bps > _MAX_BOOTSTRAP_BPS) revert ComputePoolBpsOutOfRange(bps, _MAX_BOOTSTRAP_BPS);
        _bootstrapBps = uint16(bps);
        emit BootstrapBpsSet(bps);
    }

    /// @inheritdoc IComputePool
    function releaseReserve() external {
        if (block.timestamp < bootstrapEnd) revert ComputePoolBootstrapNotOver(bootstrapEnd);
        _openDay();
        uint256 amount = _reserve;
        if (amount == 0) revert ComputePoolZeroAmount();
        uint256 newBalance = _balance + amount;
        if (newBalance > type(uint112).max) revert ComputePoolAmountTooLarge(amount);
        _balance = uint128(newBalance);
        _reserve = 0;
        emit ReserveReleased(amount);
    }

    /*//////////////////////////////////////////////////////////////
                                INTERNAL
    //////////////////////////////////////////////////////////////*/

    /// @dev Fixes today's budget if today has not been touched yet, and returns today's state.
    function _openDay() internal returns (DayState memory day) {
        day = _day;
        uint256 current = block.timestamp / 1 days;
        if (day.day != current) {
            // Cannot underflow: the day's spending never passes its budget, a share of `_balance`.
            uint256 startBalance;
            unchecked {
                startBalance = uint256(_balance) - day.spent;
            }
            if (day.spent != 0) _balance = uint128(startBalance);
            // Fits: `_balance` < 2^112 and BUDGET_BPS <= _BPS, so the budget < 2^112; days fit 32 bits
            // until the year 11 million.
            day =
                DayState({day: uint32(current), budget: uint112(startBalance * BUDGET_BPS / _BPS), spent: 0});
            _day = day;
            emit DayOpened(current, day.budget);
        }
    }

    /// @dev Today's budget and spending without writing: a day not touched yet would be fixed from the
    /// current balance, which nothing has changed since the day began (any change touches the day first).
    function _todayView() internal view returns (uint256 budget, uint256 spent) {
        DayState memory day = _day;
        if (day.day != block.timestamp / 1 days) {
            return ((uint256(_balance) - day.spent) * BUDGET_BPS / _BPS, 0);
        }
        return (day.budget, day.spent);
    }
}
