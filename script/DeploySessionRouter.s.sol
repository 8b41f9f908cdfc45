// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {SessionRouter} from "../contracts/SessionRouter.sol";
import {IComputePool} from "../contracts/interfaces/IComputePool.sol";
import {IPriceSource} from "../contracts/interfaces/IPriceSource.sol";
import {BaseScript} from "./Base.s.sol";

/// @notice Deploys SessionRouter, owned by the broadcaster. The pool's owner must then name it with
/// `pool.setSessionRouter`.
contract DeploySessionRouter is BaseScript {
    function run(IERC20 mor, IComputePool pool, IPriceSource priceSource)
        external
        broadcast
        returns (SessionRouter router)
    {
        router = new SessionRouter(broadcaster, mor, pool, priceSource);
    }
}
