//! The registry's facts the index holds: each read from the registry at the indexed block
//! ([`read`]), applied to the memory ([`Facts::apply`]) and written as a row ([`Answer::row`]),
//! and read back from the rows at a start ([`Facts::from_rows`]).

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use alloy::{
    hex,
    primitives::{Address, B256},
    sol_types::SolValue,
};
use morpheus_sdk::contracts::{Bid, Model, ProviderRecord, ProviderRegistryClient};

use super::touched::Fact;
use crate::{Error, Result, select, store::FactRow};

/// What the registry answers about the facts selection reads, as of one block.
#[derive(Debug, Clone, Default)]
pub(crate) struct Facts {
    pub(crate) whitelist_active: bool,
    pub(crate) models: HashMap<B256, Model>,
    pub(crate) bids: HashMap<B256, Arc<Vec<Bid>>>,
    pub(crate) providers: HashMap<Address, ProviderRecord>,
    pub(crate) whitelisted: HashSet<Address>,
    pub(crate) claims: HashSet<(Address, B256)>,
}

/// The registry's answer about one [`Fact`].
#[derive(Debug, Clone)]
pub(crate) enum Answer {
    WhitelistActive(bool),
    /// `None`: no such model.
    Model(B256, Option<Model>),
    Bids(B256, Vec<Bid>),
    Provider(Address, ProviderRecord),
    Whitelisted(Address, bool),
    Claim(Address, B256, bool),
}

/// Asks the registry (at the block `registry` is pinned to) about `fact`.
pub(crate) async fn read(registry: &ProviderRegistryClient, fact: Fact) -> Result<Answer> {
    Ok(match fact {
        Fact::WhitelistActive => Answer::WhitelistActive(registry.whitelist_active().await?),
        Fact::Model(id) => Answer::Model(
            id,
            match select::model(registry, id).await {
                Ok(model) => Some(model),
                Err(Error::UnknownModel(_)) => None,
                Err(e) => return Err(e),
            },
        ),
        Fact::Bids(id) => Answer::Bids(id, select::bids(registry, id).await?),
        Fact::Provider(p) => Answer::Provider(p, registry.provider(p).await?),
        Fact::Whitelisted(p) => Answer::Whitelisted(p, registry.is_whitelisted(p).await?),
        Fact::Claim(p, m) => Answer::Claim(p, m, registry.has_model_claim(p, m).await?),
    })
}

fn id<T: std::fmt::Debug>(value: &T) -> String {
    // Debug of alloy's addresses and fixed bytes is the full lowercase 0x hex: one spelling.
    format!("{value:?}").to_lowercase()
}

fn row(kind: &'static str, id: String, value: &impl SolValue) -> FactRow {
    FactRow {
        kind,
        id,
        value: hex::encode(value.abi_encode()),
    }
}

impl Answer {
    /// The row that holds this answer, or the (kind, id) of the row to delete (an unknown
    /// model, no bids, a provider never registered, a false flag: nothing is stored).
    pub(crate) fn row(&self) -> std::result::Result<FactRow, (&'static str, String)> {
        match self {
            Self::WhitelistActive(on) => Ok(row("whitelist_active", String::new(), on)),
            Self::Model(m, Some(model)) => Ok(row("model", id(m), model)),
            Self::Model(m, None) => Err(("model", id(m))),
            Self::Bids(m, bids) if !bids.is_empty() => Ok(row("bids", id(m), bids)),
            Self::Bids(m, _) => Err(("bids", id(m))),
            Self::Provider(p, record) if *record != ProviderRecord::default() => {
                Ok(row("provider", id(p), record))
            }
            Self::Provider(p, _) => Err(("provider", id(p))),
            Self::Whitelisted(p, true) => Ok(row("whitelisted", id(p), &true)),
            Self::Whitelisted(p, false) => Err(("whitelisted", id(p))),
            Self::Claim(p, m, true) => Ok(row("claim", claim_id(p, m), &true)),
            Self::Claim(p, m, false) => Err(("claim", claim_id(p, m))),
        }
    }
}

fn claim_id(provider: &Address, model: &B256) -> String {
    format!("{}/{}", id(provider), id(model))
}

impl Facts {
    /// Takes in the registry's answer.
    pub(crate) fn apply(&mut self, answer: Answer) {
        match answer {
            Answer::WhitelistActive(on) => self.whitelist_active = on,
            Answer::Model(m, Some(model)) => {
                self.models.insert(m, model);
            }
            Answer::Model(m, None) => {
                self.models.remove(&m);
            }
            Answer::Bids(m, bids) if bids.is_empty() => {
                self.bids.remove(&m);
            }
            Answer::Bids(m, bids) => {
                self.bids.insert(m, Arc::new(bids));
            }
            Answer::Provider(p, record) if record == ProviderRecord::default() => {
                self.providers.remove(&p);
            }
            Answer::Provider(p, record) => {
                self.providers.insert(p, record);
            }
            Answer::Whitelisted(p, true) => {
                self.whitelisted.insert(p);
            }
            Answer::Whitelisted(p, false) => {
                self.whitelisted.remove(&p);
            }
            Answer::Claim(p, m, true) => {
                self.claims.insert((p, m));
            }
            Answer::Claim(p, m, false) => {
                self.claims.remove(&(p, m));
            }
        }
    }

    /// Every fact the index holds, as the facts to ask the registry about again after a
    /// reorganisation.
    pub(crate) fn known(&self) -> impl Iterator<Item = Fact> + '_ {
        std::iter::once(Fact::WhitelistActive)
            .chain(self.models.keys().map(|m| Fact::Model(*m)))
            .chain(self.bids.keys().map(|m| Fact::Bids(*m)))
            .chain(self.providers.keys().map(|p| Fact::Provider(*p)))
            .chain(self.whitelisted.iter().map(|p| Fact::Whitelisted(*p)))
            .chain(self.claims.iter().map(|(p, m)| Fact::Claim(*p, *m)))
    }

    /// Every fact as its row.
    pub(crate) fn rows(&self) -> Vec<FactRow> {
        let mut rows = vec![row(
            "whitelist_active",
            String::new(),
            &self.whitelist_active,
        )];
        rows.extend(
            self.models
                .iter()
                .map(|(m, model)| row("model", id(m), model)),
        );
        rows.extend(
            self.bids
                .iter()
                .map(|(m, bids)| row("bids", id(m), bids.as_ref())),
        );
        rows.extend(
            self.providers
                .iter()
                .map(|(p, record)| row("provider", id(p), record)),
        );
        rows.extend(
            self.whitelisted
                .iter()
                .map(|p| row("whitelisted", id(p), &true)),
        );
        rows.extend(
            self.claims
                .iter()
                .map(|(p, m)| row("claim", claim_id(p, m), &true)),
        );
        rows
    }

    /// The facts the rows `(kind, id, value)` hold; a row that does not decode is an error
    /// naming it.
    pub(crate) fn from_rows(rows: &[(String, String, String)]) -> Result<Self> {
        let mut facts = Self::default();
        for (kind, key, value) in rows {
            let bad = |reason: String| Error::CorruptDatabase {
                column: "chain_facts",
                value: format!("{kind} {key} {value}"),
                reason,
            };
            let bytes = hex::decode(value).map_err(|e| bad(e.to_string()))?;
            let address = |s: &str| s.parse::<Address>().map_err(|e| bad(e.to_string()));
            let b256 = |s: &str| s.parse::<B256>().map_err(|e| bad(e.to_string()));
            let answer = match kind.as_str() {
                "whitelist_active" => Answer::WhitelistActive(decode(&bytes).map_err(bad)?),
                "model" => Answer::Model(b256(key)?, Some(decode(&bytes).map_err(bad)?)),
                "bids" => Answer::Bids(b256(key)?, decode(&bytes).map_err(bad)?),
                "provider" => Answer::Provider(address(key)?, decode(&bytes).map_err(bad)?),
                "whitelisted" => Answer::Whitelisted(address(key)?, true),
                "claim" => {
                    let (p, m) = key
                        .split_once('/')
                        .ok_or_else(|| bad("not provider/model".into()))?;
                    Answer::Claim(address(p)?, b256(m)?, true)
                }
                other => return Err(bad(format!("an unknown kind of fact {other:?}"))),
            };
            facts.apply(answer);
        }
        Ok(facts)
    }
}

fn decode<T: SolValue + From<<T::SolType as alloy::sol_types::SolType>::RustType>>(
    bytes: &[u8],
) -> std::result::Result<T, String> {
    T::abi_decode(bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{FixedBytes, U256};

    use super::*;

    #[test]
    fn every_fact_comes_back_from_its_row_and_a_torn_row_is_named() {
        let (p, m) = (Address::repeat_byte(1), B256::repeat_byte(2));
        let mut facts = Facts::default();
        for answer in [
            Answer::WhitelistActive(true),
            Answer::Model(
                m,
                Some(Model {
                    modelId: m,
                    creator: p,
                    merkleRoot: B256::repeat_byte(3),
                    chunkCount: U256::from(7),
                    format: FixedBytes::repeat_byte(4),
                    name: "tiny".into(),
                    ..Default::default()
                }),
            ),
            Answer::Bids(
                m,
                vec![Bid {
                    provider: p,
                    modelId: m,
                    pricePerToken: U256::from(5),
                    capacity: U256::from(16),
                }],
            ),
            Answer::Provider(
                p,
                ProviderRecord {
                    endpoint: "http://p".into(),
                    stake: U256::from(9),
                    status: 1,
                    ..Default::default()
                },
            ),
            Answer::Whitelisted(p, true),
            Answer::Claim(p, m, true),
        ] {
            facts.apply(answer);
        }
        let rows: Vec<_> = facts
            .rows()
            .into_iter()
            .map(|r| (r.kind.to_string(), r.id, r.value))
            .collect();
        let back = Facts::from_rows(&rows).expect("decodes");
        assert_eq!(format!("{:?}", back.rows()), format!("{:?}", facts.rows()));
        assert!(back.whitelist_active && back.claims.contains(&(p, m)));
        assert_eq!(back.bids[&m][0].pricePerToken, U256::from(5));

        let mut torn = rows.clone();
        torn[1].2.truncate(10);
        let e = Facts::from_rows(&torn).expect_err("torn").to_string();
        assert!(e.contains("chain_facts"), "{e}");
    }

    #[test]
    fn a_false_or_empty_answer_deletes_its_row() {
        let (p, m) = (Address::repeat_byte(1), B256::repeat_byte(2));
        for (answer, kind) in [
            (Answer::Model(m, None), "model"),
            (Answer::Bids(m, vec![]), "bids"),
            (Answer::Provider(p, ProviderRecord::default()), "provider"),
            (Answer::Whitelisted(p, false), "whitelisted"),
            (Answer::Claim(p, m, false), "claim"),
        ] {
            assert_eq!(answer.row().expect_err("a deletion").0, kind);
        }
    }
}
