// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {TestMOR} from "../contracts/token/TestMOR.sol";
import {BaseScript} from "./Base.s.sol";

/// @notice Deploys TestMOR (local chains only), owned by the broadcaster.
contract DeployTestMOR is BaseScript {
    function run() external broadcast returns (TestMOR mor) {
        mor = new TestMOR(broadcaster);
    }
}
