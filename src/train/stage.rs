//! Which part of a protocol a scorer runs: the hurdle's stages. The trainer runs them
//! ([`super::run::Prepared::score_stage`]); the evolution engine decides which to ask for.

/// Which part of the protocol a scorer runs.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Stage {
    /// The whole protocol.
    Full,
    /// The first seed only: the cheap first stage of the hurdle.
    First,
    /// The other seeds of a candidate that passed the hurdle, combined with its first
    /// seed's score into the full protocol's score.
    Rest {
        /// The first stage's score.
        first: f64,
    },
}
