//! The Alpha-token reward rules (docs/pool.md states them for miners). Amounts are written to
//! the ledger as they are earned; a balance is the sum of a miner's ledger entries.

/// Paid to each evaluator whose score agrees with a function's consensus, when consensus forms.
pub const EVALUATION_AGREES: f64 = 1.0;

/// The most evaluations a function with consensus is given out for (the 3 that formed it and
/// up to 4 audits).
pub const MAX_EVALUATIONS_AUDITED: i64 = 7;

/// Paid to the evolver of a new (not duplicate) function when it is accepted.
pub const EVOLUTION_ACCEPTED: f64 = 1.0;

/// Paid to the evolver when its function's consensus score is at least the median consensus
/// score of the other functions of its component type (or when it is the first to have one).
pub const EVOLUTION_SCORES_WELL: f64 = 5.0;

/// Paid on top when the function's consensus score beats every other function of its type.
pub const EVOLUTION_NEW_BEST: f64 = 10.0;

/// What the evolver of a function with consensus `score` earns, given the consensus scores of
/// the other functions of its component type. The acceptance payment is not included.
pub fn evolver_bonus(score: f64, others: &[f64]) -> f64 {
    let Some(m) = super::consensus::median(others) else {
        return EVOLUTION_SCORES_WELL + EVOLUTION_NEW_BEST;
    };
    let best = others.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut bonus = 0.0;
    if score >= m {
        bonus += EVOLUTION_SCORES_WELL;
    }
    if score > best {
        bonus += EVOLUTION_NEW_BEST;
    }
    bonus
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bonus_follows_the_rules() {
        assert_eq!(evolver_bonus(0.5, &[]), 15.0);
        assert_eq!(evolver_bonus(0.9, &[0.5, 0.7]), 15.0);
        assert_eq!(evolver_bonus(0.6, &[0.5, 0.7]), 5.0);
        assert_eq!(evolver_bonus(0.7, &[0.5, 0.7]), 5.0);
        assert_eq!(evolver_bonus(0.1, &[0.5, 0.7]), 0.0);
    }
}
