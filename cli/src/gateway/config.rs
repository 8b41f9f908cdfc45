//! The gateway's settings: where the network is, whose key signs, and the timeouts and
//! defaults of one chat request.

use std::{path::PathBuf, time::Duration};

use alloy::signers::local::PrivateKeySigner;
use morpheus_sdk::{Deployment, router::Preferences};

/// Everything [`Gateway::connect`](super::Gateway::connect) needs. Build it with
/// [`GatewayConfig::new`] and change the fields that differ from the defaults.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// JSON-RPC URL of the chain (model names are read from `ProviderRegistry`).
    pub rpc_url: String,
    /// Base URL of the `morpheus-router` that assigns providers and takes the reports.
    pub router_url: String,
    /// The protocol's deployed addresses.
    pub deployment: Deployment,
    /// The user's key: it signs every `ComputeRequest` and `UsageReport`.
    pub signer: PrivateKeySigner,
    /// The SQLite file of signed usage reports not yet accepted by the router (created when
    /// missing).
    pub outbox: PathBuf,
    /// Completion tokens a session is sized for when the request names no `max_tokens` (or
    /// `max_completion_tokens`).
    pub default_max_tokens: u32,
    /// The most tokens (prompt and completion) one session asks for: the largest context the
    /// gateway expects a model to have. A request asking for more is sized down to it.
    pub max_session_tokens: u64,
    /// Seconds to connect to a provider before it counts as failed (and another is asked for).
    pub connect_timeout: Duration,
    /// How long a provider may take from the request to its first token before it counts as
    /// failed and another is asked for. Prompt processing of a long prompt is in it.
    pub first_token_timeout: Duration,
    /// The longest pause between two chunks of an answer before it counts as cut. A
    /// reasoning model streams its thinking, so this bounds silence, not the answer's length.
    pub idle_timeout: Duration,
    /// The longest a whole answer may take; `None` (the default) never cuts a long answer.
    pub answer_timeout: Option<Duration>,
    /// Providers tried for one request (the first and the fail-overs).
    pub max_attempts: u32,
    /// Seconds a signed `ComputeRequest` stays valid (the router may queue it meanwhile).
    pub request_deadline: Duration,
    /// How long the list of models read from the chain is reused.
    pub models_ttl: Duration,
    /// The longest reading the chain (connecting, then the model list) may take before the
    /// request is answered 502.
    pub chain_timeout: Duration,
    /// How often reports left in the outbox are sent again.
    pub outbox_retry_interval: Duration,
    /// How the router is asked to choose providers (order, highest price); the gateway adds the
    /// providers that failed this request to `exclude`.
    pub preferences: Preferences,
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// The most choices (`n`) one request may ask for: they are sequences of one session, sized
    /// (`tokenMax`) for each one's completion. A provider serves at most its batch.
    pub max_choices: u32,
}

impl GatewayConfig {
    /// The defaults: 512 completion tokens, sessions of at most 131,072 tokens, 5 s to connect
    /// to a provider, 60 s to its first token, 300 s of silence, no limit on the answer's
    /// length, 3 providers per request, requests valid 60 s, models re-read every 60 s (30 s to
    /// read them), the
    /// outbox retried every 30 s, the router's default order, 8 MiB bodies, at most 8 choices.
    pub fn new(
        rpc_url: impl Into<String>,
        router_url: impl Into<String>,
        deployment: Deployment,
        signer: PrivateKeySigner,
        outbox: impl Into<PathBuf>,
    ) -> Self {
        Self {
            rpc_url: rpc_url.into(),
            router_url: router_url.into(),
            deployment,
            signer,
            outbox: outbox.into(),
            default_max_tokens: 512,
            max_session_tokens: 131_072,
            connect_timeout: Duration::from_secs(5),
            first_token_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(300),
            answer_timeout: None,
            max_attempts: 3,
            request_deadline: Duration::from_secs(60),
            models_ttl: Duration::from_secs(60),
            chain_timeout: Duration::from_secs(30),
            outbox_retry_interval: Duration::from_secs(30),
            preferences: Preferences::default(),
            max_body_bytes: 8 << 20,
            max_choices: 8,
        }
    }
}
