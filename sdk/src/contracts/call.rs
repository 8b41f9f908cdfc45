//! Sending calls and transactions through alloy, with errors mapped into the SDK's.

use alloy::{
    consensus::TxEnvelope,
    contract::{CallBuilder, CallDecoder},
    network::{EthereumWallet, NetworkTransactionBuilder, NetworkWallet, TransactionBuilder},
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

/// A transaction signed here and not sent yet: its hash is known before any node has it, so a
/// caller that must survive a crash records the hash first and then sends it ([`send_signed`]).
#[derive(Debug, Clone)]
pub struct SignedTx {
    /// Its hash: what the node will know it by.
    pub hash: B256,
    /// The sender's nonce it was signed with.
    pub nonce: u64,
    envelope: TxEnvelope,
}

/// Signs `call` with `wallet` at `nonce` (gas estimated, EIP-1559 fees and chain id asked of the
/// node) without sending it. A revert at estimation is an error.
pub(crate) async fn sign<P, D>(
    provider: &P,
    call: CallBuilder<&P, D>,
    wallet: &EthereumWallet,
    nonce: u64,
) -> Result<SignedTx>
where
    P: Provider,
    D: CallDecoder,
{
    let from = NetworkWallet::<alloy::network::Ethereum>::default_signer_address(wallet);
    let call = call.from(from);
    let gas = call.estimate_gas().await.map_err(contract_error)?;
    let fees = provider
        .estimate_eip1559_fees()
        .await
        .map_err(|e| Error::Rpc(e.to_string()))?;
    let chain_id = provider
        .get_chain_id()
        .await
        .map_err(|e| Error::Rpc(e.to_string()))?;
    let request = call
        .into_transaction_request()
        .with_nonce(nonce)
        .with_gas_limit(gas)
        .with_max_fee_per_gas(fees.max_fee_per_gas)
        .with_max_priority_fee_per_gas(fees.max_priority_fee_per_gas)
        .with_chain_id(chain_id);
    let envelope: TxEnvelope = request
        .build(wallet)
        .await
        .map_err(|e| Error::InvalidSignature(format!("signing the transaction: {e}")))?;
    Ok(SignedTx {
        hash: *envelope.tx_hash(),
        nonce,
        envelope,
    })
}

/// Sends a transaction [`sign`]ed before; returns its hash once the node accepted it.
pub(crate) async fn send_signed<P: Provider>(provider: &P, tx: &SignedTx) -> Result<B256> {
    let pending = provider
        .send_tx_envelope(tx.envelope.clone())
        .await
        .map_err(|e| Error::Rpc(e.to_string()))?;
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
