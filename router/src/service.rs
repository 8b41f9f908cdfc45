//! What the router does per request, independent of HTTP.

use std::{
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use alloy::{
    primitives::{Address, B256, U256},
    signers::local::PrivateKeySigner,
    sol_types::Eip712Domain,
};
use futures::StreamExt;
use morpheus_sdk::{
    contracts::Protocol,
    messages::{Assignment, ComputeRequest, CreditVoucher, Signed, UsageReport},
    provider::ProviderClient,
    router::{Allowance, ProviderInfo, ProviderList, UsageReceipt},
};
use tracing::{debug, info, warn};

use crate::{
    Error, FailPolicy, Result, RouterConfig, credit, fail,
    select::{self, Checks},
    store::{self, Booking, NewSession, SessionTerms, Store},
};

/// Expired sessions asked for their receipts per round of [`AppState::settle_due`].
const SETTLE_BATCH: usize = 64;

/// Receipts asked for at once in a round.
const SETTLE_CONCURRENCY: usize = 8;

const DAY: u64 = 86_400;

/// The router's clock (unix seconds): deadlines and expiries are wall-clock times.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// A running router's shared state: the chain connection, the signer, the checks of providers
/// (with their HTTP client) and the store.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    config: RouterConfig,
    protocol: Protocol,
    domain: Eip712Domain,
    /// The checks before an assignment, with their HTTP client and cool-downs (`select::Checks`).
    checks: Checks,
    /// Reached only through `store::blocking`, off the runtime's worker threads.
    store: Arc<Store>,
}

impl AppState {
    /// Connects to the chain (read-only: the router never sends a transaction), checks that the
    /// signer is an authorised router, and opens the database: a file that is not a SQLite
    /// database is [`Error::OpenDatabase`] naming it.
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
        let checks = Checks::new(&config)?;
        let path = config.db_path.clone();
        let store = tokio::task::spawn_blocking(move || Store::open(&path)).await??;
        info!(target: "router", router = %signer, db = %config.db_path.display(), "ready");
        Ok(Self(Arc::new(Inner {
            domain: config.deployment.domain(),
            config,
            protocol,
            checks,
            store: Arc::new(store),
        })))
    }

    /// Runs `f` on the store, off the async runtime's threads.
    async fn store<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T> + Send + 'static,
    {
        store::blocking(&self.0.store, f).await
    }

    /// The bidders for `model_id` in selection order, with their standing in the store at `now`.
    async fn candidates(&self, model_id: B256, now: u64) -> Result<Vec<select::Candidate>> {
        let registry = self.0.protocol.registry();
        let bids = select::bids(&registry, model_id).await?;
        let providers: Vec<Address> = bids.iter().map(|b| b.provider).collect();
        let rule = self.0.config.record_rule();
        let standings = self
            .store(move |s| s.standings(&providers, rule, now))
            .await?;
        select::candidates(&registry, model_id, bids.into_iter().zip(standings)).await
    }

    /// The router signer's address.
    pub fn address(&self) -> Address {
        self.0.config.signer.address()
    }

    fn signer(&self) -> &PrivateKeySigner {
        &self.0.config.signer
    }

    /// The UTC day by the chain's clock, the same day `SessionRouter.userMax` is computed for.
    async fn chain_day(&self) -> Result<(u64, u64)> {
        let now = self.0.protocol.latest_block_time().await?;
        Ok((now / DAY, now))
    }

    /// Checks a user's signed request, picks a live provider and signs the assignment.
    pub async fn compute(&self, request: Signed<ComputeRequest>) -> Result<Signed<Assignment>> {
        let r = &request.message;
        let signer = request
            .recover(&self.0.domain)
            .map_err(|e| Error::BadSignature {
                message: "compute request",
                reason: e.to_string(),
            })?;
        if signer != r.user {
            return Err(Error::WrongSigner {
                user: r.user,
                signer,
            });
        }
        let now = unix_now();
        let deadline = u64::try_from(r.deadline).unwrap_or(u64::MAX);
        if deadline < now {
            return Err(Error::Expired { deadline, now });
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
        let registry = self.0.protocol.registry();
        let model = select::model(&registry, r.modelId).await?;
        // The allowance and the price it is counted at, read together: a token of this session
        // earns at most the price `userMax` assumed (credit::credit_per_token).
        let session_router = self.0.protocol.session_router();
        // This router's part of the user's allowance (`routerUserMax`: userMax × its share), so
        // that the routers together never grant a user more than userMax a day.
        let (user_max, prices) = tokio::try_join!(
            session_router.router_user_max(self.address(), r.user),
            session_router.prices()
        )?;
        let reference = credit::reference_price(prices);
        let (day, _) = self.chain_day().await?;

        let session = NewSession {
            session_id: B256::from(rand::random::<[u8; 32]>()),
            user: r.user,
            nonce: r.nonce,
            model_id: r.modelId,
            day,
            token_max,
        };
        let reserved = session.clone();
        self.store(move |s| s.reserve(&reserved, user_max)).await?;
        match self.assign(&session, &model, reference).await {
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

    /// Picks the first live candidate and books it within its capacity; a candidate found full
    /// at booking (others booked it meanwhile) is passed over for the next one.
    async fn assign(
        &self,
        session: &NewSession,
        model: &morpheus_sdk::contracts::Model,
        reference: U256,
    ) -> Result<Signed<Assignment>> {
        let candidates = self.candidates(session.model_id, unix_now()).await?;
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
                continue;
            }
            info!(
                target: "router::compute",
                session = %session.session_id, user = %session.user, provider = %provider,
                bid = %chosen.price_per_token, price = %price, token_max = session.token_max,
                "assigned"
            );
            return Ok(Signed::sign(
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
            )?);
        }
        Err(select::no_provider(model.modelId, refused))
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
        let id = report.message.sessionId;
        let target: SessionTerms = self.store(move |s| s.report_target(id, signer)).await?;
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
    /// (signed again: the same terms), or `None` when it cannot be had now: no endpoint on
    /// record, no answer, or an answer that is not the provider's signature for this session.
    async fn provider_count(&self, terms: &SessionTerms) -> Option<u64> {
        let endpoint = terms.endpoint.as_deref()?;
        let assignment = Assignment {
            sessionId: terms.session_id,
            provider: terms.provider,
            endpoint: endpoint.to_string(),
            modelId: terms.model_id,
            tokenMax: U256::from(terms.token_max),
            pricePerToken: terms.price_per_token,
            expiresAt: U256::from(terms.expires_at),
        };
        let asked = async {
            let signed = Signed::sign(assignment, &self.0.domain, self.signer())?;
            let client = ProviderClient::with_client(endpoint, self.0.checks.http().clone())?;
            let receipt = client.receipt(&signed).await?;
            receipt.verify(&self.0.domain, terms.provider)?;
            if receipt.message.sessionId != terms.session_id {
                return Err(morpheus_sdk::Error::Mismatch {
                    field: "receipt sessionId",
                    expected: terms.session_id.to_string(),
                    actual: receipt.message.sessionId.to_string(),
                });
            }
            Ok::<_, morpheus_sdk::Error>(u64::try_from(receipt.message.tokens).unwrap_or(u64::MAX))
        };
        match asked.await {
            Ok(tokens) => Some(tokens),
            Err(e) => {
                warn!(
                    target: "router::usage", session = %terms.session_id, provider = %terms.provider,
                    error = %e, "no receipt from the provider"
                );
                None
            }
        }
    }

    /// One round of settling: asks the providers of up to 64 expired, unsettled sessions for
    /// their receipts (8 at once) and writes each answer, or one more unanswered attempt (the
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
            .buffer_unordered(SETTLE_CONCURRENCY)
            .collect()
            .await;
        for r in results {
            r?;
        }
        Ok(asked)
    }

    /// Settles expired sessions every `settle_interval` until the task is dropped (each write
    /// runs to its end regardless: `store::blocking`).
    pub(crate) async fn settle_forever(self) {
        let mut tick = tokio::time::interval(self.0.config.settle_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.settle_due().await {
                warn!(target: "router::settle", error = %e, "settling expired sessions failed");
            }
        }
    }

    /// The provider's newest cumulative voucher, issued at the chain's latest block time, once
    /// any of its sessions was reported: also when nothing was earned, so that a provider whose
    /// sessions all failed still reaches the chain's record (`SessionRouter.reputation`).
    pub async fn voucher(&self, provider: Address) -> Result<Signed<CreditVoucher>> {
        let credits = self
            .store(move |s| s.credits(provider))
            .await?
            .filter(|c| c.sessions > 0)
            .ok_or(Error::NoCredit(provider))?;
        let issued_at = self.0.protocol.latest_block_time().await?;
        Ok(Signed::sign(
            CreditVoucher {
                router: self.address(),
                provider,
                cumulativeAmount: credits.amount,
                // The bootstrap share is not computed yet (docs/router.md).
                cumulativeBootstrap: U256::ZERO,
                cumulativeTokens: U256::from(credits.tokens),
                sessions: U256::from(credits.sessions),
                failed: U256::from(credits.failed),
                issuedAt: U256::from(issued_at),
            },
            &self.0.domain,
            self.signer(),
        )?)
    }

    /// Providers with an active bid for the model, in the order the router would try them.
    pub async fn providers(&self, model_id: B256) -> Result<ProviderList> {
        select::model(&self.0.protocol.registry(), model_id).await?;
        let candidates = self.candidates(model_id, unix_now()).await?;
        let providers = candidates
            .into_iter()
            .map(|c| ProviderInfo {
                open_sessions: c.open_sessions,
                provider: c.provider,
                endpoint: c.endpoint,
                price_per_token: c.price_per_token,
                capacity: c.capacity,
                record: c.record,
            })
            .collect();
        Ok(ProviderList {
            model_id,
            providers,
        })
    }

    /// A user's allowance today.
    pub async fn allowance(&self, user: Address) -> Result<Allowance> {
        let user_max = self
            .0
            .protocol
            .session_router()
            .router_user_max(self.address(), user)
            .await?;
        let (day, _) = self.chain_day().await?;
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
