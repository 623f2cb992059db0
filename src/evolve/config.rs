//! The settings of a search: its strategy, how the first population is made, the sizes and
//! rates, the budget and the two-stage hurdle.

use super::genome::{Genome, GenomeFormat};
use serde::{Deserialize, Serialize};

/// The search strategies.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// AMM's steady-state GA: each generation evaluates the population, then makes one child
    /// per member from the two best of a tournament (crossover or mutation), each replacing
    /// the oldest member.
    SteadyState,
    /// Regularized evolution: a child of the best of a tournament replaces the oldest
    /// member; children are made and evaluated in rounds of `round` candidates.
    Regularized,
    /// DAML's generational GP (DEAP's `eaSimple`): each generation selects a whole new
    /// population by tournament (aspirants drawn with replacement), crosses neighbouring
    /// pairs with the crossover rate and mutates each child with the mutation rate; children
    /// left unchanged keep their fitness.
    Generational,
}

impl Strategy {
    /// The tournament size and crossover rate of the system the strategy comes from (AMM's
    /// 10 and 0.7 for the steady-state GA and regularized evolution, DAML's 3 and 0.5 for
    /// generational GP).
    pub fn default_tournament_and_crossover(self) -> (usize, f64) {
        match self {
            Strategy::Generational => (3, 0.5),
            _ => (10, 0.7),
        }
    }
}

/// How the first population is made.
#[derive(Clone, Debug, PartialEq)]
pub enum Init {
    /// A seed genome and mutants of it (AMM's way).
    From(Genome),
    /// Random genomes of the configured format (AutoML-Zero's and DAML's way).
    Random,
}

/// Settings of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvolveConfig {
    /// The strategy.
    pub strategy: Strategy,
    /// Population size.
    pub population: usize,
    /// Tournament size.
    pub tournament: usize,
    /// Probability that a child comes from crossover.
    pub crossover_rate: f64,
    /// Mutation probability: per instruction for AMM programs (AMM's rule); per child for
    /// generational GP; DAML and HAZ mutants otherwise get one change each.
    pub mutation_rate: f64,
    /// Generations (steady-state) or rounds (regularized).
    pub generations: usize,
    /// Children per round of regularized evolution (fixed, so results do not depend on the
    /// thread count).
    pub round: usize,
    /// Seed of every random choice.
    pub seed: u64,
    /// Hall-of-fame size.
    pub hall_of_fame: usize,
    /// The size limit: most instructions in an AMM program, prologue and RETURN included
    /// (AMM's insertion limit is 20; ncpc applies it to crossover children too) or in a HAZ
    /// gene; most height of a DAML tree (DAML's 90).
    pub max_len: usize,
    /// The genome format searched.
    #[serde(default)]
    pub format: GenomeFormat,
    /// The two-stage hurdle (`None`: every candidate gets the full protocol).
    #[serde(default)]
    pub hurdle: Option<HurdleConfig>,
    /// Stop after the generation in which this many candidates have been evaluated (cache
    /// hits included); `None`: no such budget.
    #[serde(default)]
    pub max_evaluations: Option<u64>,
    /// Lexicographic parsimony pressure (Luke and Panait's bloat control): in a tournament,
    /// of two members with the same fitness the smaller genome wins (instructions; tree
    /// nodes). Off by default: the public systems break such ties by position.
    #[serde(default)]
    pub parsimony: bool,
    /// Which genetic operators make children.
    #[serde(default)]
    pub operators: Operators,
}

/// Which genetic operators make children.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operators {
    /// The format's own (AMM's, DEAP's, AutoML-Zero's), as the public systems search.
    #[default]
    Native,
    /// Edits of the typed IR written back to the format (`evolve::ir_ops`: constants as
    /// leaves, type-correct insertions, swaps, bypasses and crossover of subgraphs); the
    /// format's own operator where the IR's finds nothing to do or cannot be written back
    /// (HAZ has no emitter).
    Ir,
    /// Each child from the IR's operators or the format's, half and half.
    Both,
}

impl Default for EvolveConfig {
    fn default() -> Self {
        EvolveConfig {
            strategy: Strategy::SteadyState,
            population: 200,
            tournament: 10,
            crossover_rate: 0.7,
            mutation_rate: 0.2,
            generations: 10,
            round: 16,
            seed: 42,
            hall_of_fame: 10,
            max_len: super::amm_ops::MAX_LEN,
            format: GenomeFormat::Amm,
            hurdle: None,
            max_evaluations: None,
            parsimony: false,
            operators: Operators::Native,
        }
    }
}

/// The two-stage hurdle (AutoML-Zero's): every new candidate first trains under one seed;
/// only those at or above the `percentile` of the last `window` first-stage scores train
/// under the others. The rest keep their one-seed score as fitness.
#[derive(Copy, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HurdleConfig {
    /// The percentile (0-100) a first-stage score must reach.
    pub percentile: f64,
    /// How many recent first-stage scores set the threshold.
    pub window: usize,
    /// Scores needed before the hurdle applies (until then every candidate passes).
    pub min_samples: usize,
}

impl Default for HurdleConfig {
    fn default() -> Self {
        HurdleConfig {
            percentile: 50.0,
            window: 200,
            min_samples: 20,
        }
    }
}

/// What the hurdle did.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HurdleStats {
    /// Candidates that went on to the full protocol.
    pub passed: u64,
    /// Candidates stopped after the first stage below the threshold.
    pub stopped: u64,
    /// Candidates that failed the first stage outright (NaN, a fault, the protocol's own
    /// hurdle): the rest of the protocol is not run for them either.
    #[serde(default)]
    pub failed: u64,
}
