// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

import {ITestMOR} from "../interfaces/ITestMOR.sol";

/// @title TestMOR
/// @notice "Test MOR" (MOR), 18 decimals, minted by its owner. For local chains only: on Arbitrum the real
/// MOR is used.
contract TestMOR is ITestMOR, ERC20, Ownable {
    /*//////////////////////////////////////////////////////////////
                              CONSTRUCTOR
    //////////////////////////////////////////////////////////////*/

    /// @param owner_ The account that may mint.
    constructor(address owner_) ERC20("Test MOR", "MOR") Ownable(owner_) {}

    /*//////////////////////////////////////////////////////////////
                             STATE-CHANGING
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc ITestMOR
    function mint(address to, uint256 amount) external onlyOwner {
        _mint(to, amount);
    }
}
