//! The SQL layer's values, shared by both backends: parameters ([`Val`]), the cells and rows
//! read back ([`Cell`], [`Row`], with typed getters that read the same on SQLite and
//! Postgres), and the layer's error ([`DbError`]).

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
    ($($v:expr),* $(,)?) => { &[$($crate::pool::server::store::values::Val::from($v)),*] };
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
