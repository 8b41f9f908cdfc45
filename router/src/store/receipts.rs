//! Sessions' token counts from the provider's signed receipts, and the settling of sessions
//! whose provider has not answered for them (`usage.rs` holds the rule; this file its inputs).

use alloy::primitives::{Address, B256, U256};
use rusqlite::Connection;

use super::{
    Store, key, read_address, read_u64, read_u256,
    sql::{Lock, Row, args},
    to_i64,
};
use crate::{
    Error, Result,
    usage::{self, Served},
};

/// The terms of an assigned session: what its assignment said, so that the router can sign it
/// again to ask the provider for the session's receipt (the provider checks the router's
/// signature and its own address, as for a chat request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionTerms {
    pub(crate) session_id: B256,
    pub(crate) user: Address,
    pub(crate) provider: Address,
    pub(crate) endpoint: Option<String>,
    pub(crate) model_id: B256,
    pub(crate) token_max: u64,
    pub(crate) price_per_token: U256,
    pub(crate) expires_at: u64,
}

/// The columns [`read_terms`] reads, first in a query.
macro_rules! terms {
    () => {
        r#"session_id, "user", provider, endpoint, model_id, token_max, price_per_token, expires_at"#
    };
}

/// Up to `?2` assigned sessions expired before `?1` whose count is not settled, the longest
/// expired first (a range of `sessions_due`).
pub(super) const DUE_RECEIPTS: &str = concat!(
    "SELECT ",
    terms!(),
    " FROM sessions
     WHERE settled = 0 AND provider IS NOT NULL AND expires_at < ?1
     ORDER BY expires_at LIMIT ?2"
);

fn read_terms(row: &Row) -> Result<Option<SessionTerms>> {
    let (id, user, endpoint, model) = (
        row.get::<String>(0)?,
        row.get::<String>(1)?,
        row.get::<Option<String>>(3)?,
        row.get::<String>(4)?,
    );
    let (Some(provider), Some(price), Some(expires_at)) = (
        row.get::<Option<String>>(2)?,
        row.get::<Option<String>>(6)?,
        row.get::<Option<i64>>(7)?,
    ) else {
        // Reserved but never assigned: no provider to ask.
        return Ok(None);
    };
    Ok(Some(SessionTerms {
        session_id: id
            .parse()
            .map_err(|e| super::corrupt("sessions.session_id", &id, e))?,
        user: read_address("sessions.user", &user)?,
        provider: read_address("sessions.provider", &provider)?,
        endpoint,
        model_id: model
            .parse()
            .map_err(|e| super::corrupt("sessions.model_id", &model, e))?,
        token_max: read_u64("sessions.token_max", row.get(5)?)?,
        price_per_token: read_u256("sessions.price_per_token", &price)?,
        expires_at: read_u64("sessions.expires_at", expires_at)?,
    }))
}

impl Store {
    /// The session `report_id` names, if `signer` may report on it now: it exists and was
    /// assigned (else [`Error::UnknownSession`]), `signer` is its user ([`Error::WrongReporter`])
    /// and it was not reported yet ([`Error::AlreadyReported`]). `record_report` checks the same
    /// again in its transaction.
    pub(crate) fn report_target(&self, session_id: B256, signer: Address) -> Result<SessionTerms> {
        let row = self.read(|db| {
            db.query_opt(
                concat!(
                    "SELECT ",
                    terms!(),
                    ", reported FROM sessions WHERE session_id = ?1"
                ),
                args![key(&session_id)],
            )
        })?;
        let Some(row) = row else {
            return Err(Error::UnknownSession(session_id));
        };
        let terms = read_terms(&row)?.ok_or(Error::UnknownSession(session_id))?;
        let reported: i64 = row.get(8)?;
        if terms.user != signer {
            return Err(Error::WrongReporter {
                session: session_id,
                user: terms.user,
                signer,
            });
        }
        if reported != 0 {
            return Err(Error::AlreadyReported(session_id));
        }
        Ok(terms)
    }

    /// Up to `limit` assigned sessions expired before `now` whose count is not settled, the
    /// longest expired first.
    pub(crate) fn due_receipts(&self, now: u64, limit: usize) -> Result<Vec<SessionTerms>> {
        let rows =
            self.read(|db| db.query(DUE_RECEIPTS, args![to_i64(now), to_i64(limit as u64)]))?;
        let mut out = Vec::new();
        for row in &rows {
            out.extend(read_terms(row)?);
        }
        Ok(out)
    }

    /// Settles a session's count with the provider's signed `receipt`, or, when it could not be
    /// had (`None`), counts one more unanswered attempt and, at `max_attempts`, settles it as
    /// unanswered (`usage::counted_tokens`). Returns what the session counts now. A session
    /// already settled is left as it is.
    pub(crate) fn settle(
        &self,
        session_id: B256,
        receipt: Option<u64>,
        max_attempts: u32,
    ) -> Result<u64> {
        self.write(|db| {
            let id = key(&session_id);
            // The session's user, then its lock, then the session as it is under it (where
            // writers run alone, it is as it is already).
            if !db.writers_run_alone()
                && let Some(user) = db.query_opt(
                    r#"SELECT "user" FROM sessions WHERE session_id = ?1"#,
                    args![&id],
                )?
            {
                db.lock(Lock::User(&user.get::<String>(0)?))?;
            }
            let Some(row) = db.query_opt(
                r#"SELECT token_max, reported, tokens, credited, counted, settled, attempts,
                       "user", day
                   FROM sessions WHERE session_id = ?1"#,
                args![&id],
            )?
            else {
                return Err(Error::UnknownSession(session_id));
            };
            let before = read_u64("sessions.counted", row.get(4)?)?;
            if row.get::<i64>(5)? != 0 {
                return Ok(before);
            }
            let token_max = read_u64("sessions.token_max", row.get(0)?)?;
            let reported = match (row.get::<i64>(1)?, row.get::<Option<i64>>(2)?) {
                (0, _) => None,
                (_, Some(t)) => Some(read_u64("sessions.tokens", t)?),
                (_, None) => {
                    return Err(super::corrupt(
                        "sessions.tokens",
                        "NULL",
                        "a report's count",
                    ));
                }
            };
            let credited = read_u64("sessions.credited", row.get::<Option<i64>>(3)?.unwrap_or(0))?;
            let attempts = read_u64("sessions.attempts", row.get(6)?)?.saturating_add(1);
            let served = match receipt {
                Some(r) => Served::Receipt(r),
                None if attempts >= u64::from(max_attempts) => Served::Unanswered,
                None => Served::Unknown,
            };
            let counted = usage::counted_tokens(token_max, reported, credited, served);
            let user: String = row.get(7)?;
            super::count_against_day(db, &user, row.get(8)?, super::delta(before, counted))?;
            db.exec(
                "UPDATE sessions SET receipt = ?2, counted = ?3, settled = ?4, attempts = ?5
                 WHERE session_id = ?1",
                args![
                    &id,
                    receipt.map(to_i64),
                    to_i64(counted),
                    served != Served::Unknown,
                    to_i64(attempts)
                ],
            )?;
            Ok(counted)
        })
    }
}

/// Adds the columns receipts need to a database written before them (`CREATE TABLE IF NOT
/// EXISTS` leaves an existing table as it was), and settles the sessions it already held by the
/// rule they were made under: a reported session counts its reported tokens, an open one its
/// `tokenMax`. Run at every start; it changes nothing once the columns exist.
pub(super) fn add_session_columns(tx: &Connection) -> rusqlite::Result<()> {
    let has = tx
        .prepare("SELECT 1 FROM pragma_table_info('sessions') WHERE name = 'counted'")?
        .exists([])?;
    if !has {
        tx.execute_batch(
            "ALTER TABLE sessions ADD COLUMN endpoint TEXT;
             ALTER TABLE sessions ADD COLUMN credited INTEGER; -- tokens credited (0 unless)
             ALTER TABLE sessions ADD COLUMN receipt INTEGER;  -- the provider's signed count
             ALTER TABLE sessions ADD COLUMN counted INTEGER;  -- against the user's day
             ALTER TABLE sessions ADD COLUMN settled INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE sessions ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
             UPDATE sessions SET
                 counted = CASE WHEN reported = 1 THEN tokens ELSE token_max END,
                 credited = CASE WHEN outcome = 'Credited' THEN tokens ELSE 0 END,
                 settled = 1;
             CREATE INDEX IF NOT EXISTS sessions_due ON sessions (settled, expires_at);",
        )?;
    }
    Ok(())
}
