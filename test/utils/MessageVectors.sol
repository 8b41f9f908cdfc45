// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Messages} from "../../contracts/libraries/Messages.sol";

/// @notice Example EIP-712 messages and their fixed vectors, shared by the library's tests
/// (`test/unit/libraries/Messages.t.sol`) and the contracts' hash views' tests
/// (`test/unit/SessionRouter/views.t.sol`). The messages are those of `sdk/tests/it/hashes.rs`; the
/// service receipt is for the usage report's session and token count (session 1, 321 tokens).
/// Every vector was computed outside Solidity, with cast alone:
///   t=$(cast keccak "<type string>")
///   struct hash = cast keccak $(cast abi-encode "f(bytes32,<field types>)" $t <fields>)
///     (a string field enters as $(cast keccak "<string>"), as EIP-712 says)
///   domain = cast keccak $(cast abi-encode "f(bytes32,bytes32,bytes32,uint256,address)" \
///     $(cast keccak "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)") \
///     $(cast keccak "Morpheus Compute") $(cast keccak 1) 31337 <verifyingContract>)
///   digest = cast keccak $(cast concat-hex 0x1901 <domain> <struct hash>)
/// The voucher's and the assignment's digests were cross-checked with `cast wallet sign --data` over the
/// same messages as EIP-712 JSON, which signs the same digests as `cast wallet sign --no-hash <digest>`.
abstract contract MessageVectors {
    /*//////////////////////////////////////////////////////////////
                             EXAMPLE INPUTS
    //////////////////////////////////////////////////////////////*/

    uint256 internal constant CHAIN_ID = 31_337;
    address internal constant ROUTER_AT = address(0x5E55);
    address internal constant REGISTRY_AT = address(0xBEE);

    address internal constant A1 = 0x0101010101010101010101010101010101010101;
    address internal constant A2 = 0x0202020202020202020202020202020202020202;
    address internal constant A7 = 0x0707070707070707070707070707070707070707;
    address internal constant A8 = 0x0808080808080808080808080808080808080808;
    bytes32 internal constant MODEL_ID = keccak256("m");
    bytes32 internal constant SESSION_1 = keccak256(hex"0000000000000001"); // `session(1)` in sdk/tests/it
    bytes32 internal constant SESSION_2 = keccak256(hex"0000000000000002");
    string internal constant ENDPOINT = unicode"http://127.0.0.1:8080/ünïcode";

    /*//////////////////////////////////////////////////////////////
                              FIXED VECTORS
    //////////////////////////////////////////////////////////////*/

    // "f(bytes32,address,bytes32,uint256,uint256,uint256)" $t A7 $(cast keccak m) 4096 9 1900000000
    bytes32 internal constant COMPUTE_REQUEST_HASH =
        0x2082cd17159f9ccbe3fab4a40f4af5fa0a09438144d32eefd929e5684c4352c9;
    // "f(bytes32,bytes32,address,bytes32,bytes32,uint256,uint256,uint256)"
    //   $t $(cast keccak 0x0000000000000001) A8 $(cast keccak "http://127.0.0.1:8080/ünïcode")
    //   $(cast keccak m) 4096 1000000000000 1900000000
    bytes32 internal constant ASSIGNMENT_HASH =
        0xe6e972197a50e58a03a8b98d484f099c8aedac5433626288ba936aa3c8ac9850;
    // As ASSIGNMENT_HASH, with $(cast keccak "") for the endpoint.
    bytes32 internal constant ASSIGNMENT_EMPTY_ENDPOINT_HASH =
        0x4ed13c60b8cc2303cc9231943195e13e7e852c8ba2dcb2b41169d0bea519c1ae;
    // "f(bytes32,bytes32,uint256,uint256,uint256,bool)" $t $(cast keccak 0x0000000000000001) 321 80 2100 true
    bytes32 internal constant USAGE_REPORT_HASH =
        0x754f42d85b6c8b99d174acda4a988534ce3513b64f5c45b1a9b8c307b14aacc5;
    // "f(bytes32,address,address,uint256,uint256,uint256,uint256,uint256,uint256)" $t A1 A2 $(cast max-uint) 3 4 5 6 7
    bytes32 internal constant CREDIT_VOUCHER_HASH =
        0x65db49def08c0a2cbeaf2ff67ba183491e3e01be69d9d1cad49d716e0d28f9bc;
    // "f(bytes32,bytes32,address,bytes32,uint256,uint256)" $t $(cast keccak 0x0000000000000002) A8
    //   $(cast keccak m) 3 1900000000
    bytes32 internal constant LIVENESS_CHALLENGE_HASH =
        0x7842dd499b5fdd3f9b9e630b5aaedc9b052e84aceef7ea457afcbf51571cbd35;
    // "f(bytes32,bytes32,bytes32)" $t $(cast keccak 0x0000000000000002) $(cast keccak chunk)
    bytes32 internal constant LIVENESS_RESPONSE_HASH =
        0x6797305db9f4c53f164b3ff66dc2a9362b20a739803452aa8fdcc2afbdccf8fa;
    // "f(bytes32,bytes32,uint256)" $t $(cast keccak 0x0000000000000001) 321
    bytes32 internal constant SERVICE_RECEIPT_HASH =
        0x7e5290327e79c331e20dcb7ce3c57855ddcb354afb92f80aef2cf3d80a54027d;
    // The batches: an array member is $(cast keccak $(cast concat-hex <element struct hashes>)), so
    //   "f(bytes32,bytes32)" $t $(cast keccak $(cast concat-hex ASSIGNMENT_HASH ASSIGNMENT_EMPTY_ENDPOINT_HASH))
    bytes32 internal constant RECEIPT_REQUEST_HASH =
        0x1532821f4377ffeaec3ea75f41b96eca89f4588165ab96c63e33e0c474782634;
    // As RECEIPT_REQUEST_HASH with no assignments: $(cast keccak 0x) for the array.
    bytes32 internal constant RECEIPT_REQUEST_EMPTY_HASH =
        0x0e3ae494d476a0b9b67661f2762c51cc12d9de6c55d53096b654e78786078a6d;
    // The second receipt: session 2, 0 tokens, as SERVICE_RECEIPT_HASH is made.
    bytes32 internal constant SERVICE_RECEIPT_2_HASH =
        0xcc5ed5cf5bfce4c5361467d88535b6ca9d2e0179aa4aaaa4b6c3dec9030eb687;
    //   "f(bytes32,bytes32)" $t $(cast keccak $(cast concat-hex SERVICE_RECEIPT_HASH SERVICE_RECEIPT_2_HASH))
    bytes32 internal constant SERVICE_RECEIPTS_HASH =
        0xf5dc2bfcb5a2f4c1ce00e3af501734f97a6259f4f89264197a52ef2b919ba23e;
    // "f(bytes32,address,bytes32,bytes32)" $t A8 $(cast keccak m) $(cast keccak weights)
    bytes32 internal constant MODEL_CLAIM_HASH =
        0x4a310156fd88d8df57badc696a66d4f5e848e6db2bfe58829048c2d6dcf61cfa;

    // The domains on chain 31337, verifyingContract = ROUTER_AT (0x...5E55) and REGISTRY_AT (0x...0BEE).
    bytes32 internal constant ROUTER_DOMAIN =
        0xc857e0f201072e9107ab7f254dcf4c78cba10d5e95d562f8b1d3f6a27794609c;
    bytes32 internal constant REGISTRY_DOMAIN =
        0xa00630f9ead14e7973a776324611f18731783c2e7be512a07de6f62994ef982e;

    // The struct hashes above under ROUTER_DOMAIN (the model claim under REGISTRY_DOMAIN).
    bytes32 internal constant COMPUTE_REQUEST_DIGEST =
        0xb2ed8c2d69a9c954b30253b30e33ee009aeb86dc1054081a51134e5ae80ed1e2;
    bytes32 internal constant ASSIGNMENT_DIGEST =
        0x741193200aa8983bc60a2cf555ef80c9d5048a9994a2ee9bf2c6f0af585b8144;
    bytes32 internal constant USAGE_REPORT_DIGEST =
        0x1f9bd1a6106fe39197a5a8cee2699ba708d793225f84ac829ad3cd95a9d56f54;
    bytes32 internal constant CREDIT_VOUCHER_DIGEST =
        0x739ca2b2532fea1c07a33ead9459817a9164b0f9a35048215b4ae723d6abebe0;
    bytes32 internal constant LIVENESS_CHALLENGE_DIGEST =
        0xc469dce8e1eb37069c7e2bd011d9a099d806a4e56315f21af63f24f0bb308953;
    bytes32 internal constant LIVENESS_RESPONSE_DIGEST =
        0x33aa93327a6bd0b390013163582eb01c3f74710d62e44a8829b5548a6fd0693f;
    bytes32 internal constant SERVICE_RECEIPT_DIGEST =
        0x152db0f892bb0e93adec56808a1970cb64b29519a1503a7ac76197cecf02c2cf;
    bytes32 internal constant RECEIPT_REQUEST_DIGEST =
        0xcb87a9ff3882bbff78dd45252ac28cfcfb1173d1ccd2391f66f616ba1d3345a3;
    bytes32 internal constant SERVICE_RECEIPTS_DIGEST =
        0xe523764ad6d7ee5c88f2d9c54b6a397d3701b916b091676fa7aef7a27dc5d74c;
    bytes32 internal constant MODEL_CLAIM_DIGEST =
        0x8d4b17472fdb3f6e0860d431890f7b925ea5c61026b7e8b670f139dec19a1c0d;

    /*//////////////////////////////////////////////////////////////
                            EXAMPLE MESSAGES
    //////////////////////////////////////////////////////////////*/

    function _exampleRequest() internal pure returns (Messages.ComputeRequest memory) {
        return Messages.ComputeRequest({
            user: A7, modelId: MODEL_ID, tokenMax: 4096, nonce: 9, deadline: 1_900_000_000
        });
    }

    function _exampleAssignment() internal pure returns (Messages.Assignment memory) {
        return Messages.Assignment({
            sessionId: SESSION_1,
            provider: A8,
            endpoint: ENDPOINT,
            modelId: MODEL_ID,
            tokenMax: 4096,
            pricePerToken: 1e12,
            expiresAt: 1_900_000_000
        });
    }

    function _exampleReport() internal pure returns (Messages.UsageReport memory) {
        return
            Messages.UsageReport({
                sessionId: SESSION_1, tokens: 321, ttftMs: 80, durationMs: 2100, passed: true
            });
    }

    function _exampleVoucher() internal pure returns (Messages.CreditVoucher memory) {
        return Messages.CreditVoucher({
            router: A1,
            provider: A2,
            cumulativeAmount: type(uint256).max,
            cumulativeBootstrap: 3,
            cumulativeTokens: 4,
            sessions: 5,
            failed: 6,
            issuedAt: 7
        });
    }

    function _exampleChallenge() internal pure returns (Messages.LivenessChallenge memory) {
        return Messages.LivenessChallenge({
            challengeId: SESSION_2, provider: A8, modelId: MODEL_ID, chunkIndex: 3, deadline: 1_900_000_000
        });
    }

    function _exampleResponse() internal pure returns (Messages.LivenessResponse memory) {
        return Messages.LivenessResponse({challengeId: SESSION_2, chunkHash: keccak256("chunk")});
    }

    function _exampleReceipt() internal pure returns (Messages.ServiceReceipt memory) {
        return Messages.ServiceReceipt({sessionId: SESSION_1, tokens: 321});
    }

    /// @dev The example assignment and the same with an empty endpoint.
    function _exampleReceiptRequest() internal pure returns (Messages.ReceiptRequest memory m) {
        m.assignments = new Messages.Assignment[](2);
        m.assignments[0] = _exampleAssignment();
        m.assignments[1] = _exampleAssignment();
        m.assignments[1].endpoint = "";
    }

    /// @dev The example receipt and session 2's at 0 tokens.
    function _exampleReceipts() internal pure returns (Messages.ServiceReceipts memory m) {
        m.receipts = new Messages.ServiceReceipt[](2);
        m.receipts[0] = _exampleReceipt();
        m.receipts[1] = Messages.ServiceReceipt({sessionId: SESSION_2, tokens: 0});
    }

    function _exampleModelClaim() internal pure returns (Messages.ModelClaim memory) {
        return Messages.ModelClaim({provider: A8, modelId: MODEL_ID, merkleRoot: keccak256("weights")});
    }
}
