//! Training runs and scoring: one network trained with one loss under one seed, and a
//! candidate's report over all seeds with its baselines.
//!
//! Determinism: each run is single-threaded with fixed summation orders and seeded
//! generators; runs execute in parallel (rayon) but results are gathered in a fixed order,
//! so a score does not depend on the thread count or on how work interleaves.

use super::candidate::CandidateLoss;
use super::linalg::{SparseRows, argmax};
use super::model::{Input, Mlp, Workspace};
use super::optim::Optimizer;
use super::protocol::{Metric, Protocol, Sampling, Scoring};
use super::task::TaskData;
use crate::formats::CompileOptions;
use crate::jit::MathMode;
use crate::loss::{Backend, LossError, compile_for_inputs};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// Rows per chunk when validating (bounds the workspace).
const VAL_CHUNK: usize = 500;

/// Validation accuracy after a given number of steps.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CurvePoint {
    /// Steps trained.
    pub step: usize,
    /// Validation accuracy.
    pub accuracy: f64,
}

/// One training run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SeedRun {
    /// The seed (initial weights, batch order, dropout).
    pub seed: u64,
    /// Steps trained.
    pub steps: usize,
    /// Final validation accuracy (NaN when the run failed before validating).
    #[serde(with = "crate::numbers::lenient")]
    pub accuracy: f64,
    /// Final validation cross-entropy (NaN when the run failed).
    #[serde(with = "crate::numbers::lenient")]
    pub cross_entropy: f64,
    /// Validation accuracy during training (protocols with `curve_every`).
    pub curve: Vec<CurvePoint>,
    /// Training loss at each step.
    pub losses: Vec<f32>,
    /// Why the run failed (early stop, a non-finite loss, a fault, a hurdle), if it did.
    pub failure: Option<String>,
}

/// Validation accuracy and cross-entropy of the network.
fn validate(model: &Mlp, data: &TaskData, ws: &mut Workspace) -> (f64, f64) {
    let n = data.val_y.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let (mut correct, mut ce) = (0usize, 0f64);
    let c = data.classes;
    let mut chunk = SparseRows::default();
    for start in (0..n).step_by(VAL_CHUNK) {
        let rows = VAL_CHUNK.min(n - start);
        let input = match &data.val_sparse {
            Some(sx) => {
                sx.gather(start..start + rows, &mut chunk);
                Input::Sparse(&chunk)
            }
            None => Input::Dense(&data.val_x[start * data.dim..(start + rows) * data.dim]),
        };
        let logits = model.forward_input(input, None, ws);
        for (r, row) in logits.chunks_exact(c).enumerate() {
            let label = data.val_y[start + r] as usize;
            correct += (argmax(row) == label) as usize;
            // log-softmax in f64: logsumexp - logit[label].
            let m = row.iter().fold(f64::NEG_INFINITY, |m, v| m.max(*v as f64));
            let lse = m + row.iter().map(|v| (*v as f64 - m).exp()).sum::<f64>().ln();
            ce += lse - row[label] as f64;
        }
    }
    (correct as f64 / n as f64, ce / n as f64)
}

/// Draws training batches in a protocol's order.
struct Batches {
    rng: ChaCha8Rng,
    sampling: Sampling,
    n: usize,
    order: Vec<usize>,
    pos: usize,
}

impl Batches {
    fn new(sampling: Sampling, n: usize, seed: u64) -> Batches {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(1);
        Batches {
            rng,
            sampling,
            n,
            order: Vec::new(),
            pos: n,
        }
    }

    fn next(&mut self, size: usize, out: &mut Vec<usize>) {
        use rand::seq::SliceRandom;
        out.clear();
        match self.sampling {
            Sampling::WithReplacement => {
                out.extend((0..size).map(|_| self.rng.random_range(0..self.n)));
            }
            Sampling::Epochs => {
                // A shuffling DataLoader: the last batch of an epoch may be short.
                if self.pos >= self.n {
                    self.order = (0..self.n).collect();
                    self.order.shuffle(&mut self.rng);
                    self.pos = 0;
                }
                let end = (self.pos + size).min(self.n);
                out.extend_from_slice(&self.order[self.pos..end]);
                self.pos = end;
            }
        }
    }
}

/// Train one network with `loss` under `seed` as the protocol says.
pub fn train_run(loss: &mut CandidateLoss, data: &TaskData, p: &Protocol, seed: u64) -> SeedRun {
    let c = data.classes;
    let mut model = Mlp::new(p.model(data.dim, c), seed).with_input_affine(Some(data.input));
    let mut opt = Optimizer::new(p.optimizer, p.lr, model.params.len());
    let mut batches = Batches::new(p.sampling, data.train_y.len(), seed);
    let mut dropout_rng = ChaCha8Rng::seed_from_u64(seed);
    dropout_rng.set_stream(2);
    let mut ws = Workspace::default();
    let steps = p.steps_for(data.train_y.len());
    let mut run = SeedRun {
        seed,
        steps: 0,
        accuracy: f64::NAN,
        cross_entropy: f64::NAN,
        curve: Vec::new(),
        losses: Vec::new(),
        failure: None,
    };
    let (mut idx, mut bx, mut by, mut grad) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut sparse_batch = SparseRows::default();
    let mut pgrads = vec![0f32; model.params.len()];
    let (mut best, mut stale) = (f32::INFINITY, 0usize);
    for step in 0..steps {
        batches.next(p.batch, &mut idx);
        let b = idx.len();
        by.clear();
        by.resize(b * c, 0.0);
        for (r, i) in idx.iter().enumerate() {
            by[r * c + data.train_y[*i] as usize] = 1.0;
        }
        let input = match &data.train_sparse {
            Some(sx) => {
                sx.gather(idx.iter().copied(), &mut sparse_batch);
                Input::Sparse(&sparse_batch)
            }
            None => {
                bx.clear();
                for i in &idx {
                    bx.extend_from_slice(&data.train_x[i * data.dim..(i + 1) * data.dim]);
                }
                Input::Dense(&bx)
            }
        };
        let logits = model
            .forward_input(input, Some(&mut dropout_rng), &mut ws)
            .to_vec();
        let value = match loss.loss_and_grad(&logits, &by, b, c, &mut grad) {
            Ok(v) => v,
            Err(f) => {
                run.failure = Some(format!("step {}: {f}", step + 1));
                return run;
            }
        };
        model.backward(&mut ws, &grad, b, &mut pgrads);
        opt.step(&mut model.params, &pgrads);
        run.losses.push(value);
        run.steps = step + 1;
        if let Some(es) = p.early_stop {
            if value < best - es.min_improvement {
                best = value;
                stale = 0;
            } else {
                stale += 1;
                if stale >= es.patience {
                    run.failure = Some(format!(
                        "step {}: early stop, {} steps without the loss improving by {}",
                        step + 1,
                        es.patience,
                        es.min_improvement
                    ));
                    return run;
                }
            }
        }
        if p.curve_every > 0 && (step + 1) % p.curve_every == 0 && step + 1 < steps {
            let (acc, _) = validate(&model, data, &mut ws);
            run.curve.push(CurvePoint {
                step: step + 1,
                accuracy: acc,
            });
            if let Some(h) = p.hurdles.iter().find(|h| h.step == step + 1)
                && (acc.is_nan() || acc < h.min_accuracy)
            {
                run.accuracy = acc;
                run.failure = Some(format!(
                    "step {}: hurdle, validation accuracy {acc:.4} below {}",
                    step + 1,
                    h.min_accuracy
                ));
                return run;
            }
        }
    }
    let (acc, ce) = validate(&model, data, &mut ws);
    run.accuracy = acc;
    run.cross_entropy = ce;
    if p.curve_every > 0 {
        run.curve.push(CurvePoint {
            step: steps,
            accuracy: acc,
        });
    }
    run
}

/// A loss to evaluate: genome text and how to compile it.
#[derive(Clone, Debug)]
pub struct Genome {
    /// A name for reports.
    pub name: String,
    /// The genome text (any format ncpc reads).
    pub text: String,
    /// Compile options (format, mode).
    pub opts: CompileOptions,
}

/// The built-in baselines, as AMM programs.
pub fn baselines() -> Vec<Genome> {
    [
        (
            "cross-entropy",
            include_str!("baselines/cross_entropy.json"),
        ),
        ("mse", include_str!("baselines/mse.json")),
    ]
    .into_iter()
    .map(|(name, text)| Genome {
        name: name.into(),
        text: text.into(),
        opts: CompileOptions::default(),
    })
    .collect()
}

/// How to run an evaluation.
#[derive(Clone, Copy, Debug)]
pub struct EvalOptions {
    /// Engine for the loss.
    pub backend: Backend,
    /// Math mode of the JIT.
    pub math: MathMode,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            backend: Backend::Jit,
            math: MathMode::Exact,
        }
    }
}

/// The score of one loss (candidate or baseline) under a protocol.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LossScore {
    /// The loss's name.
    pub name: String,
    /// The protocol's fitness (higher is better; `-Infinity` when the loss failed).
    #[serde(with = "crate::numbers::lenient")]
    pub score: f64,
    /// Mean final validation accuracy over seeds (NaN when a run failed first).
    #[serde(with = "crate::numbers::lenient")]
    pub accuracy: f64,
    /// Mean validation curve over seeds.
    pub curve: Vec<CurvePoint>,
    /// Why it failed, if it did (the first failing seed's reason).
    pub failure: Option<String>,
    /// Which engine computed the loss.
    pub engine: Backend,
    /// Every run.
    pub runs: Vec<SeedRun>,
}

/// A candidate's evaluation: its score, its baselines under the same seeds and batch order,
/// and what it cost.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// The protocol (every setting).
    pub protocol: Protocol,
    /// The data trained and validated on.
    pub data: String,
    /// The network.
    pub model: String,
    /// The protocol's fitness.
    #[serde(with = "crate::numbers::lenient")]
    pub score: f64,
    /// Mean final validation accuracy.
    #[serde(with = "crate::numbers::lenient")]
    pub accuracy: f64,
    /// The candidate in full.
    pub candidate: LossScore,
    /// Baselines (cross-entropy, MSE) under the same protocol and seeds.
    pub baselines: Vec<LossScore>,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Substitutions made (e.g. the embedded subset for a missing dataset).
    pub notes: Vec<String>,
}

fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = xs.collect();
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Score the runs of one loss (`ce_accuracy`: cross-entropy's, for HAZ scoring).
fn score_runs(
    name: &str,
    engine: Backend,
    runs: Vec<SeedRun>,
    p: &Protocol,
    ce_accuracy: Option<f64>,
) -> LossScore {
    let failure = runs.iter().find_map(|r| r.failure.clone());
    let accuracy = mean(runs.iter().map(|r| r.accuracy));
    let curve = match runs.first() {
        Some(first) if failure.is_none() => first
            .curve
            .iter()
            .enumerate()
            .map(|(k, pt)| CurvePoint {
                step: pt.step,
                accuracy: mean(runs.iter().map(|r| r.curve[k].accuracy)),
            })
            .collect(),
        _ => Vec::new(),
    };
    let score = if failure.is_some() {
        f64::NEG_INFINITY
    } else {
        match p.scoring {
            Scoring::Final => match p.metric {
                Metric::Accuracy => accuracy,
                Metric::CrossEntropy => -mean(runs.iter().map(|r| r.cross_entropy)),
            },
            Scoring::CurveAndFinal { auc_weight } => mean(runs.iter().map(|r| {
                let auc = mean(r.curve.iter().map(|pt| pt.accuracy));
                auc_weight * auc + (1.0 - auc_weight) * r.accuracy
            })),
            Scoring::OverCrossEntropy => (accuracy - ce_accuracy.unwrap_or(f64::NAN)).max(0.0),
        }
    };
    LossScore {
        name: name.into(),
        score,
        accuracy,
        curve,
        failure,
        engine,
        runs,
    }
}

/// Evaluate `genome` under protocol `p` on `data`: one run per seed, plus the baselines
/// when the protocol asks for them, all in parallel. `on_run` is called after each run (for
/// progress). Fails only when the genome does not compile.
pub fn evaluate(
    genome: &Genome,
    p: &Protocol,
    data: &TaskData,
    opts: EvalOptions,
    notes: Vec<String>,
    on_run: &(dyn Fn() + Sync),
) -> Result<Report, LossError> {
    use rayon::prelude::*;
    let t0 = std::time::Instant::now();
    let batch = p.batch.min(data.train_y.len()).max(1);
    let c = data.classes;
    let mut losses = vec![genome.clone()];
    if p.baselines || p.score_needs_baseline() {
        losses.extend(baselines());
    }
    let funcs = losses
        .iter()
        .map(|g| compile_for_inputs(&g.text, &g.opts, batch, c, true))
        .collect::<Result<Vec<_>, _>>()?;
    let seeds = p.seed_list();
    let jobs: Vec<(usize, u64)> = (0..losses.len())
        .flat_map(|k| seeds.iter().map(move |s| (k, *s)))
        .collect();
    let results: Vec<(Backend, SeedRun)> = jobs
        .par_iter()
        .map(|(k, seed)| {
            let mut cand = CandidateLoss::new(funcs[*k].clone(), opts.backend, opts.math);
            let run = train_run(&mut cand, data, p, *seed);
            on_run();
            (cand.engine(), run)
        })
        .collect();
    let mut per_loss: Vec<(Backend, Vec<SeedRun>)> = losses
        .iter()
        .map(|_| (Backend::Interp, Vec::new()))
        .collect();
    for ((k, _), (engine, run)) in jobs.iter().zip(results) {
        per_loss[*k].0 = engine;
        per_loss[*k].1.push(run);
    }
    // Cross-entropy's accuracy first: the HAZ score of every loss is relative to it.
    let ce_accuracy = per_loss
        .get(1)
        .map(|(_, runs)| mean(runs.iter().map(|r| r.accuracy)));
    let mut scored: Vec<LossScore> = per_loss
        .into_iter()
        .zip(&losses)
        .map(|((engine, runs), g)| score_runs(&g.name, engine, runs, p, ce_accuracy))
        .collect();
    let candidate = scored.remove(0);
    let baselines = if p.baselines { scored } else { Vec::new() };
    Ok(Report {
        protocol: p.clone(),
        data: data.source.clone(),
        model: p.model(data.dim, c).describe(),
        score: candidate.score,
        accuracy: candidate.accuracy,
        candidate,
        baselines,
        seconds: t0.elapsed().as_secs_f64(),
        notes,
    })
}

/// A protocol ready to score genomes: its settings, its data loaded, the engine chosen.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The protocol.
    pub protocol: Protocol,
    /// Its data.
    pub data: TaskData,
    /// Substitutions made while loading (e.g. MNIST for a missing CIFAR-10).
    pub notes: Vec<String>,
    /// Engine options.
    pub opts: EvalOptions,
}

impl Prepared {
    /// Load the protocol's data from `root` (or the embedded subset). When the protocol's
    /// dataset is its default CIFAR-10 (`daml-mlp`) and CIFAR-10 is absent, MNIST stands in,
    /// with a note; a dataset the user named must be there.
    pub fn load(
        mut protocol: Protocol,
        root: &std::path::Path,
        dataset_named: bool,
        opts: EvalOptions,
    ) -> Result<Prepared, super::data::DataError> {
        use super::data::{DataError, DatasetName};
        let mut notes = Vec::new();
        let data = match TaskData::for_protocol(&protocol, root, &mut notes) {
            Ok(d) => d,
            Err(DataError::Missing { .. })
                if protocol.dataset == DatasetName::Cifar10 && !dataset_named =>
            {
                notes.push(format!(
                    "CIFAR-10 is not under {} (it cannot be fetched here); using MNIST",
                    root.display()
                ));
                protocol.dataset = DatasetName::Mnist;
                TaskData::for_protocol(&protocol, root, &mut notes)?
            }
            Err(e) => return Err(e),
        };
        Ok(Prepared {
            protocol,
            data,
            notes,
            opts,
        })
    }

    /// The protocol's fitness of an AMM-or-other genome text, without baselines;
    /// `-inf` for a genome that does not compile or fails.
    pub fn score(&self, text: &str) -> f64 {
        self.score_seeds(text, 0, self.protocol.seeds)
    }

    /// The score under `count` of the protocol's seeds starting at its `skip`-th.
    fn score_seeds(&self, text: &str, skip: usize, count: usize) -> f64 {
        let g = Genome {
            name: "candidate".into(),
            text: text.into(),
            opts: CompileOptions::default(),
        };
        let mut p = self.protocol.clone();
        p.baselines = false;
        p.seed += skip as u64;
        p.seeds = count.max(1);
        match evaluate(&g, &p, &self.data, self.opts, Vec::new(), &|| {}) {
            Ok(r) if !r.score.is_nan() => r.score,
            _ => f64::NEG_INFINITY,
        }
    }

    /// Whether the protocol's score is a mean over seeds of per-seed scores (so the first seed
    /// is a cheap estimate and the rest complete it): several seeds, and a score that does
    /// not depend on a baseline.
    pub fn splits_by_seed(&self) -> bool {
        self.protocol.seeds > 1 && !self.protocol.score_needs_baseline()
    }

    /// A stage of the score, for the evolution engine's hurdle: the full protocol, its first
    /// seed, or the other seeds combined with the first seed's score into the full score
    /// (the same value [`Prepared::score`] gives, up to the last bits of the mean).
    pub fn score_stage(&self, text: &str, stage: crate::evolve::engine::Stage) -> f64 {
        use crate::evolve::engine::Stage;
        let n = self.protocol.seeds.max(1);
        match stage {
            Stage::Full => self.score(text),
            Stage::First => self.score_seeds(text, 0, 1),
            Stage::Rest { .. } if n == 1 => self.score(text),
            Stage::Rest { first } => {
                let rest = self.score_seeds(text, 1, n - 1);
                if first.is_finite() && rest.is_finite() {
                    (first + rest * (n - 1) as f64) / n as f64
                } else {
                    f64::NEG_INFINITY
                }
            }
        }
    }
}
