//! The protocol's signed messages, bound from `contracts/libraries/Messages.sol`.
//!
//! Every message is EIP-712 typed data under the domain
//! `{name: "Morpheus Compute", version: "1", chainId, verifyingContract: SessionRouter}`
//! (a model claim uses the `ProviderRegistry` as verifying contract). The type strings below are
//! the contract's own, so the SDK and the contracts hash every message identically; the
//! integration tests check that against the deployed contracts.
//!
//! JSON forms (used over HTTP) keep the Solidity field names; `uint256` values are hex strings
//! (`"0x3e8"`), `bytes32` and addresses are `0x`-prefixed hex. A signed message travels as
//! `{"message": {...}, "signature": "0x<65 bytes r||s||v>"}` (see [`Signed`]).

mod domain;
mod signed;

pub use domain::{DOMAIN_NAME, DOMAIN_VERSION, protocol_domain, registry_domain};
pub use signed::Signed;

alloy::sol! {
    /// A user's request for compute, sent to the router.
    #[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    struct ComputeRequest {
        /// The user asking; must be the signer.
        address user;
        /// The registered model the user wants.
        bytes32 modelId;
        /// Most tokens (prompt + completion) the session may use.
        uint256 tokenMax;
        /// Per-user number used once (replay protection).
        uint256 nonce;
        /// Unix time (seconds) after which the router refuses the request.
        uint256 deadline;
    }

    /// The router's answer to a request: which provider serves the session, on what terms. It
    /// does not name the user: the provider needs only the session (the router binds it to its
    /// user), so a provider learns no more of a user than the connection shows.
    #[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    struct Assignment {
        /// Unique id of the session.
        bytes32 sessionId;
        /// The provider that must serve it.
        address provider;
        /// The provider's OpenAI-compatible endpoint (base URL).
        string endpoint;
        /// The model to serve.
        bytes32 modelId;
        /// Most tokens the provider may serve in this session.
        uint256 tokenMax;
        /// MOR (wei) credited per token served.
        uint256 pricePerToken;
        /// Unix time (seconds) after which the provider must refuse the assignment.
        uint256 expiresAt;
    }

    /// The user's report on a finished session, sent to the router.
    #[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    struct UsageReport {
        /// The session reported on.
        bytes32 sessionId;
        /// Tokens the provider served (prompt + completion).
        uint256 tokens;
        /// Time to first token, milliseconds.
        uint256 ttftMs;
        /// Whole answer duration, milliseconds.
        uint256 durationMs;
        /// Whether the user accepts the answer.
        bool passed;
    }

    /// A router's cumulative statement of what it owes a provider; only the newest one matters.
    #[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    struct CreditVoucher {
        /// The router signer that issued it.
        address router;
        /// The provider credited.
        address provider;
        /// Total MOR (wei) ever credited to the provider by this router.
        uint256 cumulativeAmount;
        /// Total bootstrap-reserve MOR (wei) ever credited to the provider by this router.
        uint256 cumulativeBootstrap;
        /// Total tokens served.
        uint256 cumulativeTokens;
        /// Total sessions served.
        uint256 sessions;
        /// Total sessions that failed (user fail or too slow).
        uint256 failed;
        /// Unix time (seconds) the voucher was issued.
        uint256 issuedAt;
    }

    /// The router's liveness check: the provider must return the hash of one chunk of the model.
    #[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    struct LivenessChallenge {
        /// Unique id of the challenge.
        bytes32 challengeId;
        /// The provider challenged.
        address provider;
        /// The model the provider claims to serve.
        bytes32 modelId;
        /// Which 1 MiB chunk of the model file to prove.
        uint256 chunkIndex;
        /// Unix time (seconds) after which the challenge is void.
        uint256 deadline;
    }

    /// The provider's answer to a [`LivenessChallenge`]; the Merkle proofs and the challenged
    /// piece's bytes travel beside it (`provider::LivenessProof`).
    #[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    struct LivenessResponse {
        /// The challenge answered.
        bytes32 challengeId;
        /// The requested chunk's leaf in the model tree: the root of its piece tree.
        bytes32 chunkHash;
    }

    /// The provider's signed count of the tokens it charged a session (prompt and completion,
    /// over all of the session's requests). Final: once a provider has signed it, it serves the
    /// session no more, so the count cannot grow afterwards. The router refunds a user's
    /// reservation only against it (docs/protocol.md, Router, "tokens counted").
    #[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    struct ServiceReceipt {
        /// The session counted.
        bytes32 sessionId;
        /// Tokens the provider charged the session, at most its `tokenMax`.
        uint256 tokens;
    }

    /// A router's request for the receipts of several sessions at once, all assigned to one
    /// provider for one model: their assignments, signed once together. The provider closes
    /// each session and answers with one signed [`ServiceReceipts`], so under load a receipt
    /// costs each side one signature per batch rather than one per session.
    #[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    struct ReceiptRequest {
        /// The sessions' assignments, as the router issued them.
        Assignment[] assignments;
    }

    /// A provider's signed counts for the sessions of a [`ReceiptRequest`], in its order; each
    /// entry means what one [`ServiceReceipt`] means.
    #[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    struct ServiceReceipts {
        /// One receipt per assignment of the request, in the request's order.
        ServiceReceipt[] receipts;
    }

    /// A provider's signed statement that it holds a model's weights (the model's Merkle root).
    #[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    struct ModelClaim {
        /// The provider making the claim.
        address provider;
        /// The model claimed.
        bytes32 modelId;
        /// The model's registered Merkle root.
        bytes32 merkleRoot;
    }
}
