// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {ProviderRegistry} from "../contracts/ProviderRegistry.sol";
import {BaseScript} from "./Base.s.sol";

/// @notice Deploys ProviderRegistry, owned by the broadcaster.
contract DeployProviderRegistry is BaseScript {
    function run(IERC20 mor, uint256 minStake, uint256 cooldown)
        external
        broadcast
        returns (ProviderRegistry registry)
    {
        registry = new ProviderRegistry(broadcaster, mor, minStake, cooldown);
    }
}
