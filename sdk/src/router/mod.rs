//! The router's HTTP API, shared by the `morpheus-router` service and [`RouterClient`].
//!
//! | route | body | answer |
//! |---|---|---|
//! | `POST /v1/compute` | [`ComputeBody`]: `Signed<ComputeRequest>` (user-signed), optionally with [`Preferences`] | `Signed<Assignment>` (router-signed) |
//! | `POST /v1/usage` | `Signed<UsageReport>` (signed by the session's user) | [`UsageReceipt`] |
//! | `GET /v1/vouchers/{provider}` | | the newest `Signed<CreditVoucher>`; 404 until a session of it is reported |
//! | `GET /v1/providers?model=0x..` | | [`ProviderList`] |
//! | `GET /v1/allowance/{user}` | | [`Allowance`] |
//! | `GET /metrics` | | Prometheus text: the queue of requests waiting for capacity |
//!
//! Refusals are 4xx with the OpenAI error body [`crate::openai::ErrorBody`]
//! (`{"error": {"message", "type", "code"}}`); the message names what was wrong. Field names are
//! camelCase and `uint256` values `0x` hex strings, as in the signed messages.

mod client;

use alloy::primitives::{Address, B256, U256};
pub use client::RouterClient;
use serde::{Deserialize, Serialize};

use crate::messages::{ComputeRequest, Signed};

/// The order a request asks the router to try the model's providers in. In every order,
/// providers with a bad record come after the others.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Cheapest first, then the better reputation score, then the faster (the default).
    #[default]
    Price,
    /// Fastest (lowest mean ms per token on the model) first, then the cheaper; providers
    /// without a measured speed last.
    Speed,
    /// The best reputation score ([`ModelReputation::score`]) first, then the cheaper.
    Reputation,
}

/// What a user may ask of the router's choice, beside its signed request. Not signed: it
/// steers the choice among providers the router would assign anyway, and grants nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Preferences {
    /// The order to try providers in.
    #[serde(default)]
    pub order: Order,
    /// Providers bidding more MOR (wei) per token are not assigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_price_per_token: Option<U256>,
    /// Providers not to assign (a gateway failing over from one that failed before its first
    /// token); at most [`MAX_EXCLUDED`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<Address>,
}

/// The most providers a request may exclude.
pub const MAX_EXCLUDED: usize = 32;

/// `POST /v1/compute` body: the signed request's `message` and `signature`, and optionally
/// `order` and `maxPricePerToken` beside them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComputeBody {
    /// The user's signed request.
    #[serde(flatten)]
    pub request: Signed<ComputeRequest>,
    /// How the user would have the provider chosen.
    #[serde(flatten)]
    pub preferences: Preferences,
}

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
    /// MOR (wei) it has staked in `ProviderRegistry`.
    pub stake: U256,
    /// Its record at this router, over all models.
    pub record: ProviderStats,
    /// Its reputation at this router for this model.
    pub reputation: ModelReputation,
}

/// A provider's reputation for one model at this router (the FAQ's reputation system).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelReputation {
    /// Sessions reported passed and credited.
    pub completed: u64,
    /// Sessions reported failed, judged slow, or disputed (credited under the fail policy but
    /// failed by the user).
    pub failed: u64,
    /// Sessions assigned and never used: expired without a report, and the provider signed
    /// that it served 0 tokens.
    pub cancelled: u64,
    /// MOR (wei) credited for the model in all.
    pub earned: U256,
    /// Mean ms per token over its recent reports on the model, if any had tokens.
    pub ms_per_token: Option<f64>,
    /// Mean time to first token (ms) the users reported over its recent reports on the model.
    pub ttft_ms: Option<f64>,
    /// `(completed + 1) / (completed + failed + 2)`: 0.5 with no history, towards the share
    /// of sessions that passed as they accumulate.
    pub score: f64,
    /// Its bid on the model as this router saw it change, newest first (at most 10).
    pub bids: Vec<BidChange>,
}

/// A bid as the router saw it, from when it first did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BidChange {
    /// MOR (wei) per token.
    pub price_per_token: U256,
    /// Concurrent sessions.
    pub capacity: U256,
    /// When the router first saw the bid at these terms (unix seconds).
    pub seen_at: u64,
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

#[cfg(test)]
mod tests {
    use alloy::{signers::local::PrivateKeySigner, sol_types::eip712_domain};

    use super::*;

    fn signed() -> Signed<ComputeRequest> {
        let domain = eip712_domain! { name: "t", version: "1", chain_id: 1, };
        let signer = PrivateKeySigner::from_bytes(&B256::repeat_byte(7)).expect("key");
        let request = ComputeRequest {
            user: signer.address(),
            modelId: B256::repeat_byte(1),
            tokenMax: U256::from(256),
            nonce: U256::from(1),
            deadline: U256::from(2),
        };
        Signed::sign(request, &domain, &signer).expect("sign")
    }

    #[test]
    fn a_bare_signed_request_is_a_compute_body_with_the_default_preferences() {
        let request = signed();
        let body: ComputeBody =
            serde_json::from_value(serde_json::to_value(&request).expect("json")).expect("body");
        assert_eq!(body.request, request);
        assert_eq!(body.preferences, Preferences::default());
    }

    #[test]
    fn preferences_sit_beside_the_signed_request() {
        let body = ComputeBody {
            request: signed(),
            preferences: Preferences {
                order: Order::Speed,
                max_price_per_token: Some(U256::from(5)),
                exclude: vec![Address::repeat_byte(3)],
            },
        };
        let json = serde_json::to_value(&body).expect("json");
        assert_eq!(json["order"], "speed");
        assert_eq!(json["maxPricePerToken"], "0x5");
        assert_eq!(json["exclude"][0], Address::repeat_byte(3).to_string());
        assert!(json["message"].is_object() && json["signature"].is_string());
        assert_eq!(
            serde_json::from_value::<ComputeBody>(json).expect("back"),
            body
        );
        let bad = serde_json::json!({"order": "fastest"});
        let mut with_bad = serde_json::to_value(signed()).expect("json");
        with_bad["order"] = bad["order"].clone();
        let err = serde_json::from_value::<ComputeBody>(with_bad).expect_err("unknown order");
        assert!(err.to_string().contains("fastest"), "{err}");
    }
}
