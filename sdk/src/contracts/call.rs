//! Sending calls and transactions through alloy, with errors mapped into the SDK's.

use alloy::{
    contract::{CallBuilder, CallDecoder},
    primitives::B256,
    providers::Provider,
    rpc::types::TransactionReceipt,
};

use super::Revert;
use crate::{Error, Result};

/// Maps an alloy contract error: revert data becomes [`Error::Reverted`], the rest [`Error::Rpc`].
pub(crate) fn contract_error(e: alloy::contract::Error) -> Error {
    match e.as_revert_data() {
        Some(data) => Error::Reverted(Revert::decode(&data)),
        None => Error::Rpc(e.to_string()),
    }
}

/// Runs a read-only call.
pub(crate) async fn view<P, D>(call: CallBuilder<P, D>) -> Result<D::CallOutput>
where
    P: Provider,
    D: CallDecoder,
{
    call.call().await.map_err(contract_error)
}

/// Sends a transaction and waits for its receipt; a revert (at estimation or on-chain) is an error.
pub(crate) async fn send<P, D>(call: CallBuilder<P, D>) -> Result<TransactionReceipt>
where
    P: Provider,
    D: CallDecoder,
{
    let pending = call.send().await.map_err(contract_error)?;
    let receipt = pending
        .get_receipt()
        .await
        .map_err(|e| Error::Rpc(e.to_string()))?;
    if !receipt.status() {
        return Err(Error::TransactionFailed {
            tx: receipt.transaction_hash,
        });
    }
    Ok(receipt)
}

/// Sends a transaction and returns its hash once the node accepted it, without waiting for it
/// to be mined: a caller that must survive a crash records the hash first, then asks for the
/// receipt ([`receipt`]). A revert at estimation is an error.
pub(crate) async fn submit<P, D>(call: CallBuilder<P, D>) -> Result<B256>
where
    P: Provider,
    D: CallDecoder,
{
    let pending = call.send().await.map_err(contract_error)?;
    Ok(*pending.tx_hash())
}

/// The receipt of transaction `tx`: `None` while it is pending or when the node does not know it.
pub(crate) async fn receipt<P: Provider>(
    provider: &P,
    tx: B256,
) -> Result<Option<TransactionReceipt>> {
    provider
        .get_transaction_receipt(tx)
        .await
        .map_err(|e| Error::Rpc(e.to_string()))
}
