//! The SDK's one error type.

use alloy::primitives::{Address, B256, U256};

use crate::contracts::Revert;

/// Everything that can go wrong in the SDK.
///
/// Contract reverts are decoded into [`Revert`], which names the contract's custom error and its
/// arguments (for example `BudgetExhausted { remaining, requested }`) instead of raw hex.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A contract call reverted with one of the protocol's custom errors (or a plain reason).
    #[error("contract reverted: {0}")]
    Reverted(Revert),
    /// The JSON-RPC node could not be reached or answered with an error that is not a revert.
    #[error("rpc error: {0}")]
    Rpc(String),
    /// A transaction was mined but failed without revert data (out of gas, for example).
    #[error("transaction {tx} failed on-chain")]
    TransactionFailed {
        /// Hash of the failed transaction.
        tx: B256,
    },
    /// The node serves a different chain than the one the client was built for.
    #[error("wrong chain: expected chain id {expected}, the node serves {actual}")]
    WrongChain {
        /// Chain id the caller asked for.
        expected: u64,
        /// Chain id the node reported.
        actual: u64,
    },
    /// A signature is not 65 bytes or does not recover to any address.
    #[error("invalid signature: {0}")]
    InvalidSignature(String),
    /// A signature uses the upper half of the curve order for `s` (a malleable copy of a valid one).
    #[error("malleable signature: s = {s} is in the upper half of the curve order")]
    MalleableSignature {
        /// The rejected `s` value.
        s: U256,
    },
    /// A message was signed by someone other than the party it must come from.
    #[error("wrong signer: expected {expected}, recovered {recovered}")]
    WrongSigner {
        /// The address the message must be signed by.
        expected: Address,
        /// The address the signature recovers to.
        recovered: Address,
    },
    /// A message is signed by an address that is not an authorised router signer.
    #[error("{signer} is not an authorised router signer")]
    UnauthorisedRouter {
        /// The address the signature recovers to.
        signer: Address,
    },
    /// A message names another party than the one checking it (an assignment for another
    /// provider, a challenge for another model, ...).
    #[error("{field} mismatch: expected {expected}, the message says {actual}")]
    Mismatch {
        /// Which field differs.
        field: &'static str,
        /// What the checking party expected.
        expected: String,
        /// What the message carries.
        actual: String,
    },
    /// A signed message is past its deadline or expiry.
    #[error("{message} expired at {expired_at} (now {now})")]
    Expired {
        /// Which kind of message expired.
        message: &'static str,
        /// The unix time (seconds) it expired at.
        expired_at: u64,
        /// The unix time (seconds) it was checked at.
        now: u64,
    },
    /// A model file's Merkle proof or root does not match.
    #[error("model proof mismatch: {0}")]
    ModelProof(String),
    /// The deployment description is missing, unreadable or incomplete.
    #[error("deployment: {0}")]
    Deployment(String),
    /// An HTTP peer (router or provider) refused a request; `message` is its reason.
    #[error("{peer} answered {status}: {message}")]
    Http {
        /// Which peer answered.
        peer: &'static str,
        /// HTTP status code.
        status: u16,
        /// The peer's stated reason.
        message: String,
        /// Seconds the peer asked to wait before trying again (its `Retry-After` header, in
        /// seconds), when it sent one: a router whose providers are all busy does.
        retry_after: Option<u64>,
    },
    /// An HTTP peer could not be reached or sent something that is not the protocol's JSON.
    #[error("transport to {peer}: {message}")]
    Transport {
        /// Which peer.
        peer: &'static str,
        /// The kind of failure, for a caller that reports it without the peer's text.
        kind: TransportKind,
        /// What went wrong. It may quote what the peer sent (a decoding error does).
        message: String,
    },
    /// Reading or writing a local file failed.
    #[error("io error on {path}: {source}")]
    Io {
        /// The file involved.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON document did not parse.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

/// What kind of [`Error::Transport`] failure happened, without the peer's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportKind {
    /// The connection could not be made (refused, unreachable, the name does not resolve).
    Connect,
    /// The peer did not answer, or did not finish its answer, in time.
    Timeout,
    /// The answer is longer than the caller reads (`limit` bytes).
    TooLarge {
        /// The most the caller reads.
        limit: usize,
    },
    /// The answer is not what the protocol says (not its JSON, a broken stream).
    BadAnswer,
    /// Anything else: the request could not be built or sent, the connection broke midway.
    Other,
}

/// The SDK's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}
