// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title ModelMerkle
/// @notice The Merkle tree over a model's weights file, and the check of one chunk against its root.
/// @dev The tree (the Rust SDK builds the same one):
/// - the file is cut into 1 MiB (1,048,576-byte) chunks, the last one shorter; leaf i is the root of chunk i's
///   piece tree (4 KiB pieces, piece leaf keccak256(0x00 || piece), inner node keccak256(0x01 || left || right),
///   built off-chain: docs/protocol.md, "Model Merkle tree"), so a liveness answer can carry a piece's bytes;
/// - a parent is keccak256(abi.encodePacked(left, right)), children in file order (pairs are NOT sorted);
/// - a node without a right sibling (the last, odd node of a level) is promoted unchanged to the next level;
/// - a file of one chunk has its leaf as root.
/// A proof lists the siblings from the leaf up, skipping the levels where the node was promoted.
library ModelMerkle {
    /// @notice The size of one chunk of a model file, in bytes.
    uint256 internal constant CHUNK_SIZE = 1 << 20;

    /// @notice Whether `leaf` is chunk `index` of a tree of `leafCount` leaves with root `root`.
    /// @dev False, never a revert, for any malformed input (index out of range, too short or too long proof).
    function verifyChunk(bytes32 root, uint256 index, uint256 leafCount, bytes32 leaf, bytes32[] memory proof)
        internal
        pure
        returns (bool)
    {
        if (index >= leafCount) return false;
        bytes32 node = leaf;
        uint256 used = 0;
        uint256 proofLength = proof.length;
        // Each level halves `leafCount` (rounding up), so the loop runs at most 256 times; `used` is bounded
        // by `proofLength` before every increment.
        while (leafCount > 1) {
            if (index & 1 == 1) {
                if (used == proofLength) return false;
                node = hashPair(proof[used], node);
                ++used;
            } else if (index + 1 < leafCount) {
                if (used == proofLength) return false;
                node = hashPair(node, proof[used]);
                ++used;
            }
            index >>= 1;
            leafCount = (leafCount >> 1) + (leafCount & 1);
        }
        return used == proofLength && node == root;
    }

    /// @notice The root of the tree over `leaves` (used by tests and scripts; O(n) memory).
    function computeRoot(bytes32[] memory leaves) internal pure returns (bytes32) {
        uint256 n = leaves.length;
        if (n == 0) return bytes32(0);
        // The tree is built in place: level k's nodes overwrite the front of the array.
        while (n > 1) {
            uint256 next = 0;
            for (uint256 i; i < n; i += 2) {
                leaves[next] = i + 1 < n ? hashPair(leaves[i], leaves[i + 1]) : leaves[i];
                ++next;
            }
            n = next;
        }
        return leaves[0];
    }

    /// @notice keccak256(abi.encodePacked(left, right)), hashed in scratch space.
    function hashPair(bytes32 left, bytes32 right) internal pure returns (bytes32 parent) {
        assembly ("memory-safe") {
            mstore(0x00, left)
            mstore(0x20, right)
            parent := keccak256(0x00, 0x40)
        }
    }
}
