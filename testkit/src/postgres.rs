//! The PostgreSQL databases of a router test suite's PostgreSQL pass. `make test` starts a
//! throwaway server (`tools/pg-test-server`) and runs the router's tests a second time with
//! [`POSTGRES_ENV`] naming it; each test's router then gets a new, empty database of its own on
//! that server. Without the variable, routers use their SQLite file.

use crate::{Error, Result, unique_b256};

/// The URL of a database on the PostgreSQL server the suite runs on, as a role that may create
/// databases (`postgres://user@host:port/postgres`).
pub const POSTGRES_ENV: &str = "MORPHEUS_TEST_POSTGRES";

/// The server's URL when this run is the PostgreSQL pass.
pub fn postgres_server() -> Option<String> {
    std::env::var(POSTGRES_ENV).ok().filter(|u| !u.is_empty())
}

/// The database a test's router uses: a new, empty PostgreSQL database (its URL) in the
/// PostgreSQL pass, `None` (the router's SQLite file) otherwise.
pub fn test_database() -> Result<Option<String>> {
    postgres_server()
        .map(|server| {
            let name = format!("morpheus_test_{}", &hex(unique_b256().as_slice())[40..]);
            run_sql(&server, &format!("CREATE DATABASE {name}"))?;
            Ok(with_database(&server, &name))
        })
        .transpose()
}

/// Empties the database at `url` as a lost disk would: dropped (its connections closed) and
/// created again under the same name.
pub fn recreate_database(url: &str) -> Result<()> {
    let server =
        postgres_server().ok_or_else(|| Error::Setup(format!("{POSTGRES_ENV} is unset")))?;
    let name = url
        .rsplit_once('/')
        .map(|(_, n)| n.split('?').next().unwrap_or(n).to_owned())
        .ok_or_else(|| Error::Setup(format!("no database name in {url}")))?;
    run_sql(
        &server,
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    )?;
    run_sql(&server, &format!("CREATE DATABASE {name}"))
}

/// The first column of the first row of `sql` (an integer) on the database at `url`.
pub fn query_i64(url: &str, sql: &str) -> Result<i64> {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    on_own_thread(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).map_err(setup)?;
        let row = client.query_one(sql.as_str(), &[]).map_err(setup)?;
        row.try_get::<_, i64>(0).map_err(setup)
    })
}

/// Every row of every table of the database at `url`, as text: what a test searches for what
/// must never be stored.
pub fn dump_text(url: &str) -> Result<String> {
    let url = url.to_owned();
    on_own_thread(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).map_err(setup)?;
        let tables = client
            .query(
                "SELECT table_name::text FROM information_schema.tables
                 WHERE table_schema = 'public'",
                &[],
            )
            .map_err(setup)?;
        let mut text = String::new();
        for table in tables {
            let name: String = table.get(0);
            let sql = format!("SELECT COALESCE(string_agg(t::text, E'\\n'), '') FROM \"{name}\" t");
            let rows: String = client.query_one(sql.as_str(), &[]).map_err(setup)?.get(0);
            text.push_str(&rows);
            text.push('\n');
        }
        Ok(text)
    })
}

/// Runs one statement on the database at `url`.
pub fn run_sql(url: &str, sql: &str) -> Result<()> {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    on_own_thread(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).map_err(setup)?;
        client.batch_execute(&sql).map_err(setup)
    })
}

/// `server` with its database part replaced by `name`.
fn with_database(server: &str, name: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (server, String::new()),
    };
    let (scheme, rest) = base.split_once("://").unwrap_or(("postgres", base));
    let authority = rest.split('/').next().unwrap_or(rest);
    format!("{scheme}://{authority}/{name}{query}")
}

/// The blocking client owns a runtime, which may be neither started nor dropped on a thread
/// that is running async code: every call runs on a thread of its own.
fn on_own_thread<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    std::thread::spawn(f)
        .join()
        .map_err(|_| Error::Setup("a PostgreSQL call panicked".into()))?
}

fn setup(e: postgres::Error) -> Error {
    Error::Setup(format!("PostgreSQL ({POSTGRES_ENV}): {e}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_name_replaces_the_servers() {
        assert_eq!(
            with_database("postgres://u@127.0.0.1:5432/postgres", "t1"),
            "postgres://u@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database("postgres://u@127.0.0.1:5432/postgres?sslmode=disable", "t1"),
            "postgres://u@127.0.0.1:5432/t1?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://u@127.0.0.1:5432", "t1"),
            "postgres://u@127.0.0.1:5432/t1"
        );
    }
}
