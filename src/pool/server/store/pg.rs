//! The Postgres backend: connecting, the schema in Postgres types, translating the store's
//! SQLite-dialect SQL, and running it with statements prepared once per connection.
//!
//! The synchronous `postgres` client runs its own small tokio runtime, so it must not be
//! created, used or dropped on a thread inside another runtime's async context (it panics
//! with "Cannot start a runtime from within a runtime"). The server reaches the store only
//! through `spawn_blocking`, where blocking is allowed; opening the store and dropping the
//! client, which can happen on an async thread (the server's state is dropped with its
//! runtime's tasks), go through [`outside_runtime`].

use super::location::redact;
use super::schema::{AFTER_MIGRATIONS, Dialect, MIGRATIONS, add_column, schema};
use super::values::{Cell, DbError, Row, Val};
use anyhow::Context;
use postgres::types::{ToSql, Type};
use postgres::{Client, GenericClient, NoTls, Statement, Transaction};
use std::collections::HashMap;
use std::time::Duration;

/// Serializes schema creation between servers starting at once on one database.
const SCHEMA_LOCK: i64 = 0x6e63_7063; // "ncpc"

/// How long a connection attempt may take when the URL sets no `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A Postgres connection with the statements prepared on it.
pub struct Pg {
    client: Option<Client>,
    stmts: HashMap<String, Statement>,
    url: String,
}

/// Run `f` where the synchronous Postgres client may block: here when this thread is outside
/// any tokio runtime, else on a short-lived thread of its own.
pub fn outside_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Ok(f());
    }
    std::thread::scope(|s| {
        let handle = std::thread::Builder::new()
            .name("ncpc-postgres".into())
            .spawn_scoped(s, f)
            .context("starting a thread for the Postgres client")?;
        match handle.join() {
            Ok(v) => Ok(v),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// "host:port/dbname" of a URL, for errors (never the password).
fn target(config: &postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            postgres::config::Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    format!(
        "{}:{}/{}",
        if hosts.is_empty() {
            "localhost".to_string()
        } else {
            hosts.join(",")
        },
        if ports.is_empty() {
            "5432".to_string()
        } else {
            ports.join(",")
        },
        config.get_dbname().unwrap_or("(default database)")
    )
}

fn connect(url: &str) -> anyhow::Result<Client> {
    let mut config: postgres::Config = url
        .parse()
        .with_context(|| format!("invalid Postgres URL {}", redact(url)))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    // Commits are not flushed on their own by default: an auth token or a lease lost in a
    // Postgres crash costs a retry. Transactions that store work declare themselves durable
    // (`Tx::durable`: `SET LOCAL synchronous_commit = on`), and their flush carries every
    // earlier commit to the disk with them.
    let options = match config.get_options() {
        Some(o) => format!("{o} -c synchronous_commit=off"),
        None => "-c synchronous_commit=off".to_string(),
    };
    config.options(&options);
    let at = target(&config);
    outside_runtime(move || config.connect(NoTls))?
        .with_context(|| format!("cannot connect to the Postgres database at {at}"))
}

impl Pg {
    /// Connect to `url` and create the schema.
    pub fn open(url: &str) -> anyhow::Result<Pg> {
        let client = connect(url)?;
        let mut pg = Pg {
            client: Some(client),
            stmts: HashMap::new(),
            url: url.to_string(),
        };
        let at = redact(url);
        outside_runtime(|| -> Result<(), DbError> {
            let mut tx = pg.client()?.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
            tx.batch_execute(&schema(Dialect::Postgres))?;
            for (table, column, ty) in MIGRATIONS {
                let add = add_column(table, column, ty, Dialect::Postgres)
                    .replace("ADD COLUMN", "ADD COLUMN IF NOT EXISTS");
                tx.batch_execute(&add)?;
            }
            tx.batch_execute(AFTER_MIGRATIONS)?;
            tx.commit()?;
            Ok(())
        })?
        .with_context(|| format!("creating the pool schema in {at}"))?;
        Ok(pg)
    }

    /// The client, connected again first if the connection was lost (a Postgres restart):
    /// the request that finds it lost fails, later ones reconnect.
    fn client(&mut self) -> Result<&mut Client, DbError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.stmts.clear();
            self.client = None;
            let client = connect(&self.url).map_err(|e| DbError::Other(format!("{e:#}")))?;
            self.client = Some(client);
        }
        self.client.as_mut().ok_or_else(no_connection)
    }

    /// Run statements without parameters (`SET ...`).
    pub fn batch_execute(&mut self, sql: &str) -> Result<(), DbError> {
        self.client()?.batch_execute(sql)?;
        Ok(())
    }

    /// Begin a transaction; also hands out the statement cache.
    #[allow(clippy::type_complexity)]
    pub fn transaction(
        &mut self,
    ) -> Result<(Transaction<'_>, &mut HashMap<String, Statement>), DbError> {
        self.client()?;
        let client = self.client.as_mut().ok_or_else(no_connection)?;
        // SERIALIZABLE: replicas of the server on one database run the same check-then-write
        // transactions at once; Postgres aborts one of two that would interleave badly (a
        // serialization failure, SQLSTATE 40001), and the server runs it again.
        let tx = client
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::Serializable)
            .start()?;
        Ok((tx, &mut self.stmts))
    }

    /// Run a statement outside a transaction (it commits on its own).
    pub fn execute(&mut self, sql: &str, params: &[Val<'_>]) -> Result<u64, DbError> {
        self.client()?;
        let Pg { client, stmts, .. } = self;
        let client = client.as_mut().ok_or_else(no_connection)?;
        execute(client, stmts, sql, params)
    }

    /// Run a query outside a transaction.
    pub fn query(&mut self, sql: &str, params: &[Val<'_>]) -> Result<Vec<Row>, DbError> {
        self.client()?;
        let Pg { client, stmts, .. } = self;
        let client = client.as_mut().ok_or_else(no_connection)?;
        query(client, stmts, sql, params)
    }
}

fn no_connection() -> DbError {
    DbError::Other("no Postgres connection".into())
}

impl Drop for Pg {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            // Closing blocks on the client's runtime: never on an async thread.
            if outside_runtime(move || drop(client)).is_err() {
                tracing::warn!("the Postgres connection was not closed cleanly");
            }
        }
    }
}

/// The SQLite-dialect `sql` in Postgres's: `?N` becomes `$N`, `IS ?N` becomes
/// `IS NOT DISTINCT FROM $N`, and `INSERT OR IGNORE INTO ...` becomes
/// `INSERT INTO ... ON CONFLICT DO NOTHING`. Keywords must be in upper case.
pub fn translate(sql: &str) -> String {
    let mut s = sql.replace("IS NOT ?", "IS DISTINCT FROM ?");
    s = s.replace("IS ?", "IS NOT DISTINCT FROM ?");
    if s.contains("INSERT OR IGNORE INTO") {
        s = s.replace("INSERT OR IGNORE INTO", "INSERT INTO");
        let body = s.trim_end().trim_end_matches(';').trim_end();
        s = match body.find(" RETURNING ") {
            Some(at) => format!("{} ON CONFLICT DO NOTHING{}", &body[..at], &body[at..]),
            None => format!("{body} ON CONFLICT DO NOTHING"),
        };
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

fn statement(
    tx: &mut impl GenericClient,
    stmts: &mut HashMap<String, Statement>,
    sql: &str,
) -> Result<Statement, DbError> {
    if let Some(st) = stmts.get(sql) {
        return Ok(st.clone());
    }
    let st = tx.prepare(&translate(sql))?;
    stmts.insert(sql.to_string(), st.clone());
    Ok(st)
}

fn bind<'v>(params: &'v [Val<'_>]) -> Vec<&'v (dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| match p {
            Val::Int(v) => v as &(dyn ToSql + Sync),
            Val::Real(v) => v as &(dyn ToSql + Sync),
            Val::Text(v) => v as &(dyn ToSql + Sync),
        })
        .collect()
}

/// Run a statement on `tx` (a client or a transaction); returns the rows it changed.
pub fn execute(
    tx: &mut impl GenericClient,
    stmts: &mut HashMap<String, Statement>,
    sql: &str,
    params: &[Val<'_>],
) -> Result<u64, DbError> {
    let st = statement(tx, stmts, sql)?;
    Ok(tx.execute(&st, &bind(params))?)
}

/// Run a query on `tx` (a client or a transaction); returns its rows.
pub fn query(
    tx: &mut impl GenericClient,
    stmts: &mut HashMap<String, Statement>,
    sql: &str,
    params: &[Val<'_>],
) -> Result<Vec<Row>, DbError> {
    let st = statement(tx, stmts, sql)?;
    tx.query(&st, &bind(params))?.iter().map(read_row).collect()
}

fn read_row(r: &postgres::Row) -> Result<Row, DbError> {
    let mut cells = Vec::with_capacity(r.len());
    for (i, col) in r.columns().iter().enumerate() {
        let ty = col.type_();
        let cell = if *ty == Type::INT8 {
            r.try_get::<_, Option<i64>>(i)?.map(Cell::Int)
        } else if *ty == Type::INT4 {
            r.try_get::<_, Option<i32>>(i)?.map(|v| Cell::Int(v.into()))
        } else if *ty == Type::INT2 {
            r.try_get::<_, Option<i16>>(i)?.map(|v| Cell::Int(v.into()))
        } else if *ty == Type::BOOL {
            r.try_get::<_, Option<bool>>(i)?
                .map(|v| Cell::Int(v.into()))
        } else if *ty == Type::FLOAT8 {
            r.try_get::<_, Option<f64>>(i)?.map(Cell::Real)
        } else if *ty == Type::FLOAT4 {
            r.try_get::<_, Option<f32>>(i)?
                .map(|v| Cell::Real(v.into()))
        } else if [Type::TEXT, Type::VARCHAR, Type::BPCHAR, Type::NAME].contains(ty) {
            r.try_get::<_, Option<String>>(i)?.map(Cell::Text)
        } else {
            return Err(DbError::Other(format!(
                "column {} has the Postgres type {ty}, which the store does not read",
                col.name()
            )));
        };
        cells.push(cell.unwrap_or(Cell::Null));
    }
    Ok(Row(cells))
}

#[cfg(test)]
mod tests {
    use super::translate;

    #[test]
    fn sqlite_sql_translates_to_postgres() {
        assert_eq!(
            translate("SELECT a FROM t WHERE b = ?1 AND c > ?12"),
            "SELECT a FROM t WHERE b = $1 AND c > $12"
        );
        assert_eq!(
            translate("SELECT x IS ?2, y IS NULL, z IS NOT NULL FROM t"),
            "SELECT x IS NOT DISTINCT FROM $2, y IS NULL, z IS NOT NULL FROM t"
        );
        assert_eq!(
            translate("SELECT x IS NOT ?1 FROM t"),
            "SELECT x IS DISTINCT FROM $1 FROM t"
        );
        assert_eq!(
            translate("INSERT OR IGNORE INTO m (a, b)\n VALUES (?1, ?2)\n"),
            "INSERT INTO m (a, b)\n VALUES ($1, $2) ON CONFLICT DO NOTHING"
        );
        assert_eq!(
            translate("INSERT OR IGNORE INTO m (a) VALUES (?1) RETURNING id"),
            "INSERT INTO m (a) VALUES ($1) ON CONFLICT DO NOTHING RETURNING id"
        );
        assert_eq!(translate("SELECT '?' FROM t"), "SELECT '?' FROM t");
    }
}
