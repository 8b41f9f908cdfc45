//! A deployed local protocol on a fresh anvil.

use alloy::{
    node_bindings::AnvilInstance,
    primitives::{Address, B256, U256, utils::parse_ether},
    providers::{DynProvider, Provider, ProviderBuilder},
    signers::{Signer, local::PrivateKeySigner},
};

use morpheus_sdk::{
    Deployment,
    contracts::{
        GGUF, Protocol,
        bindings::{
            compute_pool::ComputePool, fixed_aggregator::FixedAggregator,
            fixed_price_source::FixedPriceSource, provider_registry::ProviderRegistry,
            session_router::SessionRouter, test_mor::TestMOR,
        },
        wallet_provider,
    },
    merkle::ModelTree,
};

use crate::{Error, Result, WorkerOptions, anvil::spawn_anvil};

/// Accounts funded and whitelisted on a devnet (anvil's first ten).
pub const FUNDED_ACCOUNTS: usize = 10;

/// A running anvil with the protocol deployed the way `script/Deploy.s.sol` deploys it locally:
/// test MOR minted to every anvil account, the pool funded with 1,000,000 MOR, account 1 the
/// router signer, every account whitelisted as a provider, prices MOR $20 and $0.002 per 1000
/// tokens. The chain is then moved one day on, so today's budget is 1% of the funded pool.
///
/// Dropping it stops anvil.
#[derive(Debug)]
pub struct Devnet {
    anvil: AnvilInstance,
    deployment: Deployment,
}

impl Devnet {
    /// `SessionRouter.ROUTER_DELAY` on the devnet: seconds between announcing a router change
    /// and its effect (the contract's minimum, one day).
    pub const ROUTER_DELAY: u64 = 86_400;

    /// MOR (wei) minted to every funded account.
    pub fn mint_per_account() -> U256 {
        parse_ether("100000").expect("constant")
    }

    /// MOR (wei) deposited into the pool.
    pub fn pool_deposit() -> U256 {
        parse_ether("1000000").expect("constant")
    }

    /// Starts anvil and deploys the protocol from the artifacts in `sdk/abi/`.
    pub async fn start() -> Result<Self> {
        let anvil = spawn_anvil()?;
        let deployment = deploy(&anvil).await?;
        let devnet = Self { anvil, deployment };
        devnet.advance_days(1).await?;
        Ok(devnet)
    }

    /// The JSON-RPC URL.
    pub fn rpc_url(&self) -> String {
        self.anvil.endpoint()
    }

    /// The deployed addresses.
    pub fn deployment(&self) -> Deployment {
        self.deployment
    }

    /// Anvil account `index` (0 deployed the contracts and owns them; 1 is the router signer).
    pub fn signer(&self, index: usize) -> PrivateKeySigner {
        let key = self.anvil.keys()[index].clone();
        let mut signer = PrivateKeySigner::from(key);
        signer.set_chain_id(Some(self.anvil.chain_id()));
        signer
    }

    /// The router signer's key.
    pub fn router_signer(&self) -> PrivateKeySigner {
        self.signer(1)
    }

    /// A connection sending as anvil account `index`.
    pub async fn protocol(&self, index: usize) -> Result<Protocol> {
        Ok(Protocol::connect(&self.rpc_url(), self.deployment, Some(self.signer(index))).await?)
    }

    /// Account `index` becomes a provider of `model_id`: registered at `endpoint` with 10 MOR
    /// staked, its claim on the model signed and relayed, and a bid of `price` MOR wei per token
    /// for `capacity` sessions at once.
    pub async fn provide(
        &self,
        index: usize,
        endpoint: &str,
        model_id: B256,
        price: U256,
        capacity: u64,
    ) -> Result<()> {
        let protocol = self.protocol(index).await?;
        let registry = protocol.registry();
        registry
            .register(endpoint, parse_ether("10").expect("constant"))
            .await?;
        let signer = self.signer(index);
        let claim = registry.sign_model_claim(model_id, &signer).await?;
        registry
            .claim_model(signer.address(), model_id, claim)
            .await?;
        registry
            .post_bid(model_id, price, U256::from(capacity))
            .await?;
        Ok(())
    }

    /// Account `index` registers the kit's tiny model ([`tiny_weights`](crate::tiny_weights):
    /// its GGUF's Merkle root and chunk count, format `gguf`) under `name`; returns its id.
    pub async fn register_tiny_model(&self, index: usize, name: &str) -> Result<B256> {
        let tree = ModelTree::from_file(crate::tiny_weights(), |_, _| {})?;
        Ok(self
            .protocol(index)
            .await?
            .registry()
            .register_model(tree.root(), tree.leaf_count(), GGUF, name)
            .await?)
    }

    /// The options of a worker serving `model_id` as account `index` that honours this
    /// devnet's router signer; one thread, the kit's tiny model (edit the rest).
    pub fn worker_options(&self, index: usize, model_id: B256) -> WorkerOptions {
        WorkerOptions {
            threads: 1,
            provider: self.signer(index),
            router: self.router_signer(),
            chain_id: self.deployment.chain_id,
            session_router: self.deployment.session_router,
            model_id,
            ..Default::default()
        }
    }

    /// Account `index` stakes `mor` (whole MOR, decimal) in `SessionRouter`.
    pub async fn stake(&self, index: usize, mor: &str) -> Result<()> {
        let amount = parse_ether(mor).map_err(|e| Error::Setup(format!("stake {mor:?}: {e}")))?;
        self.protocol(index)
            .await?
            .session_router()
            .stake(amount)
            .await?;
        Ok(())
    }

    /// A command running the `morpheus-router` binary `bin` as this devnet's router: the
    /// deployment file written into `dir`, the PostgreSQL database `postgres` or else the SQLite
    /// file `dir/router.db`, listening on `listen`,
    /// the router signer's key in `MORPHEUS_ROUTER_KEY`, killed when dropped. Callers add their
    /// flags, environment and output.
    pub fn router_command(
        &self,
        bin: &std::path::Path,
        dir: &std::path::Path,
        listen: &str,
        postgres: Option<&str>,
    ) -> Result<tokio::process::Command> {
        let deployment = dir.join("deployment.json");
        self.deployment.save(&deployment)?;
        let mut cmd = tokio::process::Command::new(bin);
        cmd.args(["serve", "--rpc-url", &self.rpc_url(), "--listen", listen])
            .arg("--deployment")
            .arg(&deployment);
        match postgres {
            Some(url) => cmd.arg("--postgres").arg(url),
            None => cmd.arg("--db").arg(dir.join("router.db")),
        };
        cmd.env(
            "MORPHEUS_ROUTER_KEY",
            format!("{:?}", self.router_signer().to_bytes()),
        )
        .kill_on_drop(true);
        Ok(cmd)
    }

    /// Moves the chain's clock `days` UTC days on and mines a block.
    pub async fn advance_days(&self, days: u64) -> Result<()> {
        self.advance_seconds(days * 86_400).await
    }

    /// Moves the chain's clock `seconds` on and mines a block.
    pub async fn advance_seconds(&self, seconds: u64) -> Result<()> {
        let provider = ProviderBuilder::new().connect_http(self.anvil.endpoint_url());
        let rpc = |e: alloy::transports::TransportError| rpc_error(e.to_string());
        let _: serde_json::Value = provider
            .raw_request("evm_increaseTime".into(), (seconds,))
            .await
            .map_err(rpc)?;
        let _: serde_json::Value = provider
            .raw_request("evm_mine".into(), ())
            .await
            .map_err(rpc)?;
        Ok(())
    }

    /// Deploys an ETH/USD price feed in Chainlink's shape (`FixedAggregator`, 8 decimals), owned
    /// by account 0, first answering `answer`; returns its address.
    pub async fn deploy_eth_usd_feed(&self, answer: i64) -> Result<Address> {
        let feed = FixedAggregator::deploy(
            self.owner_provider(),
            self.signer(0).address(),
            "ETH / USD".to_string(),
            alloy::primitives::I256::try_from(answer).map_err(|e| rpc_error(e.to_string()))?,
        )
        .await
        .map_err(|e| rpc_error(format!("deploying FixedAggregator: {e}")))?;
        Ok(*feed.address())
    }

    /// Sets the feed at `feed` to answer `answer` from now (a new round), as its owner.
    pub async fn set_feed_answer(&self, feed: Address, answer: i64) -> Result<()> {
        FixedAggregator::new(feed, self.owner_provider())
            .setAnswer(
                alloy::primitives::I256::try_from(answer).map_err(|e| rpc_error(e.to_string()))?,
            )
            .send()
            .await
            .map_err(|e| rpc_error(format!("setAnswer: {e}")))?
            .get_receipt()
            .await
            .map_err(|e| rpc_error(format!("setAnswer: {e}")))?;
        Ok(())
    }

    /// A provider sending as account 0, the contracts' owner.
    fn owner_provider(&self) -> DynProvider {
        wallet_provider(self.anvil.endpoint_url(), self.signer(0))
    }

    /// The chain's latest block time (unix seconds).
    pub async fn now(&self) -> Result<u64> {
        Ok(Protocol::connect(&self.rpc_url(), self.deployment, None)
            .await?
            .latest_block_time()
            .await?)
    }
}

fn rpc_error(message: String) -> Error {
    Error::Sdk(morpheus_sdk::Error::Rpc(message))
}

async fn deploy(anvil: &AnvilInstance) -> Result<Deployment> {
    let mut owner = PrivateKeySigner::from(anvil.keys()[0].clone());
    owner.set_chain_id(Some(anvil.chain_id()));
    let owner_address = owner.address();
    let provider: DynProvider = wallet_provider(anvil.endpoint_url(), owner.clone());
    let deploy_err = |what: &'static str| {
        move |e: alloy::contract::Error| rpc_error(format!("deploying {what}: {e}"))
    };
    let deploy_block = provider
        .get_block_number()
        .await
        .map_err(|e| rpc_error(e.to_string()))?;

    let mor = TestMOR::deploy(provider.clone(), owner_address)
        .await
        .map_err(deploy_err("TestMOR"))?;
    let prices = FixedPriceSource::deploy(
        provider.clone(),
        owner_address,
        parse_ether("20").expect("constant"),
        parse_ether("0.002").expect("constant"),
    )
    .await
    .map_err(deploy_err("FixedPriceSource"))?;
    let registry = ProviderRegistry::deploy(
        provider.clone(),
        owner_address,
        *mor.address(),
        parse_ether("10").expect("constant"),
        U256::from(7 * 86_400),
    )
    .await
    .map_err(deploy_err("ProviderRegistry"))?;
    let pool = ComputePool::deploy(
        provider.clone(),
        owner_address,
        *mor.address(),
        U256::from(100),
        U256::from(1000),
    )
    .await
    .map_err(deploy_err("ComputePool"))?;
    // The router signer (account 1) is part of the deployment, at the whole budget; later router
    // changes wait ROUTER_DELAY (`Devnet::ROUTER_DELAY`: advance the clock past it in a test).
    let accounts: Vec<Address> = anvil
        .addresses()
        .iter()
        .take(FUNDED_ACCOUNTS)
        .copied()
        .collect();
    let router = SessionRouter::deploy(
        provider.clone(),
        owner_address,
        *mor.address(),
        *pool.address(),
        *prices.address(),
        U256::from(Devnet::ROUTER_DELAY),
        vec![accounts[1]],
        vec![U256::from(10_000)],
    )
    .await
    .map_err(deploy_err("SessionRouter"))?;

    let deployment = Deployment {
        chain_id: anvil.chain_id(),
        mor: *mor.address(),
        price_source: *prices.address(),
        provider_registry: *registry.address(),
        compute_pool: *pool.address(),
        session_router: *router.address(),
        deploy_block,
    };
    let protocol = Protocol::connect(&anvil.endpoint(), deployment, Some(owner)).await?;
    protocol
        .pool()
        .set_session_router(*router.address())
        .await?;
    let token = protocol.mor();
    for account in &accounts {
        token.mint(*account, Devnet::mint_per_account()).await?;
        protocol.registry().add_to_whitelist(*account).await?;
    }
    token.mint(owner_address, Devnet::pool_deposit()).await?;
    protocol.pool().deposit(Devnet::pool_deposit()).await?;
    Ok(deployment)
}
