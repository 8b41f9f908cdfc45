use alloy::{
    primitives::Address,
    sol_types::{Eip712Domain, eip712_domain},
};

/// EIP-712 domain name of every protocol message.
pub const DOMAIN_NAME: &str = "Morpheus Compute";
/// EIP-712 domain version of every protocol message.
pub const DOMAIN_VERSION: &str = "1";

/// The domain of the off-chain messages and vouchers: verified by `SessionRouter` on `chain_id`.
pub fn protocol_domain(chain_id: u64, session_router: Address) -> Eip712Domain {
    eip712_domain! {
        name: DOMAIN_NAME,
        version: DOMAIN_VERSION,
        chain_id: chain_id,
        verifying_contract: session_router,
    }
}

/// The domain of a [`ModelClaim`](super::ModelClaim): verified by `ProviderRegistry`.
pub fn registry_domain(chain_id: u64, provider_registry: Address) -> Eip712Domain {
    protocol_domain(chain_id, provider_registry)
}
