use std::fmt;

use alloy::{primitives::Bytes, sol_types::SolInterface};

use super::bindings::{
    compute_pool::ComputePool::ComputePoolErrors,
    provider_registry::ProviderRegistry::ProviderRegistryErrors,
    session_router::SessionRouter::SessionRouterErrors, test_mor::TestMOR::TestMORErrors,
};

/// A decoded contract revert: the custom error of whichever protocol contract raised it, with its
/// arguments, e.g. `SessionRouter(SessionRouterStaleVoucher { router, provider, issuedAt, .. })`.
///
/// A revert raised deeper in a call (the pool under `SessionRouter.claim`, the token under a
/// stake) decodes to that contract's variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revert {
    /// An error of `SessionRouter`.
    SessionRouter(SessionRouterErrors),
    /// An error of `ComputePool`.
    ComputePool(ComputePoolErrors),
    /// An error of `ProviderRegistry`.
    ProviderRegistry(ProviderRegistryErrors),
    /// An ERC-20 error of the MOR token (OpenZeppelin's `ERC20InsufficientBalance`, ...).
    Token(TestMORErrors),
    /// A plain `revert("reason")`.
    Reason(String),
    /// Revert data the protocol's ABIs do not describe (`0x` when there was none).
    Unknown(Bytes),
}

impl Revert {
    /// Decodes revert data, trying every protocol contract's errors.
    pub fn decode(data: &[u8]) -> Self {
        if let Ok(e) = SessionRouterErrors::abi_decode(data) {
            return Self::SessionRouter(e);
        }
        if let Ok(e) = ComputePoolErrors::abi_decode(data) {
            return Self::ComputePool(e);
        }
        if let Ok(e) = ProviderRegistryErrors::abi_decode(data) {
            return Self::ProviderRegistry(e);
        }
        if let Ok(e) = TestMORErrors::abi_decode(data) {
            return Self::Token(e);
        }
        if let Some(reason) = alloy::sol_types::decode_revert_reason(data) {
            return Self::Reason(reason);
        }
        Self::Unknown(Bytes::copy_from_slice(data))
    }
}

impl fmt::Display for Revert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SessionRouter(e) => write!(f, "{e:?}"),
            Self::ComputePool(e) => write!(f, "{e:?}"),
            Self::ProviderRegistry(e) => write!(f, "{e:?}"),
            Self::Token(e) => write!(f, "{e:?}"),
            Self::Reason(r) => write!(f, "{r}"),
            Self::Unknown(data) => write!(f, "unknown revert data {data}"),
        }
    }
}
