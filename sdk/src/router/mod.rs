//! The router's HTTP API, shared by the `morpheus-router` service and [`RouterClient`].
//!
//! | route | body | answer |
//! |---|---|---|
//! | `POST /v1/compute` | `Signed<ComputeRequest>` (user-signed) | `Signed<Assignment>` (router-signed) |
//! | `POST /v1/usage` | `Signed<UsageReport>` (signed by the session's user) | [`UsageReceipt`] |
//! | `GET /v1/vouchers/{provider}` | | the newest `Signed<CreditVoucher>`; 404 until a session of it is reported |
//! | `GET /v1/providers?model=0x..` | | [`ProviderList`] |
//! | `GET /v1/allowance/{user}` | | [`Allowance`] |
//!
//! Refusals are 4xx with the OpenAI error body [`crate::openai::ErrorBody`]
//! (`{"error": {"message", "type", "code"}}`); the message names what was wrong. Field names are
//! camelCase and `uint256` values `0x` hex strings, as in the signed messages.

mod client;

use alloy::primitives::{Address, B256, U256};
pub use client::RouterClient;
use serde::{Deserialize, Serialize};

/// What the router made of a usage report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The provider is credited `tokens * pricePerToken`.
    Credited,
    /// The user reported the session as failed: no credit, counts against the provider's record.
    Failed,
    /// The provider's ms per token was more than the router's threshold above the model's recent
    /// mean: no credit, counts against the provider's record.
    Slow,
    /// The user reported the session failed, but under the router's fail policy (`by-stake`) its
    /// stake does not exceed the provider's: credited, and counts against the provider's record.
    Disputed,
}

/// `POST /v1/usage` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageReceipt {
    /// The session reported on.
    pub session_id: B256,
    /// The provider that served it.
    pub provider: Address,
    /// Credited, failed or slow.
    pub outcome: Outcome,
    /// Tokens reported, capped at the session's `tokenMax`; a credited report earns
    /// `tokens * pricePerToken`.
    pub tokens: U256,
    /// MOR (wei) credited to the provider for this session (0 unless credited).
    pub amount: U256,
    /// Why, in words (the measured and allowed ms per token for a slow report).
    pub detail: String,
    /// The provider's signed count of the session's tokens (its `ServiceReceipt`), when the
    /// router got it with the report; `None` while it has not answered.
    #[serde(default)]
    pub provider_count: Option<U256>,
    /// What the session takes from the user's allowance today: the whole `tokenMax` until the
    /// provider's signed count says less (docs/protocol.md, Router, "tokens counted").
    #[serde(default)]
    pub counted: U256,
}

/// A provider's record at this router.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderStats {
    /// Sessions reported.
    pub sessions: u64,
    /// Sessions that earned nothing (user fail or too slow).
    pub failed: u64,
    /// Tokens counted over all reported sessions.
    pub tokens: u64,
    /// MOR (wei) credited in all.
    pub amount: U256,
    /// Mean ms per token over the provider's recent reports, if it has any.
    pub ms_per_token: Option<f64>,
    /// Whether its recent record is bad enough that it is picked only when no other provider is live.
    pub bad_record: bool,
}

/// One provider with a bid for a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderInfo {
    /// The provider's address.
    pub provider: Address,
    /// Its OpenAI-compatible endpoint, from `ProviderRegistry`.
    pub endpoint: String,
    /// Its bid: MOR (wei) per token.
    pub price_per_token: U256,
    /// Its bid: concurrent sessions.
    pub capacity: U256,
    /// Sessions assigned to it that are neither reported nor expired.
    pub open_sessions: u64,
    /// Its record at this router.
    pub record: ProviderStats,
}

/// `GET /v1/providers?model=..` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderList {
    /// The model asked about.
    pub model_id: B256,
    /// Registered providers with an active bid for it, cheapest first.
    pub providers: Vec<ProviderInfo>,
}

/// `GET /v1/allowance/{user}` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Allowance {
    /// The user.
    pub user: Address,
    /// The UTC day (chain time / 86400) the figures are for.
    pub day: u64,
    /// `SessionRouter.routerUserMax(router, user)`: the tokens this router may grant the user
    /// today (its share of `userMax`; all of it with the whole budget's share).
    pub user_max: U256,
    /// Tokens counted today: each session's `tokenMax` until the provider's signed count says
    /// less (docs/protocol.md, Router, "tokens counted").
    pub used: U256,
    /// `userMax - used` (0 when the stake fell below what is used).
    pub remaining: U256,
}
