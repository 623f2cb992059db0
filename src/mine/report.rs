//! What a mining cycle did and how far it has got: the outcomes, the progress events, and the
//! one line per cycle that `ncpc mine` prints.

/// What a cycle did.
#[derive(Clone, Debug, PartialEq)]
pub enum CycleOutcome {
    /// An evolved function was submitted.
    Evolved {
        /// The batch.
        batch: String,
        /// Fitness of the submitted function.
        fitness: f64,
        /// Candidates evaluated.
        evaluations: u64,
        /// Of which trained.
        trained: u64,
        /// The pool's answer.
        answer: serde_json::Value,
    },
    /// Evaluations were submitted.
    Evaluated {
        /// The batch.
        batch: String,
        /// The scores sent, in the batch's order.
        scores: Vec<f64>,
        /// The pool's answer.
        answer: serde_json::Value,
    },
    /// An evolve task ended without a submission (nothing beat the best parent, or every
    /// candidate failed): the task was released with reset_active.
    NotSubmitted {
        /// The batch.
        batch: String,
        /// Why nothing was submitted.
        reason: String,
        /// Candidates evaluated.
        evaluations: u64,
    },
    /// A task of a component type this miner does not take: released with reset_active.
    Released {
        /// The batch.
        batch: String,
        /// Why.
        reason: String,
    },
    /// Stopped before finishing: the task was released with reset_active.
    Abandoned {
        /// The batch.
        batch: String,
    },
}

/// One line for a cycle.
pub fn summary(n: u64, outcome: &CycleOutcome, seconds: f64) -> String {
    match outcome {
        CycleOutcome::Evolved {
            batch,
            fitness,
            evaluations,
            trained,
            answer,
        } => format!(
            "cycle {n}: evolve batch {batch}: submitted fitness {fitness:.4} ({evaluations} candidates, {trained} trained) in {seconds:.1} s{}",
            pool_verdict(answer)
        ),
        CycleOutcome::Evaluated { batch, scores, .. } => {
            let s: Vec<String> = scores.iter().map(|x| format!("{x:.4}")).collect();
            format!(
                "cycle {n}: evaluate batch {batch}: submitted {} score(s) [{}] in {seconds:.1} s",
                scores.len(),
                s.join(", ")
            )
        }
        CycleOutcome::NotSubmitted {
            batch,
            reason,
            evaluations,
        } => format!(
            "cycle {n}: evolve batch {batch}: nothing submitted: {reason} ({evaluations} candidates) in {seconds:.1} s"
        ),
        CycleOutcome::Released { batch, reason } => {
            format!("cycle {n}: batch {batch} released: {reason}")
        }
        CycleOutcome::Abandoned { batch } => {
            format!("cycle {n}: batch {batch} abandoned (stopped) and released")
        }
    }
}

/// What the pool said of an evolved function, for the cycle's line: a duplicate, or the
/// consensus it formed at once (a pool that scores functions itself) and the balance.
fn pool_verdict(answer: &serde_json::Value) -> String {
    if answer["duplicate"] == serde_json::Value::Bool(true) {
        return format!(
            "; the pool has it already (function {}): not paid",
            answer["duplicate_of"]
        );
    }
    let mut out = String::new();
    if let Some(c) = answer["consensus"].as_f64() {
        out.push_str(&format!("; consensus {c:.4}"));
    }
    if let Some(b) = answer["balance"].as_f64() {
        out.push_str(&format!("; balance {b}"));
    }
    out
}

/// How far the current cycle has got, for a progress display.
#[derive(Clone, Debug, PartialEq)]
pub enum CycleProgress {
    /// An evolve task after each generation: generations done of the task's, the best
    /// fitness so far (`-inf` before any), candidates looked at.
    Evolving {
        /// Generations done.
        generation: usize,
        /// Generations the task runs.
        generations: usize,
        /// Best fitness so far.
        best: f64,
        /// Candidates looked at (trained or answered by the cache).
        evaluations: u64,
    },
    /// An evaluate task: functions scored of the batch's.
    Evaluating {
        /// Functions scored.
        done: usize,
        /// Functions in the batch.
        total: usize,
    },
}

impl CycleProgress {
    /// One line for a progress display.
    pub fn describe(&self) -> String {
        match self {
            CycleProgress::Evolving {
                generation,
                generations,
                best,
                evaluations,
            } => format!(
                "evolving, generation {generation}/{generations}, best {best:.4}, {evaluations} candidates"
            ),
            CycleProgress::Evaluating { done, total } => {
                format!("evaluating, {done}/{total} functions scored")
            }
        }
    }
}
