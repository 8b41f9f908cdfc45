//! A claim that survives a crash at any point: written down with its vouchers and the sender's
//! nonce, then signed here and its hash recorded before the transaction is sent, its payment
//! from the receipt's `VoucherClaimed` events. After a restart [`recover`] finishes
//! every claim left unfinished (waits for its receipt, or finds it dropped or never sent)
//! before a new one is sent, so a claim is never sent twice over a pending one and what was paid
//! is recorded once. The chain stays the source of truth: vouchers are cumulative, so a claim
//! lost or repeated can neither lose MOR nor pay it twice; the journal keeps the worker's own
//! account (claims, gas, paid) and its decisions right.

use std::time::Duration;

use alloy::{
    primitives::{Address, B256, U256},
    providers::Provider,
    rpc::types::TransactionReceipt,
};
use morpheus_sdk::{
    contracts::{Protocol, SessionRouterClient},
    messages::{CreditVoucher, Signed},
};
use tracing::{info, warn};

use super::Claimed;
use crate::{
    Error, Result,
    store::{ClaimRow, ClaimState, Store},
};

/// The environment variable naming a point at which a claim stops and waits to be killed (the
/// crash tests' `kill -9`): `before-sign`, `before-send` (signed, its hash recorded),
/// `after-send` or `after-receipt`. Unset in service.
pub const CRASH_POINT_ENV: &str = "MORPHEUS_WORKER_CRASH_POINT";

/// How long a claim waits for its receipt before leaving it to the next [`recover`].
pub const RECEIPT_WAIT: Duration = Duration::from_secs(120);

/// How often the receipt is asked for.
const RECEIPT_POLL: Duration = Duration::from_millis(250);

/// Stops here, for ever, when [`CRASH_POINT_ENV`] names `point`: the test kills the process.
async fn crash_point(point: &str) {
    if std::env::var(CRASH_POINT_ENV).is_ok_and(|p| p == point) {
        eprintln!("{CRASH_POINT_ENV}={point}: stopped, waiting to be killed");
        std::future::pending::<()>().await;
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn rpc(e: impl std::fmt::Display) -> Error {
    Error::Protocol(morpheus_sdk::Error::Rpc(e.to_string()))
}

fn sender(protocol: &Protocol) -> Result<Address> {
    protocol.sender().ok_or_else(|| {
        Error::InvalidRequest("claiming needs a key to send the transaction with".into())
    })
}

/// The sender's next nonce: counting its transactions still pending, or only the mined ones.
async fn nonce_of(protocol: &Protocol, pending: bool) -> Result<u64> {
    let count = protocol.provider().get_transaction_count(sender(protocol)?);
    if pending {
        count.pending().await
    } else {
        count.await
    }
    .map_err(rpc)
}

/// Sends one claim of `vouchers`, journaled in `store`; returns what it paid `provider`.
///
/// The transaction is signed here and its hash written down before it is sent, so whatever
/// instant a crash comes at, the next run finds the claim by its hash: mined (its gas and what
/// it paid recorded), or unknown to the node (never sent: nothing paid).
pub(super) async fn send(
    protocol: &Protocol,
    store: &Store,
    vouchers: &[Signed<CreditVoucher>],
    provider: Address,
) -> Result<Claimed> {
    let wallet = protocol.wallet().ok_or_else(|| {
        Error::InvalidRequest("claiming needs a key to sign the transaction with".into())
    })?;
    let nonce = nonce_of(protocol, true).await?;
    let id = store.begin_claim(vouchers, nonce, unix_now())?;
    crash_point("before-sign").await;
    let router = protocol.session_router();
    let signed = match router.sign_claim(vouchers, wallet, nonce).await {
        Ok(signed) => signed,
        Err(e) => {
            store.claim_ended(id, ClaimState::Failed, &e.to_string(), unix_now())?;
            return Err(e.into());
        }
    };
    store.claim_sent(id, signed.hash)?;
    crash_point("before-send").await;
    // A failed send leaves the row as it is: the node may have the transaction even so (a
    // connection lost after it was accepted), and the next round's `recover` asks it.
    let tx = router.send_claim(&signed).await?;
    info!(target: "worker::claim", %tx, vouchers = vouchers.len(), nonce, "claim sent");
    crash_point("after-send").await;
    let receipt = wait_receipt(&router, tx).await?.ok_or_else(|| {
        rpc(format!(
            "no receipt for claim {tx} within {RECEIPT_WAIT:?}; the next claim finishes it"
        ))
    })?;
    crash_point("after-receipt").await;
    settle(store, id, &router, &receipt, provider)
}

/// The receipt of `tx`, waiting up to [`RECEIPT_WAIT`]; `None` when the node does not know it.
async fn wait_receipt(
    router: &SessionRouterClient,
    tx: B256,
) -> Result<Option<TransactionReceipt>> {
    let deadline = tokio::time::Instant::now() + RECEIPT_WAIT;
    loop {
        if let Some(r) = router.receipt(tx).await? {
            return Ok(Some(r));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(RECEIPT_POLL).await;
    }
}

/// Records how claim `id` ended by its receipt.
fn settle(
    store: &Store,
    id: i64,
    router: &SessionRouterClient,
    receipt: &TransactionReceipt,
    provider: Address,
) -> Result<Claimed> {
    let tx = receipt.transaction_hash;
    if !receipt.status() {
        store.claim_ended(id, ClaimState::Failed, "reverted on-chain", unix_now())?;
        return Err(morpheus_sdk::Error::TransactionFailed { tx }.into());
    }
    let paid = router
        .claimed(receipt)
        .iter()
        .filter(|c| c.provider == provider)
        .fold(U256::ZERO, |t, c| {
            t.saturating_add(c.amount).saturating_add(c.bootstrapAmount)
        });
    store.claim_done(id, receipt.gas_used, paid, unix_now())?;
    let claimed = Claimed {
        tx,
        gas_used: receipt.gas_used,
        paid,
    };
    info!(target: "worker::claim", %tx, gas = claimed.gas_used, paid = %claimed.paid, "claimed");
    Ok(claimed)
}

/// How a claim left unfinished by an earlier run ended.
#[derive(Debug, Clone)]
pub struct Recovered {
    /// Its journal row as it is now.
    pub row: ClaimRow,
    /// What it paid, when its receipt was found.
    pub claimed: Option<Claimed>,
}

/// Finishes every claim an earlier run left unfinished in `store`: a sent one by its receipt
/// (waited for while the node has the transaction; failed when the node does not know it: never
/// sent, or dropped), one with no hash recorded by the sender's nonce (abandoned: stopped
/// before it was signed; a journal of an older worker may also hold one that was mined, the
/// chain's claim records then counting what it paid). An error leaves the row for the next try, and no
/// claim should be sent meanwhile.
pub async fn recover(
    protocol: &Protocol,
    store: &Store,
    provider: Address,
) -> Result<Vec<Recovered>> {
    let router = protocol.session_router();
    let mut out = Vec::new();
    for row in store.unfinished_claims()? {
        let claimed = match (row.state, row.tx) {
            (ClaimState::Sent, Some(tx)) => {
                // A mined transaction is known too: one the node does not know was never sent
                // (signed, then the process stopped) or was dropped.
                let known = protocol
                    .provider()
                    .get_transaction_by_hash(tx)
                    .await
                    .map_err(rpc)?
                    .is_some();
                let receipt = if known {
                    wait_receipt(&router, tx).await?
                } else {
                    router.receipt(tx).await?
                };
                match receipt {
                    Some(receipt) => match settle(store, row.id, &router, &receipt, provider) {
                        Ok(c) => Some(c),
                        Err(Error::Protocol(morpheus_sdk::Error::TransactionFailed { .. })) => None,
                        Err(e) => return Err(e),
                    },
                    None if !known => {
                        let why = format!(
                            "the node does not know transaction {tx}: never sent or dropped, \
                             nothing paid"
                        );
                        warn!(target: "worker::claim", claim = row.id, %why, "claim dropped");
                        store.claim_ended(row.id, ClaimState::Failed, &why, unix_now())?;
                        None
                    }
                    None => {
                        return Err(rpc(format!(
                            "claim {tx} is still pending after {RECEIPT_WAIT:?}; not claiming over it"
                        )));
                    }
                }
            }
            _ => {
                let why = unsent(protocol, &row).await?;
                warn!(target: "worker::claim", claim = row.id, %why, "claim abandoned");
                store.claim_ended(row.id, ClaimState::Abandoned, &why, unix_now())?;
                None
            }
        };
        let row = store
            .claim(row.id)?
            .ok_or_else(|| Error::InvalidRequest(format!("claim {} vanished", row.id)))?;
        out.push(Recovered { row, claimed });
    }
    Ok(out)
}

/// Why a claim with no transaction recorded ended: its nonce tells whether anything was mined.
async fn unsent(protocol: &Protocol, row: &ClaimRow) -> Result<String> {
    let deadline = tokio::time::Instant::now() + RECEIPT_WAIT;
    loop {
        let mined = nonce_of(protocol, false).await?;
        if mined > row.nonce {
            return Ok(format!(
                "a transaction with nonce {} was mined after the claim was written down; the \
                 chain's claim records count what it paid",
                row.nonce
            ));
        }
        let pending = nonce_of(protocol, true).await?;
        if pending <= row.nonce {
            return Ok("never sent: the process stopped before the node had it".into());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(rpc(format!(
                "a transaction with nonce {} is still pending after {RECEIPT_WAIT:?}",
                row.nonce
            )));
        }
        tokio::time::sleep(RECEIPT_POLL).await;
    }
}
