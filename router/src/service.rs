//! What the router does per request, independent of HTTP.

use std::{
    net::IpAddr,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use alloy::{
    primitives::{Address, B256, U256},
    signers::local::Secp256k1Signer,
    sol_types::Eip712Domain,
};
use futures::StreamExt;
use morpheus_sdk::{
    contracts::Protocol,
    messages::{Assignment, ComputeRequest, CreditVoucher, Signed, UsageReport},
    router::{Allowance, MAX_EXCLUDED, Preferences, ProviderInfo, ProviderList, UsageReceipt},
};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::{
    Error, FailPolicy, Result, RouterConfig,
    booked::Booked,
    chain_index::ChainIndex,
    chain_view::ChainView,
    credit, fail,
    metrics::Metrics,
    queue::{self, WaitQueues},
    rate_limit::Limiter,
    receipts::Receipts,
    reconcile::Counters,
    select::{self, Checks},
    session_id,
    store::{
        self, Booking, NewSession, SessionTerms, Store,
        bootstrap::{BootstrapChain, BootstrapDay},
    },
};

/// Expired sessions asked for their receipts per round of [`AppState::settle_due`].
const SETTLE_BATCH: usize = 64;

/// Providers asked at once for what they were paid, computing a bootstrap day.
const SETTLE_CONCURRENCY: usize = 8;

const DAY: u64 = 86_400;

/// The router's clock (unix seconds): deadlines and expiries are wall-clock times.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// The user who signed `request`: the address its signature recovers to (low `s` only), which
/// must be the user it names ([`Error::BadSignature`], [`Error::WrongSigner`] otherwise).
pub(crate) fn request_signer(
    request: &Signed<ComputeRequest>,
    domain: &Eip712Domain,
) -> Result<Address> {
    let signer = request.recover(domain).map_err(|e| Error::BadSignature {
        message: "compute request",
        reason: e.to_string(),
    })?;
    if signer != request.message.user {
        return Err(Error::WrongSigner {
            user: request.message.user,
            signer,
        });
    }
    Ok(signer)
}

/// A running router's shared state: the chain connection, the signer, the checks of providers
/// (with their HTTP client) and the store.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    config: RouterConfig,
    protocol: Protocol,
    /// What selection and reservation read, once per block (`chain_view.rs`).
    view: ChainView,
    domain: Eip712Domain,
    /// The checks before an assignment, with their HTTP client and cool-downs (`select::Checks`).
    checks: Checks,
    /// Reached only through `store::blocking`, off the runtime's worker threads.
    store: Arc<Store>,
    /// The providers' receipts, asked for in batches (`receipts.rs`).
    receipts: Receipts,
    /// The terms of the sessions this process booked, until their report (`booked.rs`).
    booked: Booked,
    /// Requests waiting for a provider's place, by the user's stake (`queue.rs`).
    queues: Arc<WaitQueues>,
    /// Requests per client address and per user (`rate_limit.rs`).
    ips: Limiter<IpAddr>,
    users: Limiter<Address>,
    /// The figures `/metrics` shows (`metrics.rs`).
    metrics: Arc<Metrics>,
    /// The router's key, signing through libsecp256k1 (several times k256's speed; the same
    /// deterministic signatures).
    signer: Secp256k1Signer,
    /// The bids' terms per model last written to the bid history: a request that reads the
    /// same terms writes nothing.
    observed: std::sync::Mutex<std::collections::HashMap<B256, Vec<BidTerms>>>,
}

/// How often the chain index looks for a new head between requests.
const FOLLOW_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
/// The longest wait between tries while the chain's node fails.
const FOLLOW_BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(30);

/// A bid's provider, price per token and capacity: what the bid history records.
type BidTerms = (Address, U256, U256);

/// One try at assigning a provider.
enum Attempt {
    Assigned(Box<Signed<Assignment>>),
    /// No candidate could be assigned; `full`: at least one was eligible but at capacity, so
    /// waiting may help.
    Refused {
        refused: Vec<String>,
        full: bool,
    },
}

impl AppState {
    /// Connects to the chain (read-only: the router never sends a transaction), checks that the
    /// signer is an authorised router, and opens the database: a file that is not a SQLite
    /// database is [`Error::OpenDatabase`] naming it, a PostgreSQL database that cannot be
    /// reached [`Error::OpenPostgres`].
    pub async fn connect(config: RouterConfig) -> Result<Self> {
        config.check()?;
        let protocol = Protocol::connect(&config.rpc_url, config.deployment, None).await?;
        let signer = config.signer.address();
        if !protocol.session_router().is_router(signer).await? {
            return Err(Error::Config(format!(
                "{signer} is not an authorised router signer of SessionRouter {}",
                config.deployment.session_router
            )));
        }
        let metrics = Arc::new(Metrics::default());
        let checks = Checks::new(&config, Arc::clone(&metrics))?;
        let (path, url) = (config.db_path.clone(), config.postgres_url.clone());
        let store = tokio::task::spawn_blocking(move || match url {
            Some(url) => Store::open_postgres(&url),
            None => Store::open(&path),
        })
        .await??;
        let db = match &config.postgres_url {
            Some(url) => store::redacted(url),
            None => config.db_path.display().to_string(),
        };
        info!(target: "router", router = %signer, backend = store.backend(), %db, "ready");
        let store = Arc::new(store);
        let index =
            ChainIndex::open(protocol.clone(), Arc::clone(&store), Arc::clone(&metrics)).await?;
        Ok(Self(Arc::new(Inner {
            domain: config.deployment.domain(),
            queues: Arc::new(WaitQueues::new(config.queue_max)),
            view: ChainView::new(
                protocol.clone(),
                signer,
                Arc::new(index),
                Arc::clone(&metrics),
            ),
            ips: Limiter::new(config.ip_rate_limit),
            users: Limiter::new(config.user_rate_limit),
            observed: std::sync::Mutex::default(),
            signer: config.signer.to_secp256k1(),
            receipts: Receipts::new(
                checks.http().clone(),
                config.deployment.domain(),
                config.signer.to_secp256k1(),
                Arc::clone(&metrics),
            ),
            metrics,
            booked: Booked::default(),
            config,
            protocol,
            checks,
            store,
        })))
    }

    /// Runs `f` on the store, off the async runtime's threads.
    async fn store<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T> + Send + 'static,
    {
        let started = std::time::Instant::now();
        let result = store::blocking(&self.0.store, f).await;
        self.0.metrics.db.add(started.elapsed());
        result
    }

    /// The figures `/metrics` shows.
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    /// The header the client's address is read from behind a proxy, if any.
    pub(crate) fn client_ip_header(&self) -> Option<&axum::http::HeaderName> {
        self.0.config.client_ip_header.as_ref()
    }

    /// Takes one request from the client address's rate limit, or refuses it
    /// ([`Error::RateLimited`]).
    pub(crate) fn limit_ip(&self, ip: IpAddr) -> Result<()> {
        self.0
            .ips
            .take_or_refuse(&ip, || format!("client address {ip}"))
    }

    /// Takes one request from the user's rate limit (the user a signature recovered to).
    fn limit_user(&self, user: Address) -> Result<()> {
        self.0
            .users
            .take_or_refuse(&user, || format!("user {user}"))
    }

    /// The bidders for `model_id` (from the chain index, at the head the caller found or later)
    /// in the order `preferences` ask for, with their standing in the store at `now`; the bids'
    /// terms are recorded as seen (the bid history).
    ///
    /// With `reserve`, the session is reserved against the user's allowance first, in the same
    /// call to the store (one hop off the runtime instead of two); a failure after the
    /// reservation releases it before returning.
    async fn candidates(
        &self,
        model_id: B256,
        now: u64,
        preferences: &Preferences,
        reserve: Option<(NewSession, U256)>,
    ) -> Result<Vec<select::Candidate>> {
        let view = &self.0.view;
        let bids = view.registry().bids(model_id);
        let terms: Vec<BidTerms> = bids
            .iter()
            .map(|b| (b.provider, b.pricePerToken, b.capacity))
            .collect();
        let rule = self.0.config.record_rule();
        let seen = self
            .0
            .observed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&model_id)
            == Some(&terms);
        let observed = (!seen).then(|| terms.clone());
        let standings = self
            .store(move |s| {
                if let Some((session, user_max)) = &reserve {
                    s.reserve(session, *user_max)?;
                }
                let read = || {
                    if !seen {
                        s.observe_bids(model_id, &terms, now)?;
                    }
                    let providers: Vec<Address> = terms.iter().map(|t| t.0).collect();
                    s.standings(&providers, model_id, rule, now)
                };
                read().inspect_err(|_| {
                    if let Some((session, _)) = &reserve
                        && let Err(undo) = s.cancel(session.session_id)
                    {
                        warn!(target: "router::compute", error = %undo, "releasing a reservation failed");
                    }
                })
            })
            .await?;
        if let Some(terms) = observed {
            self.0
                .observed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(model_id, terms);
        }
        Ok(select::candidates(
            view.registry(),
            model_id,
            bids.iter().cloned().zip(standings),
            preferences,
        ))
    }

    /// Whether the router can serve (`/readyz`): the chain answers with its latest block and
    /// the database answers a query, each within `within`. Returns the block number, or why not.
    pub async fn readiness(&self, within: Duration) -> std::result::Result<u64, String> {
        let head = tokio::time::timeout(within, self.0.view.head())
            .await
            .map_err(|_| {
                format!(
                    "the chain did not answer within {within:?} (or the chain index is still \
                     catching up with it: `morpheus_router_index_block` in /metrics)"
                )
            })?
            .map_err(|e| format!("the chain: {e}"))?;
        tokio::time::timeout(within, self.store(|s| s.ping()))
            .await
            .map_err(|_| format!("the database did not answer within {within:?}"))?
            .map_err(|e| format!("the database: {e}"))?;
        Ok(head.number)
    }

    /// The wait queues' figures (`/metrics`).
    pub(crate) fn queue_figures(&self) -> queue::QueueFigures {
        self.0.queues.figures()
    }

    /// The router signer's address.
    pub fn address(&self) -> Address {
        self.0.config.signer.address()
    }

    fn signer(&self) -> &Secp256k1Signer {
        &self.0.signer
    }

    /// The UTC day by the chain's clock, the same day `SessionRouter.userMax` is computed for.
    async fn chain_day(&self) -> Result<(u64, u64)> {
        let head = self.0.view.head().await?;
        Ok((head.time / DAY, head.time))
    }

    /// Checks a user's signed request, picks a live provider (in the order `preferences` ask
    /// for, within their maximum price) and signs the assignment.
    pub async fn compute(
        &self,
        request: Signed<ComputeRequest>,
        preferences: Preferences,
    ) -> Result<Signed<Assignment>> {
        let r = &request.message;
        let signer = request_signer(&request, &self.0.domain)?;
        self.limit_user(signer)?;
        let now = unix_now();
        let deadline = u64::try_from(r.deadline).unwrap_or(u64::MAX);
        if deadline < now {
            return Err(Error::Expired { deadline, now });
        }
        if preferences.exclude.len() > MAX_EXCLUDED {
            return Err(Error::BadRequest(format!(
                "exclude names {} providers; at most {MAX_EXCLUDED}",
                preferences.exclude.len()
            )));
        }
        let token_max = u64::try_from(r.tokenMax)
            .ok()
            .filter(|t| (1..=i64::MAX as u64).contains(t))
            .ok_or_else(|| {
                Error::BadRequest(format!(
                    "tokenMax must be between 1 and {}, got {}",
                    i64::MAX,
                    r.tokenMax
                ))
            })?;
        // Everything below reads the chain as of its latest block (`chain_view.rs`): one
        // round trip when the block is known, and the day is that block's.
        let view = &self.0.view;
        let head = view.head().await?;
        let day = head.time / DAY;
        // The allowance and the price it is counted at, read together: a token of this session
        // earns at most the price `userMax` assumed (credit::credit_per_token). The allowance is
        // this router's part (`routerUserMax`: userMax × its share), so that the routers together
        // never grant a user more than userMax a day.
        let model = view.model(r.modelId)?;
        let (user_max, prices) =
            tokio::try_join!(view.router_user_max(head, r.user), view.prices(head))?;
        let reference = credit::reference_price(prices);

        let session = NewSession {
            session_id: session_id::new_session_id(),
            user: r.user,
            nonce: r.nonce,
            model_id: r.modelId,
            day,
            token_max,
            deadline,
        };
        // Reserved, and the candidates' standings read, in one call to the store.
        let first = self
            .candidates(
                r.modelId,
                unix_now(),
                &preferences,
                Some((session.clone(), user_max)),
            )
            .await?;
        match self
            .assign_or_wait(&session, &model, reference, deadline, &preferences, first)
            .await
        {
            Ok(assignment) => Ok(assignment),
            Err(e) => {
                let id = session.session_id;
                if let Err(undo) = self.store(move |s| s.cancel(id)).await {
                    warn!(target: "router::compute", error = %undo, "releasing a reservation failed");
                }
                Err(e)
            }
        }
    }

    /// Assigns a provider at once, or, when every live one is at capacity (or others wait
    /// already), waits in the model's queue by the user's stake (`queue.rs`) until it is this
    /// request's turn and a place frees up, at most `queue_wait` and never past the request's
    /// `deadline`; then [`Error::Busy`]. The first try reads the chain at the head the request
    /// found (its candidates `first`, read with the reservation), each later one at the latest
    /// block then.
    async fn assign_or_wait(
        &self,
        session: &NewSession,
        model: &morpheus_sdk::contracts::Model,
        reference: U256,
        deadline: u64,
        preferences: &Preferences,
        first: Vec<select::Candidate>,
    ) -> Result<Signed<Assignment>> {
        let queues = &self.0.queues;
        // Why the request waits: what its own try found, or the others ahead of it.
        let mut refused = vec!["behind other requests waiting for a full provider".to_string()];
        if !queues.is_waiting(session.model_id) {
            match self
                .assign(session, model, reference, preferences, Some(first))
                .await?
            {
                Attempt::Assigned(a) => return Ok(*a),
                Attempt::Refused {
                    refused: now,
                    full: true,
                } if !self.0.config.queue_wait.is_zero() => {
                    debug!(target: "router::queue", session = %session.session_id, refused = %now.join("; "), "waiting for a place");
                    refused = now;
                }
                Attempt::Refused { refused, .. } => {
                    return Err(select::no_provider(model.modelId, refused));
                }
            }
        }
        let wait = self
            .0
            .config
            .queue_wait
            .min(Duration::from_secs(deadline.saturating_sub(unix_now())));
        let retry_after = self.0.config.queue_wait.as_secs().max(1);
        let busy = |reason: String| Error::Busy {
            model: model.modelId,
            reason,
            retry_after,
        };
        let stake = self
            .0
            .protocol
            .session_router()
            .stake_of(session.user)
            .await?
            .staked;
        let Some(ticket) = queues.join(session.model_id, stake) else {
            return Err(busy(format!(
                "{} requests are waiting already, the most this router queues",
                self.0.config.queue_max
            )));
        };
        let until = Instant::now() + wait;
        loop {
            let changed = queues.changed();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let mut pause = until.saturating_duration_since(Instant::now());
            if pause.is_zero() {
                ticket.finish(false);
                return Err(busy(format!(
                    "waited {wait:?} in a queue by stake: {}",
                    refused.join("; ")
                )));
            }
            if ticket.is_head() {
                // The chain as it is now (the index brought to its head) for the new try.
                self.0.view.head().await?;
                match self
                    .assign(session, model, reference, preferences, None)
                    .await?
                {
                    Attempt::Assigned(a) => {
                        ticket.finish(true);
                        return Ok(*a);
                    }
                    Attempt::Refused {
                        refused: now,
                        full: true,
                    } => {
                        refused = now;
                        pause = pause.min(queue::HEAD_POLL);
                    }
                    // No provider is at capacity any more, but none is live: waiting won't help.
                    Attempt::Refused { refused, .. } => {
                        return Err(select::no_provider(model.modelId, refused));
                    }
                }
            }
            let _ = tokio::time::timeout(pause, changed).await;
        }
    }

    /// Picks the first live candidate (the registry as of the caller's head or later; read now
    /// unless `read` holds them) and books it within its capacity; a candidate found full at
    /// booking (others booked it meanwhile) is passed over for the next one.
    async fn assign(
        &self,
        session: &NewSession,
        model: &morpheus_sdk::contracts::Model,
        reference: U256,
        preferences: &Preferences,
        read: Option<Vec<select::Candidate>>,
    ) -> Result<Attempt> {
        let candidates = match read {
            Some(candidates) => candidates,
            None => {
                self.candidates(session.model_id, unix_now(), preferences, None)
                    .await?
            }
        };
        let mut full = candidates.iter().any(|c| c.full);
        let mut refused = Vec::new();
        let mut next = 0;
        while let Some(i) = self
            .0
            .checks
            .pick(&candidates[next..], model, &mut refused)
            .await
        {
            let chosen = &candidates[next + i];
            next += i + 1;
            let price = credit::credit_per_token(chosen.price_per_token, reference);
            let expires_at = unix_now().saturating_add(self.0.config.assignment_lifetime.as_secs());
            let (id, provider, capacity) = (session.session_id, chosen.provider, chosen.capacity);
            let endpoint = chosen.endpoint.clone();
            let booking = self
                .store(move |s| {
                    s.book(
                        id,
                        provider,
                        &endpoint,
                        capacity,
                        price,
                        unix_now(),
                        expires_at,
                    )
                })
                .await?;
            if let Booking::Full { open } = booking {
                info!(target: "router::compute", provider = %provider, open, "full at booking");
                refused.push(select::full(provider, open, capacity));
                full = true;
                continue;
            }
            self.0.metrics.assigned();
            self.0.booked.keep(
                SessionTerms {
                    session_id: session.session_id,
                    user: session.user,
                    provider,
                    endpoint: Some(chosen.endpoint.clone()),
                    model_id: session.model_id,
                    token_max: session.token_max,
                    price_per_token: price,
                    expires_at,
                },
                unix_now(),
            );
            info!(
                target: "router::compute",
                session = %session.session_id, user = %session.user, provider = %provider,
                bid = %chosen.price_per_token, price = %price, token_max = session.token_max,
                "assigned"
            );
            return Ok(Attempt::Assigned(Box::new(Signed::sign(
                Assignment {
                    sessionId: session.session_id,
                    provider,
                    endpoint: chosen.endpoint.clone(),
                    modelId: session.model_id,
                    tokenMax: U256::from(session.token_max),
                    pricePerToken: price,
                    expiresAt: U256::from(expires_at),
                },
                &self.0.domain,
                self.signer(),
            )?)));
        }
        Ok(Attempt::Refused { refused, full })
    }

    /// Applies a user's signed usage report to the session's provider. The provider is asked
    /// for its signed count of the session's tokens first (which closes the session there):
    /// only that count gives the rest of the user's reservation back (`usage.rs`). A provider
    /// that does not answer now is asked again once the session has expired
    /// ([`settle_due`](Self::settle_due)).
    pub async fn report(&self, report: Signed<UsageReport>) -> Result<UsageReceipt> {
        let signer = report
            .recover(&self.0.domain)
            .map_err(|e| Error::BadSignature {
                message: "usage report",
                reason: e.to_string(),
            })?;
        self.limit_user(signer)?;
        let id = report.message.sessionId;
        let target: SessionTerms = match self.0.booked.take(id, signer) {
            Some(terms) => terms,
            None => self.store(move |s| s.report_target(id, signer)).await?,
        };
        let (count, fail_withholds) = tokio::join!(
            self.provider_count(&target),
            self.fail_withholds(&report.message, &target)
        );
        let fail_withholds = fail_withholds?;
        let rule = self.0.config.speed_rule();
        let message = report.message;
        let receipt = self
            .store(move |s| s.record_report(&message, signer, rule, count, fail_withholds))
            .await?;
        // The session no longer holds its provider's place.
        self.0.queues.wake();
        let outcome = serde_json::to_value(receipt.outcome)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| format!("{:?}", receipt.outcome));
        self.0.metrics.reported(&outcome, receipt.amount);
        info!(
            target: "router::usage",
            session = %receipt.session_id, provider = %receipt.provider,
            outcome = ?receipt.outcome, tokens = %receipt.tokens, amount = %receipt.amount,
            provider_count = ?count, counted = %receipt.counted, "reported"
        );
        Ok(receipt)
    }

    /// Whether a failed report withholds the session's credit under the fail policy
    /// (`fail::fail_withholds_credit`); the stakes are read only for a failed report under
    /// `by-stake`.
    async fn fail_withholds(&self, report: &UsageReport, terms: &SessionTerms) -> Result<bool> {
        let policy = self.0.config.fail_policy;
        if report.passed || policy == FailPolicy::Withhold {
            return Ok(true);
        }
        let (session_router, registry) =
            (self.0.protocol.session_router(), self.0.protocol.registry());
        let (user, provider) = tokio::try_join!(
            session_router.stake_of(terms.user),
            registry.provider(terms.provider)
        )?;
        Ok(fail::fail_withholds_credit(
            policy,
            user.staked,
            provider.stake,
        ))
    }

    /// The provider's signed count of a session's tokens, asked with the session's assignment
    /// (in a batch with the provider's other sessions asked for meanwhile: `receipts.rs`), or
    /// `None` when it cannot be had now: no endpoint on record, no answer, or an answer that is
    /// not the provider's signature for the batch.
    async fn provider_count(&self, terms: &SessionTerms) -> Option<u64> {
        self.0.receipts.count(terms).await
    }

    /// One round of settling: asks the providers of up to 64 expired, unsettled sessions for
    /// their receipts (all at once, so each provider's go in one batch: `receipts.rs`) and
    /// writes each answer, or one more unanswered attempt (the
    /// last of `receipt_attempts` settles the session by the user's report). Returns how many
    /// sessions were asked.
    pub async fn settle_due(&self) -> Result<usize> {
        let now = unix_now();
        let due = self
            .store(move |s| s.due_receipts(now, SETTLE_BATCH))
            .await?;
        let asked = due.len();
        let attempts = self.0.config.receipt_attempts;
        let results: Vec<Result<()>> = futures::stream::iter(due)
            .map(|terms| async move {
                let count = self.provider_count(&terms).await;
                let id = terms.session_id;
                let counted = self.store(move |s| s.settle(id, count, attempts)).await?;
                debug!(target: "router::settle", session = %id, provider_count = ?count, counted, "settled");
                Ok(())
            })
            .buffer_unordered(SETTLE_BATCH)
            .collect()
            .await;
        if asked > 0 {
            self.0.queues.wake();
        }
        for r in results {
            r?;
        }
        Ok(asked)
    }

    /// Keeps the chain index at the chain's head (`chain_index/`) between requests: every
    /// second, backing off to 30 s while the node fails, until the task is dropped.
    pub(crate) async fn follow_chain(self) {
        let mut wait = FOLLOW_INTERVAL;
        loop {
            wait = match self.0.view.head().await {
                Ok(_) => FOLLOW_INTERVAL,
                Err(e) => {
                    let next = (wait * 2).min(FOLLOW_BACKOFF_MAX);
                    warn!(target: "router::index", error = %e, retry_in_ms = next.as_millis(), "following the chain failed");
                    next
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Settles expired sessions, computes closed bootstrap days and prunes the database every
    /// `settle_interval` until the task is dropped (each write runs to its end regardless: `store::blocking`).
    pub(crate) async fn settle_forever(self) {
        let mut tick = tokio::time::interval(self.0.config.settle_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.settle_due().await {
                warn!(target: "router::settle", error = %e, "settling expired sessions failed");
            }
            if let Err(e) = self.settle_bootstrap().await {
                warn!(target: "router::bootstrap", error = %e, "computing bootstrap days failed");
            }
            if let Err(e) = self.prune().await {
                warn!(target: "router::prune", error = %e, "pruning the database failed");
            }
        }
    }

    /// Removes expired nonces, old days' running totals and sessions nothing can change any
    /// more (`store/prune.rs`), the days by the chain's clock: one batch per store call, so
    /// requests run between batches however long the backlog.
    pub(crate) async fn prune(&self) -> Result<store::Pruned> {
        let (today, _) = self.chain_day().await?;
        let mut pruned = store::Pruned::default();
        loop {
            let started = std::time::Instant::now();
            let batch = self
                .store(move |s| s.prune_batch(unix_now(), today))
                .await?;
            if batch.is_empty() {
                break;
            }
            pruned = pruned.plus(batch);
            // A backlog (a database restored after weeks) takes at most about half of the
            // store's time: after each batch, requests have it for as long again.
            tokio::time::sleep(started.elapsed()).await;
        }
        if !pruned.is_empty() {
            info!(
                target: "router::prune", nonces = pruned.nonces, user_days = pruned.user_days,
                provider_days = pruned.provider_days, sessions = pruned.sessions, "pruned"
            );
        }
        Ok(pruned)
    }

    /// Computes every closed bootstrap day not computed yet, oldest first (`bootstrap.rs`,
    /// `store/bootstrap.rs`); reads the chain only when there is one. Returns the days computed.
    pub(crate) async fn settle_bootstrap(&self) -> Result<Vec<BootstrapDay>> {
        let (today, _) = self.chain_day().await?;
        let due = self
            .store(move |s| s.bootstrap_due(today, unix_now()))
            .await?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let chain = Arc::new(self.bootstrap_chain().await?);
        let mut computed = Vec::new();
        for day in due {
            let c = Arc::clone(&chain);
            let Some(d) = self
                .store(move |s| s.compute_bootstrap_day(day, today, unix_now(), &c))
                .await?
            else {
                // Computed meanwhile by another call, or open again: the next round sees it.
                continue;
            };
            let total = d
                .allotted
                .iter()
                .fold(U256::ZERO, |t, (_, a)| t.saturating_add(*a));
            info!(
                target: "router::bootstrap",
                day = d.day, share = %d.share, allotted = %total, providers = d.allotted.len(),
                reserve = %chain.reserve, share_bps = chain.share_bps, days_left = d.days_left,
                outstanding = %d.outstanding, "bootstrap day computed"
            );
            for (provider, amount) in &d.allotted {
                debug!(
                    target: "router::bootstrap", day = d.day, %provider, amount = %amount,
                    "allotted"
                );
            }
            computed.push(d);
        }
        Ok(computed)
    }

    /// The chain's figures a bootstrap day is computed from: the reserve, the period's end,
    /// this router's share, and what each provider with an allotment was paid of it.
    async fn bootstrap_chain(&self) -> Result<BootstrapChain> {
        let (pool, session_router) = (self.0.protocol.pool(), self.0.protocol.session_router());
        let router = self.address();
        let (reserve, end, info) = tokio::try_join!(
            pool.reserve(),
            pool.bootstrap_end(),
            session_router.router_info(router)
        )?;
        let providers = self.store(|s| s.bootstrap_allotted()).await?;
        let paid: Vec<morpheus_sdk::Result<(Address, U256)>> = futures::stream::iter(providers)
            .map(|(provider, _)| {
                let session_router = &session_router;
                async move {
                    let record = session_router.claim_record(router, provider).await?;
                    Ok((provider, U256::from(record.bootstrapPaid)))
                }
            })
            .buffer_unordered(SETTLE_CONCURRENCY)
            .collect()
            .await;
        Ok(BootstrapChain {
            reserve,
            bootstrap_end: u64::try_from(end).unwrap_or(u64::MAX),
            share_bps: u64::try_from(info.share_bps).unwrap_or(u64::MAX),
            paid: paid.into_iter().collect::<morpheus_sdk::Result<_>>()?,
        })
    }

    /// The provider's newest cumulative voucher, issued at the chain's latest block time, once
    /// any of its sessions was reported: also when nothing was earned, so that a provider whose
    /// sessions all failed still reaches the chain's record (`SessionRouter.reputation`). Its
    /// `cumulativeBootstrap` is everything allotted to the provider, closed days computed first.
    pub async fn voucher(&self, provider: Address) -> Result<Signed<CreditVoucher>> {
        // A voucher without the newest day is still right (cumulative: the next one carries
        // it), so a failure here does not refuse the provider its voucher.
        if let Err(e) = self.settle_bootstrap().await {
            warn!(target: "router::bootstrap", error = %e, "computing bootstrap days failed");
        }
        self.reconcile(provider).await?;
        let (credits, bootstrap) = self
            .store(move |s| Ok((s.credits(provider)?, s.bootstrap_of(provider)?)))
            .await?;
        let credits = credits
            .filter(|c| c.sessions > 0)
            .ok_or(Error::NoCredit(provider))?;
        let issued_at = self.0.protocol.latest_block_time().await?;
        Ok(Signed::sign(
            CreditVoucher {
                router: self.address(),
                provider,
                cumulativeAmount: credits.amount,
                cumulativeBootstrap: bootstrap,
                cumulativeTokens: U256::from(credits.tokens),
                sessions: U256::from(credits.sessions),
                failed: U256::from(credits.failed),
                issuedAt: U256::from(issued_at),
            },
            &self.0.domain,
            self.signer(),
        )?)
    }

    /// Raises the provider's counters to what the chain has paid on this router's vouchers
    /// (its claim record), where the chain is ahead of the database (`reconcile.rs`), and says
    /// so in the log. Returns whether anything changed.
    pub async fn reconcile(&self, provider: Address) -> Result<bool> {
        let record = self
            .0
            .protocol
            .session_router()
            .claim_record(self.address(), provider)
            .await?;
        let chain = Counters {
            amount: U256::from(record.paid),
            bootstrap: U256::from(record.bootstrapPaid),
            tokens: u64::try_from(record.tokens).unwrap_or(u64::MAX),
            sessions: record.sessions,
            failed: record.failed,
        };
        let Some((before, after)) = self.store(move |s| s.reconcile(provider, chain)).await? else {
            return Ok(false);
        };
        warn!(
            target: "router::reconcile", %provider,
            amount_before = %before.amount, amount = %after.amount,
            bootstrap_before = %before.bootstrap, bootstrap = %after.bootstrap,
            tokens_before = before.tokens, tokens = after.tokens,
            sessions_before = before.sessions, sessions = after.sessions,
            failed_before = before.failed, failed = after.failed,
            "the chain had paid more than this database credits: raised to its claim record"
        );
        Ok(true)
    }

    /// Reconciles every provider a claim of this router's vouchers has paid (its
    /// `VoucherClaimed` events since the deployment): what a start does, so that a lost or
    /// restored database is mended before any voucher is asked for. Returns how many providers
    /// were read and how many raised.
    pub async fn reconcile_all(&self) -> Result<(usize, usize)> {
        let paid = self
            .0
            .protocol
            .session_router()
            .providers_paid_by(self.address(), self.0.config.deployment.deploy_block)
            .await?;
        let mut raised = 0;
        for provider in &paid {
            raised += usize::from(self.reconcile(*provider).await?);
        }
        info!(
            target: "router::reconcile", providers = paid.len(), raised,
            "reconciled with the chain's claim records"
        );
        Ok((paid.len(), raised))
    }

    /// Providers with an active bid for the model, in the order the router would try them.
    pub async fn providers(&self, model_id: B256) -> Result<ProviderList> {
        // The index brought to the chain's head before it is read.
        self.0.view.head().await?;
        self.0.view.model(model_id)?;
        let candidates = self
            .candidates(model_id, unix_now(), &Preferences::default(), None)
            .await?;
        let providers = candidates
            .into_iter()
            .map(|c| ProviderInfo {
                open_sessions: c.open_sessions,
                provider: c.provider,
                endpoint: c.endpoint,
                price_per_token: c.price_per_token,
                capacity: c.capacity,
                stake: c.stake,
                record: c.record,
                reputation: c.reputation,
            })
            .collect();
        Ok(ProviderList {
            model_id,
            providers,
        })
    }

    /// A user's allowance today.
    pub async fn allowance(&self, user: Address) -> Result<Allowance> {
        let head = self.0.view.head().await?;
        let user_max = self.0.view.router_user_max(head, user).await?;
        let day = head.time / DAY;
        let used = U256::from(self.store(move |s| s.used(user, day)).await?);
        Ok(Allowance {
            user,
            day,
            user_max,
            used,
            remaining: user_max.saturating_sub(used),
        })
    }
}
