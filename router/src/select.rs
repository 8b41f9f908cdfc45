//! Picking a provider: the cheapest live bid among registered, whitelisted providers with a
//! model claim, free capacity and a good record; ties by latency record, then at random.

use std::{cmp::Ordering, time::Duration};

use alloy::{
    primitives::{Address, B256, U256},
    signers::local::PrivateKeySigner,
    sol_types::Eip712Domain,
    transports::http::reqwest,
};
use morpheus_sdk::{
    contracts::{Bid, Model, ProviderRegistryClient},
    messages::{LivenessChallenge, Signed},
    provider::ProviderClient,
    router::ProviderStats,
};
use tracing::{debug, info};

use crate::{Error, Result, RouterConfig, service::unix_now, store::Standing};

/// `ProviderStatus.Active` in `IProviderRegistry`.
const STATUS_ACTIVE: u8 = 1;
/// Bids read per registry call.
const PAGE: u64 = 100;

/// A provider with an active bid for the model.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    pub(crate) provider: Address,
    pub(crate) endpoint: String,
    pub(crate) price_per_token: U256,
    pub(crate) capacity: U256,
    pub(crate) record: ProviderStats,
    /// Its sessions neither reported nor expired.
    pub(crate) open_sessions: u64,
    /// Why it may not be picked now (not registered, no claim, full); `None` when eligible.
    pub(crate) excluded: Option<String>,
    tiebreak: u64,
}

impl Candidate {
    /// Selection order: eligible first, good record before bad, cheaper, faster, random.
    fn order(&self, other: &Self) -> Ordering {
        let speed = |c: &Self| c.record.ms_per_token.unwrap_or(f64::INFINITY);
        self.excluded
            .is_some()
            .cmp(&other.excluded.is_some())
            .then(self.record.bad_record.cmp(&other.record.bad_record))
            .then(self.price_per_token.cmp(&other.price_per_token))
            .then(speed(self).total_cmp(&speed(other)))
            .then(self.tiebreak.cmp(&other.tiebreak))
    }
}

/// The model's registry entry; an unregistered id is [`Error::UnknownModel`].
pub(crate) async fn model(registry: &ProviderRegistryClient, model_id: B256) -> Result<Model> {
    match registry.model(model_id).await {
        Ok(m) if m.merkleRoot != B256::ZERO => Ok(m),
        Ok(_) | Err(morpheus_sdk::Error::Reverted(_)) => Err(Error::UnknownModel(model_id)),
        Err(e) => Err(e.into()),
    }
}

/// Every active bid for `model_id`.
pub(crate) async fn bids(registry: &ProviderRegistryClient, model_id: B256) -> Result<Vec<Bid>> {
    let mut bids = Vec::new();
    loop {
        let page = registry
            .bids_for_model(model_id, bids.len() as u64, PAGE)
            .await?;
        let done = (page.len() as u64) < PAGE;
        bids.extend(page);
        if done {
            break;
        }
    }
    Ok(bids)
}

/// The bidders for `model_id` with their standing in the router's store, in selection order.
pub(crate) async fn candidates(
    registry: &ProviderRegistryClient,
    model_id: B256,
    bids: impl IntoIterator<Item = (Bid, Standing)>,
) -> Result<Vec<Candidate>> {
    let whitelist_on = registry.whitelist_active().await?;
    let mut out = Vec::new();
    for (bid, standing) in bids {
        let info = registry.provider(bid.provider).await?;
        let open = standing.open_sessions;
        let excluded = if info.status != STATUS_ACTIVE {
            Some("not a registered provider".to_string())
        } else if whitelist_on && !registry.is_whitelisted(bid.provider).await? {
            Some("not whitelisted".to_string())
        } else if !registry.has_model_claim(bid.provider, model_id).await? {
            Some("no model claim".to_string())
        } else if U256::from(open) >= bid.capacity {
            Some(full_reason(open, bid.capacity))
        } else {
            None
        };
        out.push(Candidate {
            provider: bid.provider,
            endpoint: info.endpoint,
            price_per_token: bid.pricePerToken,
            capacity: bid.capacity,
            record: standing.record,
            open_sessions: open,
            excluded,
            tiebreak: rand::random(),
        });
    }
    out.sort_by(Candidate::order);
    Ok(out)
}

/// The router's one HTTP client to providers, shared by every liveness check: one connection
/// pool, and the config's connect and whole-request timeouts, so that a provider that accepts
/// the connection and never answers costs at most `liveness_timeout`. It follows no redirects:
/// a provider's endpoint is where the router talks to it, not a pointer elsewhere.
pub(crate) fn provider_http(config: &RouterConfig) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(config.provider_connect_timeout)
        .timeout(config.liveness_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| Error::Config(format!("building the HTTP client to providers: {e}")))
}

/// What a liveness check needs: the shared client, the domain and signer of the challenge, and
/// the timeout the client enforces (the challenge's deadline is twice it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Liveness<'a> {
    pub(crate) http: &'a reqwest::Client,
    pub(crate) domain: &'a Eip712Domain,
    pub(crate) signer: &'a PrivateKeySigner,
    pub(crate) timeout: Duration,
}

/// Challenges a provider for one random chunk of the model and checks the proof against the
/// on-chain root. `Err` says why the provider is not live.
pub(crate) async fn check_liveness(
    candidate: &Candidate,
    model: &Model,
    check: Liveness<'_>,
) -> std::result::Result<(), String> {
    let Liveness {
        http,
        domain,
        signer,
        timeout,
    } = check;
    let chunks = model.chunkCount.max(U256::from(1));
    let challenge = LivenessChallenge {
        challengeId: B256::from(rand::random::<[u8; 32]>()),
        provider: candidate.provider,
        modelId: model.modelId,
        chunkIndex: U256::from_be_bytes(rand::random::<[u8; 32]>()) % chunks,
        deadline: U256::from(unix_now() + timeout.as_secs().max(1) * 2),
    };
    let signed = Signed::sign(challenge.clone(), domain, signer).map_err(|e| e.to_string())?;
    let client = ProviderClient::with_client(&candidate.endpoint, http.clone())
        .map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    // Bounded by the shared client's timeouts (provider_http).
    let proof = client.liveness(&signed).await.map_err(|e| {
        if started.elapsed() >= timeout {
            format!("no liveness answer within {timeout:?} ({e})")
        } else {
            e.to_string()
        }
    })?;
    proof
        .verify(&challenge, model.merkleRoot, domain)
        .map_err(|e| e.to_string())?;
    debug!(target: "router::select", provider = %candidate.provider, chunk = %challenge.chunkIndex, "liveness ok");
    Ok(())
}

fn full_reason(open: u64, capacity: U256) -> String {
    format!("full ({open} open sessions, capacity {capacity})")
}

/// Why `provider` was refused when [`Store::book`](crate::store::Store::book) found it full.
pub(crate) fn full(provider: Address, open: u64, capacity: U256) -> String {
    format!("{provider}: {}", full_reason(open, capacity))
}

/// Walks the candidates in order and returns the index of the first eligible one that passes
/// liveness (the first eligible one when `liveness` is `None`); each one passed over adds its
/// reason to `refused`.
pub(crate) async fn pick(
    candidates: &[Candidate],
    model: &Model,
    liveness: Option<Liveness<'_>>,
    refused: &mut Vec<String>,
) -> Option<usize> {
    for (i, c) in candidates.iter().enumerate() {
        if let Some(why) = &c.excluded {
            refused.push(format!("{}: {why}", c.provider));
            continue;
        }
        if let Some(check) = liveness
            && let Err(why) = check_liveness(c, model, check).await
        {
            info!(target: "router::select", provider = %c.provider, reason = %why, "liveness failed");
            refused.push(format!("{}: liveness failed: {why}", c.provider));
            continue;
        }
        return Some(i);
    }
    None
}

/// The refusal when no candidate could be assigned, with each one's reason.
pub(crate) fn no_provider(model: B256, refused: Vec<String>) -> Error {
    Error::NoProvider {
        model,
        reason: if refused.is_empty() {
            "no active bids".into()
        } else {
            refused.join("; ")
        },
    }
}
