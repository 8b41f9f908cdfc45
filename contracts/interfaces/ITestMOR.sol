// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @title ITestMOR
/// @notice A stand-in for MOR on local chains: a plain 18-decimal ERC-20 that its owner mints.
interface ITestMOR is IERC20 {
    /// @notice Mints `amount` to `to`. Owner only.
    /// @param to The receiver.
    /// @param amount The amount in wei.
    function mint(address to, uint256 amount) external;
}
