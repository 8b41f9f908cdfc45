use alloy::{
    network::EthereumWallet,
    primitives::Address,
    providers::{DynProvider, Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
};

use super::{
    ComputePoolClient, MorClient, PriceFeedClient, ProviderRegistryClient, SessionRouterClient,
};
use crate::{Deployment, Error, Result};

/// A connection to one deployment of the protocol: an RPC provider, optionally with a wallet,
/// checked to serve the deployment's chain. The typed clients come from here.
#[derive(Debug, Clone)]
pub struct Protocol {
    provider: DynProvider,
    sender: Option<Address>,
    /// The sender's key, for transactions signed here before they are sent (`sign_claim`).
    wallet: Option<EthereumWallet>,
    deployment: Deployment,
}

impl Protocol {
    /// Connects to `rpc_url`; `signer` sends the transactions (read-only without one).
    ///
    /// Fails with [`Error::WrongChain`] when the node serves another chain than the deployment's.
    pub async fn connect(
        rpc_url: &str,
        deployment: Deployment,
        signer: Option<PrivateKeySigner>,
    ) -> Result<Self> {
        let url = rpc_url
            .parse()
            .map_err(|e| Error::Rpc(format!("rpc url {rpc_url:?} is not a URL: {e}")))?;
        let sender = signer.as_ref().map(|s| s.address());
        let wallet = signer.clone().map(EthereumWallet::from);
        let provider = match signer {
            Some(signer) => wallet_provider(url, signer),
            None => ProviderBuilder::new().connect_http(url).erased(),
        };
        let actual = provider
            .get_chain_id()
            .await
            .map_err(|e| Error::Rpc(e.to_string()))?;
        if actual != deployment.chain_id {
            return Err(Error::WrongChain {
                expected: deployment.chain_id,
                actual,
            });
        }
        Ok(Self {
            provider,
            sender,
            wallet,
            deployment,
        })
    }

    /// The same connection sending as another account.
    pub async fn with_signer(&self, rpc_url: &str, signer: PrivateKeySigner) -> Result<Self> {
        Self::connect(rpc_url, self.deployment, Some(signer)).await
    }

    /// The deployment connected to.
    pub fn deployment(&self) -> &Deployment {
        &self.deployment
    }

    /// The account transactions are sent from, if a wallet was given.
    pub fn sender(&self) -> Option<Address> {
        self.sender
    }

    /// The sender's wallet, if one was given: signs transactions here before they are sent.
    pub fn wallet(&self) -> Option<&EthereumWallet> {
        self.wallet.as_ref()
    }

    /// The underlying alloy provider.
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    /// The latest block's time (unix seconds): what a voucher's `issuedAt` may be at most.
    pub async fn latest_block_time(&self) -> Result<u64> {
        let block = self
            .provider
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .map_err(|e| Error::Rpc(e.to_string()))?
            .ok_or_else(|| Error::Rpc("the node has no latest block".into()))?;
        Ok(block.header.timestamp)
    }

    /// The MOR token.
    pub fn mor(&self) -> MorClient {
        MorClient::new(self.deployment.mor, self.provider.clone(), self.sender)
    }

    /// `ProviderRegistry`.
    pub fn registry(&self) -> ProviderRegistryClient {
        ProviderRegistryClient::new(
            self.deployment.provider_registry,
            self.provider.clone(),
            self.mor(),
        )
    }

    /// `ComputePool`.
    pub fn pool(&self) -> ComputePoolClient {
        ComputePoolClient::new(
            self.deployment.compute_pool,
            self.provider.clone(),
            self.mor(),
        )
    }

    /// The Chainlink-shaped price feed at `address` (ETH/USD, to price gas in MOR).
    pub fn price_feed(&self, address: Address) -> PriceFeedClient {
        PriceFeedClient::new(address, self.provider.clone())
    }

    /// `SessionRouter`.
    pub fn session_router(&self) -> SessionRouterClient {
        SessionRouterClient::new(
            self.deployment.session_router,
            self.provider.clone(),
            self.mor(),
        )
    }
}

/// An alloy provider that signs with `signer`.
///
/// The nonce is read from the node for every transaction: alloy's default cached nonce manager
/// counts a nonce as used even when gas estimation then fails (a revert), which leaves a gap and
/// every later transaction of the account pending for ever.
pub fn wallet_provider(url: reqwest::Url, signer: PrivateKeySigner) -> DynProvider {
    ProviderBuilder::new()
        .disable_recommended_fillers()
        .with_gas_estimation()
        .with_simple_nonce_management()
        .fetch_chain_id()
        .wallet(EthereumWallet::from(signer))
        .connect_http(url)
        .erased()
}
