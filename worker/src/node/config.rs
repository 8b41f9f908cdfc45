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
    /// The model served and its bid.
    pub model: ModelConfig,
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

/// The bid the contract accepts: price and capacity above 0, price within `uint112`, capacity
/// within `uint64` (`ProviderRegistry._checkBid`).
pub fn check_bid(price_per_token: U256, capacity: u64) -> Result<()> {
    let max_price = (U256::from(1) << 112) - U256::from(1);
    if price_per_token.is_zero() || price_per_token > max_price {
        return Err(Error::Config(format!(
            "model.price_per_token: {price_per_token} MOR wei is outside the contract's bounds (1 to {max_price})"
        )));
    }
    if capacity == 0 {
        return Err(Error::Config("model.capacity: must be at least 1".into()));
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
        check_bid(self.price_per_token()?, self.model.capacity)?;
        if let Some(stake) = &self.stake {
            mor("stake", stake)?;
        }
        self.claim_policy()?;
        self.eth_usd()?;
        if self.claims.router_urls.is_empty() {
            return Err(Error::Config(
                "claims.router_urls: name at least one router to fetch vouchers from".into(),
            ));
        }
        for url in &self.claims.router_urls {
            reqwest_url(url)?;
        }
        if self.model.name.trim().is_empty() {
            return Err(Error::Config("model.name: empty".into()));
        }
        Ok(())
    }

    /// The bid's price in MOR wei per token.
    pub fn price_per_token(&self) -> Result<U256> {
        mor("model.price_per_token", &self.model.price_per_token)
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

    /// ETH's USD price (18 decimals) when gas is priced at MOR's on-chain price.
    pub fn eth_usd(&self) -> Result<Option<U256>> {
        let c = &self.claims;
        match (&c.mor_per_eth, &c.eth_usd) {
            (Some(_), Some(_)) => Err(Error::Config(
                "claims: both mor_per_eth and eth_usd are set; use one".into(),
            )),
            (_, Some(usd)) => match mor("claims.eth_usd", usd)? {
                zero if zero.is_zero() => {
                    Err(Error::Config("claims.eth_usd: must be above 0".into()))
                }
                usd => Ok(Some(usd)),
            },
            _ => Ok(None),
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
        assert_eq!(
            cfg.price_per_token().expect("price"),
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
}
