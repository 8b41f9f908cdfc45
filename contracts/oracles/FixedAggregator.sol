// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Ownable, Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";

import {IAggregatorV3} from "../interfaces/IAggregatorV3.sol";
import {IFixedAggregator} from "../interfaces/IFixedAggregator.sol";

/// @title FixedAggregator
/// @notice An owner-set price feed in the shape of Chainlink's aggregators, for local chains and tests
/// (where no ETH/USD feed exists): each {setAnswer} starts a new round updated at that block's time.
contract FixedAggregator is IFixedAggregator, Ownable2Step {
    /*//////////////////////////////////////////////////////////////
                                CONSTANTS
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IAggregatorV3
    uint8 public constant decimals = 8;

    /*//////////////////////////////////////////////////////////////
                                STORAGE
    //////////////////////////////////////////////////////////////*/

    string internal _description;
    uint80 internal _roundId;
    int256 internal _answer;
    uint256 internal _updatedAt;

    /*//////////////////////////////////////////////////////////////
                              CONSTRUCTOR
    //////////////////////////////////////////////////////////////*/

    /// @param owner_ The account that may set answers.
    /// @param description_ What the feed prices, e.g. "ETH / USD".
    /// @param answer The first round's answer, 8 decimals.
    constructor(address owner_, string memory description_, int256 answer) Ownable(owner_) {
        _description = description_;
        _setAnswer(answer);
    }

    /*//////////////////////////////////////////////////////////////
                                 VIEWS
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IAggregatorV3
    function description() external view returns (string memory) {
        return _description;
    }

    /// @inheritdoc IAggregatorV3
    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        return (_roundId, _answer, _updatedAt, _updatedAt, _roundId);
    }

    /*//////////////////////////////////////////////////////////////
                             STATE-CHANGING
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IFixedAggregator
    function setAnswer(int256 answer) external onlyOwner {
        _setAnswer(answer);
    }

    /*//////////////////////////////////////////////////////////////
                                INTERNAL
    //////////////////////////////////////////////////////////////*/

    function _setAnswer(int256 answer) internal {
        if (answer <= 0) revert FixedAggregatorNonPositiveAnswer(answer);
        ++_roundId;
        _answer = answer;
        _updatedAt = block.timestamp;
        emit AnswerSet(_roundId, answer);
    }
}
