// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {FixedPriceSource} from "../contracts/oracles/FixedPriceSource.sol";
import {BaseScript} from "./Base.s.sol";

/// @notice Deploys FixedPriceSource with the given prices (USD, 18 decimals), owned by the broadcaster.
contract DeployFixedPriceSource is BaseScript {
    function run(uint256 morUsd, uint256 tokensUsd) external broadcast returns (FixedPriceSource source) {
        source = new FixedPriceSource(broadcaster, morUsd, tokensUsd);
    }
}
