//! The models the network serves, by the names users know: `ProviderRegistry.getModels` (name,
//! format, root) and each model's bids, read from the chain and reused for a while.
//!
//! One name may have several ids (anyone may register a model under any name): a request by
//! name gets the id with the most bids, then the oldest (`pick_model`); a request may name the
//! id itself (`0x` and 64 hex digits) to choose.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use alloy::primitives::B256;
use morpheus_sdk::{
    Deployment,
    contracts::{Protocol, format_label},
    openai::{Model, ModelList},
};
use tokio::sync::OnceCell;

use crate::{Error, Result};

/// Models read per `getModels` call, and bids per `getBidsForModel` call.
const PAGE: u64 = 100;

/// One registered model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its id.
    pub model_id: B256,
    /// The name it was registered under.
    pub name: String,
    /// Its weights file's format (`gguf`).
    pub format: String,
    /// Its weights file's Merkle root.
    pub merkle_root: B256,
    /// When it was registered (unix seconds).
    pub registered_at: u64,
    /// Active bids for it (at most [`PAGE`] are counted).
    pub bids: u64,
}

/// The model a request for `name` gets among `entries`: of those registered under `name`, the
/// one with the most bids, then the oldest, then the lower id.
pub fn pick_model<'a>(entries: &'a [Entry], name: &str) -> Option<&'a Entry> {
    entries.iter().filter(|e| e.name == name).min_by(|a, b| {
        b.bids
            .cmp(&a.bids)
            .then(a.registered_at.cmp(&b.registered_at))
            .then(a.model_id.cmp(&b.model_id))
    })
}

/// What `/v1/models` lists: one entry per name that has a model with bids, the one a request
/// by that name gets, sorted by name.
pub fn served(entries: &[Entry]) -> Vec<&Entry> {
    let mut names: Vec<&str> = entries
        .iter()
        .filter(|e| e.bids > 0)
        .map(|e| e.name.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .filter_map(|name| pick_model(entries, name))
        .collect()
}

/// A model a request names, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The id the request is signed for.
    pub model_id: B256,
    /// The name the client used (a name, or the id as given).
    pub name: String,
}

/// The chain's models, cached for `ttl`.
#[derive(Debug)]
pub struct Catalog {
    rpc_url: String,
    deployment: Deployment,
    chain: OnceCell<Protocol>,
    ttl: Duration,
    timeout: Duration,
    cache: Mutex<Option<(Instant, Arc<Vec<Entry>>)>>,
}

impl Catalog {
    /// A catalog read from the chain at `rpc_url` (connected on first use), reused for `ttl`;
    /// a read taking longer than `timeout` fails.
    pub fn new(rpc_url: String, deployment: Deployment, ttl: Duration, timeout: Duration) -> Self {
        Self {
            rpc_url,
            deployment,
            chain: OnceCell::new(),
            ttl,
            timeout,
            cache: Mutex::new(None),
        }
    }

    /// The read-only connection to the chain, made on first use (so a gateway starts while
    /// the chain is down, and answers 502 until it is up).
    pub async fn chain(&self) -> Result<&Protocol> {
        let connect = self
            .chain
            .get_or_try_init(|| Protocol::connect(&self.rpc_url, self.deployment, None));
        match tokio::time::timeout(self.timeout, connect).await {
            Ok(chain) => chain.map_err(Error::from),
            Err(_) => Err(self.too_slow()),
        }
    }

    fn too_slow(&self) -> Error {
        Error::Sdk(morpheus_sdk::Error::Rpc(format!(
            "{} did not answer within {}s",
            self.rpc_url,
            self.timeout.as_secs_f64()
        )))
    }

    /// Every registered model, with its bids.
    pub async fn entries(&self) -> Result<Arc<Vec<Entry>>> {
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, e)| e.clone());
        if let Some(entries) = cached {
            return Ok(entries);
        }
        let entries = match tokio::time::timeout(self.timeout, self.read()).await {
            Ok(entries) => Arc::new(entries?),
            Err(_) => return Err(self.too_slow()),
        };
        *self.cache.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((Instant::now(), entries.clone()));
        Ok(entries)
    }

    /// Forgets the cached list (a request for an unknown name reads the chain again).
    fn forget(&self) {
        *self.cache.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// The model `model` names: a registered name, or an id.
    pub async fn resolve(&self, model: &str) -> Result<Resolved> {
        if let Some(id) = parse_id(model) {
            return Ok(Resolved {
                model_id: id,
                name: model.to_string(),
            });
        }
        if let Some(found) = pick_model(&self.entries().await?, model) {
            return Ok(Resolved {
                model_id: found.model_id,
                name: model.to_string(),
            });
        }
        // Registered since the list was read?
        self.forget();
        match pick_model(&self.entries().await?, model) {
            Some(found) => Ok(Resolved {
                model_id: found.model_id,
                name: model.to_string(),
            }),
            None => Err(Error::UnknownModel(model.to_string())),
        }
    }

    /// `/v1/models`: what the network serves.
    pub async fn list(&self) -> Result<ModelList> {
        let entries = self.entries().await?;
        Ok(ModelList {
            object: "list".into(),
            data: served(&entries).into_iter().map(model).collect(),
        })
    }

    async fn read(&self) -> Result<Vec<Entry>> {
        let registry = self.chain().await?.registry();
        let mut entries = Vec::new();
        let mut offset = 0;
        loop {
            let page = registry.models(offset, PAGE).await?;
            let n = page.len() as u64;
            for m in page {
                let bids = registry.bids_for_model(m.modelId, 0, PAGE).await?.len() as u64;
                entries.push(Entry {
                    model_id: m.modelId,
                    name: m.name,
                    format: format_label(&m.format),
                    merkle_root: m.merkleRoot,
                    registered_at: m.registeredAt.try_into().unwrap_or(u64::MAX),
                    bids,
                });
            }
            if n < PAGE {
                return Ok(entries);
            }
            offset += n;
        }
    }
}

/// `0x` and 64 hex digits.
fn parse_id(model: &str) -> Option<B256> {
    let hex = model.strip_prefix("0x")?;
    (hex.len() == 64).then(|| model.parse().ok()).flatten()
}

fn model(e: &Entry) -> Model {
    Model {
        id: e.name.clone(),
        object: "model".into(),
        created: e.registered_at,
        owned_by: "morpheus".into(),
        // Providers of one model may serve different context lengths; the gateway knows no
        // single one to promise.
        context_length: None,
        format: Some(e.format.clone()),
        merkle_root: Some(e.merkle_root),
        model_id: Some(e.model_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(byte: u8, name: &str, bids: u64, registered_at: u64) -> Entry {
        Entry {
            model_id: B256::repeat_byte(byte),
            name: name.into(),
            format: "gguf".into(),
            merkle_root: B256::ZERO,
            registered_at,
            bids,
        }
    }

    #[test]
    fn a_name_gets_the_id_with_the_most_bids_then_the_oldest() {
        let entries = [
            entry(1, "llama", 0, 10),
            entry(2, "llama", 3, 30),
            entry(3, "llama", 3, 20),
            entry(4, "other", 1, 5),
        ];
        assert_eq!(pick_model(&entries, "llama"), Some(&entries[2]));
        assert_eq!(pick_model(&entries, "other"), Some(&entries[3]));
        assert_eq!(pick_model(&entries, "LLAMA"), None, "names are exact");
        // Without any bids the oldest is still the one a request gets.
        let unbid = [entry(5, "x", 0, 9), entry(6, "x", 0, 8)];
        assert_eq!(pick_model(&unbid, "x"), Some(&unbid[1]));
    }

    #[test]
    fn only_names_with_bids_are_listed_once_each() {
        let entries = [
            entry(1, "b", 1, 10),
            entry(2, "a", 0, 10),
            entry(3, "b", 2, 30),
            entry(4, "c", 1, 1),
        ];
        let listed: Vec<_> = served(&entries).iter().map(|e| e.model_id).collect();
        assert_eq!(listed, [B256::repeat_byte(3), B256::repeat_byte(4)]);
    }

    #[test]
    fn an_id_is_taken_as_is() {
        let id = B256::repeat_byte(0xab);
        assert_eq!(parse_id(&id.to_string()), Some(id));
        assert_eq!(parse_id("0x1234"), None);
        assert_eq!(parse_id("tiny"), None);
    }
}
