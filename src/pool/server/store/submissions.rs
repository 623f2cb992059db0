//! Accepting submissions: evolved functions (deduplicated by hash) and evaluations, forming
//! consensus and writing the rewards to the ledger, each in one transaction.

use super::db::{DbError, Exec, Tx, vals};
use super::tasks::{close_task, live_task};
use super::{Consensus, EvolutionOutcome, NewEvaluation, Store, internal};
use crate::pool::protocol::TaskType;
use crate::pool::server::consensus::{MIN_EVALUATIONS, agrees, median};
use crate::pool::server::error::ApiError;
use crate::pool::server::genome::CheckedGenome;
use crate::pool::server::rewards;

impl Store {
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
        let mut tx = self.conn.transaction()?;
        let task = live_task(&mut tx, miner, batch_id, TaskType::Evolve, now_ms)?;
        let parent = parent_ids
            .iter()
            .copied()
            .find(|p| task.functions.iter().any(|f| f.id == *p))
            .or_else(|| task.functions.first().map(|f| f.id));
        let existing = tx.query_opt(
            "SELECT id FROM functions WHERE hash = ?1",
            vals![&genome.hash],
        )?;
        let (function_id, duplicate) = match existing {
            Some(row) => (row.int(0)?, true),
            None => {
                let id = tx
                    .query_one(
                        "INSERT INTO functions (component_type, program, hash, evolver,
                         parent_id, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
                        vals![
                            &task.component_type,
                            &genome.program,
                            &genome.hash,
                            miner,
                            parent,
                            now_ms
                        ],
                    )?
                    .int(0)?;
                (id, false)
            }
        };
        let fitness = claimed_fitness.is_finite().then_some(claimed_fitness);
        tx.execute(
            "INSERT INTO evolutions (batch_id, miner, function_id, duplicate, claimed_fitness,
             metadata, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            vals![
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
                &mut tx,
                miner,
                rewards::EVOLUTION_ACCEPTED,
                "evolution accepted",
                function_id,
                now_ms,
            )?;
            rewards::EVOLUTION_ACCEPTED
        };
        close_task(&mut tx, batch_id)?;
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
        let mut tx = self.conn.transaction()?;
        let task = live_task(&mut tx, miner, batch_id, TaskType::Evaluate, now_ms)?;
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
                vals![batch_id, e.function_id, miner, e.score, &e.criteria, now_ms],
            )?;
            if inserted == 0 {
                return Err(ApiError::Conflict(format!(
                    "this miner already evaluated function {}",
                    e.function_id
                )));
            }
            tx.execute(
                "UPDATE functions SET evaluation_count = evaluation_count + 1 WHERE id = ?1",
                vals![e.function_id],
            )?;
            match try_consensus(&mut tx, e.function_id, now_ms)? {
                Some(c) => formed.push(c),
                None => audit(&mut tx, e.function_id, miner, e.score)?,
            }
        }
        close_task(&mut tx, batch_id)?;
        tx.commit()?;
        Ok(formed)
    }
}

fn credit(
    tx: &mut Tx<'_>,
    miner: &str,
    amount: f64,
    reason: &str,
    function_id: i64,
    now_ms: i64,
) -> Result<(), ApiError> {
    tx.execute(
        "INSERT INTO ledger (miner, amount, reason, function_id, created_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        vals![miner, amount, reason, function_id, now_ms],
    )?;
    Ok(())
}

/// An evaluation of a function that already has consensus (an audit): record whether it
/// agrees. Audits are not paid (the consensus score is public on the leaderboard, so an
/// audit could copy it) and do not move the consensus, so rewards paid on it stand.
fn audit(tx: &mut Tx<'_>, id: i64, auditor: &str, score: f64) -> Result<(), ApiError> {
    let consensus = tx
        .query_one(
            "SELECT consensus_score FROM functions WHERE id = ?1",
            vals![id],
        )?
        .opt_real(0)?;
    if let Some(m) = consensus {
        tx.execute(
            "UPDATE evaluations SET agrees = ?1 WHERE function_id = ?2 AND evaluator = ?3",
            vals![agrees(score, m), id, auditor],
        )?;
    }
    Ok(())
}

/// Form the consensus of function `id` if it has enough evaluations and none yet: set its
/// score, mark each evaluation as agreeing or not, and credit agreeing evaluators (not the
/// evolver for its own function) and the evolver.
fn try_consensus(tx: &mut Tx<'_>, id: i64, now_ms: i64) -> Result<Option<Consensus>, ApiError> {
    let row = tx.query_one(
        "SELECT evaluation_count, consensus_score, evolver, component_type FROM functions
         WHERE id = ?1",
        vals![id],
    )?;
    let (count, existing, evolver, component_type) = (
        row.int(0)?,
        row.opt_real(1)?,
        row.opt_text(2)?,
        row.text(3)?,
    );
    if existing.is_some() || count < MIN_EVALUATIONS as i64 {
        return Ok(None);
    }
    let scores = tx
        .query(
            "SELECT id, evaluator, score FROM evaluations WHERE function_id = ?1 ORDER BY id",
            vals![id],
        )?
        .iter()
        .map(|r| Ok((r.int(0)?, r.text(1)?, r.real(2)?)))
        .collect::<Result<Vec<_>, DbError>>()?;
    let values: Vec<f64> = scores.iter().map(|s| s.2).collect();
    let Some(m) = median(&values) else {
        return Err(internal(format!("function {id} has a non-finite score")));
    };
    let others = tx
        .query(
            "SELECT consensus_score FROM functions WHERE component_type = ?1
             AND consensus_score IS NOT NULL AND id != ?2",
            vals![&component_type, id],
        )?
        .iter()
        .map(|r| r.real(0))
        .collect::<Result<Vec<f64>, DbError>>()?;
    tx.execute(
        "UPDATE functions SET consensus_score = ?1 WHERE id = ?2",
        vals![m, id],
    )?;
    for (row, evaluator, score) in &scores {
        let ok = agrees(*score, m);
        tx.execute(
            "UPDATE evaluations SET agrees = ?1 WHERE id = ?2",
            vals![ok, *row],
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
