//! The providers' receipts, asked for in batches (docs/protocol.md, Router, "tokens counted").
//!
//! Every report, and every expired session the settle round visits, needs its provider's signed
//! count. Asked one by one, each costs the router a signature and a recovery and the provider
//! the same, plus a round trip. Here the asks for one provider, endpoint and model queue up:
//! while one `POST /v1/receipts` is out, the asks that arrive wait, and go together (up to
//! [`MAX_RECEIPT_BATCH`]) in the next one, under one router signature and one provider
//! signature. An ask that finds nothing out goes at once: alone, it waits for nothing.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use alloy::{
    primitives::{Address, B256, U256},
    signers::local::Secp256k1Signer,
    sol_types::Eip712Domain,
    transports::http::reqwest,
};
use morpheus_sdk::{
    messages::{Assignment, ReceiptRequest, Signed},
    provider::{MAX_RECEIPT_BATCH, ProviderClient, receipt_counts},
};
use tokio::sync::oneshot;
use tracing::{debug, warn};

use crate::{metrics::Metrics, store::SessionTerms};

/// Whose receipts go together: the provider, its endpoint and the model.
type Key = (Address, String, B256);

/// The asks waiting for one key, and whether a batch of its is out.
#[derive(Default)]
struct Queue {
    waiting: Vec<(Assignment, oneshot::Sender<Option<u64>>)>,
    sending: bool,
}

/// Batches the asks for receipts per provider (see the module's comment).
#[derive(Clone)]
pub(crate) struct Receipts(Arc<Inner>);

struct Inner {
    http: reqwest::Client,
    domain: Eip712Domain,
    signer: Secp256k1Signer,
    queues: Mutex<HashMap<Key, Queue>>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Receipts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receipts").finish_non_exhaustive()
    }
}

impl Receipts {
    /// Asks go through `http` (the client to providers, with its timeouts), signed by `signer`,
    /// each counted in `metrics`.
    pub(crate) fn new(
        http: reqwest::Client,
        domain: Eip712Domain,
        signer: Secp256k1Signer,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self(Arc::new(Inner {
            http,
            domain,
            signer,
            queues: Mutex::default(),
            metrics,
        }))
    }

    /// The provider's signed count of the session's tokens, or `None` when it cannot be had
    /// now: no endpoint on record, no answer, or an answer that is not the provider's
    /// signature for this batch of sessions.
    pub(crate) async fn count(&self, terms: &SessionTerms) -> Option<u64> {
        let endpoint = terms.endpoint.clone()?;
        let assignment = Assignment {
            sessionId: terms.session_id,
            provider: terms.provider,
            endpoint: endpoint.clone(),
            modelId: terms.model_id,
            tokenMax: U256::from(terms.token_max),
            pricePerToken: terms.price_per_token,
            expiresAt: U256::from(terms.expires_at),
        };
        let key: Key = (terms.provider, endpoint, terms.model_id);
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut queues = self.queues();
            let queue = queues.entry(key.clone()).or_default();
            queue.waiting.push((assignment, tx));
            !std::mem::replace(&mut queue.sending, true)
        };
        if start {
            let receipts = self.clone();
            tokio::spawn(async move { receipts.send_batches(key).await });
        }
        rx.await.ok().flatten()
    }

    /// Sends the key's waiting asks, a batch at a time, until none is left.
    async fn send_batches(self, key: Key) {
        let mut sending = Sending {
            receipts: self.clone(),
            key: key.clone(),
            done: false,
        };
        loop {
            let batch: Vec<_> = {
                let mut queues = self.queues();
                let Some(queue) = queues.get_mut(&key) else {
                    sending.done = true;
                    return;
                };
                if queue.waiting.is_empty() {
                    // Under the lock: an ask from now on finds no entry and starts a sender.
                    queues.remove(&key);
                    sending.done = true;
                    return;
                }
                let n = queue.waiting.len().min(MAX_RECEIPT_BATCH);
                queue.waiting.drain(..n).collect()
            };
            let (assignments, answers): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
            let counts = self.ask(&key, assignments).await;
            for (answer, count) in answers.into_iter().zip(counts) {
                let _ = answer.send(count);
            }
        }
    }

    /// One `POST /v1/receipts`: the counts in the assignments' order, all `None` when the
    /// provider did not answer with its signature over this batch.
    async fn ask(&self, key: &Key, assignments: Vec<Assignment>) -> Vec<Option<u64>> {
        let (provider, endpoint, _) = key;
        let n = assignments.len();
        let request = ReceiptRequest { assignments };
        let asked = async {
            let signed = Signed::sign(request.clone(), &self.0.domain, &self.0.signer)?;
            let client = ProviderClient::with_client(endpoint, self.0.http.clone())?;
            let receipts = client.receipts(&signed).await?;
            receipt_counts(&request, &receipts, &self.0.domain, *provider)
        };
        let started = std::time::Instant::now();
        let asked = asked.await;
        self.0.metrics.receipts.add(started.elapsed());
        match asked {
            Ok(counts) => {
                debug!(target: "router::usage", %provider, sessions = n, "receipts");
                counts.into_iter().map(Some).collect()
            }
            Err(e) => {
                warn!(
                    target: "router::usage", %provider, sessions = n, error = %e,
                    "no receipts from the provider"
                );
                vec![None; n]
            }
        }
    }

    fn queues(&self) -> MutexGuard<'_, HashMap<Key, Queue>> {
        self.0.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A key's sender, however its task ends: if it ends early (a panic), the key's waiting asks
/// are answered `None` and the next ask starts a sender again, so no ask waits forever.
struct Sending {
    receipts: Receipts,
    key: Key,
    /// Ended normally, the entry removed by the task itself.
    done: bool,
}

impl Drop for Sending {
    fn drop(&mut self) {
        if !self.done {
            // Dropping the waiting asks' senders answers them `None`.
            self.receipts.queues().remove(&self.key);
        }
    }
}
