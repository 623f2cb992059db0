//! Issuing tasks: the active-task rule, parents for evolve tasks, functions that still need
//! evaluators for evaluate tasks, and the checks a submission's task must pass.

use super::db::{Exec, Tx};
use super::values::{DbError, Row, vals};
use super::{FunctionRow, Rules, Store, TaskRow, internal, task_type_name};
use crate::pool::protocol::TaskType;
use crate::pool::server::error::ApiError;
use crate::pool::server::rewards::MAX_EVALUATIONS_AUDITED;
use std::collections::HashMap;

impl Store {
    /// The miner's active task whose lease has not ended.
    pub fn active_task(&mut self, miner: &str, now_ms: i64) -> Result<Option<TaskRow>, ApiError> {
        let batch = self.conn.query_opt(
            "SELECT batch_id FROM tasks WHERE miner = ?1 AND state = 'active'
             AND lease_until_ms > ?2 ORDER BY issued_at_ms DESC LIMIT 1",
            vals![miner, now_ms],
        )?;
        match batch {
            Some(b) => load_task(&mut self.conn, &b.text(0)?).map(Some),
            None => Ok(None),
        }
    }

    /// Whether `batch_id` is the miner's live task of `task_type` (the refusal otherwise), read
    /// without writing: submissions check it before any costly work.
    pub fn check_live_task(
        &mut self,
        miner: &str,
        batch_id: &str,
        task_type: TaskType,
        now_ms: i64,
    ) -> Result<String, ApiError> {
        let mut tx = self.conn.transaction()?;
        Ok(live_task(&mut tx, miner, batch_id, task_type, now_ms)?.component_type)
    }

    /// End the miner's active tasks (leases live or not); returns how many there were.
    pub fn reset_active(&mut self, miner: &str) -> Result<usize, ApiError> {
        self.unsynced(|st| {
            let n = st.conn.execute(
                "UPDATE tasks SET state = 'reset' WHERE miner = ?1 AND state = 'active'",
                vals![miner],
            )?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }

    /// Issue a task of `task_type` to `miner`: refuses when it holds a live one (400 with
    /// AMM's "already has active task"), and answers 404 when no function needs evaluating
    /// or auditing.
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
        // A lease lost to a power cut costs the miner one request: not synced on its own.
        self.unsynced(|st| {
            st.issue_task_in_tx(
                miner,
                task_type,
                component_type,
                batch_size,
                lease_ms,
                now_ms,
            )
        })
    }

    fn issue_task_in_tx(
        &mut self,
        miner: &str,
        task_type: TaskType,
        component_type: &str,
        batch_size: usize,
        lease_ms: i64,
        now_ms: i64,
    ) -> Result<TaskRow, ApiError> {
        let mut tx = self.conn.transaction()?;
        let live = tx.query_opt(
            "SELECT batch_id FROM tasks WHERE miner = ?1 AND state = 'active'
             AND lease_until_ms > ?2 LIMIT 1",
            vals![miner, now_ms],
        )?;
        if let Some(row) = live {
            let b = row.text(0)?;
            return Err(ApiError::BadRequest(format!(
                "Miner already has active task {b}; submit it or call reset_active"
            )));
        }
        // Tasks whose leases ended are no longer active; their functions go back to the pool.
        tx.execute(
            "UPDATE tasks SET state = 'expired' WHERE miner = ?1 AND state = 'active'",
            vals![miner],
        )?;
        slow_down_abandoners(&mut tx, miner, self.rules.expired_lease_strikes, now_ms)?;
        let rules = self.rules.clone();
        let functions = match task_type {
            TaskType::Evolve => pick_parents(&mut tx, component_type)?,
            TaskType::Evaluate => {
                pick_for_evaluation(&mut tx, &rules, miner, component_type, batch_size, now_ms)?
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
            vals![
                &batch_id,
                miner,
                task_type_name(task_type),
                component_type,
                &ids_json,
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

fn load_task(conn: &mut impl Exec, batch_id: &str) -> Result<TaskRow, ApiError> {
    let row = conn.query_one(
        "SELECT miner, task_type, component_type, function_ids, lease_until_ms FROM tasks
         WHERE batch_id = ?1",
        vals![batch_id],
    )?;
    let (miner, task_type, component_type, ids, lease_until_ms) = (
        row.text(0)?,
        row.text(1)?,
        row.text(2)?,
        row.text(3)?,
        row.int(4)?,
    );
    let task_type = match task_type.as_str() {
        "evolve" => TaskType::Evolve,
        "evaluate" => TaskType::Evaluate,
        other => return Err(internal(format!("task {batch_id} has type `{other}`"))),
    };
    let ids: Vec<i64> = serde_json::from_str(&ids)
        .map_err(|e| internal(format!("task {batch_id}'s function ids: {e}")))?;
    let mut functions = Vec::with_capacity(ids.len());
    for id in ids {
        let program = conn
            .query_one("SELECT program FROM functions WHERE id = ?1", vals![id])?
            .text(0)?;
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
pub(super) fn live_task(
    tx: &mut Tx<'_>,
    miner: &str,
    batch_id: &str,
    task_type: TaskType,
    now_ms: i64,
) -> Result<TaskRow, ApiError> {
    let state = match tx.query_opt(
        "SELECT miner, state FROM tasks WHERE batch_id = ?1",
        vals![batch_id],
    )? {
        Some(r) => Some((r.text(0)?, r.text(1)?)),
        None => None,
    };
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

pub(super) fn close_task(tx: &mut Tx<'_>, batch_id: &str) -> Result<(), ApiError> {
    tx.execute(
        "UPDATE tasks SET state = 'done' WHERE batch_id = ?1",
        vals![batch_id],
    )?;
    Ok(())
}

/// The best-scoring function first (seeds and unscored functions after scored ones), then one
/// other chosen at random among the next fifteen.
fn pick_parents(tx: &mut Tx<'_>, component_type: &str) -> Result<Vec<FunctionRow>, ApiError> {
    let mut rows = tx
        .query(
            "SELECT id, program FROM functions WHERE component_type = ?1
             ORDER BY consensus_score IS NULL, consensus_score DESC, id LIMIT 16",
            vals![component_type],
        )?
        .iter()
        .map(function_row)
        .collect::<Result<Vec<_>, _>>()?;
    if rows.len() > 2 {
        let other = rand::random_range(1..rows.len());
        rows.swap(1, other);
    }
    rows.truncate(2);
    Ok(rows)
}

/// How long a key that let `strikes` or more leases expire within the last hour waits after
/// its latest expiry: 30 s, doubling with each further expiry, at most an hour.
fn cooldown_ms(expired: i64, strikes: u32) -> i64 {
    let over = u32::try_from(expired - i64::from(strikes))
        .unwrap_or(0)
        .min(7);
    (30_000i64 << over).min(3_600_000)
}

/// Refuse (429) a key that keeps abandoning evaluate tasks (letting their leases expire, or
/// resetting them unsubmitted): holding tasks it does not finish keeps functions from other
/// evaluators. Evolve tasks reserve nothing and do not count.
fn slow_down_abandoners(
    tx: &mut Tx<'_>,
    miner: &str,
    strikes: u32,
    now_ms: i64,
) -> Result<(), ApiError> {
    if strikes == 0 {
        return Ok(());
    }
    let row = tx.query_one(
        "SELECT COUNT(*), COALESCE(MAX(issued_at_ms), 0) FROM tasks WHERE miner = ?1
         AND task_type = 'evaluate' AND issued_at_ms > ?2
         AND (state = 'reset' OR (state IN ('active', 'expired') AND lease_until_ms <= ?3))",
        vals![miner, now_ms - 3_600_000, now_ms],
    )?;
    let (abandoned, last) = (row.int(0)?, row.int(1)?);
    if abandoned < i64::from(strikes) {
        return Ok(());
    }
    let until = last + cooldown_ms(abandoned, strikes);
    if now_ms < until {
        return Err(ApiError::TooManyRequests(format!(
            "{abandoned} of this miner's evaluate tasks expired or were reset unsubmitted in \
             the last hour; request again in {} s",
            (until - now_ms + 999) / 1000
        )));
    }
    Ok(())
}

/// Evaluate tasks: functions without consensus that this miner neither evolved nor evaluated
/// and that are not already promised to enough evaluators (stored evaluations plus live
/// leases); audits when there are none, and a share of the time ([`Rules::audit_share`])
/// before them, so every evaluator is checked against known consensus now and then.
fn pick_for_evaluation(
    tx: &mut Tx<'_>,
    rules: &Rules,
    miner: &str,
    component_type: &str,
    batch_size: usize,
    now_ms: i64,
) -> Result<Vec<FunctionRow>, ApiError> {
    let mut held: HashMap<i64, i64> = HashMap::new();
    let leased = tx.query(
        "SELECT function_ids FROM tasks WHERE state = 'active' AND task_type = 'evaluate'
         AND lease_until_ms > ?1",
        vals![now_ms],
    )?;
    for row in leased {
        let ids: Vec<i64> = serde_json::from_str(&row.text(0)?)
            .map_err(|e| internal(format!("a task's function ids: {e}")))?;
        for id in ids {
            *held.entry(id).or_default() += 1;
        }
    }
    if rules.audit_share > 0.0 && rand::random::<f64>() < rules.audit_share {
        let audits = pick_for_audit(tx, miner, component_type, &held, batch_size)?;
        if !audits.is_empty() {
            return Ok(audits);
        }
    }
    let rows = tx.query(
        "SELECT f.id, f.program, f.evaluation_count FROM functions f
         WHERE f.component_type = ?1 AND f.consensus_score IS NULL AND f.evolver IS NOT ?2
         AND NOT EXISTS (SELECT 1 FROM evaluations e WHERE e.function_id = f.id
                         AND e.evaluator = ?2)
         ORDER BY f.id",
        vals![component_type, miner],
    )?;
    let mut picked = Vec::new();
    for row in rows {
        let (f, count) = (function_row(&row)?, row.int(2)?);
        if count + held.get(&f.id).copied().unwrap_or(0) >= rules.min_evaluators as i64 {
            continue;
        }
        picked.push(f);
        if picked.len() >= batch_size.max(1) {
            break;
        }
    }
    if picked.is_empty() {
        picked = pick_for_audit(tx, miner, component_type, &held, batch_size)?;
    }
    Ok(picked)
}

/// Audits, for a miner with nothing left to evaluate first: functions that already have
/// consensus, that it has not evaluated and did not evolve, and that have not reached
/// [`MAX_EVALUATIONS_AUDITED`] (stored evaluations plus live leases), best consensus first.
/// AMM's client retries an evaluate request that finds nothing forever (it alternates only
/// after a success), so this keeps such miners at useful work in a pool with others.
fn pick_for_audit(
    tx: &mut Tx<'_>,
    miner: &str,
    component_type: &str,
    held: &HashMap<i64, i64>,
    batch_size: usize,
) -> Result<Vec<FunctionRow>, ApiError> {
    let rows = tx.query(
        "SELECT f.id, f.program, f.evaluation_count FROM functions f
         WHERE f.component_type = ?1 AND f.consensus_score IS NOT NULL
         AND f.evaluation_count < ?3 AND f.evolver IS NOT ?2
         AND NOT EXISTS (SELECT 1 FROM evaluations e WHERE e.function_id = f.id
                         AND e.evaluator = ?2)
         ORDER BY f.consensus_score DESC, f.evaluation_count, f.id",
        vals![component_type, miner, MAX_EVALUATIONS_AUDITED],
    )?;
    let mut picked = Vec::new();
    for row in rows {
        let (f, count) = (function_row(&row)?, row.int(2)?);
        if count + held.get(&f.id).copied().unwrap_or(0) < MAX_EVALUATIONS_AUDITED {
            picked.push(f);
            if picked.len() >= batch_size.max(1) {
                break;
            }
        }
    }
    Ok(picked)
}

fn function_row(r: &Row) -> Result<FunctionRow, DbError> {
    Ok(FunctionRow {
        id: r.int(0)?,
        program: r.text(1)?,
    })
}
