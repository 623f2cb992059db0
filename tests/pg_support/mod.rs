//! Fresh Postgres databases for tests: `NCPC_TEST_POSTGRES` holds an admin URL (a role that
//! may create databases, e.g. `postgres://postgres:ncpc@127.0.0.1/postgres`); each test gets
//! its own `ncpc_test_<random>` database, dropped when it ends.

use ncpc::pool::server::DbLocation;

/// The env var naming the admin URL.
pub const ENV: &str = "NCPC_TEST_POSTGRES";

/// The admin URL, or `None` (with a message saying the test is skipped) when it is not set.
pub fn admin_url() -> Option<String> {
    match std::env::var(ENV) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            eprintln!(
                "skipped on Postgres: set {ENV} to an admin URL \
                 (e.g. postgres://postgres:ncpc@127.0.0.1/postgres) to run it"
            );
            None
        }
    }
}

/// A database created for one test and dropped (connections and all) at the end.
pub struct TestDatabase {
    admin: String,
    name: String,
    /// Where the pool finds it.
    pub location: DbLocation,
}

/// `url` with its database name replaced by `name` (the query string kept).
fn with_dbname(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, format!("?{q}")),
        None => (rest, String::new()),
    };
    let authority = rest.split_once('/').map_or(rest, |(a, _)| a);
    format!("{scheme}://{authority}/{name}{query}")
}

fn admin_client(admin: &str) -> postgres::Client {
    postgres::Client::connect(admin, postgres::NoTls)
        .unwrap_or_else(|e| panic!("{ENV} is set but Postgres cannot be reached: {e}"))
}

impl TestDatabase {
    /// Create a fresh database through the admin URL.
    pub fn create(admin: &str) -> TestDatabase {
        let name = format!("ncpc_test_{:016x}", rand::random::<u64>());
        admin_client(admin)
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("CREATE DATABASE");
        TestDatabase {
            admin: admin.to_string(),
            location: DbLocation::Postgres(with_dbname(admin, &name)),
            name,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let dropped = postgres::Client::connect(&self.admin, postgres::NoTls).and_then(|mut c| {
            c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
        });
        if let Err(e) = dropped {
            eprintln!("could not drop the test database {}: {e}", self.name);
        }
    }
}

/// Run `body` on a fresh Postgres database. The tests that call it are ignored unless
/// `NCPC_TEST_POSTGRES` was set when they were built (build.rs); one that runs without it
/// set now fails rather than passing without a database.
pub fn on_postgres(body: fn(&DbLocation)) {
    let admin = admin_url()
        .unwrap_or_else(|| panic!("{ENV} was set when this test was built but is not set now"));
    let db = TestDatabase::create(&admin);
    body(&db.location);
}

#[test]
fn urls_get_the_test_database_name() {
    assert_eq!(
        with_dbname("postgres://postgres:ncpc@127.0.0.1/postgres", "t1"),
        "postgres://postgres:ncpc@127.0.0.1/t1"
    );
    assert_eq!(
        with_dbname("postgresql://u@h:5433/db?connect_timeout=5", "t2"),
        "postgresql://u@h:5433/t2?connect_timeout=5"
    );
    assert_eq!(with_dbname("postgres://u@h", "t3"), "postgres://u@h/t3");
}
