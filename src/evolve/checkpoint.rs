//! Saving and resuming a search: everything a run needs to continue, the random stream's
//! position included, so a resumed run ends byte-identical to an uninterrupted one.

use super::config::{EvolveConfig, HurdleStats};
use super::engine::{Engine, Famous, GenerationStats, Individual};
use super::fec::Fec;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Where a run's random stream stands (ChaCha8: its seed, stream and word position), so a
/// resumed run draws exactly what the uninterrupted one would have.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RngState {
    seed: [u8; 32],
    stream: u64,
    /// The word position, as a decimal string (JSON numbers cannot hold a u128).
    word_pos: String,
}

impl RngState {
    fn of(rng: &ChaCha8Rng) -> RngState {
        RngState {
            seed: rng.get_seed(),
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos().to_string(),
        }
    }

    fn restore(&self) -> Result<ChaCha8Rng, String> {
        let mut rng = ChaCha8Rng::from_seed(self.seed);
        rng.set_stream(self.stream);
        let pos: u128 = self
            .word_pos
            .parse()
            .map_err(|_| format!("bad RNG word position `{}`", self.word_pos))?;
        rng.set_word_pos(pos);
        Ok(rng)
    }
}

/// Everything a run needs to continue: written atomically after each generation, and on
/// Ctrl-C, by `ncpc evolve --out`, read back by `--resume`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Settings.
    pub config: EvolveConfig,
    rng: RngState,
    population: Vec<Individual>,
    fec: Fec,
    hall_of_fame: Vec<Famous>,
    stats: Vec<GenerationStats>,
    trained: u64,
    evaluations: u64,
    generation: usize,
    #[serde(default)]
    hurdle_window: Vec<f64>,
    #[serde(default)]
    hurdle: HurdleStats,
}

impl Engine {
    /// The run's state, to save.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            config: self.config.clone(),
            rng: RngState::of(&self.rng),
            population: self.population.clone(),
            fec: self.fec.clone(),
            hall_of_fame: self.hall_of_fame.clone(),
            stats: self.stats.clone(),
            trained: self.trained,
            evaluations: self.evaluations,
            generation: self.generation,
            hurdle_window: self.hurdle_window.clone(),
            hurdle: self.hurdle,
        }
    }

    /// Continue a saved run; `generations` may raise the run's length.
    pub fn resume(c: Checkpoint, generations: Option<usize>) -> Result<Engine, String> {
        let mut config = c.config;
        if let Some(g) = generations {
            config.generations = g;
        }
        if c.population.is_empty() {
            return Err("the checkpoint has an empty population".into());
        }
        Ok(Engine {
            config,
            rng: c.rng.restore()?,
            population: c.population,
            fec: c.fec,
            hall_of_fame: c.hall_of_fame,
            stats: c.stats,
            trained: c.trained,
            evaluations: c.evaluations,
            generation: c.generation,
            hurdle_window: c.hurdle_window,
            hurdle: c.hurdle,
        })
    }
}
