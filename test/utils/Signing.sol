// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {CommonBase} from "forge-std/Base.sol";

import {Messages} from "../../contracts/libraries/Messages.sol";

/// @notice EIP-712 digests and signatures for the tests, computed here, independently of the contracts, so
/// a signature can be made between `vm.expectRevert` and the call it expects to revert. Used by `Base` and
/// by the invariant handler.
abstract contract Signing is CommonBase {
    /// @dev The domain of every message under `verifyingContract` on the current chain.
    function _domain(address verifyingContract) internal view returns (bytes32) {
        return keccak256(
            abi.encode(
                keccak256(
                    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
                ),
                keccak256("Morpheus Compute"),
                keccak256("1"),
                block.chainid,
                verifyingContract
            )
        );
    }

    /// @dev The digest a router signs for `voucher`, to be claimed at `sessionRouter`.
    function _digest(address sessionRouter, Messages.CreditVoucher memory voucher)
        internal
        view
        returns (bytes32)
    {
        return keccak256(abi.encodePacked("\x19\x01", _domain(sessionRouter), Messages.hash(voucher)));
    }

    /// @dev A 65-byte signature `r || s || v`, the layout the contracts accept.
    function _sign(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }

    function _sign(uint256 key, address sessionRouter, Messages.CreditVoucher memory voucher)
        internal
        view
        returns (bytes memory)
    {
        return _sign(key, _digest(sessionRouter, voucher));
    }
}
