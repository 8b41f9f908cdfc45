// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @notice A malicious MOR: every transfer to a contract calls its `onTokenReceived()` (like ERC-777 hooks),
/// giving the receiver a chance to re-enter whoever sent the tokens.
contract HookToken is ERC20 {
    constructor() ERC20("Hook MOR", "hMOR") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        if (to.code.length != 0) {
            (bool ok,) = to.call(abi.encodeWithSignature("onTokenReceived()"));
            ok;
        }
    }
}
