// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Script} from "forge-std/Script.sol";

/// @title BaseScript
/// @notice Shared by every deploy script: broadcasts as the signer forge was given (`--private-key`,
/// `--account`, `--ledger`, ...) and names that signer `broadcaster`.
abstract contract BaseScript is Script {
    /// @notice The account that sends the transactions (and owns what it deploys).
    address internal broadcaster;

    modifier broadcast() {
        vm.startBroadcast();
        (, broadcaster,) = vm.readCallers();
        _;
        vm.stopBroadcast();
    }
}
