// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IPriceSource} from "./IPriceSource.sol";

/// @title IFixedPriceSource
/// @notice An owner-set {IPriceSource} for local chains and tests.
interface IFixedPriceSource is IPriceSource {
    /*//////////////////////////////////////////////////////////////
                                 ERRORS
    //////////////////////////////////////////////////////////////*/

    /// @notice Thrown when a price would be set to zero.
    /// @param morUsd The MOR price given.
    /// @param tokensUsd The price of 1000 tokens given.
    error FixedPriceSourceZeroPrice(uint256 morUsd, uint256 tokensUsd);

    /*//////////////////////////////////////////////////////////////
                                 EVENTS
    //////////////////////////////////////////////////////////////*/

    /// @notice Emitted when the prices change.
    /// @param morUsd The new USD price of 1 MOR, 18 decimals.
    /// @param tokensUsd The new USD price of 1000 tokens, 18 decimals.
    event PricesSet(uint256 morUsd, uint256 tokensUsd);

    /*//////////////////////////////////////////////////////////////
                               FUNCTIONS
    //////////////////////////////////////////////////////////////*/

    /// @notice Sets both prices. Owner only.
    /// @param morUsd The USD price of 1 MOR, 18 decimals, not zero.
    /// @param tokensUsd The USD price of 1000 tokens, 18 decimals, not zero.
    function setPrices(uint256 morUsd, uint256 tokensUsd) external;
}
