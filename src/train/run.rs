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

impl SeedRun {
    /// A run that has not trained yet.
    pub(crate) fn new(seed: u64) -> SeedRun {
        SeedRun {
            seed,
            steps: 0,
            accuracy: f64::NAN,
            cross_entropy: f64::NAN,
            curve: Vec::new(),
            losses: Vec::new(),
            failure: None,
        }
    }

    /// A run that failed before training, for `why`.
    #[cfg_attr(not(feature = "burn-cpu"), allow(dead_code))]
    pub(crate) fn failed(seed: u64, why: String) -> SeedRun {
        SeedRun {
            failure: Some(why),
            ..SeedRun::new(seed)
        }
    }

    /// Record the final validation after `steps` steps.
    pub(crate) fn finish(&mut self, p: &Protocol, steps: usize, acc: f64, ce: f64) {
        self.accuracy = acc;
        self.cross_entropy = ce;
        if p.curve_every > 0 {
            self.curve.push(CurvePoint {
                step: steps,
                accuracy: acc,
            });
        }
    }
}

/// Correct predictions and summed cross-entropy (log-softmax in f64) of `logits` rows
/// (`labels.len() x c`) against `labels`.
pub(crate) fn score_logits(logits: &[f32], labels: &[u8], c: usize) -> (usize, f64) {
    let (mut correct, mut ce) = (0usize, 0f64);
    for (row, label) in logits.chunks_exact(c).zip(labels) {
        let label = *label as usize;
        correct += (argmax(row) == label) as usize;
        // logsumexp - logit[label].
        let m = row.iter().fold(f64::NEG_INFINITY, |m, v| m.max(*v as f64));
        let lse = m + row.iter().map(|v| (*v as f64 - m).exp()).sum::<f64>().ln();
        ce += lse - row[label] as f64;
    }
    (correct, ce)
}

/// Validation accuracy and cross-entropy of the network.
fn validate(model: &Mlp, data: &TaskData, ws: &mut Workspace) -> (f64, f64) {
    let n = data.val_y.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let (mut correct, mut ce) = (0usize, 0f64);
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
        let (k, e) = score_logits(logits, &data.val_y[start..start + rows], data.classes);
        correct += k;
        ce += e;
    }
    (correct as f64 / n as f64, ce / n as f64)
}

/// The protocol's early stop: tracks the best loss and says when patience has run out.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Patience {
    best: f32,
    stale: usize,
}

impl Patience {
    pub(crate) fn new() -> Patience {
        Patience {
            best: f32::INFINITY,
            stale: 0,
        }
    }

    /// Record the loss of 0-based `step`; the failure message when the run must stop.
    pub(crate) fn update(&mut self, p: &Protocol, step: usize, value: f32) -> Option<String> {
        let es = p.early_stop?;
        if value < self.best - es.min_improvement {
            self.best = value;
            self.stale = 0;
            return None;
        }
        self.stale += 1;
        (self.stale >= es.patience).then(|| {
            format!(
                "step {}: early stop, {} steps without the loss improving by {}",
                step + 1,
                es.patience,
                es.min_improvement
            )
        })
    }
}

/// Whether validation is due after 0-based `step` of `steps` (the final one is separate).
pub(crate) fn curve_due(p: &Protocol, step: usize, steps: usize) -> bool {
    p.curve_every > 0 && (step + 1).is_multiple_of(p.curve_every) && step + 1 < steps
}

/// The hurdle failure at 0-based `step` for validation accuracy `acc`, if there is one.
pub(crate) fn hurdle_failure(p: &Protocol, step: usize, acc: f64) -> Option<String> {
    let h = p.hurdles.iter().find(|h| h.step == step + 1)?;
    (acc.is_nan() || acc < h.min_accuracy).then(|| {
        format!(
            "step {}: hurdle, validation accuracy {acc:.4} below {}",
            step + 1,
            h.min_accuracy
        )
    })
}

/// Draws training batches in a protocol's order.
pub(crate) struct Batches {
    rng: ChaCha8Rng,
    sampling: Sampling,
    n: usize,
    order: Vec<usize>,
    pos: usize,
}

impl Batches {
    pub(crate) fn new(sampling: Sampling, n: usize, seed: u64) -> Batches {
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

    pub(crate) fn next(&mut self, size: usize, out: &mut Vec<usize>) {
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
    let mut run = SeedRun::new(seed);
    let (mut idx, mut bx, mut by, mut grad) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut sparse_batch = SparseRows::default();
    let mut pgrads = vec![0f32; model.params.len()];
    let mut patience = Patience::new();
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
        if let Some(stop) = patience.update(p, step, value) {
            run.failure = Some(stop);
            return run;
        }
        if curve_due(p, step, steps) {
            let (acc, _) = validate(&model, data, &mut ws);
            run.curve.push(CurvePoint {
                step: step + 1,
                accuracy: acc,
            });
            if let Some(fail) = hurdle_failure(p, step, acc) {
                run.accuracy = acc;
                run.failure = Some(fail);
                return run;
            }
        }
    }
    let (acc, ce) = validate(&model, data, &mut ws);
    run.finish(p, steps, acc, ce);
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

/// A burn device to train on (the `burn-cpu` and `wgpu` features).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BurnDevice {
    /// burn's pure-Rust CPU backend (`flex`).
    Cpu,
    /// burn's wgpu backend (Vulkan, Metal, DX12).
    Wgpu,
}

impl BurnDevice {
    /// The `--backend` name.
    pub fn name(self) -> &'static str {
        match self {
            BurnDevice::Cpu => "cpu",
            BurnDevice::Wgpu => "wgpu",
        }
    }
}

/// What computed a loss's runs.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Engine {
    /// The trainer's own backward pass, the loss from a Cranelift kernel.
    Jit,
    /// The trainer's own backward pass, the loss from the reference interpreter.
    Interp,
    /// burn on the CPU, the loss lowered to a burn graph, burn-autodiff.
    BurnCpu,
    /// burn on wgpu, likewise.
    BurnWgpu,
}

impl Engine {
    /// The name reports use.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Jit => "jit",
            Engine::Interp => "interp",
            Engine::BurnCpu => "burn-cpu",
            Engine::BurnWgpu => "burn-wgpu",
        }
    }
}

impl From<Backend> for Engine {
    fn from(b: Backend) -> Engine {
        match b {
            Backend::Jit => Engine::Jit,
            Backend::Interp => Engine::Interp,
        }
    }
}

impl From<BurnDevice> for Engine {
    fn from(d: BurnDevice) -> Engine {
        match d {
            BurnDevice::Cpu => Engine::BurnCpu,
            BurnDevice::Wgpu => Engine::BurnWgpu,
        }
    }
}

/// How to run an evaluation.
#[derive(Clone, Copy, Debug)]
pub struct EvalOptions {
    /// Engine for the loss on the trainer's own path.
    pub backend: Backend,
    /// Math mode of the JIT.
    pub math: MathMode,
    /// Train on a burn device instead (then `backend` and `math` do not apply).
    pub burn: Option<BurnDevice>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            backend: Backend::Jit,
            math: MathMode::Exact,
            burn: None,
        }
    }
}

/// The refusal of the CNN on the trainer's own path.
pub const CNN_NEEDS_BURN: &str =
    "the CNN (--model cnn) trains on the burn backends only: add --backend cpu or --backend wgpu";

/// Why an evaluation did not run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A loss did not compile.
    #[error(transparent)]
    Loss(#[from] LossError),
    /// The burn device asked for is not available.
    #[error("{0}")]
    Device(String),
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
    pub engine: Engine,
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
    engine: Engine,
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
) -> Result<Report, EvalError> {
    let t0 = std::time::Instant::now();
    if p.architecture == super::protocol::Architecture::Cnn && opts.burn.is_none() {
        return Err(EvalError::Device(CNN_NEEDS_BURN.into()));
    }
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
    let results = train_jobs(&funcs, &jobs, data, p, opts, on_run)?;
    let mut per_loss: Vec<(Engine, Vec<SeedRun>)> = losses
        .iter()
        .map(|_| (Engine::Interp, Vec::new()))
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
        model: match p.architecture {
            super::protocol::Architecture::Mlp => p.model(data.dim, c).describe(),
            super::protocol::Architecture::Cnn => {
                "small CNN: conv3x3(8)-pool, conv3x3(16)-pool, linear".into()
            }
        },
        score: candidate.score,
        accuracy: candidate.accuracy,
        candidate,
        baselines,
        seconds: t0.elapsed().as_secs_f64(),
        notes,
    })
}

/// Train every `(loss index, seed)` job: in parallel on the trainer's own path, or as one
/// population on a burn device. Runs come back in job order.
fn train_jobs(
    funcs: &[ncp_ir::Function],
    jobs: &[(usize, u64)],
    data: &TaskData,
    p: &Protocol,
    opts: EvalOptions,
    on_run: &(dyn Fn() + Sync),
) -> Result<Vec<(Engine, SeedRun)>, EvalError> {
    use rayon::prelude::*;
    Ok(match opts.burn {
        Some(dev) => burn_runs(dev, funcs, jobs, data, p, on_run)?,
        None => jobs
            .par_iter()
            .map(|(k, seed)| {
                let mut cand = CandidateLoss::new(funcs[*k].clone(), opts.backend, opts.math);
                let run = train_run(&mut cand, data, p, *seed);
                on_run();
                (cand.engine().into(), run)
            })
            .collect(),
    })
}

/// Every (loss, seed) job trained as one population on a burn device.
#[cfg(feature = "burn-cpu")]
fn burn_runs(
    dev: BurnDevice,
    funcs: &[ncp_ir::Function],
    jobs: &[(usize, u64)],
    data: &TaskData,
    p: &Protocol,
    on_run: &(dyn Fn() + Sync),
) -> Result<Vec<(Engine, SeedRun)>, EvalError> {
    use crate::burn_backend::population::{Member, train_population};
    let device = crate::burn_backend::device(dev).map_err(|e| EvalError::Device(e.to_string()))?;
    let members: Vec<Member> = jobs
        .iter()
        .map(|(k, seed)| Member {
            func: funcs[*k].clone(),
            seed: *seed,
        })
        .collect();
    // A panic inside burn (a kernel failing when fusion runs it) fails every member of
    // this population with the reason, instead of the process.
    let runs = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        train_population(&members, data, p, &device)
    }))
    .unwrap_or_else(|e| {
        let why = crate::burn_backend::panic_text_of(e.as_ref());
        let why = format!("the {} backend failed: {why}", dev.name());
        members
            .iter()
            .map(|m| SeedRun::failed(m.seed, why.clone()))
            .collect()
    });
    Ok(runs
        .into_iter()
        .map(|r| {
            on_run();
            (dev.into(), r)
        })
        .collect())
}

#[cfg(not(feature = "burn-cpu"))]
fn burn_runs(
    dev: BurnDevice,
    _funcs: &[ncp_ir::Function],
    _jobs: &[(usize, u64)],
    _data: &TaskData,
    _p: &Protocol,
    _on_run: &(dyn Fn() + Sync),
) -> Result<Vec<(Engine, SeedRun)>, EvalError> {
    check_burn_device(dev)?;
    unreachable!("check_burn_device refuses every device without the burn-cpu feature")
}

/// Whether the burn device `dev` is built in and starts (a clear error when not).
pub fn check_burn_device(dev: BurnDevice) -> Result<(), EvalError> {
    #[cfg(feature = "burn-cpu")]
    {
        crate::burn_backend::device(dev)
            .map(|_| ())
            .map_err(|e| EvalError::Device(e.to_string()))
    }
    #[cfg(not(feature = "burn-cpu"))]
    {
        let feature = if dev == BurnDevice::Cpu {
            "burn-cpu"
        } else {
            "wgpu"
        };
        Err(EvalError::Device(format!(
            "--backend {} needs ncpc built with `--features {feature}`",
            dev.name()
        )))
    }
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

    /// The scores of a batch of genomes and stages (see [`Prepared::score_stage`]), in order.
    /// On a burn device the whole batch trains as one population (every candidate and seed
    /// in lockstep); otherwise candidates run in parallel. Protocols scored against a
    /// baseline go one candidate at a time.
    pub fn score_batch(&self, items: &[(&str, super::stage::Stage)]) -> Vec<f64> {
        use super::stage::Stage;
        use rayon::prelude::*;
        if self.opts.burn.is_none() {
            return items
                .par_iter()
                .map(|(t, st)| self.score_stage(t, *st))
                .collect();
        }
        if self.protocol.score_needs_baseline() {
            // One population per candidate (with its baselines), one after another on the device.
            return items
                .iter()
                .map(|(t, st)| self.score_stage(t, *st))
                .collect();
        }
        let n = self.protocol.seeds.max(1);
        let c = self.data.classes;
        let batch = self.protocol.batch.min(self.data.train_y.len()).max(1);
        // Which seeds each item trains: (first seed offset, count).
        let spans: Vec<(usize, usize)> = items
            .iter()
            .map(|(_, st)| match st {
                Stage::First => (0, 1),
                Stage::Rest { .. } if n > 1 => (1, n - 1),
                _ => (0, n),
            })
            .collect();
        let funcs: Vec<Option<ncp_ir::Function>> = items
            .par_iter()
            .map(|(t, _)| compile_for_inputs(t, &CompileOptions::default(), batch, c, true).ok())
            .collect();
        let mut compiled = Vec::new();
        let mut jobs = Vec::new();
        let mut owner = Vec::new();
        for (i, f) in funcs.into_iter().enumerate() {
            let Some(f) = f else { continue };
            compiled.push(f);
            for j in 0..spans[i].1 {
                jobs.push((
                    compiled.len() - 1,
                    self.protocol.seed + (spans[i].0 + j) as u64,
                ));
                owner.push(i);
            }
        }
        let mut p = self.protocol.clone();
        p.baselines = false;
        let Ok(results) = train_jobs(&compiled, &jobs, &self.data, &p, self.opts, &|| {}) else {
            return vec![f64::NEG_INFINITY; items.len()];
        };
        let mut runs: Vec<Vec<SeedRun>> = vec![Vec::new(); items.len()];
        let mut engines = vec![Engine::Interp; items.len()];
        for (i, (engine, run)) in owner.into_iter().zip(results) {
            engines[i] = engine;
            runs[i].push(run);
        }
        items
            .iter()
            .zip(runs)
            .zip(engines)
            .map(|(((_, st), rs), engine)| {
                if rs.is_empty() {
                    return f64::NEG_INFINITY;
                }
                let score = score_runs("candidate", engine, rs, &p, None).score;
                let score = match st {
                    Stage::Rest { first } if n > 1 => {
                        if first.is_finite() && score.is_finite() {
                            (first + score * (n - 1) as f64) / n as f64
                        } else {
                            f64::NEG_INFINITY
                        }
                    }
                    _ => score,
                };
                if score.is_nan() {
                    f64::NEG_INFINITY
                } else {
                    score
                }
            })
            .collect()
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
    pub fn score_stage(&self, text: &str, stage: super::stage::Stage) -> f64 {
        use super::stage::Stage;
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
