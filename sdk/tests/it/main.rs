//! Integration tests of morpheus-sdk against a real anvil with the contracts deployed.

/// Asserts that `result` failed with the given custom error of the given contract, e.g.
/// `assert_reverted!(call.await, SessionRouter(SessionRouterErrors::SessionRouterZeroAmount(_)))`.
macro_rules! assert_reverted {
    ($result:expr, $contract:ident($pattern:pat) $(if $guard:expr)?) => {{
        let err = $result.expect_err(concat!("should revert with ", stringify!($pattern)));
        assert!(
            matches!(
                &err,
                morpheus_sdk::Error::Reverted(morpheus_sdk::contracts::Revert::$contract($pattern))
                    $(if $guard)?
            ),
            "{err}"
        );
    }};
}

mod admin;
mod claims;
mod hashes;
mod messages;
mod registry;
mod stakes;

use alloy::{
    primitives::{B256, Signature, U256, keccak256},
    sol_types::SolStruct,
};
use morpheus_sdk::messages::{CreditVoucher, Signed};

/// The secp256k1 group order, to forge the high-`s` twin of a valid signature.
pub(crate) fn curve_order() -> U256 {
    U256::from_str_radix(
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141",
        16,
    )
    .expect("constant")
}

/// The malleable copy of a signature: the same signer recovers from it, but `s` is high.
pub(crate) fn malleable<T: SolStruct + Clone>(signed: &Signed<T>) -> Signed<T> {
    let sig = signed.signature;
    Signed {
        message: signed.message.clone(),
        signature: Signature::new(sig.r(), curve_order() - sig.s(), !sig.v()),
    }
}

/// A session id for tests.
pub(crate) fn session(n: u64) -> B256 {
    keccak256(n.to_be_bytes())
}

/// A voucher with the given cumulative amount.
pub(crate) fn voucher(
    router: alloy::primitives::Address,
    provider: alloy::primitives::Address,
    amount: U256,
    issued_at: u64,
) -> CreditVoucher {
    CreditVoucher {
        router,
        provider,
        cumulativeAmount: amount,
        cumulativeBootstrap: U256::ZERO,
        cumulativeTokens: U256::from(1000),
        sessions: U256::from(3),
        failed: U256::from(1),
        issuedAt: U256::from(issued_at),
    }
}
