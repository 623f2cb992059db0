//! One SQL layer over the two backends, so the store's SQL is written once: a [`Conn`] (a
//! rusqlite connection or a Postgres client), its [`Tx`] transactions, parameters as [`Val`]
//! and rows as [`Row`] with typed getters that read the same on both.
//!
//! SQL is written in SQLite's dialect with `?N` placeholders; for Postgres it is translated by
//! [`super::pg::translate`] (`?N` to `$N`, `INSERT OR IGNORE` to `ON CONFLICT DO NOTHING`,
//! `IS ?N` to `IS NOT DISTINCT FROM $N`).

use super::pg::Pg;
use super::values::{Cell, DbError, Row, Val};
use std::collections::HashMap;

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
