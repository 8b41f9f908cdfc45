//! The worker's protocol identity: its key, the EIP-712 domain and the routers it trusts.

use std::{collections::HashSet, path::PathBuf, time::Duration};

use alloy::{
    primitives::{Address, B256},
    signers::local::PrivateKeySigner,
    sol_types::Eip712Domain,
};
use morpheus_sdk::{messages::protocol_domain, provider::AssignmentPolicy};

/// Who this provider is and whom it trusts.
#[derive(Debug, Clone)]
pub struct ProtocolConfig {
    /// The provider's key: its address is the `provider` of assignments; it signs liveness answers.
    pub signer: PrivateKeySigner,
    /// Chain id of the EIP-712 domain.
    pub chain_id: u64,
    /// `SessionRouter` address (the domain's verifying contract).
    pub session_router: Address,
    /// Router signers whose assignments and challenges are honoured.
    pub routers: HashSet<Address>,
    /// The registered model id served; when set, assignments and challenges must name it.
    pub model_id: Option<B256>,
    /// JSON-RPC URL of the chain: when set, the worker asks `SessionRouter.isRouter` about each
    /// of [`routers`](Self::routers) every [`router_refresh`](Self::router_refresh) and stops
    /// honouring one the owner removed (its credit stays claimable; docs/protocol.md).
    pub rpc_url: Option<String>,
    /// How often the routers are checked on-chain (with [`rpc_url`](Self::rpc_url)).
    pub router_refresh: Duration,
    /// The database keeping each session's token count across restarts (`store`); `None`:
    /// in memory, so a worker restarted mid-session counts that session from 0.
    pub db: Option<PathBuf>,
}

impl ProtocolConfig {
    /// The protocol's EIP-712 domain.
    pub fn domain(&self) -> Eip712Domain {
        protocol_domain(self.chain_id, self.session_router)
    }

    /// The assignment policy of this provider.
    pub fn policy(&self) -> AssignmentPolicy {
        AssignmentPolicy {
            domain: self.domain(),
            provider: self.signer.address(),
            routers: self.routers.clone(),
        }
    }
}
