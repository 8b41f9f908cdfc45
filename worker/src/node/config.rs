//! `worker.toml`: everything a provider's node needs besides its key. Unknown keys are refused
//! (a misspelt setting must not silently fall back to a default), and [`NodeConfig::check`]
//! refuses values the contracts would revert on, with the key to blame.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use alloy::primitives::{Address, U256, utils::parse_ether};
use serde::Deserialize;

use crate::{Error, Result, claim::ClaimPolicy};

/// A provider node's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// JSON-RPC URL of the chain.
    pub rpc_url: String,
    /// The deployment's addresses (`deployments/<chain id>.json`); its chain id must be the
    /// node's.
    pub deployment: PathBuf,
    /// Where the API listens.
    pub listen: SocketAddr,
    /// The URL routers and users reach the API at, registered on-chain (default:
    /// `http://<listen>`).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The node's state: `worker.db` (sessions' counts, vouchers, claims).
    pub data_dir: PathBuf,
    /// The provider's address, when the node must run as it: a key that is another's is refused.
    #[serde(default)]
    pub provider: Option<Address>,
    /// An encrypted JSON keystore holding the provider's key (instead of
    /// `MORPHEUS_PROVIDER_KEY`); its password in `MORPHEUS_KEYSTORE_PASSWORD` or
    /// [`keystore_password_file`](Self::keystore_password_file).
    #[serde(default)]
    pub keystore: Option<PathBuf>,
    /// A file whose first line is the keystore's password.
    #[serde(default)]
    pub keystore_password_file: Option<PathBuf>,
    /// MOR (decimal) staked when registering (default: the registry's minimum).
    #[serde(default)]
    pub stake: Option<String>,
    /// Router signers whose assignments are honoured (default: every router `SessionRouter`
    /// authorises, read at start).
    #[serde(default)]
    pub routers: Vec<Address>,
    /// Seconds between on-chain checks that the routers are still authorised.
    #[serde(default = "default_router_refresh")]
    pub router_refresh_secs: u64,
    /// Seconds the node keeps retrying at start while the chain cannot be reached, before it
    /// gives up with the reason.
    #[serde(default = "default_startup_retry")]
    pub startup_retry_secs: u64,
    /// The model served and its bid (one model; or [`models`](Self::models) for several).
    #[serde(default)]
    pub model: Option<ModelConfig>,
    /// The models served, each with its own bid, behind the one endpoint (`[[models]]`).
    #[serde(default)]
    pub models: Vec<ModelConfig>,
    /// The engine's limits.
    #[serde(default)]
    pub engine: EngineSection,
    /// When and from whom credit is claimed.
    pub claims: ClaimsConfig,
}

/// The served model and the provider's bid for it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The prepared model directory (`morpheus-worker model prepare`).
    pub dir: PathBuf,
    /// The name it is registered under.
    pub name: String,
    /// Who registered it, when someone else did (default: this provider registers it, once).
    #[serde(default)]
    pub creator: Option<Address>,
    /// MOR (decimal) per token bid.
    pub price_per_token: String,
    /// Sessions served at once, bid.
    pub capacity: u64,
}

impl ModelConfig {
    /// The bid's price in MOR wei per token; `key` names the model's settings in the error.
    pub fn price(&self, key: &str) -> Result<U256> {
        mor(&format!("{key}.price_per_token"), &self.price_per_token)
    }
}

/// The engine's limits (`serve`'s flags of the same names).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSection {
    /// ONNX Runtime intra-op threads (default: the cores).
    #[serde(default)]
    pub threads: Option<usize>,
    /// Most sequences decoded together.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// Longest sequence, prompt and completion.
    #[serde(default = "default_max_context")]
    pub max_context: usize,
    /// Requests waiting beyond the batch before refusals.
    #[serde(default = "default_max_queue")]
    pub max_queue: usize,
    /// The ONNX Runtime library (default: found as `serve` finds it).
    #[serde(default)]
    pub ort_lib: Option<PathBuf>,
    /// Reuse the caches of prompts' shared prefixes (`serve --no-prefix-cache` turns it off).
    #[serde(default = "default_prefix_cache")]
    pub prefix_cache: bool,
}

fn default_prefix_cache() -> bool {
    true
}

impl Default for EngineSection {
    fn default() -> Self {
        Self {
            threads: None,
            max_batch: default_max_batch(),
            max_context: default_max_context(),
            max_queue: default_max_queue(),
            ort_lib: None,
            prefix_cache: true,
        }
    }
}

/// The automatic claims.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimsConfig {
    /// Routers' URLs to fetch vouchers from.
    pub router_urls: Vec<String>,
    /// Seconds between looks at what is owed.
    #[serde(default = "default_interval")]
    pub interval_secs: u64,
    /// Claim once what is owed is at least this many times the claim's gas cost in MOR.
    #[serde(default = "default_gas_multiple")]
    pub gas_multiple: u64,
    /// Claim anything owed once the oldest credit is this many hours old.
    #[serde(default = "default_max_age_hours")]
    pub max_age_hours: u64,
    /// Never claim at a gas price above this many gwei.
    #[serde(default = "default_max_gas_gwei")]
    pub max_gas_gwei: u64,
    /// The price of 1 ETH in MOR (decimal), to price the gas (default 1000, unless `eth_usd`).
    #[serde(default)]
    pub mor_per_eth: Option<String>,
    /// The price of 1 ETH in USD (decimal): gas is then priced in MOR at MOR's price from the
    /// protocol's on-chain price source, read every round, instead of a fixed `mor_per_eth`.
    #[serde(default)]
    pub eth_usd: Option<String>,
    /// An on-chain ETH/USD feed in Chainlink's shape (`latestRoundData`), read every round with
    /// MOR's price from the protocol's price source: gas priced in MOR from the chain alone.
    #[serde(default)]
    pub eth_usd_feed: Option<Address>,
    /// The oldest answer of `eth_usd_feed` a round prices gas with, in seconds (older: the round
    /// waits and says why).
    #[serde(default = "default_feed_max_age")]
    pub eth_usd_feed_max_age_secs: u64,
}

/// Where a round of claims gets ETH's price from, to price the claim's gas in MOR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EthPrice {
    /// A fixed rate: the policy's `mor_per_eth`.
    Fixed,
    /// A configured USD price (18 decimals), MOR's from the protocol's price source.
    Usd(U256),
    /// An on-chain ETH/USD feed, MOR's from the protocol's price source.
    Feed {
        /// The feed's address.
        address: Address,
        /// The oldest answer taken, in seconds.
        max_age: u64,
    },
}

fn default_startup_retry() -> u64 {
    120
}
fn default_router_refresh() -> u64 {
    30
}
fn default_max_batch() -> usize {
    16
}
fn default_max_context() -> usize {
    2048
}
fn default_max_queue() -> usize {
    256
}
fn default_interval() -> u64 {
    60
}
fn default_gas_multiple() -> u64 {
    10
}
fn default_max_age_hours() -> u64 {
    24
}
fn default_max_gas_gwei() -> u64 {
    100
}
fn default_feed_max_age() -> u64 {
    3600
}

/// The bid the contract accepts: price and capacity above 0, price within `uint112`, capacity
/// within `uint64` (`ProviderRegistry._checkBid`).
pub fn check_bid(price_per_token: U256, capacity: u64) -> Result<()> {
    check_bid_of("model", price_per_token, capacity)
}

/// [`check_bid`] for the model whose settings are under `key` (`model`, `models[1]`).
fn check_bid_of(key: &str, price_per_token: U256, capacity: u64) -> Result<()> {
    let max_price = (U256::from(1) << 112) - U256::from(1);
    if price_per_token.is_zero() || price_per_token > max_price {
        return Err(Error::Config(format!(
            "{key}.price_per_token: {price_per_token} MOR wei is outside the contract's bounds (1 to {max_price})"
        )));
    }
    if capacity == 0 {
        return Err(Error::Config(format!("{key}.capacity: must be at least 1")));
    }
    Ok(())
}

/// A decimal MOR amount in wei; `key` names the setting in the error.
fn mor(key: &str, value: &str) -> Result<U256> {
    let v = value.trim();
    if v.starts_with('-') {
        return Err(Error::Config(format!("{key}: {value:?} is below zero")));
    }
    parse_ether(v).map_err(|e| Error::Config(format!("{key}: {value:?} is not a MOR amount ({e})")))
}

impl NodeConfig {
    /// Reads and checks `path`.
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let cfg = Self::parse(&text).map_err(|e| match e {
            Error::Config(why) => Error::Config(format!("{}: {why}", path.display())),
            e => e,
        })?;
        Ok(cfg)
    }

    /// Parses and checks a configuration's text.
    pub fn parse(text: &str) -> Result<Self> {
        let cfg: Self = toml::from_str(text).map_err(|e| Error::Config(toml_error(text, &e)))?;
        cfg.check()?;
        Ok(cfg)
    }

    /// Refuses what the contracts or the node cannot work with, naming the setting.
    pub fn check(&self) -> Result<()> {
        let served = self.served()?;
        let mut names = std::collections::HashSet::new();
        for (key, model) in &served {
            check_bid_of(key, model.price(key)?, model.capacity)?;
            if model.name.trim().is_empty() {
                return Err(Error::Config(format!("{key}.name: empty")));
            }
            if !names.insert(model.name.as_str()) {
                return Err(Error::Config(format!(
                    "{key}.name: {:?} is served twice; each model needs its own name",
                    model.name
                )));
            }
        }
        if let Some(stake) = &self.stake {
            mor("stake", stake)?;
        }
        self.claim_policy()?;
        self.eth_price()?;
        if self.claims.router_urls.is_empty() {
            return Err(Error::Config(
                "claims.router_urls: name at least one router to fetch vouchers from".into(),
            ));
        }
        for url in &self.claims.router_urls {
            reqwest_url(url)?;
        }
        Ok(())
    }

    /// The models served, each with the key its settings are under (`model`, or `models[i]`).
    pub fn served(&self) -> Result<Vec<(String, &ModelConfig)>> {
        match (&self.model, self.models.as_slice()) {
            (Some(_), [_, ..]) => Err(Error::Config(
                "model: both [model] and [[models]] are set; list every model under [[models]]"
                    .into(),
            )),
            (Some(model), []) => Ok(vec![("model".into(), model)]),
            (None, []) => Err(Error::Config(
                "model: no model to serve; add a [model] table (or [[models]] for several)".into(),
            )),
            (None, models) => Ok(models
                .iter()
                .enumerate()
                .map(|(i, m)| (format!("models[{i}]"), m))
                .collect()),
        }
    }

    /// The stake to register with, when configured.
    pub fn stake(&self) -> Result<Option<U256>> {
        self.stake.as_deref().map(|s| mor("stake", s)).transpose()
    }

    /// The URL registered on-chain.
    pub fn endpoint(&self) -> String {
        self.endpoint
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
    }

    /// The provider's key: `env_key` (`MORPHEUS_PROVIDER_KEY`) or the keystore.
    pub fn signer(&self, env_key: Option<&str>) -> Result<alloy::signers::local::PrivateKeySigner> {
        let password = std::env::var(super::key::KEYSTORE_PASSWORD_ENV).ok();
        super::key::provider_key(
            env_key,
            self.keystore.as_deref(),
            password.as_deref(),
            self.keystore_password_file.as_deref(),
        )
    }

    /// The database file.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("worker.db")
    }

    /// The claim rule.
    pub fn claim_policy(&self) -> Result<ClaimPolicy> {
        let c = &self.claims;
        Ok(ClaimPolicy {
            gas_multiple: c.gas_multiple,
            max_age: Duration::from_secs(c.max_age_hours.saturating_mul(3600)),
            max_gas_price: u128::from(c.max_gas_gwei).saturating_mul(1_000_000_000),
            mor_per_eth: mor(
                "claims.mor_per_eth",
                c.mor_per_eth.as_deref().unwrap_or("1000"),
            )?,
        })
    }

    /// Where ETH's price comes from: `mor_per_eth` (or its default), `eth_usd` or
    /// `eth_usd_feed`, at most one of them.
    pub fn eth_price(&self) -> Result<EthPrice> {
        let c = &self.claims;
        let set = [
            c.mor_per_eth.is_some(),
            c.eth_usd.is_some(),
            c.eth_usd_feed.is_some(),
        ];
        if set.iter().filter(|s| **s).count() > 1 {
            return Err(Error::Config(
                "claims: more than one of mor_per_eth, eth_usd and eth_usd_feed is set; use one"
                    .into(),
            ));
        }
        if let Some(address) = c.eth_usd_feed {
            if address == Address::ZERO {
                return Err(Error::Config(
                    "claims.eth_usd_feed: the zero address is no feed".into(),
                ));
            }
            return Ok(EthPrice::Feed {
                address,
                max_age: c.eth_usd_feed_max_age_secs,
            });
        }
        match &c.eth_usd {
            Some(usd) => match mor("claims.eth_usd", usd)? {
                zero if zero.is_zero() => {
                    Err(Error::Config("claims.eth_usd: must be above 0".into()))
                }
                usd => Ok(EthPrice::Usd(usd)),
            },
            None => Ok(EthPrice::Fixed),
        }
    }
}

/// One line for a TOML error: the line it is on, as written, and what is wrong.
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count();
            let written = text.lines().nth(line).unwrap_or("").trim();
            format!("line {} ({written}): {}", line + 1, e.message().trim())
        }
        None => e.message().trim().to_string(),
    }
}

fn reqwest_url(url: &str) -> Result<()> {
    match url.split_once("://") {
        Some(("http" | "https", rest)) if !rest.is_empty() => Ok(()),
        _ => Err(Error::Config(format!(
            "claims.router_urls: {url:?} is not an http(s) URL"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
rpc_url = "http://127.0.0.1:8545"
deployment = "deployments/31337.json"
listen = "127.0.0.1:8081"
data_dir = "state"

[model]
dir = "models/tiny"
name = "tiny"
price_per_token = "0.00000005"
capacity = 16

[claims]
router_urls = ["http://127.0.0.1:8080"]
"#;

    fn parse(text: &str) -> Result<NodeConfig> {
        NodeConfig::parse(text)
    }

    #[test]
    fn a_minimal_config_takes_the_defaults() {
        let cfg = parse(GOOD).expect("valid");
        let served = cfg.served().expect("one model");
        assert_eq!(served.len(), 1);
        assert_eq!(
            served[0].1.price(&served[0].0).expect("price"),
            U256::from(50_000_000_000u64)
        );
        assert_eq!(cfg.endpoint(), "http://127.0.0.1:8081");
        assert_eq!(cfg.db_path(), PathBuf::from("state/worker.db"));
        assert_eq!(cfg.claims.interval_secs, 60);
        assert_eq!(cfg.engine.max_batch, 16);
        assert!(cfg.stake().expect("stake").is_none());
    }

    fn refused(text: &str) -> String {
        parse(text).expect_err("refused").to_string()
    }

    #[test]
    fn bad_settings_are_refused_naming_them() {
        // (what GOOD says, what the bad file says instead, what the refusal must mention)
        let price = "\"0.00000005\"";
        let cases = [
            (price, "\"-1\"", "below zero"),
            (price, "\"0\"", "model.price_per_token"),
            (
                price,
                "\"99999999999999999999999999999999\"",
                "outside the contract's bounds",
            ),
            (price, "\"cheap\"", "not a MOR amount"),
            ("capacity = 16", "capacity = 0", "model.capacity"),
            ("capacity = 16", "capacity = -1", "capacity"),
            (
                "[claims]",
                "[claims]\nmor_per_eth = \"x\"",
                "claims.mor_per_eth",
            ),
            (
                "[claims]",
                "[claims]\nmor_per_eth = \"1\"\neth_usd = \"3000\"",
                "use one",
            ),
            (
                "[claims]",
                "[claims]\neth_usd = \"3000\"\neth_usd_feed = \"0x0000000000000000000000000000000000000001\"",
                "use one",
            ),
            (
                "[claims]",
                "[claims]\neth_usd_feed = \"0x0000000000000000000000000000000000000000\"",
                "claims.eth_usd_feed",
            ),
            ("[claims]", "[claims]\neth_usd_feed = \"nowhere\"", "eth_usd_feed"),
            ("[claims]", "[claims]\neth_usd = \"0\"", "claims.eth_usd"),
            ("[\"http://127.0.0.1:8080\"]", "[]", "claims.router_urls"),
            ("http://127.0.0.1:8080", "ftp://x", "not an http(s) URL"),
            ("data_dir", "data_dri", "unknown field `data_dri`"),
            ("127.0.0.1:8081", "nowhere", "listen"),
        ]
        .map(|(good, bad, words)| (GOOD.replace(good, bad), words));
        for (text, words) in cases {
            let err = refused(&text);
            assert!(err.contains(words), "{err:?} should mention {words:?}");
        }
    }

    const TWO: &str = r#"
[[models]]
dir = "models/tiny"
name = "tiny"
price_per_token = "0.00000005"
capacity = 16

[[models]]
dir = "models/other"
name = "other"
price_per_token = "0.0000001"
capacity = 4
"#;

    #[test]
    fn several_models_are_listed_each_checked_under_its_own_key() {
        let head = GOOD.split("[model]").next().expect("the head");
        let claims = "[claims]\nrouter_urls = [\"http://127.0.0.1:8080\"]\n";
        let two = format!("{head}{claims}{TWO}");
        let cfg = parse(&two).expect("valid");
        let served = cfg.served().expect("two");
        assert_eq!(
            served
                .iter()
                .map(|(k, m)| (k.as_str(), m.name.as_str()))
                .collect::<Vec<_>>(),
            [("models[0]", "tiny"), ("models[1]", "other")]
        );
        assert_eq!(
            served[1].1.price(&served[1].0).expect("price"),
            U256::from(100_000_000_000u64)
        );

        let cases = [
            (
                two.replace("capacity = 4", "capacity = 0"),
                "models[1].capacity",
            ),
            (
                two.replace("\"0.0000001\"", "\"-2\""),
                "models[1].price_per_token",
            ),
            (
                two.replace("name = \"other\"", "name = \"tiny\""),
                "served twice",
            ),
            (format!("{GOOD}{TWO}"), "both [model] and [[models]]"),
            (format!("{head}{claims}"), "no model to serve"),
        ];
        for (text, words) in cases {
            let err = refused(&text);
            assert!(err.contains(words), "{err:?} should mention {words:?}");
        }
    }
}
