// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {ComputePool} from "../contracts/ComputePool.sol";
import {BaseScript} from "./Base.s.sol";

/// @notice Deploys ComputePool (1% daily budget, 10% bootstrap share), owned by the broadcaster. The owner
/// must then call `setSessionRouter` once.
contract DeployComputePool is BaseScript {
    function run(IERC20 mor) external broadcast returns (ComputePool pool) {
        pool = new ComputePool(broadcaster, mor, 100, 1000);
    }
}
