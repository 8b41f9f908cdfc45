// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Ownable, Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";

import {IFixedPriceSource} from "../interfaces/IFixedPriceSource.sol";
import {IPriceSource} from "../interfaces/IPriceSource.sol";

/// @title FixedPriceSource
/// @notice Owner-set prices for local chains and tests (MOR $20 and $0.002 per 1000 tokens on anvil).
contract FixedPriceSource is IFixedPriceSource, Ownable2Step {
    /*//////////////////////////////////////////////////////////////
                                STORAGE
    //////////////////////////////////////////////////////////////*/

    uint256 internal _morUsd;
    uint256 internal _tokensUsd;

    /*//////////////////////////////////////////////////////////////
                              CONSTRUCTOR
    //////////////////////////////////////////////////////////////*/

    /// @param owner_ The account that may change the prices.
    /// @param morUsd The USD price of 1 MOR, 18 decimals.
    /// @param tokensUsd The USD price of 1000 tokens, 18 decimals.
    constructor(address owner_, uint256 morUsd, uint256 tokensUsd) Ownable(owner_) {
        _setPrices(morUsd, tokensUsd);
    }

    /*//////////////////////////////////////////////////////////////
                                 VIEWS
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IPriceSource
    function prices() external view returns (uint256 morUsd, uint256 tokensUsd) {
        return (_morUsd, _tokensUsd);
    }

    /*//////////////////////////////////////////////////////////////
                             STATE-CHANGING
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IFixedPriceSource
    function setPrices(uint256 morUsd, uint256 tokensUsd) external onlyOwner {
        _setPrices(morUsd, tokensUsd);
    }

    /*//////////////////////////////////////////////////////////////
                                INTERNAL
    //////////////////////////////////////////////////////////////*/

    function _setPrices(uint256 morUsd, uint256 tokensUsd) internal {
        if (morUsd == 0 || tokensUsd == 0) revert FixedPriceSourceZeroPrice(morUsd, tokensUsd);
        _morUsd = morUsd;
        _tokensUsd = tokensUsd;
        emit PricesSet(morUsd, tokensUsd);
    }
}
