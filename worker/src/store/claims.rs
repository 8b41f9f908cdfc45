//! The newest voucher of each router, and the journal of claims: a claim is written down with
//! its vouchers and nonce before its transaction is sent, its hash as soon as the node has it,
//! and its outcome from the receipt, so a restart finishes what a crash interrupted
//! (`claim::recover`) instead of sending it again or forgetting it.

use alloy::primitives::{Address, B256, U256};
use morpheus_sdk::messages::{CreditVoucher, Signed};
use rusqlite::{OptionalExtension, params};

use super::{Store, int, uint};
use crate::Result;

/// A router's newest voucher for this provider, as stored.
#[derive(Debug, Clone)]
pub struct StoredVoucher {
    /// The voucher's router.
    pub router: Address,
    /// The voucher.
    pub voucher: Signed<CreditVoucher>,
    /// Chain time this worker first held a voucher of the router (the age of credit never
    /// claimed counts from it, across restarts).
    pub first_seen: u64,
}

/// Where a claim stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimState {
    /// Written down; its transaction may not have reached the node.
    Sending,
    /// The node accepted its transaction ([`ClaimRow::tx`]); no receipt recorded yet.
    Sent,
    /// Mined and succeeded; [`ClaimRow::paid`] is what its vouchers paid.
    Done,
    /// Refused at sending, reverted, or dropped by the node: nothing was paid.
    Failed,
    /// Found unfinished on a restart with no transaction recorded: it was never sent, or a
    /// transaction with its nonce was mined and the chain's claim records count what it paid.
    Abandoned,
}

impl ClaimState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Abandoned => "abandoned",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "sending" => Self::Sending,
            "sent" => Self::Sent,
            "done" => Self::Done,
            "failed" => Self::Failed,
            _ => Self::Abandoned,
        }
    }
}

/// One claim in the journal.
#[derive(Debug, Clone)]
pub struct ClaimRow {
    /// Its row id.
    pub id: i64,
    /// Where it stands.
    pub state: ClaimState,
    /// The vouchers it claims.
    pub vouchers: Vec<Signed<CreditVoucher>>,
    /// The sender's next nonce when it was written down.
    pub nonce: u64,
    /// Its transaction, once the node accepted it.
    pub tx: Option<B256>,
    /// Gas used, once mined.
    pub gas_used: Option<u64>,
    /// MOR wei its vouchers paid (budget and bootstrap), once mined.
    pub paid: Option<U256>,
    /// Why it failed or was abandoned.
    pub detail: Option<String>,
    /// Unix time it was written down.
    pub started_at: u64,
    /// Unix time it ended.
    pub ended_at: Option<u64>,
}

/// What the journal says of all claims that were mined.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClaimTotals {
    /// Claims mined and succeeded.
    pub claims: u64,
    /// MOR wei they paid.
    pub paid: U256,
    /// Gas they used.
    pub gas_used: u64,
    /// Unix time the last one ended (0: none).
    pub last_at: u64,
}

const CLAIM_COLUMNS: &str =
    "id, state, vouchers, nonce, tx, gas_used, paid, detail, started_at, ended_at";

fn claim_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ClaimRow> {
    let vouchers: String = r.get(2)?;
    let tx: Option<Vec<u8>> = r.get(4)?;
    let paid: Option<String> = r.get(6)?;
    Ok(ClaimRow {
        id: r.get(0)?,
        state: ClaimState::parse(&r.get::<_, String>(1)?),
        vouchers: serde_json::from_str(&vouchers).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e))
        })?,
        nonce: uint(r.get(3)?),
        tx: tx.and_then(|t| B256::try_from(t.as_slice()).ok()),
        gas_used: r.get::<_, Option<i64>>(5)?.map(uint),
        paid: paid.and_then(|p| p.parse().ok()),
        detail: r.get(7)?,
        started_at: uint(r.get(8)?),
        ended_at: r.get::<_, Option<i64>>(9)?.map(uint),
    })
}

impl Store {
    /// Keeps `voucher` as its router's newest unless a newer one is stored; `now` starts the
    /// router's age clock the first time. Returns whether it was kept.
    pub fn put_voucher(&self, voucher: &Signed<CreditVoucher>, now: u64) -> Result<bool> {
        let json = serde_json::to_string(voucher)?;
        let v = &voucher.message;
        let issued_at = u64::try_from(v.issuedAt).unwrap_or(u64::MAX);
        self.with(|c| {
            c.prepare_cached(
                "INSERT INTO vouchers (router, issued_at, voucher, first_seen) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (router) DO UPDATE SET issued_at = ?2, voucher = ?3
                 WHERE excluded.issued_at >= vouchers.issued_at",
            )?
            .execute(params![v.router.as_slice(), int(issued_at), json, int(now)])
            .map(|n| n > 0)
        })
    }

    /// Every router's newest voucher.
    pub fn vouchers(&self) -> Result<Vec<StoredVoucher>> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT router, voucher, first_seen FROM vouchers ORDER BY router",
            )?;
            let rows = stmt.query_map([], |r| {
                let router: Vec<u8> = r.get(0)?;
                let json: String = r.get(1)?;
                Ok(StoredVoucher {
                    router: Address::try_from(router.as_slice()).unwrap_or_default(),
                    voucher: serde_json::from_str(&json).map_err(|e| {
                        rusqlite::Error::FromSqlConversionFailure(
                            1,
                            rusqlite::types::Type::Text,
                            Box::new(e),
                        )
                    })?,
                    first_seen: uint(r.get(2)?),
                })
            })?;
            rows.collect()
        })
    }

    /// Writes down a claim of `vouchers` about to be sent with `nonce`; returns its id.
    pub fn begin_claim(
        &self,
        vouchers: &[Signed<CreditVoucher>],
        nonce: u64,
        now: u64,
    ) -> Result<i64> {
        let json = serde_json::to_string(vouchers)?;
        self.with(|c| {
            c.prepare_cached(
                "INSERT INTO claims (state, vouchers, nonce, started_at) VALUES ('sending', ?1, ?2, ?3)",
            )?
            .execute(params![json, int(nonce), int(now)])?;
            Ok(c.last_insert_rowid())
        })
    }

    /// Claim `id`'s transaction was accepted by the node as `tx`.
    pub fn claim_sent(&self, id: i64, tx: B256) -> Result<()> {
        self.with(|c| {
            c.prepare_cached("UPDATE claims SET state = 'sent', tx = ?2 WHERE id = ?1")?
                .execute(params![id, tx.as_slice()])
                .map(drop)
        })
    }

    /// Claim `id` was mined and succeeded: it used `gas_used` and its vouchers paid `paid`.
    pub fn claim_done(&self, id: i64, gas_used: u64, paid: U256, now: u64) -> Result<()> {
        self.with(|c| {
            c.prepare_cached(
                "UPDATE claims SET state = 'done', gas_used = ?2, paid = ?3, ended_at = ?4 WHERE id = ?1",
            )?
            .execute(params![id, int(gas_used), paid.to_string(), int(now)])
            .map(drop)
        })
    }

    /// Claim `id` ended as `state` (failed or abandoned) because of `detail`.
    pub fn claim_ended(&self, id: i64, state: ClaimState, detail: &str, now: u64) -> Result<()> {
        self.with(|c| {
            c.prepare_cached(
                "UPDATE claims SET state = ?2, detail = ?3, ended_at = ?4 WHERE id = ?1",
            )?
            .execute(params![id, state.as_str(), detail, int(now)])
            .map(drop)
        })
    }

    /// The claims a crash may have interrupted (sending or sent), oldest first.
    pub fn unfinished_claims(&self) -> Result<Vec<ClaimRow>> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {CLAIM_COLUMNS} FROM claims WHERE state IN ('sending', 'sent') ORDER BY id"
            ))?;
            let rows = stmt.query_map([], claim_row)?;
            rows.collect()
        })
    }

    /// Claim `id`.
    pub fn claim(&self, id: i64) -> Result<Option<ClaimRow>> {
        self.with(|c| {
            c.prepare_cached(&format!("SELECT {CLAIM_COLUMNS} FROM claims WHERE id = ?1"))?
                .query_row(params![id], claim_row)
                .optional()
        })
    }

    /// The journal's newest claim.
    pub fn last_claim(&self) -> Result<Option<ClaimRow>> {
        self.with(|c| {
            c.prepare_cached(&format!(
                "SELECT {CLAIM_COLUMNS} FROM claims ORDER BY id DESC LIMIT 1"
            ))?
            .query_row([], claim_row)
            .optional()
        })
    }

    /// What the claims mined and succeeded paid and used.
    pub fn claim_totals(&self) -> Result<ClaimTotals> {
        let rows: Vec<(Option<String>, Option<i64>, Option<i64>)> = self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT paid, gas_used, ended_at FROM claims WHERE state = 'done'",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect()
        })?;
        Ok(rows
            .into_iter()
            .fold(ClaimTotals::default(), |t, (paid, gas, at)| ClaimTotals {
                claims: t.claims + 1,
                paid: t
                    .paid
                    .saturating_add(paid.and_then(|p| p.parse().ok()).unwrap_or_default()),
                gas_used: t.gas_used.saturating_add(gas.map_or(0, uint)),
                last_at: t.last_at.max(at.map_or(0, uint)),
            }))
    }
}

#[cfg(test)]
mod tests {
    use alloy::signers::local::PrivateKeySigner;
    use morpheus_sdk::messages::protocol_domain;

    use super::*;

    fn voucher(router: &PrivateKeySigner, issued_at: u64, amount: u64) -> Signed<CreditVoucher> {
        Signed::sign(
            CreditVoucher {
                router: router.address(),
                provider: Address::repeat_byte(2),
                cumulativeAmount: U256::from(amount),
                cumulativeBootstrap: U256::ZERO,
                cumulativeTokens: U256::from(amount),
                sessions: U256::from(1),
                failed: U256::ZERO,
                issuedAt: U256::from(issued_at),
            },
            &protocol_domain(31337, Address::ZERO),
            router,
        )
        .expect("sign")
    }

    #[test]
    fn only_a_newer_voucher_replaces_the_stored_one_and_the_age_clock_stays() {
        let store = Store::in_memory().expect("store");
        let router = PrivateKeySigner::random();
        assert!(
            store
                .put_voucher(&voucher(&router, 10, 5), 100)
                .expect("put")
        );
        assert!(
            store
                .put_voucher(&voucher(&router, 12, 9), 200)
                .expect("put")
        );
        assert!(
            !store
                .put_voucher(&voucher(&router, 11, 7), 300)
                .expect("put")
        );
        let stored = store.vouchers().expect("read");
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].voucher.message.cumulativeAmount, U256::from(9));
        assert_eq!(stored[0].first_seen, 100, "first seen when the first came");
    }

    #[test]
    fn a_claim_moves_from_sending_to_done_and_counts_once() {
        let store = Store::in_memory().expect("store");
        let router = PrivateKeySigner::random();
        let id = store
            .begin_claim(&[voucher(&router, 10, 5)], 7, 1000)
            .expect("begin");
        let unfinished = store.unfinished_claims().expect("read");
        assert_eq!(unfinished.len(), 1);
        assert_eq!(
            (unfinished[0].state, unfinished[0].nonce),
            (ClaimState::Sending, 7)
        );
        store.claim_sent(id, B256::repeat_byte(9)).expect("sent");
        assert_eq!(
            store.unfinished_claims().expect("read")[0].tx,
            Some(B256::repeat_byte(9))
        );
        store
            .claim_done(id, 80_000, U256::from(5), 1010)
            .expect("done");
        assert!(store.unfinished_claims().expect("read").is_empty());
        let failed = store.begin_claim(&[], 8, 1020).expect("begin");
        store
            .claim_ended(failed, ClaimState::Failed, "reverted", 1030)
            .expect("failed");
        assert_eq!(
            store.claim_totals().expect("totals"),
            ClaimTotals {
                claims: 1,
                paid: U256::from(5),
                gas_used: 80_000,
                last_at: 1010
            }
        );
        let last = store.last_claim().expect("read").expect("a claim");
        assert_eq!(
            (last.state, last.detail.as_deref()),
            (ClaimState::Failed, Some("reverted"))
        );
    }
}
