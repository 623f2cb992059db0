//! The pool's durable state: miners, the function population, tasks with leases,
//! submissions, and the Alpha-token ledger, in SQLite or Postgres ([`DbLocation`]). Every
//! accepted submission is one transaction committed before the server answers, so an answered
//! submission survives a crash: SQLite runs in WAL mode with `synchronous=FULL`, Postgres
//! with its default `synchronous_commit=on`.
//!
//! Methods that check a request against the state (is the task this miner's, is its lease
//! live) and then write run under one lock and one transaction, so two requests cannot both
//! pass a check that only one may pass. The SQL is written once ([`db`]) and runs on both
//! backends.

mod auth;
mod dashboard;
pub mod db;
pub use dashboard::{FunctionDetail, MinerSummary, PoolStats};
mod location;
mod pg;
mod schema;
mod submissions;
mod tasks;
pub mod values;

pub use auth::AuthToken;
pub use location::{DbLocation, LocationError};
pub(crate) use pg::outside_runtime;
pub use submissions::Duplicate;

use super::component_genome::{check_component, seeds};
use super::error::ApiError;
use super::genome::MAX_INSTRUCTIONS;
use crate::component::ComponentKind;
use crate::formats::Mode;
use crate::pool::protocol::TaskType;
use db::{Conn, Exec};
use std::path::Path;
use values::Val;
use values::vals;

/// How many rows each table holds (for tests and operators).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Registered miners.
    pub miners: i64,
    /// Functions in the population (seeds included).
    pub functions: i64,
    /// Tasks ever issued.
    pub tasks: i64,
    /// Accepted evolution submissions (duplicates included).
    pub evolutions: i64,
    /// Stored evaluations.
    pub evaluations: i64,
    /// Ledger entries.
    pub ledger_entries: i64,
}

/// A function handed out in a task.
#[derive(Clone, Debug, PartialEq)]
pub struct FunctionRow {
    /// Its id.
    pub id: i64,
    /// The AMM program, as JSON text.
    pub program: String,
}

/// A task as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskRow {
    /// The batch id handed to the miner.
    pub batch_id: String,
    /// The miner holding it.
    pub miner: String,
    /// Evolve or evaluate.
    pub task_type: TaskType,
    /// The component type (`loss`).
    pub component_type: String,
    /// The functions handed out.
    pub functions: Vec<FunctionRow>,
    /// When its lease ends (unix milliseconds).
    pub lease_until_ms: i64,
}

/// What happened to an evolution submission.
#[derive(Clone, Debug, PartialEq)]
pub struct EvolutionOutcome {
    /// The function it is (an existing one when it was a duplicate).
    pub function_id: i64,
    /// How the population already had this function, when it did.
    pub duplicate: Option<submissions::Duplicate>,
    /// Alpha credited now.
    pub credited: f64,
}

/// One evaluation in a submission, already checked for shape.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvaluation {
    /// The function.
    pub function_id: i64,
    /// Its score.
    pub score: f64,
    /// The criteria, as JSON text.
    pub criteria: String,
}

/// A consensus that formed during a submission.
#[derive(Clone, Debug, PartialEq)]
pub struct Consensus {
    /// The function.
    pub function_id: i64,
    /// The median score.
    pub score: f64,
}

/// A miner as the pool knows it.
#[derive(Clone, Debug, PartialEq)]
pub struct MinerRow {
    /// When it registered (unix milliseconds).
    pub registered_at_ms: i64,
    /// Its Alpha balance.
    pub balance: f64,
    /// New functions it evolved.
    pub functions_evolved: i64,
    /// Evaluations it submitted.
    pub evaluations_submitted: i64,
}

/// A function as the public listing shows it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PublicFunction {
    /// Its id.
    pub id: i64,
    /// Its component type.
    pub component_type: String,
    /// The AMM program, as JSON text.
    pub program: String,
    /// Who evolved it (`None` for seeds).
    pub evolver: Option<String>,
    /// The seed's name, for seeds.
    pub name: Option<String>,
    /// The function it was evolved from.
    pub parent_id: Option<i64>,
    /// When it was accepted (unix milliseconds).
    pub created_at_ms: i64,
    /// Evaluations stored.
    pub evaluations: i64,
    /// Its consensus score, once formed.
    pub consensus: Option<f64>,
}

/// One entry of the Alpha ledger.
#[derive(Clone, Debug, PartialEq)]
pub struct LedgerEntry {
    /// Who was paid.
    pub miner: String,
    /// How much.
    pub amount: f64,
    /// Why.
    pub reason: String,
    /// For which function.
    pub function_id: Option<i64>,
}

/// A function's id, evolver and consensus.
#[derive(Clone, Debug, PartialEq)]
pub struct FunctionSummary {
    /// Its id.
    pub id: i64,
    /// Who evolved it (`None` for seeds).
    pub evolver: Option<String>,
    /// Its consensus score, once formed.
    pub consensus: Option<f64>,
}

/// One row of the function leaderboard.
#[derive(Clone, Debug, PartialEq)]
pub struct LeaderboardFunction {
    /// The function.
    pub id: i64,
    /// Its component type.
    pub component_type: String,
    /// Its consensus score.
    pub score: f64,
    /// Who evolved it (`None` for seeds).
    pub evolver: Option<String>,
    /// The seed's name, for seeds.
    pub name: Option<String>,
    /// Evaluations it has.
    pub evaluations: i64,
    /// When it was stored (ms since the epoch).
    pub created_at_ms: i64,
}

/// The rules the store applies when it forms consensus, pays and issues tasks (from the
/// server's configuration).
#[derive(Clone, Debug)]
pub struct Rules {
    /// Distinct evaluators whose median forms a consensus.
    pub min_evaluators: usize,
    /// How evaluations must agree with the median.
    pub consensus: crate::pool::server::ConsensusRule,
    /// What each confirmed event pays.
    pub rewards: crate::pool::server::rewards::RewardSchedule,
    /// The share of evaluate tasks that are audits while first evaluations are wanted.
    pub audit_share: f64,
    /// Leases a key may let expire within an hour before it is slowed down.
    pub expired_lease_strikes: u32,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            min_evaluators: 3,
            consensus: crate::pool::server::ConsensusRule::Tolerance,
            rewards: Default::default(),
            audit_share: 0.1,
            expired_lease_strikes: 3,
        }
    }
}

/// The evaluator name the pool's own scorer records its evaluations under (solo pools;
/// not an SS58 address, so no miner can be it).
pub const LOCAL_EVALUATOR: &str = "pool:local-scorer";

/// The pool database.
pub struct Store {
    conn: Conn,
    rules: Rules,
    claims_since_sweep: u32,
}

fn task_type_name(t: TaskType) -> &'static str {
    match t {
        TaskType::Evolve => "evolve",
        TaskType::Evaluate => "evaluate",
    }
}

fn internal(msg: String) -> ApiError {
    ApiError::Internal(anyhow::anyhow!(msg))
}

impl Store {
    /// Open (creating if needed) the database at `location` and create the schema. A
    /// Postgres database must exist; its tables are created.
    pub fn open(location: &DbLocation) -> anyhow::Result<Store> {
        let conn = match location {
            DbLocation::Memory => Conn::Sqlite(open_sqlite(None)?),
            DbLocation::Sqlite(p) => Conn::Sqlite(open_sqlite(Some(p))?),
            DbLocation::Postgres(url) => Conn::Postgres(Box::new(pg::Pg::open(url)?)),
        };
        Ok(Store {
            conn,
            rules: Rules::default(),
            claims_since_sweep: 0,
        })
    }

    /// Apply `rules` from now on.
    pub fn set_rules(&mut self, rules: Rules) {
        self.rules = rules;
    }

    /// Add the built-in functions of `kind` to its population (once; they are deduplicated
    /// by hash like any function, and only missing ones are inserted, so restarts use no ids).
    pub fn seed(&mut self, kind: ComponentKind, now_ms: i64) -> anyhow::Result<()> {
        let component_type = kind.name();
        let mut tx = self.conn.transaction()?;
        tx.durable()?;
        for (name, program) in seeds(kind) {
            let g = check_component(program, kind, Mode::Compat, MAX_INSTRUCTIONS)
                .map_err(|e| anyhow::anyhow!("the built-in seed `{name}` does not compile: {e}"))?;
            if tx
                .query_opt("SELECT id FROM functions WHERE hash = ?1", vals![&g.hash])?
                .is_some()
            {
                continue;
            }
            let fp = g.fingerprint.as_ref().map(|f| f.key.as_str());
            tx.execute(
                "INSERT OR IGNORE INTO functions (component_type, program, hash, name, created_at_ms,
                 fingerprint) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                vals![component_type, &g.program, &g.hash, *name, now_ms, Val::Text(fp)],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Row counts of every table.
    pub fn counts(&mut self) -> anyhow::Result<Counts> {
        let mut n = |table: &str| -> anyhow::Result<i64> {
            Ok(self
                .conn
                .query_one(&format!("SELECT COUNT(*) FROM {table}"), &[])?
                .int(0)?)
        };
        Ok(Counts {
            miners: n("miners")?,
            functions: n("functions")?,
            tasks: n("tasks")?,
            evolutions: n("evolutions")?,
            evaluations: n("evaluations")?,
            ledger_entries: n("ledger")?,
        })
    }

    /// A page of the population: functions with ids above `after`, by id, at most `limit`.
    pub fn functions_page(
        &mut self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<PublicFunction>, ApiError> {
        Ok(self
            .conn
            .query(
                "SELECT id, component_type, program, evolver, name, parent_id, created_at_ms,
                 evaluation_count, consensus_score FROM functions WHERE id > ?1 ORDER BY id
                 LIMIT ?2",
                vals![after, limit],
            )?
            .iter()
            .map(|r| {
                Ok(PublicFunction {
                    id: r.int(0)?,
                    component_type: r.text(1)?,
                    program: r.text(2)?,
                    evolver: r.opt_text(3)?,
                    name: r.opt_text(4)?,
                    parent_id: r.opt_int(5)?,
                    created_at_ms: r.int(6)?,
                    evaluations: r.int(7)?,
                    consensus: r.opt_real(8)?,
                })
            })
            .collect::<Result<Vec<_>, values::DbError>>()?)
    }

    /// The sum of every ledger entry.
    pub fn ledger_total(&mut self) -> Result<f64, ApiError> {
        Ok(self
            .conn
            .query_one("SELECT COALESCE(SUM(amount), 0.0) FROM ledger", &[])?
            .real(0)?)
    }

    /// Every ledger entry, oldest first (for audits of the ledger and tests).
    pub fn ledger_entries(&mut self) -> Result<Vec<LedgerEntry>, ApiError> {
        Ok(self
            .conn
            .query(
                "SELECT miner, amount, reason, function_id FROM ledger ORDER BY id",
                &[],
            )?
            .iter()
            .map(|r| {
                Ok(LedgerEntry {
                    miner: r.text(0)?,
                    amount: r.real(1)?,
                    reason: r.text(2)?,
                    function_id: r.opt_int(3)?,
                })
            })
            .collect::<Result<Vec<_>, values::DbError>>()?)
    }

    /// Every function's id, evolver and consensus score, by id.
    pub fn function_summaries(&mut self) -> Result<Vec<FunctionSummary>, ApiError> {
        Ok(self
            .conn
            .query(
                "SELECT id, evolver, consensus_score FROM functions ORDER BY id",
                &[],
            )?
            .iter()
            .map(|r| {
                Ok(FunctionSummary {
                    id: r.int(0)?,
                    evolver: r.opt_text(1)?,
                    consensus: r.opt_real(2)?,
                })
            })
            .collect::<Result<Vec<_>, values::DbError>>()?)
    }

    /// The evaluators of function `id` whose evaluation agreed with its consensus.
    pub fn agreeing_evaluators(&mut self, id: i64) -> Result<Vec<String>, ApiError> {
        Ok(self
            .conn
            .query(
                "SELECT evaluator FROM evaluations WHERE function_id = ?1 AND agrees = 1",
                vals![id],
            )?
            .iter()
            .map(|r| r.text(0))
            .collect::<Result<Vec<_>, values::DbError>>()?)
    }

    /// Register `address`; returns whether it was already registered and when it registered.
    pub fn register(&mut self, address: &str, now_ms: i64) -> Result<(bool, i64), ApiError> {
        let mut tx = self.conn.transaction()?;
        tx.durable()?;
        let inserted = tx.execute(
            "INSERT OR IGNORE INTO miners (address, registered_at_ms) VALUES (?1, ?2)",
            vals![address, now_ms],
        )?;
        let at = tx
            .query_one(
                "SELECT registered_at_ms FROM miners WHERE address = ?1",
                vals![address],
            )?
            .int(0)?;
        tx.commit()?;
        Ok((inserted == 0, at))
    }

    /// Whether `address` is registered.
    pub fn is_registered(&mut self, address: &str) -> Result<bool, ApiError> {
        Ok(self
            .conn
            .query_opt("SELECT 1 FROM miners WHERE address = ?1", vals![address])?
            .is_some())
    }

    /// A miner's record, or `None` when it is not registered.
    pub fn miner(&mut self, address: &str) -> Result<Option<MinerRow>, ApiError> {
        let Some(row) = self.conn.query_opt(
            "SELECT registered_at_ms FROM miners WHERE address = ?1",
            vals![address],
        )?
        else {
            return Ok(None);
        };
        let registered_at_ms = row.int(0)?;
        let mut count = |sql: &str| -> Result<i64, ApiError> {
            Ok(self.conn.query_one(sql, vals![address])?.int(0)?)
        };
        let functions_evolved =
            count("SELECT COUNT(*) FROM evolutions WHERE miner = ?1 AND duplicate = 0")?;
        let evaluations_submitted = count("SELECT COUNT(*) FROM evaluations WHERE evaluator = ?1")?;
        Ok(Some(MinerRow {
            registered_at_ms,
            balance: self.balance(address)?,
            functions_evolved,
            evaluations_submitted,
        }))
    }

    /// The sum of a miner's ledger entries.
    pub fn balance(&mut self, address: &str) -> Result<f64, ApiError> {
        Ok(self
            .conn
            .query_one(
                "SELECT COALESCE(SUM(amount), 0.0) FROM ledger WHERE miner = ?1",
                vals![address],
            )?
            .real(0)?)
    }

    /// The best functions by consensus score, and the miners with the largest balances.
    #[allow(clippy::type_complexity)]
    pub fn leaderboard(
        &mut self,
        limit: usize,
    ) -> Result<(Vec<LeaderboardFunction>, Vec<(String, f64)>), ApiError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let functions = self
            .conn
            .query(
                "SELECT id, component_type, consensus_score, evolver, name, evaluation_count,
                 created_at_ms FROM functions
                 WHERE consensus_score IS NOT NULL ORDER BY consensus_score DESC, id LIMIT ?1",
                vals![limit],
            )?
            .iter()
            .map(|r| {
                Ok(LeaderboardFunction {
                    id: r.int(0)?,
                    component_type: r.text(1)?,
                    score: r.real(2)?,
                    evolver: r.opt_text(3)?,
                    name: r.opt_text(4)?,
                    evaluations: r.int(5)?,
                    created_at_ms: r.int(6)?,
                })
            })
            .collect::<Result<Vec<_>, values::DbError>>()?;
        let miners = self
            .conn
            .query(
                "SELECT miner, SUM(amount) AS total FROM ledger GROUP BY miner
                 ORDER BY total DESC, miner LIMIT ?1",
                vals![limit],
            )?
            .iter()
            .map(|r| Ok((r.text(0)?, r.real(1)?)))
            .collect::<Result<Vec<_>, values::DbError>>()?;
        Ok((functions, miners))
    }
}

/// Open (creating if needed) the SQLite database at `path`, or an in-memory one for `None`,
/// and create the schema.
fn open_sqlite(path: Option<&Path>) -> anyhow::Result<rusqlite::Connection> {
    use anyhow::Context;
    use rusqlite::Connection;
    let conn = match path {
        Some(p) => Connection::open(p)
            .with_context(|| format!("opening the pool database {}", p.display()))?,
        None => Connection::open_in_memory().context("opening an in-memory database")?,
    };
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // WAL lets readers run beside the writer; FULL syncs the WAL on every commit, so a
    // committed submission survives power loss, not only a process crash.
    let _mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    conn.execute_batch("PRAGMA synchronous=FULL;")?;
    conn.execute_batch(&schema::schema(schema::Dialect::Sqlite))
        .context("creating the pool database schema")?;
    for (table, column, ty) in schema::MIGRATIONS {
        let present: i64 = conn.query_row(
            &format!("SELECT COUNT(*) FROM pragma_table_info('{table}') WHERE name = '{column}'"),
            [],
            |r| r.get(0),
        )?;
        if present == 0 {
            conn.execute_batch(&schema::add_column(
                table,
                column,
                ty,
                schema::Dialect::Sqlite,
            ))
            .with_context(|| format!("adding {table}.{column} to the pool database"))?;
        }
    }
    conn.execute_batch(schema::AFTER_MIGRATIONS)?;
    Ok(conn)
}
