//! The search: AMM's steady-state GA, DAML's DEAP-style generational GP and AutoML-Zero's
//! regularized (aging) evolution, over AMM programs, DAML trees or HAZ genes, with the
//! functional-equivalence cache in front of every evaluation and candidates evaluated in
//! parallel (rayon), results applied in a fixed order so a run is reproducible from its seed
//! whatever the thread count.

pub use super::checkpoint::Checkpoint;
pub use super::config::{EvolveConfig, HurdleConfig, HurdleStats, Init, Operators, Strategy};
use super::fec::{Fec, Probe, probe};
use super::genome::Genome;
use crate::formats::CompileOptions;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Attempts at making a child that differs from its parents.
const MAX_RETRIES: usize = 8;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};

/// One member of the population.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Individual {
    /// The genome.
    pub genome: Genome,
    /// Its fitness (`None` until evaluated).
    #[serde(with = "crate::numbers::lenient_opt")]
    pub fitness: Option<f64>,
    /// Steady-state age (replacements survived).
    pub age: u64,
}

/// A hall-of-fame entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Famous {
    /// The program text.
    pub genome: String,
    /// Its fitness.
    #[serde(with = "crate::numbers::lenient")]
    pub fitness: f64,
    /// The evaluation number at which it was found.
    pub found_at: u64,
}

/// Statistics of one generation, in the shape the AMM client reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerationStats {
    /// Generation (or round) index.
    pub generation: usize,
    /// Best fitness.
    #[serde(with = "crate::numbers::lenient")]
    pub best: f64,
    /// Mean of finite fitnesses.
    #[serde(with = "crate::numbers::lenient")]
    pub avg: f64,
    /// Smallest finite fitness.
    #[serde(with = "crate::numbers::lenient")]
    pub min: f64,
    /// Median of finite fitnesses.
    #[serde(with = "crate::numbers::lenient")]
    pub median: f64,
}

/// Which part of the protocol a scorer runs (defined by the trainer, which runs it).
pub use crate::train::stage::Stage;

/// The scorer: the fitness of each genome of a batch under the protocol (higher is better;
/// `-inf` failed), in order. A batch lets a GPU backend train all of it as one population;
/// [`each`] makes a scorer from a one-genome function, run in parallel.
pub type Scorer<'a> = dyn Fn(&[(&str, Stage)]) -> Vec<f64> + Sync + 'a;

/// A batch scorer from a one-genome scorer, the batch run in parallel (rayon).
pub fn each<'a>(
    f: impl Fn(&str, Stage) -> f64 + Sync + 'a,
) -> impl Fn(&[(&str, Stage)]) -> Vec<f64> + Sync + 'a {
    move |items: &[(&str, Stage)]| {
        use rayon::prelude::*;
        items.par_iter().map(|(t, s)| f(t, *s)).collect()
    }
}

/// A run's state.
pub struct Engine {
    /// Settings.
    pub config: EvolveConfig,
    pub(super) rng: ChaCha8Rng,
    /// The population.
    pub population: Vec<Individual>,
    /// The functional-equivalence cache.
    pub fec: Fec,
    /// Best genomes found, best first.
    pub hall_of_fame: Vec<Famous>,
    /// Per-generation statistics.
    pub stats: Vec<GenerationStats>,
    /// Candidates trained (cache misses).
    pub trained: u64,
    /// Candidates looked at (trained or answered by the cache).
    pub evaluations: u64,
    /// Generations (or rounds) completed.
    pub generation: usize,
    /// Recent first-stage scores (the hurdle's window).
    pub(super) hurdle_window: Vec<f64>,
    /// What the hurdle did.
    pub hurdle: HurdleStats,
}

fn finite_stats(generation: usize, fits: &[f64]) -> GenerationStats {
    let mut v: Vec<f64> = fits.iter().copied().filter(|f| f.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let best = fits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (avg, min, median) = if v.is_empty() {
        (f64::NAN, f64::NAN, f64::NAN)
    } else {
        let m = if v.len() % 2 == 1 {
            v[v.len() / 2]
        } else {
            (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
        };
        (v.iter().sum::<f64>() / v.len() as f64, v[0], m)
    };
    GenerationStats {
        generation,
        best,
        avg,
        min,
        median,
    }
}

impl Engine {
    /// A population grown from `seed` (MSE in the configured format when `None`): the seed
    /// itself and mutants of it.
    pub fn new(config: EvolveConfig, seed: Option<Genome>) -> Engine {
        let seed = seed.unwrap_or_else(|| Genome::seed_mse(config.format));
        Engine::with_init(config, Init::From(seed))
    }

    /// A population from `init`.
    pub fn with_init(config: EvolveConfig, init: Init) -> Engine {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let n = config.population.max(1);
        let population: Vec<Individual> = match init {
            Init::From(seed) => std::iter::once(seed.clone())
                .chain((1..n).map(|_| seed.mutant(config.mutation_rate, config.max_len, &mut rng)))
                .collect::<Vec<Genome>>(),
            Init::Random => Genome::random_population(config.format, n, &mut rng),
        }
        .into_iter()
        .map(|genome| Individual {
            genome,
            fitness: None,
            age: 0,
        })
        .collect();
        Engine {
            config,
            rng,
            population,
            fec: Fec::default(),
            hall_of_fame: Vec::new(),
            stats: Vec::new(),
            trained: 0,
            evaluations: 0,
            generation: 0,
            hurdle_window: Vec::new(),
            hurdle: HurdleStats::default(),
        }
    }

    /// Fitness of each program: the cache first, then the scorer, one batch per stage.
    /// Applied in order, so the cache's contents do not depend on scheduling.
    fn evaluate(&mut self, codes: &[Genome], scorer: &Scorer) -> Vec<f64> {
        use rayon::prelude::*;
        let opts = CompileOptions::default();
        let texts: Vec<String> = codes.iter().map(Genome::to_text).collect();
        let probes: Vec<Probe> = texts.par_iter().map(|t| probe(t, &opts)).collect();
        let mut fits = vec![f64::NAN; codes.len()];
        let mut todo = Vec::new();
        // Within one batch, equivalent candidates are trained once.
        let mut first_of: std::collections::HashMap<String, usize> = Default::default();
        let mut dup_of = vec![None; codes.len()];
        for (i, p) in probes.iter().enumerate() {
            if let Some(f) = self.fec.lookup(p) {
                fits[i] = f;
            } else if let Probe::Keys { fingerprint, .. } = p {
                match first_of.get(fingerprint) {
                    Some(j) => dup_of[i] = Some(*j),
                    None => {
                        first_of.insert(fingerprint.clone(), i);
                        todo.push(i);
                    }
                }
            }
        }
        let scored: Vec<f64> = match self.config.hurdle {
            None => scorer(
                &todo
                    .iter()
                    .map(|i| (texts[*i].as_str(), Stage::Full))
                    .collect::<Vec<_>>(),
            ),
            Some(h) => {
                let first: Vec<f64> = scorer(
                    &todo
                        .iter()
                        .map(|i| (texts[*i].as_str(), Stage::First))
                        .collect::<Vec<_>>(),
                );
                // The threshold comes from earlier batches only, so it does not depend on
                // the order work finishes in.
                let threshold = self.hurdle_threshold(h);
                let pass: Vec<bool> = first
                    .iter()
                    .map(|f| f.is_finite() && threshold.is_none_or(|t| *f >= t))
                    .collect();
                let rest_items: Vec<(&str, Stage)> = todo
                    .iter()
                    .zip(&first)
                    .zip(&pass)
                    .filter(|(_, p)| **p)
                    .map(|((i, f), _)| (texts[*i].as_str(), Stage::Rest { first: *f }))
                    .collect();
                let mut rest = scorer(&rest_items).into_iter();
                let full: Vec<f64> = first
                    .iter()
                    .zip(&pass)
                    .map(|(f, p)| {
                        if *p {
                            rest.next().unwrap_or(f64::NEG_INFINITY)
                        } else {
                            *f
                        }
                    })
                    .collect();
                for (f, p) in first.iter().zip(&pass) {
                    if *p {
                        self.hurdle.passed += 1;
                    } else if f.is_finite() {
                        self.hurdle.stopped += 1;
                    } else {
                        self.hurdle.failed += 1;
                    }
                    if f.is_finite() {
                        self.hurdle_window.push(*f);
                    }
                }
                let excess = self.hurdle_window.len().saturating_sub(h.window.max(1));
                self.hurdle_window.drain(..excess);
                full
            }
        };
        assert_eq!(
            scored.len(),
            todo.len(),
            "the scorer must return one fitness per genome"
        );
        for (i, f) in todo.iter().zip(scored) {
            fits[*i] = f;
            self.fec.insert(&probes[*i], f);
            self.trained += 1;
            // Only newly trained candidates can enter the hall of fame: one the cache
            // answered is equivalent to a genome already seen, so the hall holds distinct
            // functions.
            self.remember(&texts[*i], f, self.evaluations + *i as u64 + 1);
        }
        for i in 0..codes.len() {
            if let Some(j) = dup_of[i] {
                fits[i] = fits[j];
                self.fec.stats.fingerprint_hits += 1;
            }
        }
        self.evaluations += codes.len() as u64;
        fits
    }

    /// The first-stage score a candidate must reach, once the window has enough scores.
    fn hurdle_threshold(&self, h: HurdleConfig) -> Option<f64> {
        if self.hurdle_window.len() < h.min_samples.max(1) {
            return None;
        }
        let mut v = self.hurdle_window.clone();
        v.sort_by(f64::total_cmp);
        let k = ((h.percentile.clamp(0.0, 100.0) / 100.0) * (v.len() - 1) as f64).round() as usize;
        Some(v[k])
    }

    /// Put a genome in the hall of fame if it earns a place (distinct genomes only).
    fn remember(&mut self, text: &str, fitness: f64, found_at: u64) {
        if !fitness.is_finite() || self.hall_of_fame.iter().any(|f| f.genome == text) {
            return;
        }
        let cap = self.config.hall_of_fame.max(1);
        if self.hall_of_fame.len() >= cap
            && self
                .hall_of_fame
                .last()
                .is_some_and(|w| w.fitness >= fitness)
        {
            return;
        }
        self.hall_of_fame.push(Famous {
            genome: text.to_string(),
            fitness,
            found_at,
        });
        // Stable: earlier finds stay ahead of later ones with the same fitness.
        self.hall_of_fame
            .sort_by(|a, b| b.fitness.total_cmp(&a.fitness));
        self.hall_of_fame.truncate(cap);
    }

    /// Evaluate every member without a fitness.
    fn evaluate_population(&mut self, scorer: &Scorer) {
        let idx: Vec<usize> = (0..self.population.len())
            .filter(|i| self.population[*i].fitness.is_none())
            .collect();
        let codes: Vec<Genome> = idx
            .iter()
            .map(|i| self.population[*i].genome.clone())
            .collect();
        let fits = self.evaluate(&codes, scorer);
        for (i, f) in idx.into_iter().zip(fits) {
            self.population[i].fitness = Some(f);
        }
    }

    /// A member's fitness for selection: `-inf` when unknown or NaN (a NaN would win or
    /// lose tournaments depending on where it was drawn).
    fn fitness_of(&self, i: usize) -> f64 {
        self.population[i]
            .fitness
            .filter(|f| !f.is_nan())
            .unwrap_or(f64::NEG_INFINITY)
    }

    /// Statistics of the whole (evaluated) population for this generation.
    fn record_population_stats(&mut self) {
        let fits: Vec<f64> = (0..self.population.len())
            .map(|i| self.fitness_of(i))
            .collect();
        self.stats.push(finite_stats(self.generation, &fits));
    }

    /// How member `a` ranks against member `b` in a tournament (`Less`: `a` is better):
    /// higher fitness first, then (with parsimony) the smaller genome, then the earlier member.
    fn rank(&self, a: usize, b: usize) -> std::cmp::Ordering {
        let by_size = if self.config.parsimony {
            self.population[a]
                .genome
                .size()
                .cmp(&self.population[b].genome.size())
        } else {
            std::cmp::Ordering::Equal
        };
        self.fitness_of(b)
            .total_cmp(&self.fitness_of(a))
            .then(by_size)
            .then(a.cmp(&b))
    }

    /// Indices of a tournament, best first.
    fn tournament(&mut self) -> Vec<usize> {
        let n = self.population.len();
        let mut t = sample(&mut self.rng, n, self.config.tournament.clamp(1, n)).into_vec();
        t.sort_by(|a, b| self.rank(*a, *b));
        t
    }

    /// Whether this child comes from the IR's operators (see [`Operators`]).
    fn use_ir(&mut self) -> bool {
        match self.config.operators {
            Operators::Native => false,
            Operators::Ir => true,
            Operators::Both => self.rng.random_bool(0.5),
        }
    }

    /// A mutant of `g` by the configured operators.
    fn mutant_of(&mut self, g: &Genome, rate: f64, limit: usize) -> Genome {
        if self.use_ir()
            && let Some(m) = super::ir_ops::mutant(g, limit, &mut self.rng)
        {
            return m;
        }
        g.mutant(rate, limit, &mut self.rng)
    }

    /// A crossover child of `a` and `b` by the configured operators, within the limit.
    fn crossover_child(&mut self, a: &Genome, b: &Genome, limit: usize) -> Genome {
        if self.use_ir()
            && let Some(c) = super::ir_ops::child(a, b, limit, &mut self.rng)
        {
            return c;
        }
        a.crossover(b, &mut self.rng)
            .within_limit(&[a, b], limit, &mut self.rng)
    }

    /// One child from a tournament: crossover of the two best, or a mutant of the best.
    fn child(&mut self) -> Genome {
        let t = self.tournament();
        let (a, b) = (t[0], t[t.len().min(2) - 1]);
        let (pa, pb) = (
            self.population[a].genome.clone(),
            self.population[b].genome.clone(),
        );
        let limit = self.config.max_len;
        let mut child = if self
            .rng
            .random_bool(self.config.crossover_rate.clamp(0.0, 1.0))
        {
            // Crossover can grow genomes without bound: bring the child back within the
            // limit.
            self.crossover_child(&pa, &pb, limit)
        } else {
            self.mutant_of(&pa, self.config.mutation_rate, limit)
        };
        // A child identical to a parent wastes an evaluation: mutate until it differs (as
        // AutoML-Zero, whose every mutation changes something), within a bound.
        for _ in 0..MAX_RETRIES {
            if child != pa && child != pb {
                break;
            }
            child = self.mutant_of(&child, self.config.mutation_rate.max(0.5), limit);
        }
        child
    }

    /// DEAP's `selTournament`: `k` winners, each the best of `tournament` aspirants drawn
    /// with replacement (ties to the earlier member).
    fn select_with_replacement(&mut self, k: usize) -> Vec<usize> {
        let n = self.population.len();
        (0..k)
            .map(|_| {
                (0..self.config.tournament.max(1))
                    .map(|_| self.rng.random_range(0..n))
                    .collect::<Vec<usize>>()
                    .into_iter()
                    .reduce(|best, i| if self.rank(i, best).is_lt() { i } else { best })
                    .unwrap_or(0)
            })
            .collect()
    }

    /// The next population of generational GP (DEAP's `varAnd` over a tournament
    /// selection): neighbouring pairs crossed with the crossover rate, then each child
    /// mutated with the mutation rate; a child too big is brought within the limit (a DAML
    /// tree too tall is its parent again). Children neither crossed nor mutated keep their
    /// fitness.
    fn next_generation(&mut self) -> Vec<Individual> {
        let n = self.population.len();
        let limit = self.config.max_len;
        let picks = self.select_with_replacement(n);
        let mut next: Vec<Individual> = picks
            .iter()
            .map(|i| {
                let mut m = self.population[*i].clone();
                m.age += 1;
                m
            })
            .collect();
        let cx = self.config.crossover_rate.clamp(0.0, 1.0);
        let mut i = 1;
        while i < n {
            if self.rng.random_bool(cx) {
                let (a, b) = (next[i - 1].genome.clone(), next[i].genome.clone());
                let (c, d) = a.mate(&b, &mut self.rng);
                let c = c.within_limit(&[&a, &b], limit, &mut self.rng);
                let d = d.within_limit(&[&a, &b], limit, &mut self.rng);
                next[i - 1] = Individual {
                    genome: c,
                    fitness: None,
                    age: 0,
                };
                next[i] = Individual {
                    genome: d,
                    fitness: None,
                    age: 0,
                };
            }
            i += 2;
        }
        let mutpb = self.config.mutation_rate.clamp(0.0, 1.0);
        for m in next.iter_mut() {
            if self.rng.random_bool(mutpb) {
                let parent = m.genome.clone();
                // AMM's mutation is per instruction: a child chosen for mutation gets at
                // least one change on average.
                let rate = match parent {
                    Genome::Amm(ref c) => {
                        (1.0 / c.len().saturating_sub(3).max(1) as f64).max(mutpb)
                    }
                    _ => mutpb,
                };
                m.genome = self.mutant_of(&parent, rate, limit);
                m.fitness = None;
                m.age = 0;
            }
        }
        next
    }

    /// One generation (steady-state) or round (regularized). Children born in a
    /// steady-state generation take part in tournaments only once evaluated, in the next.
    pub fn step(&mut self, scorer: &Scorer) {
        match self.config.strategy {
            Strategy::SteadyState => {
                // As AMM: generation 0 evaluates the first population; each later generation
                // first makes one child per member (each replacing the oldest member), chosen
                // by the previous generation's fitnesses, then evaluates the children. A
                // run's state after k generations is the same whatever its length, so an
                // interrupted run resumes exactly.
                if self.generation > 0 {
                    for _ in 0..self.population.len() {
                        for m in self.population.iter_mut() {
                            m.age += 1;
                        }
                        let child = self.child();
                        let oldest = (0..self.population.len())
                            .max_by_key(|i| (self.population[*i].age, std::cmp::Reverse(*i)))
                            .unwrap_or(0);
                        self.population[oldest] = Individual {
                            genome: child,
                            fitness: None,
                            age: 0,
                        };
                    }
                }
                self.evaluate_population(scorer);
                self.record_population_stats();
            }
            Strategy::Generational => {
                if self.generation > 0 {
                    self.population = self.next_generation();
                }
                self.evaluate_population(scorer);
                self.record_population_stats();
            }
            Strategy::Regularized => {
                self.evaluate_population(scorer);
                let children: Vec<Genome> = (0..self.config.round.max(1))
                    .map(|_| self.child())
                    .collect();
                let fits = self.evaluate(&children, scorer);
                self.stats.push(finite_stats(self.generation, &fits));
                for (genome, f) in children.into_iter().zip(fits) {
                    self.population.remove(0);
                    self.population.push(Individual {
                        genome,
                        fitness: Some(f),
                        age: 0,
                    });
                }
            }
        }
        self.generation += 1;
    }

    /// Run the configured number of generations, stopping early when `stop` is set. Calls
    /// `on_step` after each generation.
    pub fn run(&mut self, scorer: &Scorer, stop: &AtomicBool, on_step: &mut dyn FnMut(&Engine)) {
        while self.generation < self.config.generations
            && self
                .config
                .max_evaluations
                .is_none_or(|m| self.evaluations < m)
            && !stop.load(Ordering::Relaxed)
        {
            self.step(scorer);
            on_step(self);
        }
    }

    /// The best genome found so far.
    pub fn best(&self) -> Option<&Famous> {
        self.hall_of_fame.first()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evolve::genome::GenomeFormat;

    /// With parsimony, a tie in fitness goes to the smaller genome; without, to the earlier.
    #[test]
    fn parsimony_breaks_fitness_ties_towards_smaller_genomes() {
        for parsimony in [false, true] {
            let config = EvolveConfig {
                format: GenomeFormat::Daml,
                population: 2,
                tournament: 2,
                parsimony,
                ..EvolveConfig::default()
            };
            let mut e = Engine::with_init(config, Init::Random);
            let big = Genome::parse("safe_add(sin(x), safe_mul(y, half))").unwrap();
            let small = Genome::parse("sin(x)").unwrap();
            e.population[0].genome = big.clone();
            e.population[1].genome = small.clone();
            for m in e.population.iter_mut() {
                m.fitness = Some(0.5);
            }
            let want = if parsimony { &small } else { &big };
            let winner = e.tournament()[0];
            assert_eq!(&e.population[winner].genome, want);
            // Aspirants are drawn with replacement: the smaller genome wins whenever it is
            // drawn (3 times in 4) with parsimony, only when drawn twice (1 in 4) without.
            let picks = e.select_with_replacement(400);
            let small_wins = picks
                .iter()
                .filter(|i| e.population[**i].genome == small)
                .count();
            if parsimony {
                assert!(small_wins > 250, "{small_wins}");
            } else {
                assert!(small_wins < 150, "{small_wins}");
            }
            // Fitness still comes first.
            e.population[0].fitness = Some(0.6);
            assert_eq!(e.tournament()[0], 0);
        }
    }
}
