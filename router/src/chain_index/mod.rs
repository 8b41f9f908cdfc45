//! The chain index (docs/protocol.md, Router: the chain index): the registry's facts selection
//! reads (models, bids, providers, the whitelist, model claims), followed from the deployment
//! block through the registry's events into the database and held in memory, so that a request
//! reads none of them from the chain.
//!
//! How it stays right: an event only names what changed ([`facts_touched`]); the index asks the
//! registry again about each touched fact *at the block it indexes* (pinned by hash), so what it
//! holds is what the contract answers there, not a replay of the contract's logic. It moves to a
//! new block when a request finds a newer head (`ChainView::head`: nothing a request reads is
//! older than the chain it would have read) or when the follower does (`AppState::follow_chain`,
//! every second). Each step is written to the database before it is served from memory, so a
//! restart resumes from the block it reached. A reorganisation is found when the block the index
//! holds is no longer the chain's (the new head's parent, or that block's hash asked again): the
//! index looks for the newest block it was taken at that is still on the chain, and asks again
//! about every fact it holds plus those the events since that block touch.

mod facts;
mod touched;

use std::{
    collections::BTreeSet,
    sync::{Arc, PoisonError, RwLock, RwLockReadGuard, atomic::Ordering},
    time::Instant,
};

use alloy::{
    eips::{BlockId, BlockNumberOrTag},
    primitives::{Address, B256},
    providers::Provider,
    rpc::types::Filter,
};
use futures::{StreamExt, TryStreamExt};
use morpheus_sdk::contracts::{Bid, Model, Protocol, ProviderRecord, ProviderRegistryClient};
use tracing::{info, warn};

use self::facts::{Answer, Facts};
use crate::{
    Error, Result,
    chain_view::rpc,
    metrics::Metrics,
    store::{self, FactRow, Saving, Store},
};
pub(crate) use touched::{Fact, facts_touched};

/// Blocks the index was taken at that are kept to find where a reorganisation forked; one
/// deeper than this is indexed again from the deployment block.
const RECENT: usize = 32;
/// Blocks per `eth_getLogs` (providers cap the range of one query).
const LOG_RANGE: u64 = 5_000;
/// Facts asked about at once.
const READS_AT_ONCE: usize = 16;

/// A block, as the index steps to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Block {
    pub(crate) number: u64,
    pub(crate) hash: B256,
    pub(crate) parent: B256,
}

#[derive(Debug, Default)]
struct State {
    /// The block the facts are the registry's answers at; `None`: nothing indexed yet.
    at: Option<(u64, B256)>,
    /// Earlier blocks the index was taken at, newest first.
    recent: Vec<(u64, B256)>,
    facts: Facts,
}

/// The registry's facts as of the indexed block (see the module's comment).
#[derive(Debug)]
pub(crate) struct ChainIndex {
    protocol: Protocol,
    registry: ProviderRegistryClient,
    store: Arc<Store>,
    /// The deployment block: where the events start.
    start: u64,
    state: Arc<RwLock<State>>,
    /// One step at a time.
    stepping: tokio::sync::Mutex<()>,
    metrics: Arc<Metrics>,
}

impl ChainIndex {
    /// The index the database holds (or an empty one, indexed from the deployment block at the
    /// first step). Rows that do not decode are dropped with a warning: the chain has every fact
    /// again.
    pub(crate) async fn open(
        protocol: Protocol,
        store: Arc<Store>,
        metrics: Arc<Metrics>,
    ) -> Result<Self> {
        let saved = store::blocking(&store, |s| s.chain_index()).await?;
        let state = match saved.map(|saved| {
            let facts = Facts::from_rows(&saved.facts)?;
            let parse = |h: &str| {
                h.parse::<B256>().map_err(|e| Error::CorruptDatabase {
                    column: "chain_index.hash",
                    value: h.to_string(),
                    reason: e.to_string(),
                })
            };
            let recent = saved
                .recent
                .iter()
                .map(|(n, h)| Ok((*n, parse(h)?)))
                .collect::<Result<Vec<_>>>()?;
            Ok::<_, Error>(State {
                at: Some((saved.block, parse(&saved.hash)?)),
                recent,
                facts,
            })
        }) {
            None => State::default(),
            Some(Ok(state)) => {
                info!(target: "router::index", block = state.at.map(|a| a.0), "the chain index resumes");
                state
            }
            Some(Err(e)) => {
                warn!(target: "router::index", error = %e, "the stored chain index does not read back; indexing again from the deployment block");
                State::default()
            }
        };
        if let Some((block, _)) = state.at {
            metrics.index_block.store(block, Ordering::Relaxed);
        }
        Ok(Self {
            registry: protocol.registry(),
            start: protocol.deployment().deploy_block,
            protocol,
            store,
            state: Arc::new(RwLock::new(state)),
            stepping: tokio::sync::Mutex::default(),
            metrics,
        })
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The block the index holds the facts of.
    pub(crate) fn block(&self) -> Option<u64> {
        self.read().at.map(|(n, _)| n)
    }

    /// Brings the index to `target` unless it is there or beyond already.
    pub(crate) async fn step_to(&self, target: Block) -> Result<()> {
        if self.block().is_some_and(|n| n >= target.number) {
            return Ok(());
        }
        let _one = self.stepping.lock().await;
        if self.block().is_some_and(|n| n >= target.number) {
            return Ok(());
        }
        let started = Instant::now();
        let stepped = self.step(target).await;
        self.metrics.index.add(started.elapsed());
        stepped
    }

    async fn step(&self, target: Block) -> Result<()> {
        let (at, recent) = {
            let s = self.read();
            (s.at, s.recent.clone())
        };
        // Where the events to read start, and where a reorganisation forked (if one did).
        let (from, fork) = match at {
            None => (self.start, None),
            Some((n, hash)) if target.number == n + 1 && target.parent == hash => (n + 1, None),
            Some((n, hash)) if self.hash_of(n).await? == Some(hash) => (n + 1, None),
            Some((n, _)) => {
                let mut fork = None;
                for (m, hash) in &recent {
                    if self.hash_of(*m).await? == Some(*hash) {
                        fork = Some(*m);
                        break;
                    }
                }
                self.metrics.index_reorgs.fetch_add(1, Ordering::Relaxed);
                warn!(target: "router::index", indexed = n, fork, new_head = target.number, "the chain was reorganised under the index; indexing again from the fork");
                (fork.map_or(self.start, |f| f + 1), Some(fork))
            }
        };
        let mut touched = BTreeSet::new();
        if at.is_none() || fork.is_some() {
            touched.insert(Fact::WhitelistActive);
        }
        if fork.is_some() {
            touched.extend(self.read().facts.known());
        }
        let mut low = from;
        while low <= target.number {
            let high = target.number.min(low.saturating_add(LOG_RANGE - 1));
            let filter = Filter::new()
                .address(self.registry.address())
                .from_block(low)
                .to_block(high);
            let logs = self
                .protocol
                .provider()
                .get_logs(&filter)
                .await
                .map_err(rpc)?;
            for log in logs {
                if log.removed {
                    continue;
                }
                if log.block_number == Some(target.number) && log.block_hash != Some(target.hash) {
                    return Err(moved(target.number));
                }
                touched.extend(facts_touched(&log.inner));
            }
            low = high + 1;
        }
        let registry = self.registry.at(BlockId::hash(target.hash));
        let answers: Vec<Answer> = futures::stream::iter(touched)
            .map(|fact| {
                let registry = registry.clone();
                async move { facts::read(&registry, fact).await }
            })
            .buffered(READS_AT_ONCE)
            .try_collect()
            .await?;
        // Events read over several blocks by number: the last must still be the one the facts
        // were read at (one block's events were checked against its hash above).
        if from < target.number && self.hash_of(target.number).await? != Some(target.hash) {
            return Err(moved(target.number));
        }

        let new_recent: Vec<(u64, B256)> = match fork {
            None => at.into_iter().chain(recent).take(RECENT).collect(),
            Some(fork) => recent
                .into_iter()
                .filter(|(n, _)| fork.is_some_and(|f| *n <= f))
                .take(RECENT)
                .collect(),
        };
        let changed: Vec<_> = answers.iter().map(Answer::row).collect();
        let (state, overlay) = (Arc::clone(&self.state), answers.clone());
        let recent_rows: Vec<(u64, String)> = new_recent
            .iter()
            .map(|(n, h)| (*n, h.to_string()))
            .collect();
        let from_state = at.map(|(n, h)| (n, h.to_string()));
        let hash = target.hash.to_string();
        store::blocking(&self.store, move |s| {
            // The whole index, only when the database holds another state than `at`'s.
            let all = move || -> Vec<FactRow> {
                let mut facts = state
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .facts
                    .clone();
                for answer in overlay.clone() {
                    facts.apply(answer);
                }
                facts.rows()
            };
            s.save_chain_index(&Saving {
                from: from_state.as_ref().map(|(n, h)| (*n, h.as_str())),
                block: target.number,
                hash: &hash,
                recent: &recent_rows,
                changed: &changed,
                all: &all,
            })
        })
        .await?;

        let touched = answers.len();
        let mut s = self.state.write().unwrap_or_else(PoisonError::into_inner);
        for answer in answers {
            s.facts.apply(answer);
        }
        s.at = Some((target.number, target.hash));
        s.recent = new_recent;
        drop(s);
        self.metrics
            .index_block
            .store(target.number, Ordering::Relaxed);
        if at.is_none() || fork.is_some() || touched > 0 {
            info!(target: "router::index", block = target.number, from, facts = touched, "indexed");
        }
        Ok(())
    }

    /// The hash of the chain's block `number`, `None` when it has none.
    async fn hash_of(&self, number: u64) -> Result<Option<B256>> {
        let block = self
            .protocol
            .provider()
            .get_block_by_number(BlockNumberOrTag::Number(number))
            .await
            .map_err(rpc)?;
        Ok(block.map(|b| b.header.hash))
    }

    // --- what selection reads ----------------------------------------------------------------

    /// The model's registry entry, `None` when no such model is registered.
    pub(crate) fn model(&self, model_id: B256) -> Option<Model> {
        self.read().facts.models.get(&model_id).cloned()
    }

    /// Every active bid for the model.
    pub(crate) fn bids(&self, model_id: B256) -> Arc<Vec<Bid>> {
        self.read()
            .facts
            .bids
            .get(&model_id)
            .cloned()
            .unwrap_or_default()
    }

    /// Whether the registry's whitelist is on.
    pub(crate) fn whitelist_active(&self) -> bool {
        self.read().facts.whitelist_active
    }

    /// The provider's registry record (zeroed when it never registered, as the registry's).
    pub(crate) fn provider(&self, provider: Address) -> ProviderRecord {
        self.read()
            .facts
            .providers
            .get(&provider)
            .cloned()
            .unwrap_or_default()
    }

    /// Whether the provider is on the whitelist.
    pub(crate) fn is_whitelisted(&self, provider: Address) -> bool {
        self.read().facts.whitelisted.contains(&provider)
    }

    /// Whether the provider holds a claim on the model.
    pub(crate) fn has_model_claim(&self, provider: Address, model_id: B256) -> bool {
        self.read().facts.claims.contains(&(provider, model_id))
    }
}

fn moved(number: u64) -> Error {
    Error::Chain(morpheus_sdk::Error::Rpc(format!(
        "block {number} changed while it was being indexed (a reorganisation); the next step \
         indexes the new one"
    )))
}
