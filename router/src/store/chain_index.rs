//! The chain index's rows (the indexer is `chain_index/`): the block the index was taken at,
//! the blocks it was taken at before it (where a reorganisation is looked for), and each of the
//! registry's facts as text. One instance writes them at a time ([`Lock::ChainIndex`]); a write
//! holding only what changed is applied only on top of the very state it was computed from,
//! and otherwise the whole index is written again, so the rows always hold the facts of the
//! block they name, whichever instance wrote last.

use super::{
    Store, read_u64,
    sql::{Lock, args},
    to_i64,
};
use crate::Result;

/// The tables (one migration on each backend).
pub(super) const TABLES: &str = "
CREATE TABLE chain_index (
    id    BIGINT PRIMARY KEY, -- 1: a single row
    block BIGINT NOT NULL,    -- every fact in chain_facts is the registry's answer at this block
    hash  TEXT NOT NULL
);
CREATE TABLE chain_index_blocks (
    number BIGINT PRIMARY KEY, -- the blocks the index was taken at lately
    hash   TEXT NOT NULL
);
CREATE TABLE chain_facts (
    kind  TEXT NOT NULL, -- model, bids, provider, whitelisted, claim, whitelist_active
    id    TEXT NOT NULL,
    value TEXT NOT NULL, -- the registry's answer, ABI-encoded, as hex
    PRIMARY KEY (kind, id)
);
";

/// One fact as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FactRow {
    pub(crate) kind: &'static str,
    pub(crate) id: String,
    pub(crate) value: String,
}

/// The index as the database holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SavedIndex {
    pub(crate) block: u64,
    pub(crate) hash: String,
    /// Earlier blocks the index was taken at, newest first.
    pub(crate) recent: Vec<(u64, String)>,
    /// Every fact: (kind, id, value).
    pub(crate) facts: Vec<(String, String, String)>,
}

/// A new state of the index to write.
pub(crate) struct Saving<'a> {
    /// The block (and its hash) of the state the changes were computed from; `None` for the
    /// first index, whose changes are every fact.
    pub(crate) from: Option<(u64, &'a str)>,
    pub(crate) block: u64,
    pub(crate) hash: &'a str,
    /// Earlier blocks the index was taken at, newest first.
    pub(crate) recent: &'a [(u64, String)],
    /// The facts read again: a row to write, or the (kind, id) of one to delete.
    pub(crate) changed: &'a [Result<FactRow, (&'static str, String)>],
    /// Every fact of the new state (asked for only when the whole index is written).
    pub(crate) all: &'a dyn Fn() -> Vec<FactRow>,
}

/// What a [`Store::save_chain_index`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Saved {
    /// The changes, on top of the state they came from.
    Changes,
    /// The whole index: the database held another state than the one the changes came from.
    Whole,
    /// Nothing: the database already holds the index of this block or a later one.
    Behind,
}

impl Store {
    /// The index the database holds, if any.
    pub(crate) fn chain_index(&self) -> Result<Option<SavedIndex>> {
        // In one transaction under the index's lock: the three tables as one writer left them.
        self.write(|db| {
            db.lock(Lock::ChainIndex)?;
            let Some(row) =
                db.query_opt("SELECT block, hash FROM chain_index WHERE id = 1", args![])?
            else {
                return Ok(None);
            };
            let block = read_u64("chain_index.block", row.get(0)?)?;
            let hash = row.get::<String>(1)?;
            let recent = db
                .query(
                    "SELECT number, hash FROM chain_index_blocks ORDER BY number DESC",
                    args![],
                )?
                .into_iter()
                .map(|r| Ok((read_u64("chain_index_blocks.number", r.get(0)?)?, r.get(1)?)))
                .collect::<Result<Vec<_>>>()?;
            let facts = db
                .query("SELECT kind, id, value FROM chain_facts", args![])?
                .into_iter()
                .map(|r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .collect::<Result<Vec<_>>>()?;
            Ok(Some(SavedIndex {
                block,
                hash,
                recent,
                facts,
            }))
        })
    }

    /// Writes the index of block `s.block` in one transaction (see the module's comment for
    /// when it is the changes, the whole index, or nothing).
    pub(crate) fn save_chain_index(&self, s: &Saving<'_>) -> Result<Saved> {
        self.write(|db| {
            db.lock(Lock::ChainIndex)?;
            let stored = db
                .query_opt("SELECT block, hash FROM chain_index WHERE id = 1", args![])?
                .map(|r| Ok::<_, crate::Error>((r.get::<i64>(0)?, r.get::<String>(1)?)))
                .transpose()?;
            let saved = match (&stored, s.from) {
                (Some((block, _)), _) if *block >= to_i64(s.block) => return Ok(Saved::Behind),
                (Some((block, hash)), Some((from, from_hash)))
                    if *block == to_i64(from) && hash == from_hash =>
                {
                    Saved::Changes
                }
                (None, None) => Saved::Changes,
                _ => Saved::Whole,
            };
            match saved {
                Saved::Changes => {
                    for change in s.changed {
                        match change {
                            Ok(row) => upsert(db, row)?,
                            Err((kind, id)) => {
                                db.exec(
                                    "DELETE FROM chain_facts WHERE kind = ?1 AND id = ?2",
                                    args![*kind, id],
                                )?;
                            }
                        }
                    }
                }
                _ => {
                    db.exec("DELETE FROM chain_facts", args![])?;
                    for row in (s.all)() {
                        upsert(db, &row)?;
                    }
                }
            }
            db.exec(
                "INSERT INTO chain_index (id, block, hash) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET block = excluded.block, hash = excluded.hash",
                args![to_i64(s.block), s.hash],
            )?;
            db.exec("DELETE FROM chain_index_blocks", args![])?;
            for (number, hash) in s.recent {
                db.exec(
                    "INSERT INTO chain_index_blocks (number, hash) VALUES (?1, ?2)",
                    args![to_i64(*number), hash],
                )?;
            }
            Ok(saved)
        })
    }
}

fn upsert(db: &mut dyn super::sql::Db, row: &FactRow) -> Result<()> {
    db.exec(
        "INSERT INTO chain_facts (kind, id, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (kind, id) DO UPDATE SET value = excluded.value",
        args![row.kind, &row.id, &row.value],
    )
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: &'static str, id: &str, value: &str) -> FactRow {
        FactRow {
            kind,
            id: id.into(),
            value: value.into(),
        }
    }

    fn facts(store: &Store) -> Vec<(String, String, String)> {
        let mut f = store.chain_index().expect("read").expect("saved").facts;
        f.sort();
        f
    }

    #[test]
    fn changes_apply_only_on_the_state_they_came_from_else_the_whole_index_is_written() {
        let db = crate::store::TestDb::new();
        let store = db.open();
        assert_eq!(store.chain_index().expect("read"), None);
        let all_at_10 = || vec![row("model", "m1", "aa"), row("bids", "m1", "bb")];
        let first = Saving {
            from: None,
            block: 10,
            hash: "0x10",
            recent: &[],
            changed: &[Ok(row("model", "m1", "aa")), Ok(row("bids", "m1", "bb"))],
            all: &all_at_10,
        };
        assert_eq!(
            store.save_chain_index(&first).expect("save"),
            Saved::Changes
        );

        // Block 12, computed from 10: the bids deleted, a provider added.
        let all_at_12 = || vec![row("model", "m1", "aa"), row("provider", "p1", "cc")];
        let next = Saving {
            from: Some((10, "0x10")),
            block: 12,
            hash: "0x12",
            recent: &[(10, "0x10".into())],
            changed: &[Err(("bids", "m1".into())), Ok(row("provider", "p1", "cc"))],
            all: &all_at_12,
        };
        assert_eq!(store.save_chain_index(&next).expect("save"), Saved::Changes);
        let saved = store.chain_index().expect("read").expect("saved");
        assert_eq!((saved.block, saved.hash.as_str()), (12, "0x12"));
        assert_eq!(saved.recent, vec![(10, "0x10".to_string())]);
        assert_eq!(
            facts(&store),
            vec![
                ("model".into(), "m1".into(), "aa".into()),
                ("provider".into(), "p1".into(), "cc".into())
            ]
        );

        // Another instance's state of block 11, or 12 again: the database is ahead; nothing.
        for block in [11, 12] {
            let late = Saving { block, ..first };
            assert_eq!(store.save_chain_index(&late).expect("save"), Saved::Behind);
        }

        // Changes computed from a state the database does not hold (another branch's 12):
        // the whole index is written instead.
        let all_at_13 = || vec![row("model", "m2", "dd")];
        let elsewhere = Saving {
            from: Some((12, "0x12-other")),
            block: 13,
            hash: "0x13",
            recent: &[],
            changed: &[Ok(row("model", "m2", "dd"))],
            all: &all_at_13,
        };
        assert_eq!(
            store.save_chain_index(&elsewhere).expect("save"),
            Saved::Whole
        );
        assert_eq!(
            facts(&store),
            vec![("model".into(), "m2".into(), "dd".into())]
        );
    }
}
