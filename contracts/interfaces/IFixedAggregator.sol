// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IAggregatorV3} from "./IAggregatorV3.sol";

/// @title IFixedAggregator
/// @notice An owner-set {IAggregatorV3} (8 decimals, as Chainlink's USD feeds) for local chains and tests.
interface IFixedAggregator is IAggregatorV3 {
    /*//////////////////////////////////////////////////////////////
                                 ERRORS
    //////////////////////////////////////////////////////////////*/

    /// @notice Thrown when the answer would be zero or negative.
    /// @param answer The answer given.
    error FixedAggregatorNonPositiveAnswer(int256 answer);

    /*//////////////////////////////////////////////////////////////
                                 EVENTS
    //////////////////////////////////////////////////////////////*/

    /// @notice Emitted when a new round is set.
    /// @param roundId The new round's id.
    /// @param answer Its answer, 8 decimals.
    event AnswerSet(uint80 indexed roundId, int256 answer);

    /*//////////////////////////////////////////////////////////////
                               FUNCTIONS
    //////////////////////////////////////////////////////////////*/

    /// @notice Starts a new round with `answer`, updated now. Owner only.
    /// @param answer The price, 8 decimals, above zero.
    function setAnswer(int256 answer) external;
}
