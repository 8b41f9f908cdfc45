// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {SessionRouter} from "../contracts/SessionRouter.sol";
import {IComputePool} from "../contracts/interfaces/IComputePool.sol";
import {IPriceSource} from "../contracts/interfaces/IPriceSource.sol";
import {BaseScript} from "./Base.s.sol";

/// @notice Deploys SessionRouter, owned by the broadcaster, with env ROUTER_SIGNER (if set) as its initial
/// router at the whole budget, authorised at once, and env ROUTER_DELAY (seconds, default 2 days) as its
/// delay for later router changes. The pool's owner must then name it with `pool.setSessionRouter`.
contract DeploySessionRouter is BaseScript {
    function run(IERC20 mor, IComputePool pool, IPriceSource priceSource)
        external
        broadcast
        returns (SessionRouter router)
    {
        address signer = vm.envOr("ROUTER_SIGNER", address(0));
        address[] memory routers = new address[](signer == address(0) ? 0 : 1);
        uint256[] memory shares = new uint256[](routers.length);
        if (signer != address(0)) {
            routers[0] = signer;
            shares[0] = 10_000;
        }
        router = new SessionRouter(
            broadcaster, mor, pool, priceSource, vm.envOr("ROUTER_DELAY", uint256(2 days)), routers, shares
        );
    }
}
