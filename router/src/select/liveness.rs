//! The checks before an assignment: the provider's endpoint must be one the router contacts
//! ([`endpoint`](super::endpoint)), and the provider must prove a random chunk of the model against
//! its on-chain root, with the bytes of a random piece of that chunk. Candidates are checked
//! concurrently, in selection order, under one deadline per request; a failure is remembered for
//! a cool-down, so a provider that hangs or refuses costs the requests after it nothing.
//! Requests that need the same provider's proof while one of its challenges is in flight wait
//! for that challenge's answer rather than send their own (one challenge in flight per
//! provider, endpoint and model): under load a provider answers one challenge per round trip,
//! not one per request, and each request is still served on an answer that came after it did.
//!
//! What the router's client is told is its own words: who failed and the kind of failure
//! (timeout, could not connect, status N, bad proof, ...), never the provider's text.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use alloy::{
    primitives::{Address, B256, U256},
    signers::local::Secp256k1Signer,
    sol_types::Eip712Domain,
    transports::http::reqwest,
};
use morpheus_sdk::{
    TransportKind,
    contracts::Model,
    messages::{LivenessChallenge, Signed},
    provider::ProviderClient,
};
use tokio::task::JoinSet;
use tracing::{debug, info};

use super::{Candidate, endpoint};
use crate::{Error, Result, RouterConfig, metrics::Metrics, service::unix_now};

/// The checks and what they remember, shared by every request of a running router.
#[derive(Debug, Clone)]
pub(crate) struct Checks(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    /// The one client every liveness check goes through (see [`Checks::new`]).
    http: reqwest::Client,
    domain: Eip712Domain,
    signer: Secp256k1Signer,
    liveness: bool,
    timeout: Duration,
    deadline: Duration,
    concurrency: usize,
    cooldown: Duration,
    allow_private: bool,
    /// The last failed check per (provider, endpoint), until its cool-down ends. A new endpoint
    /// is a new key: a provider that moves is checked at once.
    failed: Mutex<HashMap<(Address, String), Failure>>,
    /// How long a passed liveness proof stands for the same provider, endpoint and model.
    pass_ttl: Duration,
    /// When each (provider, endpoint, model) last proved its weights; only while `pass_ttl`.
    passed: Mutex<HashMap<(Address, String, B256), Instant>>,
    /// The challenge in flight per (provider, endpoint, model): its answer, once it is in.
    in_flight: Mutex<HashMap<ProofKey, InFlight>>,
    /// Where the challenges sent are counted.
    metrics: Arc<Metrics>,
}

/// Whose proof: the provider, its endpoint and the model.
type ProofKey = (Address, String, B256);

/// A challenge's outcome as every request waiting on it sees it: `None` until it is answered.
type InFlight = tokio::sync::watch::Receiver<Option<std::result::Result<(), String>>>;

/// A challenge's place in [`Inner::in_flight`], given up when its task ends, however it ends.
struct InFlightEntry {
    checks: Checks,
    key: ProofKey,
}

impl Drop for InFlightEntry {
    fn drop(&mut self) {
        self.checks.in_flight().remove(&self.key);
    }
}

#[derive(Debug)]
struct Failure {
    at: Instant,
    reason: String,
}

impl Checks {
    /// The checks with `config`'s settings and one HTTP client to providers: the config's
    /// connect and whole-request timeouts (so a provider that accepts the connection and never
    /// answers costs at most `liveness_timeout`), no redirects (a provider's endpoint is where
    /// the router talks to it, not a pointer elsewhere), and, unless private endpoints are
    /// allowed, a resolver that refuses names resolving to non-public addresses.
    pub(crate) fn new(config: &RouterConfig, metrics: Arc<Metrics>) -> Result<Self> {
        if config.liveness_concurrency == 0 {
            return Err(Error::Config(
                "the liveness concurrency must be at least 1".into(),
            ));
        }
        if config.liveness_timeout.is_zero() || config.liveness_deadline.is_zero() {
            return Err(Error::Config(
                "the liveness timeout and deadline must be above 0".into(),
            ));
        }
        let mut http = reqwest::Client::builder()
            .connect_timeout(config.provider_connect_timeout)
            .timeout(config.liveness_timeout)
            .redirect(reqwest::redirect::Policy::none());
        if !config.allow_private_endpoints {
            http = http.dns_resolver(endpoint::PublicOnly);
        }
        let http = http
            .build()
            .map_err(|e| Error::Config(format!("building the HTTP client to providers: {e}")))?;
        Ok(Self(Arc::new(Inner {
            http,
            domain: config.deployment.domain(),
            signer: config.signer.to_secp256k1(),
            liveness: config.liveness,
            timeout: config.liveness_timeout,
            deadline: config.liveness_deadline,
            concurrency: config.liveness_concurrency,
            cooldown: config.liveness_cooldown,
            allow_private: config.allow_private_endpoints,
            failed: Mutex::default(),
            pass_ttl: config.liveness_ttl,
            passed: Mutex::default(),
            in_flight: Mutex::default(),
            metrics,
        })))
    }

    /// The HTTP client to providers (its timeouts, no redirects, public addresses only unless
    /// private endpoints are allowed), shared with the router's other calls to providers.
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.0.http
    }

    /// The index of the first candidate, in order, that is eligible and passes the checks;
    /// each one passed over adds its reason to `refused`.
    ///
    /// Eligible candidates not in cool-down are checked at most `liveness_concurrency` at a
    /// time, in order; the first in order to pass is taken once every one before it has failed.
    /// When `liveness_deadline` passes first, checks still running count as failed (and are
    /// remembered), those not started as not checked, and the first passed in order is taken.
    pub(crate) async fn pick(
        &self,
        candidates: &[Candidate],
        model: &Model,
        refused: &mut Vec<String>,
    ) -> Option<usize> {
        let deadline = tokio::time::Instant::now() + self.0.deadline;
        let mut outcome: Vec<Option<Result<(), String>>> = candidates
            .iter()
            .map(|c| match &c.excluded {
                Some(why) => Some(Err(why.clone())),
                None => self.cooling(c).map(Err),
            })
            .collect();
        let mut waiting: VecDeque<usize> = (0..candidates.len())
            .filter(|&i| outcome[i].is_none())
            .collect();
        // Dropped on return, which aborts the checks still running.
        let mut running = JoinSet::new();
        let mut checking = HashMap::new();
        let chosen = loop {
            match outcome.iter().position(|o| !matches!(o, Some(Err(_)))) {
                None => break None,
                Some(i) if outcome[i].is_some() => break Some(i),
                Some(_) => {}
            }
            while running.len() < self.0.concurrency
                && let Some(i) = waiting.pop_front()
            {
                let c: &Candidate = &candidates[i];
                let check = self
                    .clone()
                    .check(c.provider, c.endpoint.clone(), model.clone());
                checking.insert(running.spawn(check).id(), i);
            }
            match tokio::time::timeout_at(deadline, running.join_next_with_id()).await {
                Ok(Some(joined)) => {
                    let (id, result) = match joined {
                        Ok((id, result)) => (id, result),
                        Err(e) => (e.id(), Err("the check failed".to_string())),
                    };
                    if let Some(i) = checking.remove(&id) {
                        self.remember(&candidates[i], &result);
                        outcome[i] = Some(result);
                    }
                }
                // Unreachable: an undecided candidate is waiting or running.
                Ok(None) => break None,
                Err(_) => {
                    let cut = format!(
                        "liveness failed: no liveness answer within the {:?} deadline",
                        self.0.deadline
                    );
                    for (_, i) in checking.drain() {
                        let result = Err(cut.clone());
                        self.remember(&candidates[i], &result);
                        outcome[i] = Some(result);
                    }
                    for i in waiting.drain(..) {
                        outcome[i] = Some(Err(format!(
                            "not checked within the {:?} deadline",
                            self.0.deadline
                        )));
                    }
                    break outcome.iter().position(|o| matches!(o, Some(Ok(()))));
                }
            }
        };
        let passed_over = chosen.unwrap_or(candidates.len());
        for (c, o) in candidates.iter().zip(&outcome).take(passed_over) {
            if let Some(Err(why)) = o {
                refused.push(format!("{}: {why}", c.provider));
            }
        }
        chosen
    }

    /// Checks one candidate: its endpoint, then (when on) its liveness, within the timeout.
    async fn check(
        self,
        provider: Address,
        endpoint: String,
        model: Model,
    ) -> std::result::Result<(), String> {
        let timeout = self.0.timeout;
        let checked = async {
            endpoint::check(&endpoint, self.0.allow_private)
                .await
                .map_err(|why| format!("endpoint refused: {why}"))?;
            if self.0.liveness && !self.passed_recently(provider, &endpoint, model.modelId) {
                self.shared_liveness(provider, &endpoint, &model)
                    .await
                    .map_err(|why| format!("liveness failed: {why}"))?;
                self.remember_pass(provider, &endpoint, model.modelId);
            }
            Ok(())
        };
        let result = tokio::time::timeout(timeout, checked)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "liveness failed: no liveness answer within {timeout:?}"
                ))
            });
        if let Err(why) = &result {
            info!(target: "router::select", %provider, reason = %why, "check failed");
        }
        result
    }

    /// The outcome of the provider's challenge in flight for this endpoint and model, or of a
    /// new one when none is. The challenge runs as its own task, so a request that stops waiting
    /// (another candidate passed first, its deadline) leaves it to the others; the entry goes
    /// when the answer is in, so a request arriving after that sends a new challenge.
    async fn shared_liveness(
        &self,
        provider: Address,
        endpoint: &str,
        model: &Model,
    ) -> std::result::Result<(), String> {
        let key: ProofKey = (provider, endpoint.to_string(), model.modelId);
        let mut answer = {
            let mut in_flight = self.in_flight();
            match in_flight.get(&key) {
                Some(answer) => answer.clone(),
                None => {
                    let (tx, rx) = tokio::sync::watch::channel(None);
                    in_flight.insert(key.clone(), rx.clone());
                    let (checks, endpoint, model) =
                        (self.clone(), endpoint.to_string(), model.clone());
                    tokio::spawn(async move {
                        // Out of the map before the answer is out (or if the task ends some
                        // other way): a request that finds no entry challenges anew.
                        let entry = InFlightEntry {
                            checks: checks.clone(),
                            key,
                        };
                        let timeout = checks.0.timeout;
                        let started = Instant::now();
                        let result = tokio::time::timeout(
                            timeout,
                            checks.liveness(provider, &endpoint, &model),
                        )
                        .await
                        .unwrap_or_else(|_| Err(format!("no liveness answer within {timeout:?}")));
                        checks.0.metrics.liveness.add(started.elapsed());
                        drop(entry);
                        let _ = tx.send(Some(result));
                    });
                    rx
                }
            }
        };
        let outcome = answer
            .wait_for(Option::is_some)
            .await
            .map(|o| o.clone())
            .unwrap_or(None);
        outcome.unwrap_or_else(|| Err("the check failed".to_string()))
    }

    fn in_flight(&self) -> MutexGuard<'_, HashMap<ProofKey, InFlight>> {
        self.0
            .in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Challenges `provider` for one random chunk of the model (and, through the challenge id,
    /// one piece of it) and checks the answer against the on-chain root and chunk count. `Err`
    /// is the kind of failure, in the router's words.
    async fn liveness(
        &self,
        provider: Address,
        endpoint: &str,
        model: &Model,
    ) -> std::result::Result<(), String> {
        let Inner {
            http,
            domain,
            signer,
            timeout,
            ..
        } = &*self.0;
        let chunks = model.chunkCount.max(U256::from(1));
        let challenge = LivenessChallenge {
            challengeId: B256::from(rand::random::<[u8; 32]>()),
            provider,
            modelId: model.modelId,
            chunkIndex: U256::from_be_bytes(rand::random::<[u8; 32]>()) % chunks,
            deadline: U256::from(unix_now() + timeout.as_secs().max(1) * 2),
        };
        let signed = Signed::sign(challenge.clone(), domain, signer)
            .map_err(|_| "the router could not sign the challenge".to_string())?;
        let client = ProviderClient::with_client(endpoint, http.clone())
            .map_err(|_| "not an http(s) URL".to_string())?;
        // Bounded by the shared client's timeouts, and the answer by the SDK's read limit.
        let proof = client.liveness(&signed).await.map_err(|e| {
            debug!(target: "router::select", %provider, error = %e, "liveness answer");
            answer_failure(&e, *timeout)
        })?;
        // The tree's shape comes from the registry (`getModel`, read with the root), never from
        // the provider; a count beyond u64 matches no proof.
        let chunk_count = model.chunkCount.try_into().unwrap_or(u64::MAX);
        proof
            .verify(&challenge, model.merkleRoot, chunk_count, domain)
            .map_err(|e| proof_failure(&e))?;
        debug!(target: "router::select", %provider, chunk = %challenge.chunkIndex, piece = proof.piece.index, "liveness ok");
        Ok(())
    }

    /// Whether the provider proved the model's weights at this endpoint within `liveness_ttl`.
    fn passed_recently(&self, provider: Address, endpoint: &str, model: B256) -> bool {
        !self.0.pass_ttl.is_zero()
            && self
                .passes()
                .get(&(provider, endpoint.to_string(), model))
                .is_some_and(|at| at.elapsed() < self.0.pass_ttl)
    }

    fn remember_pass(&self, provider: Address, endpoint: &str, model: B256) {
        if self.0.pass_ttl.is_zero() {
            return;
        }
        let ttl = self.0.pass_ttl;
        let mut passed = self.passes();
        passed.retain(|_, at| at.elapsed() < ttl);
        passed.insert((provider, endpoint.to_string(), model), Instant::now());
    }

    fn passes(&self) -> MutexGuard<'_, HashMap<(Address, String, B256), Instant>> {
        self.0
            .passed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The refusal of a candidate whose last check failed within the cool-down.
    fn cooling(&self, c: &Candidate) -> Option<String> {
        let failed = self.failed();
        let f = failed.get(&(c.provider, c.endpoint.clone()))?;
        let left = self.0.cooldown.checked_sub(f.at.elapsed())?;
        Some(format!(
            "{} (not re-checked for {}s more)",
            f.reason,
            left.as_secs().max(1)
        ))
    }

    /// Remembers a failed check for the cool-down; a passed one clears the provider's failure.
    fn remember(&self, c: &Candidate, result: &std::result::Result<(), String>) {
        let key = (c.provider, c.endpoint.clone());
        let mut failed = self.failed();
        match result {
            Ok(()) => {
                failed.remove(&key);
            }
            Err(reason) => {
                // A failure ends a standing pass at once, for every model at this endpoint.
                self.passes()
                    .retain(|(p, e, _), _| !(*p == c.provider && *e == c.endpoint));
                let cooldown = self.0.cooldown;
                failed.retain(|_, f| f.at.elapsed() < cooldown);
                if !cooldown.is_zero() {
                    let reason = reason.clone();
                    failed.insert(
                        key,
                        Failure {
                            at: Instant::now(),
                            reason,
                        },
                    );
                }
            }
        }
    }

    fn failed(&self) -> MutexGuard<'_, HashMap<(Address, String), Failure>> {
        // A panic while holding the lock leaves the map whole: keep using it.
        self.0
            .failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Why a liveness answer was not a proof, from the SDK's error: its status or its kind of
/// transport failure, never the provider's text.
fn answer_failure(e: &morpheus_sdk::Error, timeout: Duration) -> String {
    match e {
        morpheus_sdk::Error::Http { status, .. } => format!("status {status}"),
        morpheus_sdk::Error::Transport { kind, .. } => match kind {
            TransportKind::Connect => "could not connect".into(),
            TransportKind::Timeout => format!("no liveness answer within {timeout:?}"),
            TransportKind::TooLarge { limit } => format!("answer over {limit} bytes"),
            TransportKind::BadAnswer => "not a liveness answer".into(),
            _ => "the request failed".into(),
        },
        _ => "not a liveness answer".into(),
    }
}

/// Why a proof does not hold, naming the check that failed, not the values the provider sent.
fn proof_failure(e: &morpheus_sdk::Error) -> String {
    match e {
        morpheus_sdk::Error::Mismatch { field, .. } => format!("bad proof: wrong {field}"),
        morpheus_sdk::Error::ModelProof(_) => "bad proof: not a chunk of the model".into(),
        _ => "bad proof: not signed by the provider".into(),
    }
}
