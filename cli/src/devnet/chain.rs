//! The local chain: anvil, the protocol deployed by `script/Deploy.s.sol` through forge (which on
//! anvil also mints test MOR to the first ten accounts, whitelists them as providers and funds
//! the pool), and the clock moved to the next UTC day so the pool's budget is live.

use std::{path::Path, time::Duration};

use alloy::{
    primitives::{Address, U256},
    providers::{Provider, ProviderBuilder},
    signers::{Signer, local::PrivateKeySigner},
};
use morpheus_sdk::{Deployment, contracts::Protocol};
use tokio::process::Command;

use super::{model::PreparedModel, process::Service, tools::Tools};
use crate::{Error, Result};

/// anvil's chain id, which the deploy script treats as the local network.
pub(crate) const CHAIN_ID: u64 = 31_337;

/// anvil's development accounts (its well-known mnemonic), in the roles the deploy script
/// gives them: 0 deploys and owns the contracts, 1 is the router signer.
const DEPLOYER_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const ROUTER_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
/// Account 2 serves as the provider and account 3 is the user; any funded account would do.
const PROVIDER_KEY: &str = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";
const USER_KEY: &str = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6";

/// How long anvil may take to answer its first request.
const ANVIL_START: Duration = Duration::from_secs(20);

/// The accounts of the devnet, signing for chain id [`CHAIN_ID`].
#[derive(Debug, Clone)]
pub(crate) struct Accounts {
    pub(crate) deployer: PrivateKeySigner,
    pub(crate) router: PrivateKeySigner,
    pub(crate) provider: PrivateKeySigner,
    pub(crate) user: PrivateKeySigner,
}

impl Accounts {
    pub(crate) fn anvil() -> Result<Self> {
        let key = |hex: &str| {
            hex.parse::<PrivateKeySigner>()
                .map(|k| k.with_chain_id(Some(CHAIN_ID)))
                .map_err(|e| Error::Devnet(format!("anvil key: {e}")))
        };
        Ok(Self {
            deployer: key(DEPLOYER_KEY)?,
            router: key(ROUTER_KEY)?,
            provider: key(PROVIDER_KEY)?,
            user: key(USER_KEY)?,
        })
    }
}

/// Starts anvil on `port` and waits until it answers as chain [`CHAIN_ID`].
pub(crate) async fn start_anvil(tools: &Tools, port: u16, log_dir: &Path) -> Result<Service> {
    let mut command = Command::new(&tools.anvil);
    command
        .arg("--host")
        .arg("127.0.0.1")
        .arg("--port")
        .arg(port.to_string());
    let mut anvil = Service::spawn("anvil", command, &tools.root, log_dir.join("anvil.log"))?;
    let url = rpc_url(port);
    let provider = ProviderBuilder::new().connect_http(parse_url(&url)?);
    let started = tokio::time::Instant::now();
    loop {
        anvil.check_running()?;
        match provider.get_chain_id().await {
            Ok(CHAIN_ID) => return Ok(anvil),
            Ok(other) => {
                return Err(Error::Devnet(format!(
                    "anvil at {url} says chain {other}, not {CHAIN_ID}"
                )));
            }
            Err(e) if started.elapsed() > ANVIL_START => {
                return Err(Error::Devnet(format!(
                    "anvil did not answer at {url} within {ANVIL_START:?} ({e}); its log is {}",
                    anvil.log().display()
                )));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The JSON-RPC URL of anvil on `port`.
pub(crate) fn rpc_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

fn parse_url(url: &str) -> Result<reqwest::Url> {
    url.parse()
        .map_err(|e| Error::Devnet(format!("{url} is not a URL: {e}")))
}

/// Runs the deploy script against `rpc` with the served model as the model it registers, and
/// reads the deployment file it writes. The file is copied into `state_dir`, which is what the
/// router is given, so the repository's copy may be rewritten by another run meanwhile.
pub(crate) async fn deploy(
    tools: &Tools,
    rpc: &str,
    model: &PreparedModel,
    accounts: &Accounts,
    state_dir: &Path,
) -> Result<Deployment> {
    let mut command = Command::new(&tools.forge);
    command
        .arg("script")
        .arg(super::tools::DEPLOY_SCRIPT)
        .arg("--rpc-url")
        .arg(rpc)
        .arg("--broadcast")
        .arg("--private-key")
        .arg(DEPLOYER_KEY)
        .env("ROUTER_SIGNER", accounts.router.address().to_string())
        .env("MODEL_ROOT", model.root.to_string())
        .env("MODEL_CHUNKS", model.chunks.to_string())
        .env("MODEL_FORMAT", &model.format)
        .env("MODEL_NAME", &model.name);
    Service::spawn(
        "forge script",
        command,
        &tools.root,
        state_dir.join("deploy.log"),
    )?
    .finish()
    .await?;
    let written = tools
        .root
        .join("deployments")
        .join(format!("{CHAIN_ID}.json"));
    let deployment = Deployment::load(&written)?;
    if deployment.chain_id != CHAIN_ID {
        return Err(Error::Devnet(format!(
            "{} is for chain {}, not {CHAIN_ID}",
            written.display(),
            deployment.chain_id
        )));
    }
    deployment.save(state_dir.join("deployment.json"))?;
    Ok(deployment)
}

/// Moves the chain's clock one day on and mines a block: the pool's budget is 1% of its
/// balance at the start of a UTC day, and it was funded just now.
pub(crate) async fn next_day(rpc: &str) -> Result<()> {
    let provider = ProviderBuilder::new().connect_http(parse_url(rpc)?);
    let failed = |e: alloy::transports::TransportError| Error::Devnet(format!("anvil: {e}"));
    let _: serde_json::Value = provider
        .raw_request("evm_increaseTime".into(), (86_400u64,))
        .await
        .map_err(failed)?;
    let _: serde_json::Value = provider
        .raw_request("evm_mine".into(), ())
        .await
        .map_err(failed)?;
    Ok(())
}

/// What the deploy script funded, as the chain now says.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Funding {
    pub(crate) pool_balance: U256,
    pub(crate) pool_reserve: U256,
    pub(crate) budget: U256,
    pub(crate) provider: U256,
    pub(crate) user: U256,
}

/// Reads the pool's and the two accounts' MOR.
pub(crate) async fn funding(chain: &Protocol, provider: Address, user: Address) -> Result<Funding> {
    let pool = chain.pool();
    let mor = chain.mor();
    let (pool_balance, pool_reserve, today, provider, user) = tokio::try_join!(
        pool.balance(),
        pool.reserve(),
        pool.today(),
        mor.balance_of(provider),
        mor.balance_of(user),
    )?;
    Ok(Funding {
        pool_balance,
        pool_reserve,
        budget: today.budget,
        provider,
        user,
    })
}
