//! Accepting submissions: evolved functions (deduplicated by canonical IR hash and by
//! functional fingerprint) and evaluations, forming consensus and writing the rewards to the
//! ledger, each in one transaction. Nothing is paid at acceptance: the ledger is written only
//! when a consensus forms (see [`crate::pool::server::rewards`]).

use super::db::{Exec, Tx};
use super::tasks::{close_task, live_task};
use super::values::{DbError, Val, vals};
use super::{Consensus, EvolutionOutcome, LOCAL_EVALUATOR, NewEvaluation, Rules, Store, internal};
use crate::pool::protocol::TaskType;
use crate::pool::server::consensus::{agrees_under, median};
use crate::pool::server::error::ApiError;
use crate::pool::server::genome::CheckedGenome;

/// How a submitted function matched one the population has.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Duplicate {
    /// The same optimized IR (register renaming, dead code).
    CanonicalIr,
    /// The same gradient direction on the probes (a positive scaling, an added constant, ...).
    Fingerprint,
}

/// The function of `component_type` that `genome` duplicates, if any.
fn find_duplicate(
    tx: &mut Tx<'_>,
    genome: &CheckedGenome,
) -> Result<Option<(i64, Duplicate)>, ApiError> {
    if let Some(row) = tx.query_opt(
        "SELECT id FROM functions WHERE hash = ?1",
        vals![&genome.hash],
    )? {
        return Ok(Some((row.int(0)?, Duplicate::CanonicalIr)));
    }
    if let Some(fp) = &genome.fingerprint {
        for key in std::iter::once(&fp.key).chain(&fp.alternates) {
            if let Some(row) = tx.query_opt(
                "SELECT id FROM functions WHERE fingerprint = ?1 ORDER BY id LIMIT 1",
                vals![key],
            )? {
                return Ok(Some((row.int(0)?, Duplicate::Fingerprint)));
            }
        }
    }
    Ok(None)
}

impl Store {
    /// Store an evolved function (or note it as a duplicate, without its metadata) for the
    /// miner's live evolve task `batch_id`, and close the task. Nothing is credited now: the
    /// evolver earns when the function's consensus forms.
    pub fn submit_evolution(
        &mut self,
        miner: &str,
        batch_id: &str,
        genome: &CheckedGenome,
        claimed_fitness: f64,
        metadata: &str,
        now_ms: i64,
    ) -> Result<EvolutionOutcome, ApiError> {
        let mut tx = self.conn.transaction()?;
        tx.durable()?;
        let task = live_task(&mut tx, miner, batch_id, TaskType::Evolve, now_ms)?;
        // The parent a function must beat is the task's best (its first function, by
        // consensus), whatever parents the evolver names in its submission (not trusted):
        // naming the weaker parent must not make "beats its parent" easier.
        let parent = task.functions.first().map(|f| f.id);
        let (function_id, duplicate) = match find_duplicate(&mut tx, genome)? {
            Some((id, how)) => (id, Some(how)),
            None => {
                let fp = genome.fingerprint.as_ref().map(|f| f.key.as_str());
                let id = tx
                    .query_one(
                        "INSERT INTO functions (component_type, program, hash, evolver,
                         parent_id, created_at_ms, fingerprint)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
                        vals![
                            &task.component_type,
                            &genome.program,
                            &genome.hash,
                            miner,
                            parent,
                            now_ms,
                            Val::Text(fp)
                        ],
                    )?
                    .int(0)?;
                (id, None)
            }
        };
        let fitness = claimed_fitness.is_finite().then_some(claimed_fitness);
        // A duplicate's metadata is not kept: it costs storage and proves nothing.
        let metadata = if duplicate.is_some() { "" } else { metadata };
        tx.execute(
            "INSERT INTO evolutions (batch_id, miner, function_id, duplicate, claimed_fitness,
             metadata, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            vals![
                batch_id,
                miner,
                function_id,
                duplicate.is_some(),
                fitness,
                metadata,
                now_ms
            ],
        )?;
        close_task(&mut tx, batch_id)?;
        tx.commit()?;
        Ok(EvolutionOutcome {
            function_id,
            duplicate,
            credited: 0.0,
        })
    }

    /// Store the evaluations of the miner's live evaluate task `batch_id`, form consensus for
    /// functions that now have enough evaluations (crediting agreeing evaluators and the
    /// evolver), and close the task. Every evaluation must name a function of the batch, once,
    /// and no key evaluates a function it evolved.
    pub fn submit_evaluations(
        &mut self,
        miner: &str,
        batch_id: &str,
        evaluations: &[NewEvaluation],
        now_ms: i64,
    ) -> Result<Vec<Consensus>, ApiError> {
        let rules = self.rules.clone();
        let mut tx = self.conn.transaction()?;
        tx.durable()?;
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
            let evolver = tx
                .query_one(
                    "SELECT evolver FROM functions WHERE id = ?1",
                    vals![e.function_id],
                )?
                .opt_text(0)?;
            if evolver.as_deref() == Some(miner) {
                return Err(ApiError::Unprocessable(format!(
                    "evaluations[{i}]: function {} is this miner's own",
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
            match try_consensus(&mut tx, &rules, e.function_id, now_ms)? {
                Some(c) => formed.push(c),
                None => audit(&mut tx, &rules, e.function_id, miner, e.score)?,
            }
        }
        close_task(&mut tx, batch_id)?;
        tx.commit()?;
        Ok(formed)
    }

    /// Functions of `component_type` without a consensus, oldest first (at most `limit`):
    /// what a pool with its own scorer still has to confirm.
    pub fn unconfirmed(
        &mut self,
        component_type: &str,
        limit: i64,
    ) -> Result<Vec<(i64, String)>, ApiError> {
        Ok(self
            .conn
            .query(
                "SELECT id, program FROM functions WHERE component_type = ?1
                 AND consensus_score IS NULL ORDER BY id LIMIT ?2",
                vals![component_type, limit],
            )?
            .iter()
            .map(|r| Ok((r.int(0)?, r.text(1)?)))
            .collect::<Result<Vec<_>, DbError>>()?)
    }

    /// Record the pool's own score of function `id` (a pool with a
    /// [`LocalScorer`](crate::pool::server::LocalScorer)) as its consensus, paying its evolver
    /// as any consensus does. `None` when it already had one.
    pub fn confirm_locally(
        &mut self,
        id: i64,
        score: f64,
        now_ms: i64,
    ) -> Result<Option<Consensus>, ApiError> {
        let rules = self.rules.clone();
        let mut tx = self.conn.transaction()?;
        tx.durable()?;
        let existing = tx
            .query_one(
                "SELECT consensus_score FROM functions WHERE id = ?1",
                vals![id],
            )?
            .opt_real(0)?;
        if existing.is_some() {
            return Ok(None);
        }
        tx.execute(
            "INSERT OR IGNORE INTO evaluations (batch_id, function_id, evaluator, score,
             criteria, created_at_ms) VALUES ('local', ?1, ?2, ?3, '{}', ?4)",
            vals![id, LOCAL_EVALUATOR, score, now_ms],
        )?;
        tx.execute(
            "UPDATE functions SET evaluation_count = evaluation_count + 1 WHERE id = ?1",
            vals![id],
        )?;
        let local = Rules {
            min_evaluators: 1,
            ..rules
        };
        let formed = try_consensus(&mut tx, &local, id, now_ms)?;
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
/// audit could copy it) and do not move the consensus, so rewards paid on it stand; they do
/// count towards the evaluator's reputation.
fn audit(
    tx: &mut Tx<'_>,
    rules: &Rules,
    id: i64,
    auditor: &str,
    score: f64,
) -> Result<(), ApiError> {
    let consensus = tx
        .query_one(
            "SELECT consensus_score FROM functions WHERE id = ?1",
            vals![id],
        )?
        .opt_real(0)?;
    if let Some(m) = consensus {
        tx.execute(
            "UPDATE evaluations SET agrees = ?1, audit = 1 WHERE function_id = ?2
             AND evaluator = ?3",
            vals![agrees_under(rules.consensus, score, m), id, auditor],
        )?;
    }
    Ok(())
}

/// An evaluator's reputation weight from its judged first evaluations so far. Audits do not
/// count: the consensus they are judged against is public (`/leaderboard`, `/functions`), so
/// agreeing with it proves nothing; a first evaluation is judged against a consensus that did
/// not exist when it was sent.
fn reputation(tx: &mut Tx<'_>, rules: &Rules, evaluator: &str) -> Result<f64, ApiError> {
    let row = tx.query_one(
        "SELECT COUNT(agrees), COUNT(CASE WHEN agrees = 1 THEN 1 END) FROM evaluations
         WHERE evaluator = ?1 AND audit = 0 AND agrees IS NOT NULL",
        vals![evaluator],
    )?;
    let (judged, agreed) = (row.int(0)?, row.int(1)?);
    let agreed = u64::try_from(agreed).unwrap_or(0);
    let disagreed = u64::try_from(judged).unwrap_or(0).saturating_sub(agreed);
    Ok(rules.rewards.reputation_weight(agreed, disagreed))
}

/// Form the consensus of function `id` if it has enough evaluations and none yet: set its
/// score, mark each evaluation as agreeing or not, credit agreeing evaluators (times their
/// reputation weight) and the evolver (by the reward schedule).
fn try_consensus(
    tx: &mut Tx<'_>,
    rules: &Rules,
    id: i64,
    now_ms: i64,
) -> Result<Option<Consensus>, ApiError> {
    let row = tx.query_one(
        "SELECT evaluation_count, consensus_score, evolver, component_type, parent_id
         FROM functions WHERE id = ?1",
        vals![id],
    )?;
    let (count, existing, evolver, component_type, parent) = (
        row.int(0)?,
        row.opt_real(1)?,
        row.opt_text(2)?,
        row.text(3)?,
        row.opt_int(4)?,
    );
    if existing.is_some() || count < rules.min_evaluators.max(1) as i64 {
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
    let parent_score = match parent {
        Some(p) => tx
            .query_opt(
                "SELECT consensus_score FROM functions WHERE id = ?1",
                vals![p],
            )?
            .map(|r| r.opt_real(0))
            .transpose()?
            .flatten(),
        None => None,
    };
    tx.execute(
        "UPDATE functions SET consensus_score = ?1, consensus_at_ms = ?3 WHERE id = ?2",
        vals![m, id, now_ms],
    )?;
    let mut payments = Vec::new();
    // A consensus at a failure encoding (-99999, 0.0) pays nobody: junk scored as junk by a
    // ring of keys must not mint Alpha.
    let paid = crate::pool::server::rewards::is_valid_score(m);
    for (_, evaluator, score) in &scores {
        let ok = agrees_under(rules.consensus, *score, m);
        if paid
            && ok
            && evolver.as_deref() != Some(evaluator.as_str())
            && evaluator != LOCAL_EVALUATOR
        {
            let amount = rules.rewards.evaluation_agrees * reputation(tx, rules, evaluator)?;
            payments.push((evaluator.clone(), amount));
        }
    }
    for (row, _, score) in &scores {
        tx.execute(
            "UPDATE evaluations SET agrees = ?1 WHERE id = ?2",
            vals![agrees_under(rules.consensus, *score, m), *row],
        )?;
    }
    for (evaluator, amount) in payments {
        if amount > 0.0 {
            credit(
                tx,
                &evaluator,
                amount,
                "evaluation agrees with consensus",
                id,
                now_ms,
            )?;
        }
    }
    if let Some(evolver) = evolver {
        for (amount, reason) in rules.rewards.evolver_rewards(m, parent_score, &others) {
            credit(tx, &evolver, amount, reason, id, now_ms)?;
        }
    }
    Ok(Some(Consensus {
        function_id: id,
        score: m,
    }))
}
