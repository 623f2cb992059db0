//! The Alpha-token reward rules (docs/pool.md states them for miners). Nothing is paid when a
//! function is accepted: rewards are written to the ledger when a function's consensus forms,
//! so only confirmed work earns, and a balance is the sum of a miner's ledger entries.
//!
//! The amounts are a [`RewardSchedule`], which an operator may change
//! (`ncpc pool serve --rewards FILE.toml`).

use serde::{Deserialize, Serialize};

/// The most evaluations a function with consensus is given out for (the ones that formed it
/// and audits up to this total).
pub const MAX_EVALUATIONS_AUDITED: i64 = 7;

/// What each confirmed event pays, and the rules around it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RewardSchedule {
    /// Paid, when a function's consensus forms, to each evaluator whose score agrees with it,
    /// times the evaluator's reputation weight.
    pub evaluation_agrees: f64,
    /// Paid to the evolver when its function's consensus is a valid score (in (0, 1]) that
    /// beats its parent's consensus or ranks in the top [`top_n`](Self::top_n) of its type.
    pub evolution_confirmed: f64,
    /// Paid to the evolver when the consensus is at least the median of the other functions
    /// of its type (or it is the first with a consensus).
    pub evolution_scores_well: f64,
    /// Paid on top when it beats every other function of its type.
    pub evolution_new_best: f64,
    /// The rank (1 = best) a function must reach to earn `evolution_confirmed` without
    /// beating its parent.
    pub top_n: usize,
    /// Judged evaluations (agreeing or not) an evaluator needs before its reputation counts.
    pub reputation_min_judged: u32,
    /// Share of disagreeing evaluations up to which an evaluator keeps its full weight.
    pub reputation_full_until: f64,
    /// Share of disagreeing evaluations at which its weight reaches 0 (linear between).
    pub reputation_zero_at: f64,
}

impl Default for RewardSchedule {
    fn default() -> Self {
        RewardSchedule {
            evaluation_agrees: 1.0,
            evolution_confirmed: 1.0,
            evolution_scores_well: 5.0,
            evolution_new_best: 10.0,
            top_n: 10,
            reputation_min_judged: 5,
            reputation_full_until: 0.2,
            reputation_zero_at: 0.6,
        }
    }
}

/// Whether a consensus score is a real result: an accuracy above 0. AMM's failure encodings
/// (-99999 for a failed function, 0.0 for one whose evaluation raised) earn nothing.
pub fn is_valid_score(score: f64) -> bool {
    score > 0.0 && score <= 1.0
}

impl RewardSchedule {
    /// Read a schedule from TOML (keys as in [`RewardSchedule`]; missing ones keep their
    /// defaults); the error names the file's problem.
    pub fn from_toml(text: &str) -> Result<RewardSchedule, String> {
        let s: RewardSchedule = toml::from_str(text).map_err(|e| e.to_string())?;
        s.check()?;
        Ok(s)
    }

    /// Refuse amounts that are negative or not finite, and reputation bounds out of order.
    pub fn check(&self) -> Result<(), String> {
        for (name, v) in [
            ("evaluation_agrees", self.evaluation_agrees),
            ("evolution_confirmed", self.evolution_confirmed),
            ("evolution_scores_well", self.evolution_scores_well),
            ("evolution_new_best", self.evolution_new_best),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(format!("{name} must be a finite amount >= 0, not {v}"));
            }
        }
        let (a, b) = (self.reputation_full_until, self.reputation_zero_at);
        if !(0.0..=1.0).contains(&a) || !(0.0..=1.0).contains(&b) || a >= b {
            return Err(format!(
                "reputation_full_until ({a}) must be below reputation_zero_at ({b}), both in [0, 1]"
            ));
        }
        Ok(())
    }

    /// What the evolver of a function earns when its consensus `score` forms, given its
    /// parent's consensus (if any) and the consensus scores of the other functions of its
    /// type: `(amount, reason)` entries, none for an invalid score.
    pub fn evolver_rewards(
        &self,
        score: f64,
        parent: Option<f64>,
        others: &[f64],
    ) -> Vec<(f64, &'static str)> {
        if !is_valid_score(score) {
            return Vec::new();
        }
        // Failed functions (-99999, 0.0) neither lower the median nor count in the ranking.
        let others: Vec<f64> = others
            .iter()
            .copied()
            .filter(|o| is_valid_score(*o))
            .collect();
        let rank = 1 + others.iter().filter(|o| **o > score).count();
        let beats_parent = parent.is_some_and(|p| score > p);
        if !(beats_parent || rank <= self.top_n) {
            return Vec::new();
        }
        let mut out = vec![(self.evolution_confirmed, "evolved function confirmed")];
        match super::consensus::median(&others) {
            None => {
                out.push((self.evolution_scores_well, "evolved function scores well"));
                out.push((self.evolution_new_best, "evolved function is the new best"));
            }
            Some(m) => {
                if score >= m {
                    out.push((self.evolution_scores_well, "evolved function scores well"));
                }
                if others.iter().all(|o| score > *o) {
                    out.push((self.evolution_new_best, "evolved function is the new best"));
                }
            }
        }
        out.retain(|(a, _)| *a > 0.0);
        out
    }

    /// An evaluator's weight in [0, 1] from its judged evaluations so far: 1 until it has
    /// [`reputation_min_judged`](Self::reputation_min_judged) of them or while at most
    /// [`reputation_full_until`](Self::reputation_full_until) disagree, falling linearly to 0
    /// at [`reputation_zero_at`](Self::reputation_zero_at).
    pub fn reputation_weight(&self, agreed: u64, disagreed: u64) -> f64 {
        let judged = agreed + disagreed;
        if judged < u64::from(self.reputation_min_judged) || judged == 0 {
            return 1.0;
        }
        let rate = disagreed as f64 / judged as f64;
        let (a, b) = (self.reputation_full_until, self.reputation_zero_at);
        ((b - rate) / (b - a)).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(v: &[(f64, &str)]) -> f64 {
        v.iter().map(|(a, _)| a).sum()
    }

    #[test]
    fn evolver_rewards_follow_the_schedule() {
        let s = RewardSchedule::default();
        assert_eq!(total(&s.evolver_rewards(0.5, None, &[])), 16.0);
        assert_eq!(total(&s.evolver_rewards(0.9, None, &[0.5, 0.7])), 16.0);
        assert_eq!(total(&s.evolver_rewards(0.6, None, &[0.5, 0.7])), 6.0);
        assert_eq!(total(&s.evolver_rewards(0.7, Some(0.7), &[0.5, 0.7])), 6.0);
        // Below the median and outside the top 1, not better than its parent: nothing.
        let narrow = RewardSchedule {
            top_n: 1,
            ..RewardSchedule::default()
        };
        assert_eq!(
            total(&narrow.evolver_rewards(0.1, Some(0.5), &[0.5, 0.7])),
            0.0
        );
        assert_eq!(
            total(&narrow.evolver_rewards(0.6, Some(0.5), &[0.5, 0.7])),
            6.0
        );
    }

    #[test]
    fn failure_encodings_earn_nothing() {
        let s = RewardSchedule::default();
        for bad in [-99999.0, 0.0, 1.5, f64::NAN] {
            assert!(s.evolver_rewards(bad, None, &[]).is_empty(), "{bad}");
        }
    }

    #[test]
    fn reputation_falls_with_disagreement() {
        let s = RewardSchedule::default();
        assert_eq!(s.reputation_weight(0, 4), 1.0, "too few judged to count");
        assert_eq!(s.reputation_weight(8, 2), 1.0);
        assert!((s.reputation_weight(6, 4) - 0.5).abs() < 1e-12);
        assert_eq!(s.reputation_weight(2, 8), 0.0);
    }

    #[test]
    fn schedules_read_from_toml_and_bad_ones_are_refused() {
        let s = RewardSchedule::from_toml("evolution_new_best = 3.0\ntop_n = 2").unwrap();
        assert_eq!((s.evolution_new_best, s.top_n), (3.0, 2));
        assert!(RewardSchedule::from_toml("evaluation_agrees = -1.0").is_err());
        assert!(RewardSchedule::from_toml("no_such_key = 1").is_err());
    }
}
