//! The discovery pipeline behind `ncpc discover`: a search on a cheap proxy protocol (the
//! evolution engine, with the protocol's hurdle when it has seeds: a multi-fidelity first
//! stage), the constants of the best distinct structures tuned with CMA-ES, and a transfer
//! check: the tuned candidates and the baselines (cross-entropy, MSE) re-scored under a
//! held-out protocol (other data, longer training, fresh seeds). The winner is the candidate
//! with the best held-out accuracy, not the best proxy fitness; the evidence of every step is
//! kept (docs/discovery.md).

use super::amm_ops::from_text;
use super::engine::{Engine, EvolveConfig, Init, Stage};
use super::genome::{Genome, GenomeFormat};
use super::tune::{Tuned, tune};
use crate::formats::CompileOptions;
use crate::train::run::{Genome as TrainGenome, Prepared, baselines, evaluate};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How to run the pipeline.
#[derive(Clone, Debug)]
pub struct DiscoverConfig {
    /// The search's settings (format, population, seed, ...); its generation limit is
    /// replaced by the time budget.
    pub evolve: EvolveConfig,
    /// Start from random genomes (else from MSE).
    pub random: bool,
    /// The whole budget.
    pub time: Duration,
    /// The share of it for the search (the rest for tuning and the transfer check).
    pub search_share: f64,
    /// Distinct structures tuned and checked.
    pub top: usize,
    /// CMA-ES scores per structure (AMM programs; other formats are not tuned).
    pub tune_evaluations: usize,
    /// Distinct structures of the search's hall of fame re-scored at the higher fidelity
    /// (when one is given) before the best `top` of them go on.
    pub rescore: usize,
}

/// One candidate's evidence.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Candidate {
    /// The program.
    pub genome: String,
    /// Its proxy fitness after the search.
    #[serde(with = "crate::numbers::lenient")]
    pub proxy_fitness: f64,
    /// Its fitness at the higher fidelity (before tuning), when that stage ran.
    #[serde(with = "crate::numbers::lenient")]
    pub fidelity_fitness: f64,
    /// The constant tuning, when it ran.
    pub tuned: Option<Tuned>,
    /// Held-out accuracy per seed.
    pub transfer_accuracy: Vec<f64>,
    /// Their mean and (sample) standard deviation.
    #[serde(with = "crate::numbers::lenient")]
    pub transfer_mean: f64,
    /// Standard deviation over seeds.
    #[serde(with = "crate::numbers::lenient")]
    pub transfer_std: f64,
    /// Why the held-out runs failed, if they did.
    pub transfer_failure: Option<String>,
}

/// A baseline's held-out accuracy.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Baseline {
    /// Its name (`cross-entropy`, `mse`).
    pub name: String,
    /// Accuracy per seed.
    pub accuracy: Vec<f64>,
    /// Mean.
    #[serde(with = "crate::numbers::lenient")]
    pub mean: f64,
    /// Standard deviation over seeds.
    #[serde(with = "crate::numbers::lenient")]
    pub std: f64,
}

/// What the pipeline found, with its evidence.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Discovery {
    /// The proxy protocol's name and the held-out one's.
    pub proxy: String,
    /// The held-out protocol.
    pub transfer: String,
    /// The higher-fidelity protocol the structures were re-scored and tuned on, when any.
    pub fidelity: Option<String>,
    /// Candidates scored by the search.
    pub evaluations: u64,
    /// Seconds of search, tuning and transfer check.
    pub seconds: [f64; 3],
    /// The candidates, best held-out mean first.
    pub candidates: Vec<Candidate>,
    /// Cross-entropy and MSE under the held-out protocol, same seeds.
    pub baselines: Vec<Baseline>,
    /// The winner's index in `candidates` (the best held-out mean), when any candidate ran.
    pub winner: Option<usize>,
    /// Whether the winner beats cross-entropy's held-out mean by more than the larger of the
    /// two standard deviations (the bar for "beats").
    pub beats_cross_entropy: bool,
}

/// A protocol's name as the command line spells it.
fn pname(p: &crate::train::protocol::Protocol) -> String {
    use clap::ValueEnum;
    p.name
        .to_possible_value()
        .map_or_else(|| format!("{:?}", p.name), |v| v.get_name().to_string())
}

fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    if xs.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let m = xs.iter().sum::<f64>() / n;
    let v = if xs.len() > 1 {
        xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (m, v.sqrt())
}

/// Run the pipeline: search on `proxy`, tune, check on `transfer`. `progress` hears a line
/// per step.
pub fn discover(
    cfg: &DiscoverConfig,
    proxy: &Prepared,
    mid: Option<&Prepared>,
    transfer: &Prepared,
    stop: &AtomicBool,
    progress: &mut dyn FnMut(&str),
) -> Discovery {
    let t0 = Instant::now();
    // 1. The search, to its share of the time.
    let mut config = cfg.evolve.clone();
    config.generations = usize::MAX;
    if config.hurdle.is_none() && proxy.splits_by_seed() {
        config.hurdle = Some(super::engine::HurdleConfig::default());
    }
    let format = config.format;
    let init = if cfg.random {
        Init::Random
    } else {
        Init::From(Genome::seed_mse(format))
    };
    let mut engine = Engine::with_init(config, init);
    let search_time = cfg.time.mul_f64(cfg.search_share.clamp(0.05, 1.0));
    let search_stop = AtomicBool::new(false);
    let score = |items: &[(&str, Stage)]| proxy.score_batch(items);
    let started = Instant::now();
    engine.run(&score, &search_stop, &mut |e| {
        if started.elapsed() >= search_time || stop.load(Ordering::Relaxed) {
            search_stop.store(true, Ordering::Relaxed);
        }
        let _ = e;
    });
    let search_seconds = t0.elapsed().as_secs_f64();
    progress(&format!(
        "search: {} candidates in {search_seconds:.0} s, best proxy fitness {:.4}",
        engine.evaluations,
        engine.best().map_or(f64::NAN, |b| b.fitness)
    ));

    // 2. Tune the constants of the best distinct structures.
    let t1 = Instant::now();
    let keep = if mid.is_some() {
        cfg.rescore.max(cfg.top)
    } else {
        cfg.top
    };
    let mut picked: Vec<(String, f64)> = Vec::new();
    for f in &engine.hall_of_fame {
        if picked.len() >= keep.max(1) {
            break;
        }
        if f.fitness.is_finite() && !picked.iter().any(|(g, _)| *g == f.genome) {
            picked.push((f.genome.clone(), f.fitness));
        }
    }
    // 2a. Successive halving across fidelities: the picked structures trained longer on
    // more data; the best `top` go on, judged there.
    let tuning_protocol = mid.unwrap_or(proxy);
    let mut at_mid: Vec<f64> = vec![f64::NAN; picked.len()];
    if let Some(m) = mid
        && !stop.load(Ordering::Relaxed)
    {
        let items: Vec<(&str, Stage)> = picked
            .iter()
            .map(|(g, _)| (g.as_str(), Stage::Full))
            .collect();
        at_mid = m.score_batch(&items);
        let mut order: Vec<usize> = (0..picked.len()).collect();
        order.sort_by(|a, b| at_mid[*b].total_cmp(&at_mid[*a]));
        order.truncate(cfg.top.max(1));
        progress(&format!(
            "fidelity: {} structures re-scored, kept {} (best {:.4})",
            picked.len(),
            order.len(),
            order.first().map_or(f64::NAN, |i| at_mid[*i])
        ));
        let fitness: Vec<f64> = order.iter().map(|i| at_mid[*i]).collect();
        picked = order.iter().map(|i| picked[*i].clone()).collect();
        at_mid = fitness;
    }
    let mut candidates: Vec<Candidate> = Vec::new();
    for (k, (genome, proxy_fitness)) in picked.into_iter().enumerate() {
        let fitness = if at_mid[k].is_nan() {
            proxy_fitness
        } else {
            at_mid[k]
        };
        let tuned = match (format, from_text(&genome)) {
            (GenomeFormat::Amm, Ok(code))
                if cfg.tune_evaluations > 0 && !stop.load(Ordering::Relaxed) =>
            {
                let t = tune(
                    &code,
                    fitness,
                    cfg.tune_evaluations,
                    cfg.evolve.seed ^ k as u64,
                    &mut |text| tuning_protocol.score(text),
                );
                progress(&format!(
                    "tuning {}: {} constants, {:.4} -> {:.4} in {} scores",
                    k + 1,
                    t.constants,
                    t.before_fitness,
                    t.fitness,
                    t.evaluations
                ));
                Some(t)
            }
            _ => None,
        };
        let mut c = candidate(
            tuned.as_ref().map_or(genome, |t| t.genome.clone()),
            proxy_fitness,
            tuned,
        );
        c.fidelity_fitness = at_mid[k];
        candidates.push(c);
    }
    let tune_seconds = t1.elapsed().as_secs_f64();

    // 3. The transfer check: every candidate and the baselines, same held-out seeds.
    let t2 = Instant::now();
    let checked = transfer_check(candidates, transfer, progress);
    Discovery {
        proxy: pname(&proxy.protocol),
        fidelity: mid.map(|m| describe_fidelity(&proxy.protocol, &m.protocol)),
        transfer: checked.protocol.clone(),
        evaluations: engine.evaluations,
        seconds: [search_seconds, tune_seconds, t2.elapsed().as_secs_f64()],
        candidates: checked.candidates,
        baselines: checked.baselines,
        winner: checked.winner,
        beats_cross_entropy: checked.beats_cross_entropy,
    }
}

/// What the higher fidelity changed, for the record.
fn describe_fidelity(
    proxy: &crate::train::protocol::Protocol,
    mid: &crate::train::protocol::Protocol,
) -> String {
    let train = |p: &crate::train::protocol::Protocol| match &p.split {
        crate::train::protocol::SplitRule::Permuted { train, .. } => Some(*train),
        crate::train::protocol::SplitRule::TestSet { train, .. } => *train,
    };
    format!(
        "{}: {} steps (proxy {}), {} training samples (proxy {}), {} seeds",
        pname(mid),
        mid.steps.map_or("an epoch of".into(), |s| s.to_string()),
        proxy.steps.map_or("an epoch of".into(), |s| s.to_string()),
        train(mid).map_or("all".into(), |s| s.to_string()),
        train(proxy).map_or("all".into(), |s| s.to_string()),
        mid.seeds
    )
}

/// The held-out check of some candidates: each, cross-entropy and MSE under `transfer`'s
/// protocol and seeds.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TransferCheck {
    /// The held-out protocol.
    pub protocol: String,
    /// The candidates, best held-out mean first.
    pub candidates: Vec<Candidate>,
    /// Cross-entropy and MSE, same seeds.
    pub baselines: Vec<Baseline>,
    /// The best candidate's index, when any ran.
    pub winner: Option<usize>,
    /// Whether the winner beats cross-entropy by more than the larger standard deviation.
    pub beats_cross_entropy: bool,
}

/// Re-score `candidates` under the held-out protocol of `transfer`, with the baselines.
pub fn transfer_check(
    mut candidates: Vec<Candidate>,
    transfer: &Prepared,
    progress: &mut dyn FnMut(&str),
) -> TransferCheck {
    let mut protocol = transfer.protocol.clone();
    protocol.baselines = true;
    let opts = crate::train::run::EvalOptions::default();
    let mut baseline_rows: Vec<Baseline> = Vec::new();
    for c in candidates.iter_mut() {
        let g = TrainGenome {
            name: "candidate".into(),
            text: c.genome.clone(),
            opts: CompileOptions::default(),
        };
        match evaluate(&g, &protocol, &transfer.data, opts, Vec::new(), &|| {}) {
            Ok(report) => {
                c.transfer_accuracy = report.candidate.runs.iter().map(|r| r.accuracy).collect();
                (c.transfer_mean, c.transfer_std) = mean_std(&c.transfer_accuracy);
                c.transfer_failure = report.candidate.failure.clone();
                if baseline_rows.is_empty() {
                    for b in &report.baselines {
                        let acc: Vec<f64> = b.runs.iter().map(|r| r.accuracy).collect();
                        let (mean, std) = mean_std(&acc);
                        baseline_rows.push(Baseline {
                            name: b.name.clone(),
                            accuracy: acc,
                            mean,
                            std,
                        });
                    }
                }
            }
            Err(e) => c.transfer_failure = Some(e.to_string()),
        }
        progress(&format!(
            "transfer: {:.4} ± {:.4} ({})",
            c.transfer_mean,
            c.transfer_std,
            pname(&protocol)
        ));
    }
    if baseline_rows.is_empty() {
        // No candidate ran: the baselines still tell what the held-out protocol gives.
        for b in baselines() {
            if let Ok(r) = evaluate(&b, &protocol, &transfer.data, opts, Vec::new(), &|| {}) {
                let acc: Vec<f64> = r.candidate.runs.iter().map(|x| x.accuracy).collect();
                let (mean, std) = mean_std(&acc);
                baseline_rows.push(Baseline {
                    name: b.name.clone(),
                    accuracy: acc,
                    mean,
                    std,
                });
            }
        }
    }
    candidates.sort_by(|a, b| {
        let key = |c: &Candidate| {
            if c.transfer_mean.is_nan() {
                f64::NEG_INFINITY
            } else {
                c.transfer_mean
            }
        };
        key(b).total_cmp(&key(a))
    });
    let winner = candidates
        .first()
        .filter(|c| c.transfer_mean.is_finite())
        .map(|_| 0);
    let ce = baseline_rows.iter().find(|b| b.name.contains("cross"));
    let beats_cross_entropy = match (winner.map(|i| &candidates[i]), ce) {
        (Some(w), Some(ce)) => w.transfer_mean - ce.mean > w.transfer_std.max(ce.std),
        _ => false,
    };
    TransferCheck {
        protocol: pname(&protocol),
        candidates,
        baselines: baseline_rows,
        winner,
        beats_cross_entropy,
    }
}

/// A candidate found by a search, before the held-out check.
pub fn candidate(genome: String, proxy_fitness: f64, tuned: Option<Tuned>) -> Candidate {
    Candidate {
        genome,
        proxy_fitness,
        fidelity_fitness: f64::NAN,
        tuned,
        transfer_accuracy: Vec::new(),
        transfer_mean: f64::NAN,
        transfer_std: f64::NAN,
        transfer_failure: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_standard_deviation() {
        let (m, s) = mean_std(&[1.0, 2.0, 3.0]);
        assert_eq!(m, 2.0);
        assert!((s - 1.0).abs() < 1e-12);
        assert_eq!(mean_std(&[0.5]), (0.5, 0.0));
        assert!(mean_std(&[]).0.is_nan());
    }
}
