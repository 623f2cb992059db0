//! Consensus over self-reported scores: a function's score is the median of at least
//! [`ServerConfig::min_evaluators`](super::ServerConfig::min_evaluators) (3 by default)
//! evaluations by distinct keys, and an evaluation agrees with it when it lies within
//! [`RELATIVE_TOLERANCE`] of the median (relative), or within [`ABSOLUTE_FLOOR`] when the
//! median is near zero ([`ConsensusRule::Tolerance`]), or equals it
//! ([`ConsensusRule::Exact`]). One evaluator reporting a false score cannot move the median
//! of three past the two honest ones, and scores outside the protocol's range are refused
//! before they are stored ([`check_score`]).

use crate::pool::protocol::LOW_FITNESS_VALUE;

/// How far (relative to the median) an agreeing evaluation may lie.
pub const RELATIVE_TOLERANCE: f64 = 0.10;

/// The smallest tolerance, for medians near zero.
pub const ABSOLUTE_FLOOR: f64 = 1e-3;

/// The median of `scores` (the mean of the middle two for an even count); `None` when empty
/// or when a score is not finite.
pub fn median(scores: &[f64]) -> Option<f64> {
    if scores.is_empty() || scores.iter().any(|s| !s.is_finite()) {
        return None;
    }
    let mut v = scores.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// How evaluations must agree with a function's consensus (its median) to count.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ConsensusRule {
    /// Within 10% of the median (0.001 near zero): evaluators on different stacks (AMM's
    /// PyTorch, ncpc) draw other random streams.
    #[default]
    Tolerance,
    /// Equal to the median, bit for bit: for pools whose evaluators all run ncpc, whose
    /// scores are deterministic.
    Exact,
}

/// Whether a submitted score lies in the range of the pool's protocol: a validation accuracy
/// in [0, 1] (0.0 is also AMM's score for an evaluation that raised), or AMM's -99999 for a
/// failed function. Anything else (1.7e308, -5, NaN) is refused with the reason.
pub fn check_score(score: f64) -> Result<(), String> {
    if score == LOW_FITNESS_VALUE || (0.0..=1.0).contains(&score) {
        Ok(())
    } else {
        Err(format!(
            "{score} is not a score: an accuracy in [0, 1], or -99999 for a failed function"
        ))
    }
}

/// Whether `score` agrees with the consensus `median` under `rule`.
pub fn agrees_under(rule: ConsensusRule, score: f64, median: f64) -> bool {
    match rule {
        ConsensusRule::Tolerance => agrees(score, median),
        ConsensusRule::Exact => score == median,
    }
}

/// Whether `score` agrees with the consensus `median` within the tolerance.
pub fn agrees(score: f64, median: f64) -> bool {
    let tolerance = (RELATIVE_TOLERANCE * median.abs()).max(ABSOLUTE_FLOOR);
    (score - median).abs() <= tolerance
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[0.9, 0.1, 0.5]), Some(0.5));
        assert_eq!(median(&[0.4, 0.1, 0.5, 0.9]), Some(0.45));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[0.1, f64::NAN, 0.2]), None);
    }

    #[test]
    fn one_liar_is_outvoted() {
        let m = median(&[0.80, 0.82, 0.0]).unwrap();
        assert_eq!(m, 0.80);
        assert!(agrees(0.80, m) && agrees(0.82, m));
        assert!(!agrees(0.0, m));
    }

    #[test]
    fn tolerance_is_relative_with_a_floor() {
        assert!(agrees(0.87, 0.80) && agrees(0.73, 0.80) && !agrees(0.89, 0.80));
        assert!(agrees(0.0005, 0.0) && !agrees(0.002, 0.0));
        assert!(agrees(-99999.0, -99999.0));
    }

    #[test]
    fn scores_outside_the_protocol_range_are_refused() {
        for ok in [0.0, 0.5, 1.0, -99999.0] {
            check_score(ok).unwrap();
        }
        for bad in [1.7e308, -5.0, 1.0001, -99998.0, f64::NAN, f64::INFINITY] {
            assert!(check_score(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_exact_rule_wants_equal_scores() {
        assert!(agrees_under(ConsensusRule::Exact, 0.625, 0.625));
        assert!(!agrees_under(ConsensusRule::Exact, 0.62500001, 0.625));
        assert!(agrees_under(ConsensusRule::Tolerance, 0.62500001, 0.625));
    }
}
