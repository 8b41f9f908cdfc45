//! Each provider's reputation per model (the FAQ's reputation system): completed, failed and
//! cancelled sessions, MOR earned, the speed and time to first token of its recent reports,
//! and its bid as the router saw it change. `reputation.rs` holds the score; this file its
//! inputs.
//!
//! Completed, failed and earned are counters bumped in the report's own transaction; cancelled
//! sessions are counted from `sessions` (expired, never reported, the provider's receipt 0),
//! since a late report can still turn one into a completed session.

use std::collections::HashMap;

use alloy::primitives::{Address, B256, U256};
use morpheus_sdk::router::{BidChange, ModelReputation, Outcome};
use rusqlite::{Connection, params};

use super::{
    Store, key, read_u64, read_u256,
    sql::{Db, Lock, args},
    to_i64,
};
use crate::{Result, reputation};

/// Bid changes shown per provider and model.
const BID_HISTORY_SHOWN: u32 = 10;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS reputation (
    provider  TEXT NOT NULL,
    model_id  TEXT NOT NULL,
    completed INTEGER NOT NULL, -- reported passed and credited
    failed    INTEGER NOT NULL, -- reported failed, slow or disputed
    earned    TEXT NOT NULL,    -- MOR wei credited for the model
    PRIMARY KEY (provider, model_id)
);
CREATE TABLE IF NOT EXISTS bid_history (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    provider        TEXT NOT NULL,
    model_id        TEXT NOT NULL,
    price_per_token TEXT NOT NULL,
    capacity        TEXT NOT NULL,
    seen_at         INTEGER NOT NULL -- the router's clock when it first saw these terms
);
CREATE INDEX IF NOT EXISTS bid_history_pair ON bid_history (provider, model_id, id);
CREATE INDEX IF NOT EXISTS reports_provider_model ON reports (provider, model_id, id);
";

/// Creates the reputation tables and `reports.ttft_ms`; a database from before them gets its
/// counters from the sessions it already holds. Run at every start; it changes nothing once
/// the tables exist.
pub(super) fn create_tables(tx: &Connection) -> rusqlite::Result<()> {
    let existed = tx
        .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'reputation'")?
        .exists([])?;
    tx.execute_batch(SCHEMA)?;
    let has_ttft = tx
        .prepare("SELECT 1 FROM pragma_table_info('reports') WHERE name = 'ttft_ms'")?
        .exists([])?;
    if !has_ttft {
        // The time to first token the user reported; NULL in rows from before the column.
        tx.execute_batch("ALTER TABLE reports ADD COLUMN ttft_ms REAL")?;
    }
    if !existed {
        backfill(tx)?;
    }
    Ok(())
}

/// The counters of the sessions reported before the table existed.
fn backfill(tx: &Connection) -> rusqlite::Result<()> {
    let mut totals: HashMap<(String, String), (i64, i64, U256)> = HashMap::new();
    {
        let mut rows = tx.prepare(
            "SELECT provider, model_id, outcome, amount FROM sessions
             WHERE reported = 1 AND provider IS NOT NULL",
        )?;
        let rows = rows.query_map([], |r| {
            <(String, String, Option<String>, Option<String>)>::try_from(r)
        })?;
        for row in rows {
            let (provider, model, outcome, amount) = row?;
            let entry = totals.entry((provider, model)).or_default();
            match outcome.as_deref() {
                Some("Credited") => entry.0 += 1,
                _ => entry.1 += 1,
            }
            // An unreadable amount in an old row counts as nothing earned, not a failed start.
            entry.2 += amount
                .and_then(|a| a.parse::<U256>().ok())
                .unwrap_or_default();
        }
    }
    for ((provider, model), (completed, failed, earned)) in totals {
        tx.execute(
            "INSERT INTO reputation (provider, model_id, completed, failed, earned)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![provider, model, completed, failed, earned.to_string()],
        )?;
    }
    Ok(())
}

/// Adds one reported session to its provider's counters for the model (in the report's
/// transaction).
pub(super) fn count_report(
    db: &mut dyn Db,
    provider: Address,
    model: &str,
    outcome: Outcome,
    amount: U256,
) -> Result<()> {
    let before = db.query_opt(
        "SELECT earned FROM reputation WHERE provider = ?1 AND model_id = ?2",
        args![key(&provider), model],
    )?;
    let earned = match before {
        Some(row) => read_u256("reputation.earned", &row.get::<String>(0)?)?,
        None => U256::ZERO,
    } + amount;
    let completed = i64::from(outcome == Outcome::Credited);
    db.exec(
        "INSERT INTO reputation (provider, model_id, completed, failed, earned)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (provider, model_id) DO UPDATE SET
             completed = reputation.completed + excluded.completed,
             failed = reputation.failed + excluded.failed,
             earned = excluded.earned",
        args![
            key(&provider),
            model,
            completed,
            1 - completed,
            earned.to_string()
        ],
    )?;
    Ok(())
}

/// The middle of `values` (the mean of the two middle ones for an even count), `None` for none.
fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    })
}

/// `provider`'s reputation for `model`: its counters, the medians of its last `window`
/// reports' ms per token and time to first token on the model, its bid changes.
pub(super) fn model_reputation(
    db: &mut dyn Db,
    provider: Address,
    model: B256,
    window: u32,
) -> Result<ModelReputation> {
    let (provider, model) = (key(&provider), key(&model));
    let counters = db.query_opt(
        "SELECT completed, failed, earned FROM reputation
             WHERE provider = ?1 AND model_id = ?2",
        args![&provider, &model],
    )?;
    let (completed, failed, earned) = match counters {
        Some(row) => (
            read_u64("reputation.completed", row.get(0)?)?,
            read_u64("reputation.failed", row.get(1)?)?,
            read_u256("reputation.earned", &row.get::<String>(2)?)?,
        ),
        None => (0, 0, U256::ZERO),
    };
    let cancelled: i64 = db
        .query_one(
            "SELECT (SELECT COUNT(*) FROM sessions
                     WHERE provider = ?1 AND reported = 0 AND model_id = ?2 AND receipt = 0)
                  + COALESCE((SELECT cancelled_pruned FROM reputation
                              WHERE provider = ?1 AND model_id = ?2), 0)",
            args![&provider, &model],
        )?
        .get(0)?;
    let (mut speeds, mut ttfts) = (Vec::new(), Vec::new());
    // The limits as literals: see `sql.rs` on LIMIT.
    for row in db.query(
        &format!(
            "SELECT ms_per_token, ttft_ms FROM reports WHERE provider = ?1 AND model_id = ?2
             ORDER BY id DESC LIMIT {window}"
        ),
        args![&provider, &model],
    )? {
        speeds.extend(row.get::<Option<f64>>(0)?);
        ttfts.extend(row.get::<Option<f64>>(1)?);
    }
    let mut bids = Vec::new();
    for row in db.query(
        &format!(
            "SELECT price_per_token, capacity, seen_at FROM bid_history
             WHERE provider = ?1 AND model_id = ?2 ORDER BY id DESC LIMIT {BID_HISTORY_SHOWN}"
        ),
        args![&provider, &model],
    )? {
        bids.push(BidChange {
            price_per_token: read_u256("bid_history.price_per_token", &row.get::<String>(0)?)?,
            capacity: read_u256("bid_history.capacity", &row.get::<String>(1)?)?,
            seen_at: read_u64("bid_history.seen_at", row.get(2)?)?,
        });
    }
    Ok(ModelReputation {
        completed,
        failed,
        cancelled: read_u64("sessions (cancelled count)", cancelled)?,
        earned,
        ms_per_token: median(speeds),
        ttft_ms: median(ttfts),
        score: reputation::reputation_score(completed, failed),
        bids,
    })
}

impl Store {
    /// Records each bid of `model` whose terms differ from the newest this router saw for its
    /// provider (a new bid, a changed price or capacity), as seen at `now`.
    pub(crate) fn observe_bids(
        &self,
        model: B256,
        bids: &[(Address, U256, U256)],
        now: u64,
    ) -> Result<()> {
        // Each provider's lock, in one order (two rounds over the same bids never wait on each
        // other), so two instances seeing one change record it once.
        let mut bids: Vec<_> = bids.iter().map(|b| (key(&b.0), b)).collect();
        bids.sort_by(|a, b| a.0.cmp(&b.0));
        self.write(|db| {
            for (who, (provider, price, capacity)) in bids {
                db.lock(Lock::Provider(&who))?;
                let newest = db.query_opt(
                    "SELECT price_per_token, capacity FROM bid_history
                         WHERE provider = ?1 AND model_id = ?2 ORDER BY id DESC LIMIT 1",
                    args![key(provider), key(&model)],
                )?;
                let same = match newest {
                    Some(row) => {
                        row.get::<String>(0)?.parse::<U256>().ok() == Some(*price)
                            && row.get::<String>(1)?.parse::<U256>().ok() == Some(*capacity)
                    }
                    None => false,
                };
                if !same {
                    db.exec(
                        "INSERT INTO bid_history
                             (provider, model_id, price_per_token, capacity, seen_at)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                        args![
                            key(provider),
                            key(&model),
                            price.to_string(),
                            capacity.to_string(),
                            to_i64(now)
                        ],
                    )?;
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_none() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    #[test]
    fn a_bid_is_recorded_when_its_terms_change() {
        let db = crate::store::TestDb::new();
        let store = db.open();
        let (model, provider) = (B256::repeat_byte(1), Address::repeat_byte(2));
        let bid = |price: u64, capacity: u64| (provider, U256::from(price), U256::from(capacity));
        store
            .observe_bids(model, &[bid(10, 4)], 100)
            .expect("first");
        store.observe_bids(model, &[bid(10, 4)], 200).expect("same");
        store
            .observe_bids(model, &[bid(12, 4)], 300)
            .expect("price");
        store
            .observe_bids(model, &[bid(12, 8)], 400)
            .expect("capacity");
        let rep = store
            .read(|db| model_reputation(db, provider, model, 20))
            .expect("reputation");
        let seen: Vec<(u64, u64, u64)> = rep
            .bids
            .iter()
            .map(|b| {
                (
                    b.price_per_token.to::<u64>(),
                    b.capacity.to::<u64>(),
                    b.seen_at,
                )
            })
            .collect();
        assert_eq!(seen, vec![(12, 8, 400), (12, 4, 300), (10, 4, 100)]);
        assert_eq!((rep.completed, rep.failed, rep.cancelled), (0, 0, 0));
        assert_eq!(rep.score, 0.5);
    }
}
