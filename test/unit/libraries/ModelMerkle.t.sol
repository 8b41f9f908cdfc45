// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Test} from "forge-std/Test.sol";

import {ModelMerkle} from "../../../contracts/libraries/ModelMerkle.sol";

contract ModelMerkle_Unit_Test is Test {
    /// @dev Builds the proof for leaf `index` by the rule in docs/protocol.md, independently of the library.
    function _proof(bytes32[] memory leaves, uint256 index) internal pure returns (bytes32[] memory proof) {
        bytes32[] memory level = leaves;
        bytes32[] memory tmp = new bytes32[](256);
        uint256 used;
        while (level.length > 1) {
            uint256 sibling = index ^ 1;
            if (sibling < level.length) tmp[used++] = level[sibling];
            bytes32[] memory next = new bytes32[]((level.length + 1) / 2);
            for (uint256 i; i < next.length; ++i) {
                next[i] = 2 * i + 1 < level.length
                    ? keccak256(abi.encodePacked(level[2 * i], level[2 * i + 1]))
                    : level[2 * i];
            }
            level = next;
            index /= 2;
        }
        proof = new bytes32[](used);
        for (uint256 i; i < used; ++i) {
            proof[i] = tmp[i];
        }
    }

    function _leaves(uint256 n, uint256 seed) internal pure returns (bytes32[] memory leaves) {
        leaves = new bytes32[](n);
        for (uint256 i; i < n; ++i) {
            leaves[i] = keccak256(abi.encode(seed, i));
        }
    }

    function _copy(bytes32[] memory a) internal pure returns (bytes32[] memory b) {
        b = new bytes32[](a.length);
        for (uint256 i; i < a.length; ++i) {
            b[i] = a[i];
        }
    }

    function test_SingleChunk_RootIsLeaf() external pure {
        bytes32[] memory leaves = _leaves(1, 0);
        assertEq(ModelMerkle.computeRoot(_copy(leaves)), leaves[0]);
        assertTrue(ModelMerkle.verifyChunk(leaves[0], 0, 1, leaves[0], new bytes32[](0)));
    }

    function test_FiveChunks_KnownShape() external pure {
        bytes32[] memory l = _leaves(5, 7);
        bytes32 h01 = keccak256(abi.encodePacked(l[0], l[1]));
        bytes32 h23 = keccak256(abi.encodePacked(l[2], l[3]));
        bytes32 h0123 = keccak256(abi.encodePacked(h01, h23));
        bytes32 root = keccak256(abi.encodePacked(h0123, l[4])); // l[4] promoted twice, unchanged
        assertEq(ModelMerkle.computeRoot(_copy(l)), root);
        bytes32[] memory proof = new bytes32[](1);
        proof[0] = h0123;
        assertTrue(ModelMerkle.verifyChunk(root, 4, 5, l[4], proof));
    }

    function test_RejectsMalformed() external pure {
        bytes32[] memory l = _leaves(4, 1);
        bytes32 root = ModelMerkle.computeRoot(_copy(l));
        bytes32[] memory proof = _proof(l, 1);
        assertTrue(ModelMerkle.verifyChunk(root, 1, 4, l[1], proof));
        assertFalse(ModelMerkle.verifyChunk(root, 4, 4, l[1], proof)); // index out of range
        assertFalse(ModelMerkle.verifyChunk(root, 1, 4, l[1], new bytes32[](1))); // too short
        bytes32[] memory longer = new bytes32[](3);
        longer[0] = proof[0];
        longer[1] = proof[1];
        assertFalse(ModelMerkle.verifyChunk(root, 1, 4, l[1], longer)); // too long
        assertFalse(ModelMerkle.verifyChunk(root, 0, 4, l[1], proof)); // wrong position
        // Sorted-pair trees are not accepted: swapping the order changes the root.
        assertTrue(
            ModelMerkle.computeRoot(_copy(l))
                != keccak256(
                    abi.encodePacked(
                        keccak256(abi.encodePacked(l[1], l[0])), keccak256(abi.encodePacked(l[2], l[3]))
                    )
                )
        );
        assertEq(ModelMerkle.computeRoot(new bytes32[](0)), bytes32(0));
    }

    function testFuzz_VerifyChunk(uint256 n, uint256 index, uint256 seed) external pure {
        n = bound(n, 1, 70);
        index = bound(index, 0, n - 1);
        bytes32[] memory leaves = _leaves(n, seed);
        bytes32 root = ModelMerkle.computeRoot(_copy(leaves));
        bytes32[] memory proof = _proof(leaves, index);
        assertTrue(ModelMerkle.verifyChunk(root, index, n, leaves[index], proof));
        assertFalse(ModelMerkle.verifyChunk(root, index, n, keccak256(abi.encode(leaves[index])), proof));
    }
}
