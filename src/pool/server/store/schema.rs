//! The pool's schema, written once for both databases: `{ID}`, `{INT}` and `{REAL}` stand for
//! each dialect's auto-increment key, 64-bit integer and double (booleans are integers 0/1 on
//! both), and [`schema`] substitutes them. Columns added after a database was first created
//! are added on open by [`MIGRATIONS`] (each runs only where its column is missing).

/// The SQL dialect of a database.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite.
    Sqlite,
    /// Postgres.
    Postgres,
}

const TEMPLATE: &str = "
CREATE TABLE IF NOT EXISTS miners (
    address TEXT PRIMARY KEY,
    registered_at_ms {INT} NOT NULL
);
CREATE TABLE IF NOT EXISTS functions (
    id {ID},
    component_type TEXT NOT NULL,
    program TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    name TEXT,
    evolver TEXT,
    parent_id {INT},
    created_at_ms {INT} NOT NULL,
    evaluation_count {INT} NOT NULL DEFAULT 0,
    consensus_score {REAL},
    fingerprint TEXT,
    consensus_at_ms {INT}
);
CREATE INDEX IF NOT EXISTS functions_by_score ON functions (component_type, consensus_score);
CREATE TABLE IF NOT EXISTS tasks (
    batch_id TEXT PRIMARY KEY,
    miner TEXT NOT NULL,
    task_type TEXT NOT NULL,
    component_type TEXT NOT NULL,
    function_ids TEXT NOT NULL,
    issued_at_ms {INT} NOT NULL,
    lease_until_ms {INT} NOT NULL,
    state TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_by_miner ON tasks (miner, state);
CREATE INDEX IF NOT EXISTS tasks_by_state ON tasks (state, task_type);
CREATE TABLE IF NOT EXISTS evolutions (
    id {ID},
    batch_id TEXT NOT NULL,
    miner TEXT NOT NULL,
    function_id {INT} NOT NULL,
    duplicate {INT} NOT NULL,
    claimed_fitness {REAL},
    metadata TEXT NOT NULL,
    created_at_ms {INT} NOT NULL
);
CREATE INDEX IF NOT EXISTS evolutions_by_miner ON evolutions (miner, duplicate);
CREATE TABLE IF NOT EXISTS evaluations (
    id {ID},
    batch_id TEXT NOT NULL,
    function_id {INT} NOT NULL,
    evaluator TEXT NOT NULL,
    score {REAL} NOT NULL,
    criteria TEXT NOT NULL,
    agrees {INT},
    created_at_ms {INT} NOT NULL,
    audit {INT} NOT NULL DEFAULT 0,
    UNIQUE (function_id, evaluator)
);
CREATE TABLE IF NOT EXISTS ledger (
    id {ID},
    miner TEXT NOT NULL,
    amount {REAL} NOT NULL,
    reason TEXT NOT NULL,
    function_id {INT},
    created_at_ms {INT} NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_by_miner ON ledger (miner);
CREATE TABLE IF NOT EXISTS auth_used (
    address TEXT NOT NULL,
    token TEXT NOT NULL,
    endpoints TEXT NOT NULL,
    expires_ms {INT} NOT NULL,
    PRIMARY KEY (address, token)
);
CREATE INDEX IF NOT EXISTS auth_used_by_expiry ON auth_used (expires_ms);
";

/// Columns added since the first schema: (table, column, type template). A database made
/// before the column existed gets it on open.
pub const MIGRATIONS: &[(&str, &str, &str)] = &[
    ("functions", "fingerprint", "TEXT"),
    ("evaluations", "audit", "{INT} NOT NULL DEFAULT 0"),
    ("functions", "consensus_at_ms", "{INT}"),
];

/// Indexes on migrated columns, created after [`MIGRATIONS`] ran.
pub const AFTER_MIGRATIONS: &str = "
CREATE INDEX IF NOT EXISTS functions_by_fingerprint ON functions (fingerprint);
CREATE INDEX IF NOT EXISTS evaluations_by_evaluator ON evaluations (evaluator, audit, agrees);
";

fn substitute(text: &str, dialect: Dialect) -> String {
    let (id, int, real) = match dialect {
        Dialect::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT", "INTEGER", "REAL"),
        Dialect::Postgres => ("BIGSERIAL PRIMARY KEY", "BIGINT", "DOUBLE PRECISION"),
    };
    text.replace("{ID}", id)
        .replace("{INT}", int)
        .replace("{REAL}", real)
}

/// The schema in `dialect`.
pub fn schema(dialect: Dialect) -> String {
    substitute(TEMPLATE, dialect)
}

/// The statement that adds a migrated column in `dialect`.
pub fn add_column(table: &str, column: &str, ty: &str, dialect: Dialect) -> String {
    format!(
        "ALTER TABLE {table} ADD COLUMN {column} {}",
        substitute(ty, dialect)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_dialects_substitute_every_placeholder() {
        for d in [Dialect::Sqlite, Dialect::Postgres] {
            let s = schema(d);
            assert!(!s.contains('{'), "{d:?}: {s}");
        }
        assert!(schema(Dialect::Postgres).contains("BIGSERIAL PRIMARY KEY"));
        assert!(schema(Dialect::Sqlite).contains("AUTOINCREMENT"));
    }

    #[test]
    fn the_schema_runs_on_sqlite() {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch(&schema(Dialect::Sqlite)).unwrap();
        c.execute_batch(&schema(Dialect::Sqlite)).unwrap();
        c.execute_batch(AFTER_MIGRATIONS).unwrap();
    }
}
