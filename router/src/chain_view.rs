//! The chain as of its latest block: what selection and reservation read. The registry's facts
//! (models, bids, providers, the whitelist, model claims) come from the chain index
//! (`chain_index/`), brought to each new head before a request reads it; users' allowances and
//! the prices are read once per block and remembered until the next one.
//!
//! Why those two per block and not through events: a user's allowance moves with the chain's
//! day and the prices with the price source (an oracle need not emit anything), so no event
//! says when they change; but a contract's state changes only with a new block, so a value read
//! at block N holds for every request that finds N the latest. A request costs one
//! `eth_blockNumber` round trip ([`ChainView::head`]) instead of a dozen calls, and nothing it
//! reads is older than the chain it would have read. A higher block number drops every
//! remembered value at once. A reorganisation at the same height is seen at the next higher
//! block number; until then a request may read what the replaced block held (docs/protocol.md,
//! Router).

use std::{
    collections::HashMap,
    hash::Hash,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use alloy::{
    eips::BlockNumberOrTag,
    primitives::{Address, B256, U256},
    providers::Provider,
};
use morpheus_sdk::contracts::{Model, Prices, Protocol};

use crate::{
    Error, Result,
    chain_index::{Block, ChainIndex},
    metrics::Metrics,
};

/// Values remembered for one block at most; past it, a read goes to the chain and is not kept
/// (a chain that stops making blocks must not let distinct users grow the memory without end).
const MAX_ENTRIES: usize = 100_000;

/// The block a request reads the chain at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    /// Its number.
    pub(crate) number: u64,
    /// Its timestamp (unix seconds): the chain's clock, by which `SessionRouter` counts days.
    pub(crate) time: u64,
}

/// The chain's state as one block left it, read lazily.
#[derive(Debug)]
pub(crate) struct ChainView {
    protocol: Protocol,
    /// The router whose part of a user's allowance is read (`routerUserMax`).
    router: Address,
    snapshot: Mutex<Snapshot>,
    /// The registry's facts, followed through its events (`chain_index/`).
    index: Arc<ChainIndex>,
    /// When the last `eth_blockNumber` was sent and what it answered: requests waiting while one
    /// is in flight share the next one instead of each sending its own.
    latest: tokio::sync::Mutex<Option<(std::time::Instant, u64)>>,
    /// Where the time of each call to the node is counted.
    metrics: Arc<Metrics>,
}

#[derive(Debug, Default)]
struct Snapshot {
    head: Option<Head>,
    entries: usize,
    user_max: HashMap<Address, U256>,
    prices: HashMap<(), Prices>,
}

impl ChainView {
    pub(crate) fn new(
        protocol: Protocol,
        router: Address,
        index: Arc<ChainIndex>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            protocol,
            router,
            snapshot: Mutex::default(),
            index,
            latest: tokio::sync::Mutex::default(),
            metrics,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Snapshot> {
        self.snapshot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The latest block: one round trip while the block is the one remembered, two when it is
    /// new (its timestamp). A higher block than the remembered one starts a new snapshot.
    ///
    /// The block number is one asked for after this call began: a call that finds another one's
    /// `eth_blockNumber` in flight waits for it and then takes the next, which calls arriving
    /// meanwhile share (one round trip per batch of concurrent requests, never an older answer).
    pub(crate) async fn head(&self) -> Result<Head> {
        let provider = self.protocol.provider();
        let arrived = std::time::Instant::now();
        let number = {
            let mut latest = self.latest.lock().await;
            match *latest {
                Some((sent, number)) if sent >= arrived => number,
                _ => {
                    let sent = std::time::Instant::now();
                    let number = provider.get_block_number().await.map_err(rpc);
                    self.metrics.chain.add(sent.elapsed());
                    let number = number?;
                    *latest = Some((sent, number));
                    number
                }
            }
        };
        if let Some(head) = self.lock().head.filter(|h| h.number == number) {
            return Ok(head);
        }
        let started = std::time::Instant::now();
        let block = provider
            .get_block_by_number(BlockNumberOrTag::Number(number))
            .await;
        self.metrics.chain.add(started.elapsed());
        let block = block.map_err(rpc)?.ok_or_else(|| {
            Error::Chain(morpheus_sdk::Error::Rpc(format!(
                "the node has no block {number}, its latest"
            )))
        })?;
        let head = Head {
            number,
            time: block.header.timestamp,
        };
        // The registry's facts are brought to this block before any request reads them at it.
        self.index
            .step_to(Block {
                number,
                hash: block.header.hash,
                parent: block.header.parent_hash,
            })
            .await?;
        let mut snapshot = self.lock();
        // The snapshot only moves forward: a request that found an older number than another
        // one did reads through to the chain (its head is not the snapshot's) and leaves the
        // newer snapshot alone.
        if snapshot.head.is_none_or(|h| number > h.number) {
            *snapshot = Snapshot {
                head: Some(head),
                ..Snapshot::default()
            };
        }
        Ok(head)
    }

    /// The value of `key` in the snapshot's map `map` at `head`, or `fetch`ed from the chain
    /// and remembered while `head` is the latest block.
    async fn read<K, V, F>(
        &self,
        head: Head,
        map: fn(&mut Snapshot) -> &mut HashMap<K, V>,
        key: K,
        fetch: F,
    ) -> Result<V>
    where
        K: Eq + Hash,
        V: Clone,
        F: Future<Output = Result<V>>,
    {
        {
            let mut snapshot = self.lock();
            if snapshot.head == Some(head)
                && let Some(v) = map(&mut snapshot).get(&key)
            {
                return Ok(v.clone());
            }
        }
        let started = std::time::Instant::now();
        let value = fetch.await;
        self.metrics.chain.add(started.elapsed());
        let value = value?;
        let mut snapshot = self.lock();
        if snapshot.head == Some(head) && snapshot.entries < MAX_ENTRIES {
            snapshot.entries += 1;
            map(&mut snapshot).insert(key, value.clone());
        }
        Ok(value)
    }

    /// The registry's facts (`chain_index/`): as of the newest head a request found, at least
    /// the one it asked for ([`head`](Self::head) brings the index there first).
    pub(crate) fn registry(&self) -> &ChainIndex {
        &self.index
    }

    /// The model's registry entry; an unregistered id is [`Error::UnknownModel`].
    pub(crate) fn model(&self, model_id: B256) -> Result<Model> {
        self.index
            .model(model_id)
            .ok_or(Error::UnknownModel(model_id))
    }

    /// This router's part of `user`'s daily allowance (`SessionRouter.routerUserMax`).
    pub(crate) async fn router_user_max(&self, head: Head, user: Address) -> Result<U256> {
        let session_router = self.protocol.session_router();
        self.read(head, |s| &mut s.user_max, user, async {
            Ok(session_router.router_user_max(self.router, user).await?)
        })
        .await
    }

    /// The prices the allowance is counted at (`SessionRouter.prices`).
    pub(crate) async fn prices(&self, head: Head) -> Result<Prices> {
        let session_router = self.protocol.session_router();
        self.read(head, |s| &mut s.prices, (), async {
            Ok(session_router.prices().await?)
        })
        .await
    }
}

/// A failed call to the chain's node.
pub(crate) fn rpc(e: impl std::fmt::Display) -> Error {
    Error::Chain(morpheus_sdk::Error::Rpc(e.to_string()))
}
