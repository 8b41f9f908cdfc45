// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Test} from "forge-std/Test.sol";

import {ProviderRegistry} from "../../../contracts/ProviderRegistry.sol";
import {SessionRouter} from "../../../contracts/SessionRouter.sol";
import {Messages} from "../../../contracts/libraries/Messages.sol";
import {MessageVectors} from "../../utils/MessageVectors.sol";

/// @notice The type strings are the protocol's wire format: the Rust SDK's `sol!` structs must match them.
/// Every struct hash and digest is checked against a fixed vector of `MessageVectors`, computed outside
/// Solidity with cast alone (the recipe is in that file).
contract Messages_Unit_Test is Test, MessageVectors {
    /*//////////////////////////////////////////////////////////////
                                 TESTS
    //////////////////////////////////////////////////////////////*/

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
                "Assignment(bytes32 sessionId,address provider,string endpoint,bytes32 modelId,uint256 tokenMax,uint256 pricePerToken,uint256 expiresAt)"
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
            Messages.SERVICE_RECEIPT_TYPEHASH, keccak256("ServiceReceipt(bytes32 sessionId,uint256 tokens)")
        );
        assertEq(
            Messages.RECEIPT_REQUEST_TYPEHASH,
            keccak256(
                "ReceiptRequest(Assignment[] assignments)Assignment(bytes32 sessionId,address provider,string endpoint,bytes32 modelId,uint256 tokenMax,uint256 pricePerToken,uint256 expiresAt)"
            )
        );
        assertEq(
            Messages.SERVICE_RECEIPTS_TYPEHASH,
            keccak256(
                "ServiceReceipts(ServiceReceipt[] receipts)ServiceReceipt(bytes32 sessionId,uint256 tokens)"
            )
        );
        assertEq(
            Messages.MODEL_CLAIM_TYPEHASH,
            keccak256("ModelClaim(address provider,bytes32 modelId,bytes32 merkleRoot)")
        );
    }

    /// @dev Each struct hash fixes the type string, the field order and each field's encoding.
    function test_StructHashes() external pure {
        assertEq(Messages.hash(_exampleRequest()), COMPUTE_REQUEST_HASH, "ComputeRequest");
        assertEq(Messages.hash(_exampleAssignment()), ASSIGNMENT_HASH, "Assignment");
        assertEq(Messages.hash(_exampleReport()), USAGE_REPORT_HASH, "UsageReport");
        assertEq(Messages.hash(_exampleVoucher()), CREDIT_VOUCHER_HASH, "CreditVoucher");
        assertEq(Messages.hash(_exampleChallenge()), LIVENESS_CHALLENGE_HASH, "LivenessChallenge");
        assertEq(Messages.hash(_exampleResponse()), LIVENESS_RESPONSE_HASH, "LivenessResponse");
        assertEq(Messages.hash(_exampleReceipt()), SERVICE_RECEIPT_HASH, "ServiceReceipt");
        assertEq(Messages.hash(_exampleModelClaim()), MODEL_CLAIM_HASH, "ModelClaim");
        assertEq(Messages.hash(_exampleReceiptRequest()), RECEIPT_REQUEST_HASH, "ReceiptRequest");
        assertEq(Messages.hash(_exampleReceipts()), SERVICE_RECEIPTS_HASH, "ServiceReceipts");
    }

    /// @dev A batch hashes its elements' struct hashes in order: the same elements swapped, or one left out,
    /// hash differently; no elements hash as the empty array.
    function test_HashBatches_FollowTheirElementsInOrder() external pure {
        Messages.ReceiptRequest memory request = _exampleReceiptRequest();
        (request.assignments[0], request.assignments[1]) = (request.assignments[1], request.assignments[0]);
        assertNotEq(Messages.hash(request), RECEIPT_REQUEST_HASH, "swapped");
        request.assignments = new Messages.Assignment[](0);
        assertEq(Messages.hash(request), RECEIPT_REQUEST_EMPTY_HASH, "empty");
        Messages.ServiceReceipts memory receipts = _exampleReceipts();
        Messages.ServiceReceipt[] memory one = new Messages.ServiceReceipt[](1);
        one[0] = receipts.receipts[0];
        receipts.receipts = one;
        assertNotEq(Messages.hash(receipts), SERVICE_RECEIPTS_HASH, "one left out");
    }

    /// @dev The endpoint enters as the hash of its UTF-8 bytes, so the empty string hashes too.
    function test_HashAssignment_HashesTheEndpoint() external pure {
        Messages.Assignment memory m = _exampleAssignment();
        m.endpoint = "";
        assertEq(Messages.hash(m), ASSIGNMENT_EMPTY_ENDPOINT_HASH);
    }

    function hashCalldata(Messages.CreditVoucher calldata v) external pure returns (bytes32) {
        return Messages.hashCalldata(v);
    }

    /// @dev The claim's hot path hashes the voucher in assembly; the fixed vector holds it to the wire format.
    function test_HashCalldata() external view {
        assertEq(this.hashCalldata(_exampleVoucher()), CREDIT_VOUCHER_HASH);
    }

    function testFuzz_HashCalldataMatchesHash(Messages.CreditVoucher memory v) external view {
        assertEq(this.hashCalldata(v), Messages.hash(v));
    }

    /// @dev The digests a signer signs: the contracts' own views, deployed at fixed addresses on a fixed chain.
    function test_Digests() external {
        vm.chainId(CHAIN_ID);
        // The constructors only check that these (the registry's minimum stake too) are non-zero and the router
        // delay in range; the views never call them.
        deployCodeTo(
            "SessionRouter.sol:SessionRouter",
            abi.encode(
                address(this), address(1), address(2), address(3), 1 days, new address[](0), new uint256[](0)
            ),
            ROUTER_AT
        );
        deployCodeTo(
            "ProviderRegistry.sol:ProviderRegistry", abi.encode(address(this), address(1), 1, 0), REGISTRY_AT
        );
        SessionRouter router = SessionRouter(ROUTER_AT);
        ProviderRegistry registry = ProviderRegistry(REGISTRY_AT);

        assertEq(router.domainSeparator(), ROUTER_DOMAIN, "router domain");
        assertEq(registry.domainSeparator(), REGISTRY_DOMAIN, "registry domain");
        assertEq(router.hashComputeRequest(_exampleRequest()), COMPUTE_REQUEST_DIGEST, "ComputeRequest");
        assertEq(router.hashAssignment(_exampleAssignment()), ASSIGNMENT_DIGEST, "Assignment");
        assertEq(router.hashUsageReport(_exampleReport()), USAGE_REPORT_DIGEST, "UsageReport");
        assertEq(router.hashCreditVoucher(_exampleVoucher()), CREDIT_VOUCHER_DIGEST, "CreditVoucher");
        assertEq(
            router.hashLivenessChallenge(_exampleChallenge()), LIVENESS_CHALLENGE_DIGEST, "LivenessChallenge"
        );
        assertEq(
            router.hashLivenessResponse(_exampleResponse()), LIVENESS_RESPONSE_DIGEST, "LivenessResponse"
        );
        assertEq(router.hashServiceReceipt(_exampleReceipt()), SERVICE_RECEIPT_DIGEST, "ServiceReceipt");
        assertEq(
            router.hashReceiptRequest(_exampleReceiptRequest()), RECEIPT_REQUEST_DIGEST, "ReceiptRequest"
        );
        assertEq(router.hashServiceReceipts(_exampleReceipts()), SERVICE_RECEIPTS_DIGEST, "ServiceReceipts");
        assertEq(
            registry.hashTypedData(Messages.hash(_exampleModelClaim())), MODEL_CLAIM_DIGEST, "ModelClaim"
        );
    }
}
