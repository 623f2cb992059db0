//! One SQL layer over the two backends, so the store's SQL is written once: a [`Conn`] (a
//! rusqlite connection or a Postgres client), its [`Tx`] transactions, parameters as [`Val`]
//! and rows as [`Row`] with typed getters that read the same on both.
//!
//! SQL is written in SQLite's dialect with `?N` placeholders; for Postgres it is translated by
//! [`super::pg::translate`] (`?N` to `$N`, `INSERT OR IGNORE` to `ON CONFLICT DO NOTHING`,
//! `IS ?N` to `IS NOT DISTINCT FROM $N`).

use super::pg::Pg;
use std::collections::HashMap;

/// A failure of the database layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite said no.
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Postgres said no (or its connection failed).
    #[error("Postgres: {0}")]
    Postgres(#[from] postgres::Error),
    /// A value read back is not of the type asked for, a row is missing, or a lost
    /// connection could not be made again.
    #[error("{0}")]
    Other(String),
}

impl DbError {
    /// Whether running the transaction again may succeed: Postgres aborted it to keep
    /// concurrent transactions serializable (SQLSTATE 40001), broke a deadlock (40P01), or
    /// refused a row another transaction inserted first (23505: the retry sees that row);
    /// SQLite was busy.
    pub fn is_retryable(&self) -> bool {
        use postgres::error::SqlState;
        match self {
            DbError::Postgres(e) => e.code().is_some_and(|c| {
                *c == SqlState::T_R_SERIALIZATION_FAILURE
                    || *c == SqlState::T_R_DEADLOCK_DETECTED
                    || *c == SqlState::UNIQUE_VIOLATION
            }),
            DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.code == rusqlite::ErrorCode::DatabaseBusy
            }
            _ => false,
        }
    }
}

/// A query parameter. Integers (booleans included, as 0 or 1) bind as 64-bit integers, reals
/// as doubles, so they match BIGINT and DOUBLE PRECISION columns on Postgres.
#[derive(Clone, Copy, Debug)]
pub enum Val<'a> {
    /// An integer, or NULL.
    Int(Option<i64>),
    /// A real, or NULL.
    Real(Option<f64>),
    /// Text, or NULL.
    Text(Option<&'a str>),
}

impl From<i64> for Val<'_> {
    fn from(v: i64) -> Self {
        Val::Int(Some(v))
    }
}
impl From<Option<i64>> for Val<'_> {
    fn from(v: Option<i64>) -> Self {
        Val::Int(v)
    }
}
impl From<bool> for Val<'_> {
    fn from(v: bool) -> Self {
        Val::Int(Some(i64::from(v)))
    }
}
impl From<f64> for Val<'_> {
    fn from(v: f64) -> Self {
        Val::Real(Some(v))
    }
}
impl From<Option<f64>> for Val<'_> {
    fn from(v: Option<f64>) -> Self {
        Val::Real(v)
    }
}
impl<'a> From<&'a str> for Val<'a> {
    fn from(v: &'a str) -> Self {
        Val::Text(Some(v))
    }
}
impl<'a> From<&'a String> for Val<'a> {
    fn from(v: &'a String) -> Self {
        Val::Text(Some(v))
    }
}

/// `vals![a, b]`: the parameters `&[Val::from(a), Val::from(b)]`.
macro_rules! vals {
    ($($v:expr),* $(,)?) => { &[$($crate::pool::server::store::db::Val::from($v)),*] };
}
pub(super) use vals;

/// One value read from a row.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// NULL.
    Null,
    /// An integer (Postgres booleans read as 0 or 1).
    Int(i64),
    /// A real.
    Real(f64),
    /// Text.
    Text(String),
}

/// A row read back, its values by column index.
#[derive(Clone, Debug, PartialEq)]
pub struct Row(pub Vec<Cell>);

impl Row {
    fn cell(&self, i: usize) -> Result<&Cell, DbError> {
        self.0
            .get(i)
            .ok_or_else(|| DbError::Other(format!("no column {i} in a row of {}", self.0.len())))
    }

    fn wrong(&self, i: usize, want: &str) -> DbError {
        DbError::Other(format!("column {i} is {:?}, not {want}", self.0.get(i)))
    }

    /// An integer that may be NULL.
    pub fn opt_int(&self, i: usize) -> Result<Option<i64>, DbError> {
        match self.cell(i)? {
            Cell::Null => Ok(None),
            Cell::Int(v) => Ok(Some(*v)),
            _ => Err(self.wrong(i, "an integer")),
        }
    }

    /// An integer.
    pub fn int(&self, i: usize) -> Result<i64, DbError> {
        self.opt_int(i)?.ok_or_else(|| self.wrong(i, "an integer"))
    }

    /// A boolean stored as an integer (or a Postgres boolean): nonzero is true.
    pub fn flag(&self, i: usize) -> Result<bool, DbError> {
        Ok(self.int(i)? != 0)
    }

    /// A real that may be NULL (an integer reads as a real, as rusqlite does).
    pub fn opt_real(&self, i: usize) -> Result<Option<f64>, DbError> {
        match self.cell(i)? {
            Cell::Null => Ok(None),
            Cell::Real(v) => Ok(Some(*v)),
            Cell::Int(v) => Ok(Some(*v as f64)),
            Cell::Text(_) => Err(self.wrong(i, "a real")),
        }
    }

    /// A real.
    pub fn real(&self, i: usize) -> Result<f64, DbError> {
        self.opt_real(i)?.ok_or_else(|| self.wrong(i, "a real"))
    }

    /// Text that may be NULL.
    pub fn opt_text(&self, i: usize) -> Result<Option<String>, DbError> {
        match self.cell(i)? {
            Cell::Null => Ok(None),
            Cell::Text(v) => Ok(Some(v.clone())),
            _ => Err(self.wrong(i, "text")),
        }
    }

    /// Text.
    pub fn text(&self, i: usize) -> Result<String, DbError> {
        self.opt_text(i)?.ok_or_else(|| self.wrong(i, "text"))
    }
}

/// Running SQL: what a connection and a transaction both do.
pub trait Exec {
    /// Run a statement; returns the rows it changed.
    fn execute(&mut self, sql: &str, params: &[Val<'_>]) -> Result<u64, DbError>;

    /// Run a query (or a statement with `RETURNING`); returns every row.
    fn query(&mut self, sql: &str, params: &[Val<'_>]) -> Result<Vec<Row>, DbError>;

    /// The first row, if any.
    fn query_opt(&mut self, sql: &str, params: &[Val<'_>]) -> Result<Option<Row>, DbError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// The first row; an error when there is none.
    fn query_one(&mut self, sql: &str, params: &[Val<'_>]) -> Result<Row, DbError> {
        self.query_opt(sql, params)?.ok_or_else(|| {
            let head = sql.split_whitespace().collect::<Vec<_>>().join(" ");
            DbError::Other(format!("no row for `{head}`"))
        })
    }
}

/// A connection to either backend.
pub enum Conn {
    /// SQLite through rusqlite.
    Sqlite(rusqlite::Connection),
    /// Postgres through the synchronous `postgres` client (boxed: the client is large).
    Postgres(Box<Pg>),
}

/// A transaction on either backend: rolled back when dropped without [`Tx::commit`].
pub enum Tx<'a> {
    /// A SQLite transaction.
    Sqlite(rusqlite::Transaction<'a>),
    /// A Postgres transaction, with the connection's prepared statements.
    Postgres {
        /// The transaction.
        tx: postgres::Transaction<'a>,
        /// Statements prepared on this connection, by translated SQL.
        stmts: &'a mut HashMap<String, postgres::Statement>,
    },
}

impl Conn {
    /// Whether this is a SQLite connection.
    pub fn is_sqlite(&self) -> bool {
        matches!(self, Conn::Sqlite(_))
    }

    /// Run statements without parameters (pragmas, `SET`).
    pub fn execute_batch(&mut self, sql: &str) -> Result<(), DbError> {
        match self {
            Conn::Sqlite(c) => c.execute_batch(sql)?,
            Conn::Postgres(pg) => pg.batch_execute(sql)?,
        }
        Ok(())
    }

    /// Begin a transaction.
    pub fn transaction(&mut self) -> Result<Tx<'_>, DbError> {
        Ok(match self {
            Conn::Sqlite(c) => Tx::Sqlite(c.transaction()?),
            Conn::Postgres(pg) => {
                let (tx, stmts) = pg.transaction()?;
                Tx::Postgres { tx, stmts }
            }
        })
    }
}

impl Tx<'_> {
    /// Make this transaction's commit durable: on Postgres, whose sessions commit without
    /// waiting for the disk by default, it waits (`synchronous_commit = on`); SQLite's
    /// commits are synced already (`synchronous=FULL`, outside [`Store::unsynced`]).
    ///
    /// [`Store::unsynced`]: super::Store::unsynced
    pub fn durable(&mut self) -> Result<(), DbError> {
        if let Tx::Postgres { tx, .. } = self {
            tx.batch_execute("SET LOCAL synchronous_commit = on")?;
        }
        Ok(())
    }

    /// Commit: once this returns, the writes of a [`durable`](Self::durable) transaction are
    /// on the disk.
    pub fn commit(self) -> Result<(), DbError> {
        match self {
            Tx::Sqlite(t) => t.commit()?,
            Tx::Postgres { tx, .. } => tx.commit()?,
        }
        Ok(())
    }
}

impl Exec for Conn {
    fn execute(&mut self, sql: &str, params: &[Val<'_>]) -> Result<u64, DbError> {
        match self {
            Conn::Sqlite(c) => sqlite_execute(c, sql, params),
            Conn::Postgres(pg) => pg.execute(sql, params),
        }
    }

    fn query(&mut self, sql: &str, params: &[Val<'_>]) -> Result<Vec<Row>, DbError> {
        match self {
            Conn::Sqlite(c) => sqlite_query(c, sql, params),
            Conn::Postgres(pg) => pg.query(sql, params),
        }
    }
}

impl Exec for Tx<'_> {
    fn execute(&mut self, sql: &str, params: &[Val<'_>]) -> Result<u64, DbError> {
        match self {
            Tx::Sqlite(t) => sqlite_execute(t, sql, params),
            Tx::Postgres { tx, stmts } => super::pg::execute(tx, stmts, sql, params),
        }
    }

    fn query(&mut self, sql: &str, params: &[Val<'_>]) -> Result<Vec<Row>, DbError> {
        match self {
            Tx::Sqlite(t) => sqlite_query(t, sql, params),
            Tx::Postgres { tx, stmts } => super::pg::query(tx, stmts, sql, params),
        }
    }
}

impl rusqlite::ToSql for Val<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{Null, ToSqlOutput};
        Ok(match *self {
            Val::Int(Some(v)) => ToSqlOutput::from(v),
            Val::Real(Some(v)) => ToSqlOutput::from(v),
            Val::Text(Some(v)) => ToSqlOutput::from(v),
            Val::Int(None) | Val::Real(None) | Val::Text(None) => ToSqlOutput::from(Null),
        })
    }
}

fn sqlite_execute(c: &rusqlite::Connection, sql: &str, params: &[Val<'_>]) -> Result<u64, DbError> {
    let n = c
        .prepare_cached(sql)?
        .execute(rusqlite::params_from_iter(params))?;
    Ok(n as u64)
}

fn sqlite_query(
    c: &rusqlite::Connection,
    sql: &str,
    params: &[Val<'_>],
) -> Result<Vec<Row>, DbError> {
    use rusqlite::types::ValueRef;
    let mut st = c.prepare_cached(sql)?;
    let width = st.column_count();
    let mut rows = st.query(rusqlite::params_from_iter(params))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let mut cells = Vec::with_capacity(width);
        for i in 0..width {
            cells.push(match r.get_ref(i)? {
                ValueRef::Null => Cell::Null,
                ValueRef::Integer(v) => Cell::Int(v),
                ValueRef::Real(v) => Cell::Real(v),
                ValueRef::Text(t) => Cell::Text(
                    String::from_utf8(t.to_vec())
                        .map_err(|e| DbError::Other(format!("column {i}: {e}")))?,
                ),
                ValueRef::Blob(_) => {
                    return Err(DbError::Other(format!("column {i} is a blob")));
                }
            });
        }
        out.push(Row(cells));
    }
    Ok(out)
}
