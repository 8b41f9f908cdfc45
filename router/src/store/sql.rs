//! The one SQL dialect the store speaks to both backends: statements written once, with `?N`
//! placeholders (PostgreSQL's `$N` is derived from them), `"user"` quoted (a reserved word in
//! PostgreSQL), integers as 64-bit `INTEGER`/`BIGINT`, booleans as 0/1, amounts as decimal text.
//! [`Db`] runs a statement on either backend; values cross it as [`Value`]s, so no backend's
//! types leak into the store's logic.
//!
//! A statement run for every request writes its `LIMIT` as a literal, not a `?N`: SQLite plans
//! with a bound LIMIT's value and so marks the statement to be parsed and planned again each time
//! it is bound anew (`SQLITE_STMTSTATUS_REPREPARE` counted one per run), which cost about a
//! twentieth of the router's time under load. The background rounds' statements, run a few times
//! a minute, keep theirs bound. Test: `store::tests::statements_run_per_pair_are_parsed_once`.

use crate::{Error, Result};

/// A value bound to a statement or read back from a row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Self::Int(i64::from(v))
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Self::Int(i64::from(v))
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Self::Real(v)
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Self::Text(v)
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Self::Text(v.clone())
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Self::Text(v.to_owned())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Self::Null, Into::into)
    }
}

/// The arguments of a statement, in placeholder order: `args![a, b]` binds `?1 = a, ?2 = b`.
macro_rules! args {
    ($($arg:expr),* $(,)?) => {
        &[$($crate::store::sql::Value::from($arg)),*][..]
    };
}
pub(crate) use args;

/// A type a column is read back as. `None`: the value is not one (a NULL for a non-`Option`,
/// text for a number): the database was changed outside the router.
pub(crate) trait FromValue: Sized {
    fn from_value(v: &Value) -> Option<Self>;
}

impl FromValue for i64 {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
}

impl FromValue for bool {
    fn from_value(v: &Value) -> Option<Self> {
        i64::from_value(v).map(|i| i != 0)
    }
}

impl FromValue for f64 {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Real(r) => Some(*r),
            // SQLite hands back a REAL column's whole numbers as they were bound.
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }
}

impl FromValue for String {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Null => Some(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// One row of a query's result.
#[derive(Debug, Clone)]
pub(crate) struct Row(pub(crate) Vec<Value>);

impl Row {
    /// Column `i` as a `T`; a value of another type is [`Error::CorruptDatabase`].
    pub(crate) fn get<T: FromValue>(&self, i: usize) -> Result<T> {
        let v = self.0.get(i).unwrap_or(&Value::Null);
        T::from_value(v).ok_or_else(|| Error::CorruptDatabase {
            column: "a query's column",
            value: format!("{v:?}"),
            reason: format!("column {i} is not a {}", std::any::type_name::<T>()),
        })
    }
}

/// What a writing transaction is about to change, taken before it reads what it checks. On
/// SQLite every writer already runs alone (`BEGIN IMMEDIATE`) and this is nothing; on
/// PostgreSQL it is an advisory lock on the key, held to the transaction's end, so writers of
/// different users and providers run at once while two about the same one run in turn. Taken in
/// this order in a transaction (a user before a provider), so no two writers wait on each other.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Lock<'a> {
    /// A user's nonces, sessions' counts and day totals (the allowance check).
    User(&'a str),
    /// A provider's bookings (the capacity check), credits, reputation and allotments.
    Provider(&'a str),
    /// The chain index's rows (`chain_index.rs`): one instance writes them at a time.
    ChainIndex,
}

/// A connection, or a transaction on one, of either backend.
pub(crate) trait Db {
    /// Takes `lock` for the rest of the transaction (see [`Lock`]).
    fn lock(&mut self, lock: Lock<'_>) -> Result<()>;

    /// Whether [`lock`](Self::lock) is nothing here: every writer runs alone already (SQLite),
    /// so a transaction need not read whom it is about before reading the rows it checks.
    fn writers_run_alone(&self) -> bool;

    /// Runs a statement; returns how many rows it changed.
    fn exec(&mut self, sql: &str, args: &[Value]) -> Result<u64>;

    /// Runs a query; returns every row.
    fn query(&mut self, sql: &str, args: &[Value]) -> Result<Vec<Row>>;

    /// The first row of a query, if any.
    fn query_opt(&mut self, sql: &str, args: &[Value]) -> Result<Option<Row>> {
        Ok(self.query(sql, args)?.into_iter().next())
    }

    /// The first row of a query that always has one (an aggregate).
    fn query_one(&mut self, sql: &str, args: &[Value]) -> Result<Row> {
        self.query_opt(sql, args)?
            .ok_or_else(|| Error::CorruptDatabase {
                column: "a query's result",
                value: sql.trim().chars().take(60).collect(),
                reason: "no row where one always is".into(),
            })
    }
}

/// PostgreSQL's spelling of a statement: `?N` becomes `$N` (neither dialect's statements hold
/// a `?` anywhere else).
pub(crate) fn postgres_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_dollars_and_nothing_else_changes() {
        assert_eq!(
            postgres_placeholders("SELECT a FROM t WHERE \"user\" = ?1 AND b = ?12 OR c = '?'"),
            "SELECT a FROM t WHERE \"user\" = $1 AND b = $12 OR c = '?'"
        );
    }

    #[test]
    fn a_value_of_the_wrong_type_is_a_corrupt_database_naming_it() {
        let row = Row(vec![Value::Text("x".into()), Value::Null, Value::Int(3)]);
        assert!(matches!(
            row.get::<i64>(0),
            Err(Error::CorruptDatabase { .. })
        ));
        assert!(matches!(
            row.get::<i64>(1),
            Err(Error::CorruptDatabase { .. })
        ));
        assert_eq!(row.get::<Option<i64>>(1).expect("null"), None);
        assert_eq!(row.get::<f64>(2).expect("int as real"), 3.0);
        assert!(row.get::<bool>(2).expect("bool"));
    }
}
