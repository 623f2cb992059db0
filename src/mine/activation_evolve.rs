//! Evolve tasks of activation components: AMM's genetic operators (src/evolve/amm_ops.rs)
//! over activation programs, each candidate scored as AMM scores an activation that is the
//! first function of a fresh task (its own network, no weights or activation carried over), so
//! fitness belongs to the candidate alone. The search is a small steady-state GA: the parents
//! scored first, then each generation's children from tournament-picked parents by crossover
//! and mutation, the population kept at its best. Identical programs (after AMM's register
//! validator) are scored once.

use super::CycleProgress;
use crate::evolve::amm_ops::{Code, crossover, mutate, repair, to_text};
use crate::train::amm_exact::Outcome;
use crate::train::amm_exact::activation::ActivationExact;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

/// The best program found and its score, with the candidates scored.
pub struct Found {
    /// The program (AMM JSON).
    pub genome: String,
    /// Its score (validation accuracy; -inf for a failed one).
    pub fitness: f64,
    /// Candidates looked at.
    pub evaluations: u64,
    /// Of which trained (the rest were programs already scored).
    pub trained: u64,
}

/// A candidate's fitness: its score as the first function of a fresh AMM task.
fn fitness(ev: &mut ActivationExact, text: &str) -> f64 {
    match ev.evaluate_task(&[text]).into_iter().next() {
        Some(Outcome::Scored { fitness, .. }) if !fitness.is_nan() => fitness,
        _ => f64::NEG_INFINITY,
    }
}

/// Search from `parents` (already scored) for `generations` generations of `population`.
#[allow(clippy::too_many_arguments)]
pub fn search(
    ev: &mut ActivationExact,
    parents: &[(Code, f64)],
    population: usize,
    generations: usize,
    mutation_rate: f64,
    seed: u64,
    stop: &AtomicBool,
    progress: &(dyn Fn(CycleProgress) + Sync),
) -> Found {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut seen: HashMap<String, f64> = HashMap::new();
    let mut pop: Vec<(Code, f64)> = parents.to_vec();
    for (c, f) in &pop {
        seen.insert(to_text(c), *f);
    }
    let (mut evaluations, mut trained) = (0u64, 0u64);
    let population = population.max(2);
    for generation in 1..=generations {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let mut children = Vec::with_capacity(population);
        while children.len() < population && !stop.load(Ordering::Relaxed) {
            let pick = |rng: &mut ChaCha8Rng| {
                let a = &pop[rng.random_range(0..pop.len())];
                let b = &pop[rng.random_range(0..pop.len())];
                if a.1 >= b.1 { a.0.clone() } else { b.0.clone() }
            };
            let mut child = if pop.len() > 1 && rng.random_bool(0.5) {
                let (a, b) = (pick(&mut rng), pick(&mut rng));
                crossover(&a, &b, &mut rng)
            } else {
                pick(&mut rng)
            };
            child = mutate(&child, mutation_rate, &mut rng);
            repair(&mut child);
            let text = to_text(&child);
            evaluations += 1;
            let f = match seen.get(&text) {
                Some(f) => *f,
                None => {
                    trained += 1;
                    let f = fitness(ev, &text);
                    seen.insert(text, f);
                    f
                }
            };
            children.push((child, f));
        }
        pop.extend(children);
        pop.sort_by(|a, b| b.1.total_cmp(&a.1));
        pop.truncate(population);
        progress(CycleProgress::Evolving {
            generation,
            generations,
            best: pop[0].1,
            evaluations,
        });
    }
    let best = &pop[0];
    Found {
        genome: to_text(&best.0),
        fitness: best.1,
        evaluations,
        trained,
    }
}

/// Score the parents, each as the first function of a fresh task.
pub fn score_parents(ev: &mut ActivationExact, parents: &[Code]) -> Vec<f64> {
    parents.iter().map(|c| fitness(ev, &to_text(c))).collect()
}
