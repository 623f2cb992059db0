//! The pool's durable state in SQLite: miners, the function population, tasks with leases,
//! submissions, and the Alpha-token ledger. The database runs in WAL mode with
//! `synchronous=FULL`, and every accepted submission is one transaction committed before the
//! server answers, so an answered submission survives a crash.
//!
//! Methods that check a request against the state (is the task this miner's, is its lease
//! live) and then write run under one lock and one transaction, so two requests cannot both
//! pass a check that only one may pass.

use super::consensus::{MIN_EVALUATIONS, agrees, median};
use super::error::ApiError;
use super::genome::{CheckedGenome, SEEDS, check};
use super::rewards;
use crate::pool::protocol::TaskType;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::collections::HashMap;
use std::path::Path;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS miners (
    address TEXT PRIMARY KEY,
    registered_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS functions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    component_type TEXT NOT NULL,
    program TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    name TEXT,
    evolver TEXT,
    parent_id INTEGER,
    created_at_ms INTEGER NOT NULL,
    evaluation_count INTEGER NOT NULL DEFAULT 0,
    consensus_score REAL
);
CREATE TABLE IF NOT EXISTS tasks (
    batch_id TEXT PRIMARY KEY,
    miner TEXT NOT NULL,
    task_type TEXT NOT NULL,
    component_type TEXT NOT NULL,
    function_ids TEXT NOT NULL,
    issued_at_ms INTEGER NOT NULL,
    lease_until_ms INTEGER NOT NULL,
    state TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_by_miner ON tasks (miner, state);
CREATE INDEX IF NOT EXISTS tasks_by_state ON tasks (state, task_type);
CREATE TABLE IF NOT EXISTS evolutions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_id TEXT NOT NULL,
    miner TEXT NOT NULL,
    function_id INTEGER NOT NULL,
    duplicate INTEGER NOT NULL,
    claimed_fitness REAL,
    metadata TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS evaluations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_id TEXT NOT NULL,
    function_id INTEGER NOT NULL,
    evaluator TEXT NOT NULL,
    score REAL NOT NULL,
    criteria TEXT NOT NULL,
    agrees INTEGER,
    created_at_ms INTEGER NOT NULL,
    UNIQUE (function_id, evaluator)
);
CREATE TABLE IF NOT EXISTS ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    miner TEXT NOT NULL,
    amount REAL NOT NULL,
    reason TEXT NOT NULL,
    function_id INTEGER,
    created_at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_by_miner ON ledger (miner);
";

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
    /// Whether the population already had this function.
    pub duplicate: bool,
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
}

/// The pool database.
pub struct Store {
    conn: Connection,
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
    /// Open (creating if needed) the database at `path`, or an in-memory one for `None`, and
    /// create the schema.
    pub fn open(path: Option<&Path>) -> anyhow::Result<Store> {
        use anyhow::Context;
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
        conn.execute_batch(SCHEMA)
            .context("creating the pool database schema")?;
        Ok(Store { conn })
    }

    /// Add the built-in losses to `component_type`'s population (once; they are deduplicated
    /// by hash like any function).
    pub fn seed(&mut self, component_type: &str, now_ms: i64) -> anyhow::Result<()> {
        let tx = self.conn.transaction()?;
        for (name, program) in SEEDS {
            let g = check(program)
                .map_err(|e| anyhow::anyhow!("the built-in seed `{name}` does not compile: {e}"))?;
            tx.execute(
                "INSERT OR IGNORE INTO functions (component_type, program, hash, name, created_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![component_type, g.program, g.hash, name, now_ms],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Row counts of every table.
    pub fn counts(&self) -> anyhow::Result<Counts> {
        let n = |table: &str| -> anyhow::Result<i64> {
            Ok(self
                .conn
                .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?)
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

    /// Register `address`; returns whether it was already registered and when it registered.
    pub fn register(&mut self, address: &str, now_ms: i64) -> Result<(bool, i64), ApiError> {
        let inserted = self.conn.execute(
            "INSERT OR IGNORE INTO miners (address, registered_at_ms) VALUES (?1, ?2)",
            params![address, now_ms],
        )?;
        let at: i64 = self.conn.query_row(
            "SELECT registered_at_ms FROM miners WHERE address = ?1",
            [address],
            |r| r.get(0),
        )?;
        Ok((inserted == 0, at))
    }

    /// Whether `address` is registered.
    pub fn is_registered(&self, address: &str) -> Result<bool, ApiError> {
        Ok(self
            .conn
            .query_row("SELECT 1 FROM miners WHERE address = ?1", [address], |_| {
                Ok(())
            })
            .optional()?
            .is_some())
    }

    /// A miner's record, or `None` when it is not registered.
    pub fn miner(&self, address: &str) -> Result<Option<MinerRow>, ApiError> {
        let Some(registered_at_ms) = self
            .conn
            .query_row(
                "SELECT registered_at_ms FROM miners WHERE address = ?1",
                [address],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
        else {
            return Ok(None);
        };
        let count = |sql: &str| -> Result<i64, ApiError> {
            Ok(self.conn.query_row(sql, [address], |r| r.get(0))?)
        };
        Ok(Some(MinerRow {
            registered_at_ms,
            balance: self.balance(address)?,
            functions_evolved: count(
                "SELECT COUNT(*) FROM evolutions WHERE miner = ?1 AND duplicate = 0",
            )?,
            evaluations_submitted: count("SELECT COUNT(*) FROM evaluations WHERE evaluator = ?1")?,
        }))
    }

    /// The sum of a miner's ledger entries.
    pub fn balance(&self, address: &str) -> Result<f64, ApiError> {
        Ok(self.conn.query_row(
            "SELECT COALESCE(SUM(amount), 0.0) FROM ledger WHERE miner = ?1",
            [address],
            |r| r.get(0),
        )?)
    }

    /// The miner's active task whose lease has not ended.
    pub fn active_task(&self, miner: &str, now_ms: i64) -> Result<Option<TaskRow>, ApiError> {
        let batch: Option<String> = self
            .conn
            .query_row(
                "SELECT batch_id FROM tasks WHERE miner = ?1 AND state = 'active'
                 AND lease_until_ms > ?2 ORDER BY issued_at_ms DESC LIMIT 1",
                params![miner, now_ms],
                |r| r.get(0),
            )
            .optional()?;
        match batch {
            Some(b) => load_task(&self.conn, &b).map(Some),
            None => Ok(None),
        }
    }

    /// End the miner's active tasks (leases live or not); returns how many there were.
    pub fn reset_active(&mut self, miner: &str) -> Result<usize, ApiError> {
        Ok(self.conn.execute(
            "UPDATE tasks SET state = 'reset' WHERE miner = ?1 AND state = 'active'",
            [miner],
        )?)
    }

    /// Issue a task of `task_type` to `miner`: refuses when it holds a live one (400 with
    /// AMM's "already has active task"), and answers 404 when no function needs evaluating.
    /// Evolve tasks carry up to two parents: the best-scoring function and one other; evaluate
    /// tasks carry up to `batch_size` functions that still need evaluations.
    pub fn issue_task(
        &mut self,
        miner: &str,
        task_type: TaskType,
        component_type: &str,
        batch_size: usize,
        lease_ms: i64,
        now_ms: i64,
    ) -> Result<TaskRow, ApiError> {
        let tx = self.conn.transaction()?;
        let live: Option<String> = tx
            .query_row(
                "SELECT batch_id FROM tasks WHERE miner = ?1 AND state = 'active'
                 AND lease_until_ms > ?2 LIMIT 1",
                params![miner, now_ms],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(b) = live {
            return Err(ApiError::BadRequest(format!(
                "Miner already has active task {b}; submit it or call reset_active"
            )));
        }
        // Tasks whose leases ended are no longer active; their functions go back to the pool.
        tx.execute(
            "UPDATE tasks SET state = 'expired' WHERE miner = ?1 AND state = 'active'",
            [miner],
        )?;
        let functions = match task_type {
            TaskType::Evolve => pick_parents(&tx, component_type)?,
            TaskType::Evaluate => {
                pick_for_evaluation(&tx, miner, component_type, batch_size, now_ms)?
            }
        };
        if functions.is_empty() {
            return Err(ApiError::NotFound(match task_type {
                TaskType::Evaluate => {
                    "no function needs an evaluation from this miner right now; request an evolve task or try later".into()
                }
                TaskType::Evolve => format!("the `{component_type}` population is empty"),
            }));
        }
        let batch_id = new_batch_id();
        let ids: Vec<i64> = functions.iter().map(|f| f.id).collect();
        let ids_json = serde_json::to_string(&ids).map_err(|e| internal(e.to_string()))?;
        tx.execute(
            "INSERT INTO tasks (batch_id, miner, task_type, component_type, function_ids,
             issued_at_ms, lease_until_ms, state) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'active')",
            params![
                batch_id,
                miner,
                task_type_name(task_type),
                component_type,
                ids_json,
                now_ms,
                now_ms + lease_ms
            ],
        )?;
        tx.commit()?;
        Ok(TaskRow {
            batch_id,
            miner: miner.into(),
            task_type,
            component_type: component_type.into(),
            functions,
            lease_until_ms: now_ms + lease_ms,
        })
    }

    /// Store an evolved function (or note it as a duplicate) for the miner's live evolve task
    /// `batch_id`, credit the evolver for a new function, and close the task.
    #[allow(clippy::too_many_arguments)]
    pub fn submit_evolution(
        &mut self,
        miner: &str,
        batch_id: &str,
        genome: &CheckedGenome,
        parent_ids: &[i64],
        claimed_fitness: f64,
        metadata: &str,
        now_ms: i64,
    ) -> Result<EvolutionOutcome, ApiError> {
        let tx = self.conn.transaction()?;
        let task = live_task(&tx, miner, batch_id, TaskType::Evolve, now_ms)?;
        let parent = parent_ids
            .iter()
            .copied()
            .find(|p| task.functions.iter().any(|f| f.id == *p))
            .or_else(|| task.functions.first().map(|f| f.id));
        let existing: Option<i64> = tx
            .query_row(
                "SELECT id FROM functions WHERE hash = ?1",
                [&genome.hash],
                |r| r.get(0),
            )
            .optional()?;
        let (function_id, duplicate) = match existing {
            Some(id) => (id, true),
            None => {
                tx.execute(
                    "INSERT INTO functions (component_type, program, hash, evolver, parent_id,
                     created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        task.component_type,
                        genome.program,
                        genome.hash,
                        miner,
                        parent,
                        now_ms
                    ],
                )?;
                (tx.last_insert_rowid(), false)
            }
        };
        let fitness = claimed_fitness.is_finite().then_some(claimed_fitness);
        tx.execute(
            "INSERT INTO evolutions (batch_id, miner, function_id, duplicate, claimed_fitness,
             metadata, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                batch_id,
                miner,
                function_id,
                duplicate,
                fitness,
                metadata,
                now_ms
            ],
        )?;
        let credited = if duplicate {
            0.0
        } else {
            credit(
                &tx,
                miner,
                rewards::EVOLUTION_ACCEPTED,
                "evolution accepted",
                function_id,
                now_ms,
            )?;
            rewards::EVOLUTION_ACCEPTED
        };
        close_task(&tx, batch_id)?;
        tx.commit()?;
        Ok(EvolutionOutcome {
            function_id,
            duplicate,
            credited,
        })
    }

    /// Store the evaluations of the miner's live evaluate task `batch_id`, form consensus for
    /// functions that now have enough evaluations (crediting agreeing evaluators and the
    /// evolver), and close the task. Every evaluation must name a function of the batch, once.
    pub fn submit_evaluations(
        &mut self,
        miner: &str,
        batch_id: &str,
        evaluations: &[NewEvaluation],
        now_ms: i64,
    ) -> Result<Vec<Consensus>, ApiError> {
        let tx = self.conn.transaction()?;
        let task = live_task(&tx, miner, batch_id, TaskType::Evaluate, now_ms)?;
        for (i, e) in evaluations.iter().enumerate() {
            if !task.functions.iter().any(|f| f.id == e.function_id) {
                return Err(ApiError::Unprocessable(format!(
                    "evaluations[{i}]: function {} is not in batch {batch_id}",
                    e.function_id
                )));
            }
            if evaluations[..i]
                .iter()
                .any(|o| o.function_id == e.function_id)
            {
                return Err(ApiError::Unprocessable(format!(
                    "evaluations[{i}]: function {} is evaluated twice",
                    e.function_id
                )));
            }
        }
        let mut formed = Vec::new();
        for e in evaluations {
            let inserted = tx.execute(
                "INSERT OR IGNORE INTO evaluations (batch_id, function_id, evaluator, score,
                 criteria, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![batch_id, e.function_id, miner, e.score, e.criteria, now_ms],
            )?;
            if inserted == 0 {
                return Err(ApiError::Conflict(format!(
                    "this miner already evaluated function {}",
                    e.function_id
                )));
            }
            tx.execute(
                "UPDATE functions SET evaluation_count = evaluation_count + 1 WHERE id = ?1",
                [e.function_id],
            )?;
            if let Some(c) = try_consensus(&tx, e.function_id, now_ms)? {
                formed.push(c);
            }
        }
        close_task(&tx, batch_id)?;
        tx.commit()?;
        Ok(formed)
    }

    /// The best functions by consensus score, and the miners with the largest balances.
    #[allow(clippy::type_complexity)]
    pub fn leaderboard(
        &self,
        limit: usize,
    ) -> Result<(Vec<LeaderboardFunction>, Vec<(String, f64)>), ApiError> {
        let limit = limit as i64;
        let mut st = self.conn.prepare(
            "SELECT id, component_type, consensus_score, evolver, name FROM functions
             WHERE consensus_score IS NOT NULL ORDER BY consensus_score DESC, id LIMIT ?1",
        )?;
        let functions = st
            .query_map([limit], |r| {
                Ok(LeaderboardFunction {
                    id: r.get(0)?,
                    component_type: r.get(1)?,
                    score: r.get(2)?,
                    evolver: r.get(3)?,
                    name: r.get(4)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut st = self.conn.prepare(
            "SELECT miner, SUM(amount) AS total FROM ledger GROUP BY miner
             ORDER BY total DESC, miner LIMIT ?1",
        )?;
        let miners = st
            .query_map([limit], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok((functions, miners))
    }

    /// A function's consensus score and evaluation count, if it exists.
    pub fn function_score(&self, id: i64) -> Result<Option<(Option<f64>, i64)>, ApiError> {
        Ok(self
            .conn
            .query_row(
                "SELECT consensus_score, evaluation_count FROM functions WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }
}

/// A random UUID (version 4) as text.
fn new_batch_id() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn load_task(conn: &Connection, batch_id: &str) -> Result<TaskRow, ApiError> {
    let (miner, task_type, component_type, ids, lease_until_ms): (
        String,
        String,
        String,
        String,
        i64,
    ) = conn.query_row(
        "SELECT miner, task_type, component_type, function_ids, lease_until_ms FROM tasks
         WHERE batch_id = ?1",
        [batch_id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )?;
    let task_type = match task_type.as_str() {
        "evolve" => TaskType::Evolve,
        "evaluate" => TaskType::Evaluate,
        other => return Err(internal(format!("task {batch_id} has type `{other}`"))),
    };
    let ids: Vec<i64> = serde_json::from_str(&ids)
        .map_err(|e| internal(format!("task {batch_id}'s function ids: {e}")))?;
    let mut functions = Vec::with_capacity(ids.len());
    for id in ids {
        let program: String =
            conn.query_row("SELECT program FROM functions WHERE id = ?1", [id], |r| {
                r.get(0)
            })?;
        functions.push(FunctionRow { id, program });
    }
    Ok(TaskRow {
        batch_id: batch_id.into(),
        miner,
        task_type,
        component_type,
        functions,
        lease_until_ms,
    })
}

/// The miner's task `batch_id` if it is of `task_type`, still active and inside its lease;
/// otherwise the refusal to answer with.
fn live_task(
    tx: &Transaction<'_>,
    miner: &str,
    batch_id: &str,
    task_type: TaskType,
    now_ms: i64,
) -> Result<TaskRow, ApiError> {
    let state: Option<(String, String)> = tx
        .query_row(
            "SELECT miner, state FROM tasks WHERE batch_id = ?1",
            [batch_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((_, state)) = state.filter(|(owner, _)| owner == miner) else {
        return Err(ApiError::NotFound(format!(
            "this miner has no task {batch_id}"
        )));
    };
    let task = load_task(tx, batch_id)?;
    if task.task_type != task_type {
        return Err(ApiError::BadRequest(format!(
            "task {batch_id} is an {} task",
            task_type_name(task.task_type)
        )));
    }
    match state.as_str() {
        "active" if task.lease_until_ms > now_ms => Ok(task),
        "active" | "expired" => Err(ApiError::Conflict(format!(
            "the lease of task {batch_id} ended; request a new task"
        ))),
        "done" => Err(ApiError::Conflict(format!(
            "task {batch_id} was already submitted"
        ))),
        _ => Err(ApiError::Conflict(format!(
            "task {batch_id} was reset; request a new task"
        ))),
    }
}

fn close_task(tx: &Transaction<'_>, batch_id: &str) -> Result<(), ApiError> {
    tx.execute(
        "UPDATE tasks SET state = 'done' WHERE batch_id = ?1",
        [batch_id],
    )?;
    Ok(())
}

fn credit(
    tx: &Transaction<'_>,
    miner: &str,
    amount: f64,
    reason: &str,
    function_id: i64,
    now_ms: i64,
) -> Result<(), ApiError> {
    tx.execute(
        "INSERT INTO ledger (miner, amount, reason, function_id, created_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![miner, amount, reason, function_id, now_ms],
    )?;
    Ok(())
}

/// The best-scoring function first (seeds and unscored functions after scored ones), then one
/// other chosen at random among the next fifteen.
fn pick_parents(tx: &Transaction<'_>, component_type: &str) -> Result<Vec<FunctionRow>, ApiError> {
    let mut st = tx.prepare(
        "SELECT id, program FROM functions WHERE component_type = ?1
         ORDER BY consensus_score IS NULL, consensus_score DESC, id LIMIT 16",
    )?;
    let mut rows = st
        .query_map([component_type], |r| {
            Ok(FunctionRow {
                id: r.get(0)?,
                program: r.get(1)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    if rows.len() > 2 {
        let other = rand::random_range(1..rows.len());
        rows.swap(1, other);
    }
    rows.truncate(2);
    Ok(rows)
}

/// Functions without consensus that this miner has not evaluated and that are not already
/// promised to enough evaluators (stored evaluations plus live leases). A miner gets its own
/// evolved functions only when nothing else needs evaluating.
fn pick_for_evaluation(
    tx: &Transaction<'_>,
    miner: &str,
    component_type: &str,
    batch_size: usize,
    now_ms: i64,
) -> Result<Vec<FunctionRow>, ApiError> {
    let mut held: HashMap<i64, i64> = HashMap::new();
    {
        let mut st = tx.prepare(
            "SELECT function_ids FROM tasks WHERE state = 'active' AND task_type = 'evaluate'
             AND lease_until_ms > ?1",
        )?;
        let rows = st.query_map([now_ms], |r| r.get::<_, String>(0))?;
        for ids in rows {
            let ids: Vec<i64> = serde_json::from_str(&ids?)
                .map_err(|e| internal(format!("a task's function ids: {e}")))?;
            for id in ids {
                *held.entry(id).or_default() += 1;
            }
        }
    }
    let mut st = tx.prepare(
        "SELECT f.id, f.program, f.evaluation_count, f.evolver IS ?2 FROM functions f
         WHERE f.component_type = ?1 AND f.consensus_score IS NULL
         AND NOT EXISTS (SELECT 1 FROM evaluations e WHERE e.function_id = f.id
                         AND e.evaluator = ?2)
         ORDER BY f.id",
    )?;
    let rows = st.query_map(params![component_type, miner], |r| {
        Ok((
            FunctionRow {
                id: r.get(0)?,
                program: r.get(1)?,
            },
            r.get::<_, i64>(2)?,
            r.get::<_, bool>(3)?,
        ))
    })?;
    let (mut others, mut own) = (Vec::new(), Vec::new());
    for row in rows {
        let (f, count, is_own) = row?;
        if count + held.get(&f.id).copied().unwrap_or(0) >= MIN_EVALUATIONS as i64 {
            continue;
        }
        if is_own {
            own.push(f);
        } else {
            others.push(f);
        }
    }
    let mut picked = if others.is_empty() { own } else { others };
    picked.truncate(batch_size.max(1));
    Ok(picked)
}

/// Form the consensus of function `id` if it has enough evaluations and none yet: set its
/// score, mark each evaluation as agreeing or not, and credit agreeing evaluators (not the
/// evolver for its own function) and the evolver.
fn try_consensus(
    tx: &Transaction<'_>,
    id: i64,
    now_ms: i64,
) -> Result<Option<Consensus>, ApiError> {
    let (count, existing, evolver, component_type): (i64, Option<f64>, Option<String>, String) = tx
        .query_row(
            "SELECT evaluation_count, consensus_score, evolver, component_type FROM functions
             WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
    if existing.is_some() || count < MIN_EVALUATIONS as i64 {
        return Ok(None);
    }
    let scores: Vec<(i64, String, f64)> = {
        let mut st =
            tx.prepare("SELECT id, evaluator, score FROM evaluations WHERE function_id = ?1")?;
        st.query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?
    };
    let values: Vec<f64> = scores.iter().map(|s| s.2).collect();
    let Some(m) = median(&values) else {
        return Err(internal(format!("function {id} has a non-finite score")));
    };
    let others: Vec<f64> = {
        let mut st = tx.prepare(
            "SELECT consensus_score FROM functions WHERE component_type = ?1
             AND consensus_score IS NOT NULL AND id != ?2",
        )?;
        st.query_map(params![component_type, id], |r| r.get(0))?
            .collect::<Result<_, _>>()?
    };
    tx.execute(
        "UPDATE functions SET consensus_score = ?1 WHERE id = ?2",
        params![m, id],
    )?;
    for (row, evaluator, score) in &scores {
        let ok = agrees(*score, m);
        tx.execute(
            "UPDATE evaluations SET agrees = ?1 WHERE id = ?2",
            params![ok, row],
        )?;
        if ok && evolver.as_deref() != Some(evaluator.as_str()) {
            credit(
                tx,
                evaluator,
                rewards::EVALUATION_AGREES,
                "evaluation agrees with consensus",
                id,
                now_ms,
            )?;
        }
    }
    if let Some(evolver) = evolver {
        let bonus = rewards::evolver_bonus(m, &others);
        if bonus > 0.0 {
            credit(
                tx,
                &evolver,
                bonus,
                "evolved function scores well",
                id,
                now_ms,
            )?;
        }
    }
    Ok(Some(Consensus {
        function_id: id,
        score: m,
    }))
}
