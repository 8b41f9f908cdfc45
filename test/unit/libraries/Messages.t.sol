// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Test} from "forge-std/Test.sol";

import {Messages} from "../../../contracts/libraries/Messages.sol";

/// @notice The type strings are the protocol's wire format: the Rust SDK's `sol!` structs must match them.
contract Messages_Unit_Test is Test {
    function test_TypeHashes() external pure {
        assertEq(
            Messages.COMPUTE_REQUEST_TYPEHASH,
            keccak256(
                "ComputeRequest(address user,bytes32 modelId,uint256 tokenMax,uint256 nonce,uint256 deadline)"
            )
        );
        assertEq(
            Messages.ASSIGNMENT_TYPEHASH,
            keccak256(
                "Assignment(bytes32 sessionId,address user,address provider,string endpoint,bytes32 modelId,uint256 tokenMax,uint256 pricePerToken,uint256 expiresAt)"
            )
        );
        assertEq(
            Messages.USAGE_REPORT_TYPEHASH,
            keccak256(
                "UsageReport(bytes32 sessionId,uint256 tokens,uint256 ttftMs,uint256 durationMs,bool passed)"
            )
        );
        assertEq(
            Messages.CREDIT_VOUCHER_TYPEHASH,
            keccak256(
                "CreditVoucher(address router,address provider,uint256 cumulativeAmount,uint256 cumulativeBootstrap,uint256 cumulativeTokens,uint256 sessions,uint256 failed,uint256 issuedAt)"
            )
        );
        assertEq(
            Messages.LIVENESS_CHALLENGE_TYPEHASH,
            keccak256(
                "LivenessChallenge(bytes32 challengeId,address provider,bytes32 modelId,uint256 chunkIndex,uint256 deadline)"
            )
        );
        assertEq(
            Messages.LIVENESS_RESPONSE_TYPEHASH,
            keccak256("LivenessResponse(bytes32 challengeId,bytes32 chunkHash)")
        );
        assertEq(
            Messages.MODEL_CLAIM_TYPEHASH,
            keccak256("ModelClaim(address provider,bytes32 modelId,bytes32 merkleRoot)")
        );
    }

    function hashCalldata(Messages.CreditVoucher calldata v) external pure returns (bytes32) {
        return Messages.hashCalldata(v);
    }

    function testFuzz_HashCalldataMatchesHash(Messages.CreditVoucher memory v) external view {
        assertEq(this.hashCalldata(v), Messages.hash(v));
    }

    function testFuzz_HashAssignment(Messages.Assignment memory m) external pure {
        assertEq(
            Messages.hash(m),
            keccak256(
                abi.encode(
                    Messages.ASSIGNMENT_TYPEHASH,
                    m.sessionId,
                    m.user,
                    m.provider,
                    keccak256(bytes(m.endpoint)),
                    m.modelId,
                    m.tokenMax,
                    m.pricePerToken,
                    m.expiresAt
                )
            )
        );
    }
}
