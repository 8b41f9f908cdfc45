// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Messages
/// @notice The EIP-712 messages of Morpheus Compute, defined once: their structs, type strings and struct
/// hashes. The Rust SDK binds the same type strings with alloy `sol!`, so both sides hash identically.
/// @dev Every message but `ModelClaim` is signed under the domain {name: "Morpheus Compute", version: "1",
/// chainId, verifyingContract: SessionRouter}; `ModelClaim` under the same name and version with
/// verifyingContract = ProviderRegistry.
library Messages {
    /*//////////////////////////////////////////////////////////////
                                STRUCTS
    //////////////////////////////////////////////////////////////*/

    /// @notice A user's request for compute, sent to a router (never on-chain).
    struct ComputeRequest {
        address user;
        bytes32 modelId;
        uint256 tokenMax;
        uint256 nonce;
        uint256 deadline;
    }

    /// @notice A router's assignment of one session to one provider. It does not name the user: the
    /// provider needs only the session, and the router binds the session to its user.
    struct Assignment {
        bytes32 sessionId;
        address provider;
        string endpoint;
        bytes32 modelId;
        uint256 tokenMax;
        uint256 pricePerToken;
        uint256 expiresAt;
    }

    /// @notice A user's report on one served session.
    struct UsageReport {
        bytes32 sessionId;
        uint256 tokens;
        uint256 ttftMs;
        uint256 durationMs;
        bool passed;
    }

    /// @notice A router's cumulative credit for one provider; only the newest one matters.
    struct CreditVoucher {
        address router;
        address provider;
        uint256 cumulativeAmount;
        uint256 cumulativeBootstrap;
        uint256 cumulativeTokens;
        uint256 sessions;
        uint256 failed;
        uint256 issuedAt;
    }

    /// @notice A router's liveness challenge to a provider, asking for one chunk of the model file.
    struct LivenessChallenge {
        bytes32 challengeId;
        address provider;
        bytes32 modelId;
        uint256 chunkIndex;
        uint256 deadline;
    }

    /// @notice A provider's answer to a liveness challenge.
    struct LivenessResponse {
        bytes32 challengeId;
        bytes32 chunkHash;
    }

    /// @notice The provider's signed count of the tokens it charged a session (prompt and completion), final:
    /// the provider serves the session no more once it has signed it; the router refunds a user's reservation
    /// only against it.
    struct ServiceReceipt {
        bytes32 sessionId;
        uint256 tokens;
    }

    /// @notice A router's request for the receipts of several sessions assigned to one provider for one model
    /// (the sessions' assignments, signed once together): the provider closes each session and answers with
    /// one signed `ServiceReceipts`, so a receipt costs each side one signature per batch, not per session.
    struct ReceiptRequest {
        Assignment[] assignments;
    }

    /// @notice A provider's signed counts for the sessions of a `ReceiptRequest`, in its order; each entry
    /// means what one `ServiceReceipt` means.
    struct ServiceReceipts {
        ServiceReceipt[] receipts;
    }

    /// @notice A provider's claim to hold a model's weights (verified by ProviderRegistry).
    struct ModelClaim {
        address provider;
        bytes32 modelId;
        bytes32 merkleRoot;
    }

    /*//////////////////////////////////////////////////////////////
                               CONSTANTS
    //////////////////////////////////////////////////////////////*/

    /// @notice The EIP-712 domain's name for every message.
    string internal constant DOMAIN_NAME = "Morpheus Compute";

    /// @notice The EIP-712 domain's version for every message.
    string internal constant DOMAIN_VERSION = "1";

    bytes32 internal constant COMPUTE_REQUEST_TYPEHASH = keccak256(
        "ComputeRequest(address user,bytes32 modelId,uint256 tokenMax,uint256 nonce,uint256 deadline)"
    );

    bytes32 internal constant ASSIGNMENT_TYPEHASH = keccak256(
        "Assignment(bytes32 sessionId,address provider,string endpoint,bytes32 modelId,uint256 tokenMax,uint256 pricePerToken,uint256 expiresAt)"
    );

    bytes32 internal constant USAGE_REPORT_TYPEHASH = keccak256(
        "UsageReport(bytes32 sessionId,uint256 tokens,uint256 ttftMs,uint256 durationMs,bool passed)"
    );

    bytes32 internal constant CREDIT_VOUCHER_TYPEHASH = keccak256(
        "CreditVoucher(address router,address provider,uint256 cumulativeAmount,uint256 cumulativeBootstrap,uint256 cumulativeTokens,uint256 sessions,uint256 failed,uint256 issuedAt)"
    );

    bytes32 internal constant LIVENESS_CHALLENGE_TYPEHASH = keccak256(
        "LivenessChallenge(bytes32 challengeId,address provider,bytes32 modelId,uint256 chunkIndex,uint256 deadline)"
    );

    bytes32 internal constant LIVENESS_RESPONSE_TYPEHASH =
        keccak256("LivenessResponse(bytes32 challengeId,bytes32 chunkHash)");

    bytes32 internal constant SERVICE_RECEIPT_TYPEHASH =
        keccak256("ServiceReceipt(bytes32 sessionId,uint256 tokens)");

    /// @dev EIP-712 appends the type of a struct a member refers to after the main type.
    bytes32 internal constant RECEIPT_REQUEST_TYPEHASH = keccak256(
        "ReceiptRequest(Assignment[] assignments)Assignment(bytes32 sessionId,address provider,string endpoint,bytes32 modelId,uint256 tokenMax,uint256 pricePerToken,uint256 expiresAt)"
    );

    bytes32 internal constant SERVICE_RECEIPTS_TYPEHASH = keccak256(
        "ServiceReceipts(ServiceReceipt[] receipts)ServiceReceipt(bytes32 sessionId,uint256 tokens)"
    );

    bytes32 internal constant MODEL_CLAIM_TYPEHASH =
        keccak256("ModelClaim(address provider,bytes32 modelId,bytes32 merkleRoot)");

    /*//////////////////////////////////////////////////////////////
                              STRUCT HASHES
    //////////////////////////////////////////////////////////////*/

    /// @notice The EIP-712 struct hash of a compute request.
    function hash(ComputeRequest memory m) internal pure returns (bytes32) {
        return
            keccak256(
                abi.encode(COMPUTE_REQUEST_TYPEHASH, m.user, m.modelId, m.tokenMax, m.nonce, m.deadline)
            );
    }

    /// @notice The EIP-712 struct hash of an assignment (the endpoint string is hashed, as EIP-712 says).
    function hash(Assignment memory m) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                ASSIGNMENT_TYPEHASH,
                m.sessionId,
                m.provider,
                keccak256(bytes(m.endpoint)),
                m.modelId,
                m.tokenMax,
                m.pricePerToken,
                m.expiresAt
            )
        );
    }

    /// @notice The EIP-712 struct hash of a usage report.
    function hash(UsageReport memory m) internal pure returns (bytes32) {
        return
            keccak256(
                abi.encode(USAGE_REPORT_TYPEHASH, m.sessionId, m.tokens, m.ttftMs, m.durationMs, m.passed)
            );
    }

    /// @notice The EIP-712 struct hash of a credit voucher.
    function hash(CreditVoucher memory m) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                CREDIT_VOUCHER_TYPEHASH,
                m.router,
                m.provider,
                m.cumulativeAmount,
                m.cumulativeBootstrap,
                m.cumulativeTokens,
                m.sessions,
                m.failed,
                m.issuedAt
            )
        );
    }

    /// @notice The EIP-712 struct hash of a credit voucher read straight from calldata (the claim's hot path).
    /// @dev A calldata `CreditVoucher` is eight static words, laid out exactly as `abi.encode` would lay them
    /// out, so they are copied after the type hash in scratch memory and hashed in place. The addresses are
    /// hashed as given: ABI decoding has already rejected dirty upper bits when the struct was accessed.
    function hashCalldata(CreditVoucher calldata m) internal pure returns (bytes32 digest) {
        // Reading the addresses makes the compiler validate their upper bits before we hash raw calldata.
        address router = m.router;
        address provider = m.provider;
        bytes32 typehash = CREDIT_VOUCHER_TYPEHASH;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, typehash)
            calldatacopy(add(ptr, 0x20), m, 0x100)
            mstore(add(ptr, 0x20), router)
            mstore(add(ptr, 0x40), provider)
            digest := keccak256(ptr, 0x120)
        }
    }

    /// @notice The EIP-712 struct hash of a liveness challenge.
    function hash(LivenessChallenge memory m) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                LIVENESS_CHALLENGE_TYPEHASH, m.challengeId, m.provider, m.modelId, m.chunkIndex, m.deadline
            )
        );
    }

    /// @notice The EIP-712 struct hash of a liveness response.
    function hash(LivenessResponse memory m) internal pure returns (bytes32) {
        return keccak256(abi.encode(LIVENESS_RESPONSE_TYPEHASH, m.challengeId, m.chunkHash));
    }

    /// @notice The EIP-712 struct hash of a service receipt.
    function hash(ServiceReceipt memory m) internal pure returns (bytes32) {
        return keccak256(abi.encode(SERVICE_RECEIPT_TYPEHASH, m.sessionId, m.tokens));
    }

    /// @notice The EIP-712 struct hash of a receipt request: an array member is the hash of its elements'
    /// struct hashes, concatenated.
    function hash(ReceiptRequest memory m) internal pure returns (bytes32) {
        uint256 count = m.assignments.length;
        bytes32[] memory hashes = new bytes32[](count);
        for (uint256 i; i < count; ++i) {
            hashes[i] = hash(m.assignments[i]);
        }
        return keccak256(abi.encode(RECEIPT_REQUEST_TYPEHASH, keccak256(abi.encodePacked(hashes))));
    }

    /// @notice The EIP-712 struct hash of a provider's receipts for several sessions.
    function hash(ServiceReceipts memory m) internal pure returns (bytes32) {
        uint256 count = m.receipts.length;
        bytes32[] memory hashes = new bytes32[](count);
        for (uint256 i; i < count; ++i) {
            hashes[i] = hash(m.receipts[i]);
        }
        return keccak256(abi.encode(SERVICE_RECEIPTS_TYPEHASH, keccak256(abi.encodePacked(hashes))));
    }

    /// @notice The EIP-712 struct hash of a model claim.
    function hash(ModelClaim memory m) internal pure returns (bytes32) {
        return keccak256(abi.encode(MODEL_CLAIM_TYPEHASH, m.provider, m.modelId, m.merkleRoot));
    }
}
