//! Where the pool keeps its state: in memory, in a SQLite file, or in a Postgres database,
//! parsed from the `--db` flag.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// The pool's database, as `--db` names it.
///
/// | `--db` | location |
/// |---|---|
/// | `sqlite::memory:` or `:memory:` | [`DbLocation::Memory`] |
/// | `PATH`, `sqlite:PATH` or `sqlite://PATH` | [`DbLocation::Sqlite`] |
/// | `postgres://user:pass@host:port/dbname` or `postgresql://...` | [`DbLocation::Postgres`] |
#[derive(Clone, PartialEq, Eq)]
pub enum DbLocation {
    /// An in-memory SQLite database, lost when the server stops.
    Memory,
    /// A SQLite database file (created if missing).
    Sqlite(PathBuf),
    /// A Postgres connection URL (the database must exist; the tables are created).
    Postgres(String),
}

/// Why a `--db` value names no database.
#[derive(Debug, thiserror::Error)]
pub enum LocationError {
    /// The value is empty.
    #[error("the database location is empty; give a SQLite path or a postgres:// URL")]
    Empty,
    /// A URL with a scheme other than sqlite, postgres or postgresql.
    #[error(
        "unsupported database URL scheme `{0}`: use a SQLite path, sqlite:PATH, sqlite::memory:, \
         or postgres://user:password@host:port/dbname"
    )]
    Scheme(String),
    /// A Postgres URL the client cannot parse.
    #[error("invalid Postgres URL {url}: {reason}")]
    Postgres {
        /// The URL with its password hidden.
        url: String,
        /// What the Postgres client said.
        reason: String,
    },
}

impl FromStr for DbLocation {
    type Err = LocationError;

    fn from_str(s: &str) -> Result<Self, LocationError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(LocationError::Empty);
        }
        if s == ":memory:" || s == "sqlite::memory:" || s == "sqlite://:memory:" {
            return Ok(DbLocation::Memory);
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            if let Err(e) = s.parse::<postgres::Config>() {
                return Err(LocationError::Postgres {
                    url: redact(s),
                    reason: e.to_string(),
                });
            }
            return Ok(DbLocation::Postgres(s.to_string()));
        }
        if let Some(path) = s.strip_prefix("sqlite://").or(s.strip_prefix("sqlite:")) {
            if path.is_empty() {
                return Err(LocationError::Empty);
            }
            return Ok(DbLocation::Sqlite(PathBuf::from(path)));
        }
        if let Some((scheme, _)) = s.split_once("://") {
            return Err(LocationError::Scheme(scheme.to_string()));
        }
        Ok(DbLocation::Sqlite(PathBuf::from(s)))
    }
}

/// `url` with the password between `user:` and `@` replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    match rest[..at].split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***{}", &rest[at..]),
        None => url.to_string(),
    }
}

impl fmt::Display for DbLocation {
    /// A description for logs and errors; a Postgres password is never shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbLocation::Memory => write!(f, "memory (lost on exit)"),
            DbLocation::Sqlite(p) => write!(f, "SQLite {}", p.display()),
            DbLocation::Postgres(url) => write!(f, "Postgres {}", redact(url)),
        }
    }
}

impl fmt::Debug for DbLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbLocation::Memory => write!(f, "Memory"),
            DbLocation::Sqlite(p) => f.debug_tuple("Sqlite").field(p).finish(),
            DbLocation::Postgres(url) => f.debug_tuple("Postgres").field(&redact(url)).finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<DbLocation, LocationError> {
        s.parse()
    }

    #[test]
    fn every_form_parses_to_its_location() {
        assert_eq!(parse("sqlite::memory:").unwrap(), DbLocation::Memory);
        assert_eq!(parse(":memory:").unwrap(), DbLocation::Memory);
        assert_eq!(
            parse("pool.sqlite").unwrap(),
            DbLocation::Sqlite("pool.sqlite".into())
        );
        assert_eq!(
            parse("sqlite:/var/lib/pool.db").unwrap(),
            DbLocation::Sqlite("/var/lib/pool.db".into())
        );
        assert_eq!(
            parse("sqlite:///var/lib/pool.db").unwrap(),
            DbLocation::Sqlite("/var/lib/pool.db".into())
        );
        for url in [
            "postgres://pool:secret@db.example:5433/ncpc",
            "postgresql://pool@localhost/ncpc",
        ] {
            assert_eq!(parse(url).unwrap(), DbLocation::Postgres(url.into()));
        }
    }

    #[test]
    fn other_values_are_refused_with_a_reason() {
        assert!(matches!(parse("  "), Err(LocationError::Empty)));
        assert!(matches!(parse("sqlite:"), Err(LocationError::Empty)));
        let e = parse("mysql://root@localhost/pool").unwrap_err();
        assert!(e.to_string().contains("`mysql`"), "{e}");
        let e = parse("postgres://pool:secret@host:notaport/db").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("invalid Postgres URL"), "{msg}");
        assert!(!msg.contains("secret"), "the password is hidden: {msg}");
    }

    #[test]
    fn passwords_never_show() {
        let loc = parse("postgres://pool:secret@db:5432/ncpc").unwrap();
        assert_eq!(loc.to_string(), "Postgres postgres://pool:***@db:5432/ncpc");
        assert!(!format!("{loc:?}").contains("secret"));
        assert_eq!(
            redact("postgres://pool@db/ncpc"),
            "postgres://pool@db/ncpc",
            "no password, nothing hidden"
        );
    }
}
