//! Where the protocol's contracts live on a chain.
//!
//! `script/Deploy.s.sol` writes `deployments/<chainId>.json`; [`Deployment::load`] reads it.
//! [`Network`] names the chains the project deploys to.

use std::path::{Path, PathBuf};

use alloy::primitives::Address;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The addresses of one deployment of the protocol, as the deploy script writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Deployment {
    /// Chain the contracts are on.
    pub chain_id: u64,
    /// The MOR token.
    pub mor: Address,
    /// The price source `SessionRouter` reads MOR and token prices from.
    pub price_source: Address,
    /// `ProviderRegistry`.
    pub provider_registry: Address,
    /// `ComputePool`.
    pub compute_pool: Address,
    /// `SessionRouter` (also the EIP-712 verifying contract of the protocol's messages).
    pub session_router: Address,
    /// Block the contracts were deployed in (where indexers start).
    pub deploy_block: u64,
}

impl Deployment {
    /// Reads a deployment file written by `script/Deploy.s.sol`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| {
            Error::Deployment(format!("{} is not a deployment file: {e}", path.display()))
        })
    }

    /// Writes the deployment file (the same format the deploy script writes).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text).map_err(|e| Error::io(path, e))
    }

    /// The EIP-712 domain of the protocol's messages on this deployment.
    pub fn domain(&self) -> alloy::sol_types::Eip712Domain {
        crate::messages::protocol_domain(self.chain_id, self.session_router)
    }

    /// The EIP-712 domain of model claims on this deployment.
    pub fn registry_domain(&self) -> alloy::sol_types::Eip712Domain {
        crate::messages::registry_domain(self.chain_id, self.provider_registry)
    }
}

/// The networks the project deploys to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// A local anvil chain.
    Anvil,
    /// Arbitrum Sepolia (testnet).
    ArbitrumSepolia,
    /// Arbitrum One (mainnet).
    ArbitrumOne,
}

impl Network {
    /// The chain id.
    pub const fn chain_id(self) -> u64 {
        match self {
            Self::Anvil => 31_337,
            Self::ArbitrumSepolia => 421_614,
            Self::ArbitrumOne => 42_161,
        }
    }

    /// A public JSON-RPC endpoint to start from (use your own for production traffic).
    pub const fn default_rpc_url(self) -> &'static str {
        match self {
            Self::Anvil => "http://127.0.0.1:8545",
            Self::ArbitrumSepolia => "https://sepolia-rollup.arbitrum.io/rpc",
            Self::ArbitrumOne => "https://arb1.arbitrum.io/rpc",
        }
    }

    /// The network of a chain id, if it is one of the project's.
    pub const fn from_chain_id(chain_id: u64) -> Option<Self> {
        match chain_id {
            31_337 => Some(Self::Anvil),
            421_614 => Some(Self::ArbitrumSepolia),
            42_161 => Some(Self::ArbitrumOne),
            _ => None,
        }
    }

    /// Where the deploy script writes this network's addresses, under `deployments_dir`.
    pub fn deployment_file(self, deployments_dir: impl AsRef<Path>) -> PathBuf {
        deployments_dir
            .as_ref()
            .join(format!("{}.json", self.chain_id()))
    }

    /// Loads this network's deployment from `deployments_dir`, checking its chain id.
    pub fn deployment(self, deployments_dir: impl AsRef<Path>) -> Result<Deployment> {
        let path = self.deployment_file(deployments_dir);
        let deployment = Deployment::load(&path)?;
        if deployment.chain_id != self.chain_id() {
            return Err(Error::WrongChain {
                expected: self.chain_id(),
                actual: deployment.chain_id,
            });
        }
        Ok(deployment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_unknown_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = Deployment {
            chain_id: 31_337,
            mor: Address::repeat_byte(1),
            price_source: Address::repeat_byte(2),
            provider_registry: Address::repeat_byte(3),
            compute_pool: Address::repeat_byte(4),
            session_router: Address::repeat_byte(5),
            deploy_block: 7,
        };
        d.save(Network::Anvil.deployment_file(dir.path()))
            .expect("save");
        assert_eq!(Network::Anvil.deployment(dir.path()).expect("load"), d);
        assert!(matches!(
            Network::ArbitrumOne.deployment(dir.path()),
            Err(Error::Io { .. })
        ));

        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, r#"{"chainId": 1, "surprise": true}"#).expect("write");
        assert!(matches!(Deployment::load(&bad), Err(Error::Deployment(_))));
    }

    #[test]
    fn wrong_chain_in_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = Deployment {
            chain_id: 1,
            mor: Address::ZERO,
            price_source: Address::ZERO,
            provider_registry: Address::ZERO,
            compute_pool: Address::ZERO,
            session_router: Address::ZERO,
            deploy_block: 0,
        };
        d.save(Network::ArbitrumOne.deployment_file(dir.path()))
            .expect("save");
        assert!(matches!(
            Network::ArbitrumOne.deployment(dir.path()),
            Err(Error::WrongChain {
                expected: 42_161,
                actual: 1
            })
        ));
    }
}
