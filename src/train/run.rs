//! Scoring: a candidate's report over all seeds with its baselines, on the native trainer
//! (runs in [`super::seed_run`]) or a burn device; the engine and device choice.
//!
//! Determinism: each run is single-threaded with fixed summation orders and seeded
//! generators; runs execute in parallel (rayon) but results are gathered in a fixed order,
//! so a score does not depend on the thread count or on how work interleaves.

use super::candidate::CandidateLoss;
use super::protocol::{Metric, Protocol, Scoring};
use super::task::TaskData;
use crate::formats::CompileOptions;
use crate::jit::MathMode;
use crate::loss::{Backend, LossError, compile_for_inputs};
use serde::Serialize;

pub use super::prepared::Prepared;
pub use super::seed_run::{CurvePoint, SeedRun, train_run};

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

pub use crate::burn_backend::{BurnDevice, LossStep};

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
    /// On a burn device, how the losses' step runs.
    pub loss_step: LossStep,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            backend: Backend::Jit,
            math: MathMode::Exact,
            burn: None,
            loss_step: LossStep::default(),
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
pub(crate) fn score_runs(
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
pub(crate) fn train_jobs(
    funcs: &[ncp_ir::Function],
    jobs: &[(usize, u64)],
    data: &TaskData,
    p: &Protocol,
    opts: EvalOptions,
    on_run: &(dyn Fn() + Sync),
) -> Result<Vec<(Engine, SeedRun)>, EvalError> {
    use rayon::prelude::*;
    Ok(match opts.burn {
        Some(dev) => burn_runs(dev, opts.loss_step, funcs, jobs, data, p, on_run)?,
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
    step: LossStep,
    funcs: &[ncp_ir::Function],
    jobs: &[(usize, u64)],
    data: &TaskData,
    p: &Protocol,
    on_run: &(dyn Fn() + Sync),
) -> Result<Vec<(Engine, SeedRun)>, EvalError> {
    use super::burn::population::{Member, train_population};
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
        // The population kernel runs on wgpu only; the CPU device keeps burn graphs.
        let step = if dev == BurnDevice::Wgpu {
            step
        } else {
            LossStep::Graph
        };
        train_population(&members, data, p, &device, step)
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
    _step: LossStep,
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
