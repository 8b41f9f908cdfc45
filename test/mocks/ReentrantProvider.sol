// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ISessionRouter} from "../../contracts/interfaces/ISessionRouter.sol";
import {Messages} from "../../contracts/libraries/Messages.sol";

/// @notice A contract provider that, when paid, tries to claim the same vouchers again.
contract ReentrantProvider {
    ISessionRouter internal immutable _router;
    Messages.CreditVoucher[] internal _vouchers;
    bytes[] internal _signatures;
    uint256 public attempts;
    bytes public lastError;

    constructor(ISessionRouter router_) {
        _router = router_;
    }

    function arm(Messages.CreditVoucher calldata voucher, bytes calldata signature) external {
        _vouchers.push(voucher);
        _signatures.push(signature);
    }

    function onTokenReceived() external {
        if (attempts != 0) return;
        ++attempts;
        try _router.claim(_vouchers, _signatures) {}
        catch (bytes memory err) {
            lastError = err;
        }
    }
}
