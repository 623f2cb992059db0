//! AMM-exact scoring of activation components: a function scored as AMM's client scores an
//! `activation` (or `activation_function`) evaluate task
//! (`automl_client/components/activation/strategy.py` in Hivetensor/AutoML-Miner), so that
//! ncpc's scores agree with AMM miners'. What AMM does, and so what this does:
//!
//! - the program first goes through AMM's register validator ([`validate_and_fix`]): register
//!   operands clamped to 0..19, the first two instructions forced to be LOADs, the last
//!   forced to `RETURN R9` (so AMM's own library computes the constant zero);
//! - it runs once per forward pass on the whole hidden pre-activation `x` (S0 = x, S1 unset,
//!   S2 = the batch's rows, S5/S6 ones and zeros of x's shape); a one-element result is
//!   broadcast to x's shape, a result of another shape makes the next layer fail;
//! - a probe run keys a score cache: a key seen before answers without training; an error
//!   before training (the validator raises, no RETURN runs) is an exception (AMM sends 0.0);
//! - at the task's first cache miss the model `Linear(784, 8) -> activation -> Linear(8, 10)`
//!   is made after `torch.manual_seed(42)` with **that function's** activation; AMM's
//!   "reset" between functions reloads a shallow copy of the weights and replaces only
//!   built-in activation modules, so later functions of the task train on from the weights the
//!   previous one left **with the first function's activation** (their own program only
//!   decides their cache key);
//! - a fresh Adam (lr 1e-3) per function, cross-entropy on one-hot targets, 10 epochs of
//!   sequential batches of 64 over the 1800 training images (no shuffling, no random draws),
//!   early stop when an epoch's mean loss has not improved on the best by 0.001 for 3 epochs
//!   (-inf), -inf for an error in training or evaluation (a non-float activation reaches the
//!   next layer in evaluation), else the accuracy on the 200 validation images.
//!
//! The activation runs through the IR: the program compiles to `(g, x) -> sum(g * act(x))`,
//! whose gradient with respect to `g` is `act(x)` (the forward pass), and to
//! `(x, g) -> sum(act(x) * g)`, whose gradient with respect to `x` is `act'(x) * g` (the
//! backward pass), each one JIT kernel (the interpreter when the JIT does not take it).
//! The probe differs from AMM's, which is seeded from Python's per-process `hash()`: see
//! [`super::cache`].

use super::data::{AmmData, CLASSES, INPUT};
use super::net::{Adam, affine, axpy_f64};
use super::{LR, MODEL_SEED, Outcome, amm_deserializes, genetic_code, torch_argmax};
use crate::formats::Mode;
use crate::formats::amm::validator::validate_and_fix;
use crate::formats::amm::{
    ACTIVATION_NOT_FLOAT, ACTIVATION_SHAPE, Component, Program, lower_as, parse_program,
};
use crate::jit::{CompiledLoss, Jit};
use crate::loss::{Backend, evaluate_function};
use crate::train::torch_rng::{TorchGenerator, linear_init};
use ncp_ir::passes::{OptOptions, optimize};
use ncp_ir::tensor::Tensor;
use ncp_ir::{DType, DimModel, Function};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

/// Hidden units of AMM's activation network.
pub const HIDDEN: usize = 8;
/// Rows per training and evaluation batch.
pub const BATCH: usize = 64;
/// Training epochs.
pub const EPOCHS: usize = 10;
/// Epochs without improvement that stop (and fail) training.
pub const PATIENCE: usize = 3;
/// The improvement of an epoch's mean loss that counts.
pub const MIN_IMPROVEMENT: f64 = 0.001;
/// The probe's shape (AMM's `activation_test_x`).
pub const PROBE: (usize, usize) = (32, INPUT);
/// The seed of ncpc's probe values.
const PROBE_SEED: u64 = 3;

/// One compiled direction of an activation for one input shape.
struct Kernel {
    func: Function,
    jit: Option<CompiledLoss>,
}

/// An activation program, compiled on demand per input shape and direction.
struct Activation {
    program: Program,
    /// The result is not float: AMM fails in evaluation.
    not_float: bool,
    /// The result has another shape: AMM's next layer fails.
    wrong_shape: bool,
    kernels: HashMap<(usize, usize, bool), Kernel>,
}

impl Activation {
    /// The validated program, or the validator's exception.
    fn new(text: &str, jit: &mut Option<Jit>) -> Result<Activation, String> {
        let raw = parse_program(text).map_err(|e| e.to_string())?;
        let fixed = validate_and_fix(&raw.instrs).map_err(|e| e.to_string())?;
        let mut a = Activation {
            program: Program { instrs: fixed },
            not_float: false,
            wrong_shape: false,
            kernels: HashMap::new(),
        };
        // The notes do not depend on the shape: learn them from the probe's.
        a.kernel(jit, PROBE.0, PROBE.1, true)?;
        Ok(a)
    }

    fn kernel(
        &mut self,
        jit: &mut Option<Jit>,
        rows: usize,
        cols: usize,
        forward: bool,
    ) -> Result<&Kernel, String> {
        if !self.kernels.contains_key(&(rows, cols, forward)) {
            let component = if forward {
                Component::ActivationForward
            } else {
                Component::ActivationBackward
            };
            let dims = DimModel::for_inputs(rows, cols);
            let (mut func, notes) =
                lower_as(&self.program, "activation", Mode::Compat, dims, component)
                    .map_err(|e| e.to_string())?;
            self.not_float |= notes.iter().any(|n| n.ends_with(ACTIVATION_NOT_FLOAT));
            self.wrong_shape |= notes.iter().any(|n| n.ends_with(ACTIVATION_SHAPE));
            optimize(&mut func, OptOptions::default()).map_err(|e| e.to_string())?;
            let compiled = match jit {
                Some(j) => j.compile_loss(&func).map_err(|e| e.to_string())?,
                None => None,
            };
            self.kernels.insert(
                (rows, cols, forward),
                Kernel {
                    func,
                    jit: compiled,
                },
            );
        }
        Ok(&self.kernels[&(rows, cols, forward)])
    }

    /// The gradient of a compiled direction with respect to its first input, into `out`;
    /// `Ok(false)` when the function does not depend on it (no gradient flows).
    fn run(
        &mut self,
        jit: &mut Option<Jit>,
        (rows, cols, forward): (usize, usize, bool),
        first: &[f32],
        second: &[f32],
        out: &mut Vec<f32>,
    ) -> Result<bool, String> {
        self.kernel(jit, rows, cols, forward)?;
        let k = &self.kernels[&(rows, cols, forward)];
        out.clear();
        if let (Some(j), Some(cl)) = (jit.as_ref(), &k.jit) {
            if !cl.has_grad {
                return Ok(false);
            }
            out.resize(j.kernel_of(cl).grad_len(rows, cols), 0.0);
            j.run(cl, first, second, rows, cols, out)
                .map_err(|e| e.to_string())?;
            out.truncate(rows * cols);
            return Ok(true);
        }
        let t = |v: &[f32]| {
            Tensor::new(
                DType::F32,
                vec![rows, cols],
                v.iter().map(|x| *x as f64).collect(),
            )
        };
        let value =
            evaluate_function(&k.func, &t(first), &t(second), false).map_err(|e| e.to_string())?;
        if let Some(trap) = value.fault {
            return Err(format!("the activation faults ({trap:?})"));
        }
        match value.grad {
            Some(rows) => {
                out.extend(rows.iter().flatten());
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// `act(x)` for `x` of `rows x cols`.
    fn forward(
        &mut self,
        jit: &mut Option<Jit>,
        x: &[f32],
        rows: usize,
        cols: usize,
        out: &mut Vec<f32>,
    ) -> Result<(), String> {
        let ones = vec![1f32; rows * cols];
        self.run(jit, (rows, cols, true), &ones, x, out)?;
        Ok(())
    }

    /// `act'(x) * g`; `Ok(false)` when no gradient reaches `x`.
    fn backward(
        &mut self,
        jit: &mut Option<Jit>,
        x: &[f32],
        g: &[f32],
        rows: usize,
        out: &mut Vec<f32>,
    ) -> Result<bool, String> {
        self.run(jit, (rows, HIDDEN, false), x, g, out)
    }
}

/// The model of one evaluate task: its weights and the activation it trains with.
struct TaskModel {
    params: [Vec<f32>; 4],
    activation: Activation,
}

/// An AMM miner's activation evaluator: the data, the score cache of the process, and a JIT.
pub struct ActivationExact {
    data: Arc<AmmData>,
    probe: Vec<f32>,
    cache: HashMap<[u8; 32], f64>,
    jit: Option<Jit>,
}

impl std::fmt::Debug for ActivationExact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivationExact")
            .field("cached_scores", &self.cache.len())
            .field("jit", &self.jit.is_some())
            .finish()
    }
}

impl ActivationExact {
    /// A fresh evaluator (empty score cache) on AMM's data; `engine` runs the activation
    /// kernels (the JIT, or the interpreter; both give the same bits).
    pub fn new(data: Arc<AmmData>, engine: Backend) -> ActivationExact {
        let probe = super::cache::normals(PROBE_SEED, PROBE.0 * PROBE.1)
            .into_iter()
            .map(|v| v as f32)
            .collect();
        ActivationExact {
            data,
            probe,
            cache: HashMap::new(),
            jit: match engine {
                Backend::Jit => Jit::new().ok(),
                Backend::Interp => None,
            },
        }
    }

    /// Score the functions of one evaluate task, given as texts (files), in order.
    pub fn evaluate_task<S: AsRef<str>>(&mut self, texts: &[S]) -> Vec<Outcome> {
        let mut task: Option<TaskModel> = None;
        texts
            .iter()
            .map(|t| match amm_deserializes(t.as_ref()) {
                Ok(()) => self.evaluate_one(&mut task, t.as_ref()),
                Err(reason) => Outcome::Skipped { reason },
            })
            .collect()
    }

    /// Score the functions of one evaluate task as the pool sends them (JSON values), in
    /// order: see [`genetic_code`].
    pub fn evaluate_values(&mut self, functions: &[serde_json::Value]) -> Vec<Outcome> {
        let mut task: Option<TaskModel> = None;
        functions
            .iter()
            .map(|v| match genetic_code(v) {
                Ok(text) => self.evaluate_one(&mut task, &text),
                Err(reason) => Outcome::Skipped { reason },
            })
            .collect()
    }

    /// The probe's cache key: SHA-256 of `round(act(probe) * 1e4)` as float16 bytes.
    fn key(&mut self, a: &mut Activation) -> Result<Option<[u8; 32]>, String> {
        if a.wrong_shape {
            // AMM keys the wrong-shaped output; ncpc has no value for it. Not cached: the
            // training that follows fails at its first step, in AMM too.
            return Ok(None);
        }
        let mut out = Vec::new();
        let probe = std::mem::take(&mut self.probe);
        let r = a.forward(&mut self.jit, &probe, PROBE.0, PROBE.1, &mut out);
        self.probe = probe;
        r.map_err(|e| format!("the activation failed on the probe: {e}"))?;
        let mut h = Sha256::new();
        for v in &out {
            h.update(super::cache::quantize(*v).to_le_bytes());
        }
        Ok(Some(h.finalize().into()))
    }

    fn evaluate_one(&mut self, task: &mut Option<TaskModel>, text: &str) -> Outcome {
        let mut act = match Activation::new(text, &mut self.jit) {
            Ok(a) => a,
            Err(error) => return Outcome::Exception { error },
        };
        let key = match self.key(&mut act) {
            Ok(k) => k,
            Err(error) => return Outcome::Exception { error },
        };
        if let Some(fitness) = key.and_then(|k| self.cache.get(&k).copied()) {
            return Outcome::Scored {
                fitness,
                cached: true,
                failure: None,
            };
        }
        let model = task.get_or_insert_with(|| {
            let mut g = TorchGenerator::manual_seed(MODEL_SEED);
            let (w1, b1) = linear_init(&mut g, INPUT, HIDDEN);
            let (w2, b2) = linear_init(&mut g, HIDDEN, CLASSES);
            TaskModel {
                params: [w1, b1, w2, b2],
                activation: act,
            }
        });
        let (fitness, failure) = match train(&self.data, model, &mut self.jit) {
            Ok(acc) => (acc, None),
            Err(why) => (f64::NEG_INFINITY, Some(why)),
        };
        if let Some(k) = key {
            self.cache.insert(k, fitness);
        }
        Outcome::Scored {
            fitness,
            cached: false,
            failure,
        }
    }
}

/// Buffers of one forward pass.
#[derive(Default)]
struct Pass {
    pre: Vec<f32>,
    hidden: Vec<f32>,
    out: Vec<f32>,
}

fn forward(
    m: &mut TaskModel,
    jit: &mut Option<Jit>,
    x: &[f32],
    rows: usize,
    p: &mut Pass,
) -> Result<(), String> {
    let [w1, b1, w2, b2] = &m.params;
    affine(x, w1, b1, INPUT, &mut p.pre);
    m.activation
        .forward(jit, &p.pre, rows, HIDDEN, &mut p.hidden)?;
    affine(&p.hidden, w2, b2, HIDDEN, &mut p.out);
    Ok(())
}

/// `CrossEntropyLoss()` with class-probability targets: the mean over rows of
/// `-sum(y * log_softmax(out))`, and its gradient with respect to `out`.
fn cross_entropy(out: &[f32], y: &[f32], rows: usize, grad: &mut Vec<f32>) -> f32 {
    grad.clear();
    let mut total = 0f64;
    for r in 0..rows {
        let o = &out[r * CLASSES..(r + 1) * CLASSES];
        let t = &y[r * CLASSES..(r + 1) * CLASSES];
        let max = o.iter().fold(f32::NEG_INFINITY, |a, b| a.max(*b)) as f64;
        let sum: f64 = o.iter().map(|v| (*v as f64 - max).exp()).sum();
        let lse = max + sum.ln();
        let ysum: f64 = t.iter().map(|v| *v as f64).sum();
        for (ov, tv) in o.iter().zip(t) {
            let logp = *ov as f64 - lse;
            total -= *tv as f64 * logp;
            grad.push(((logp.exp() * ysum - *tv as f64) / rows as f64) as f32);
        }
    }
    (total / rows as f64) as f32
}

/// One training step on rows `x`/`y`; the batch loss.
fn step(
    m: &mut TaskModel,
    jit: &mut Option<Jit>,
    adam: &mut Adam,
    (x, y, rows): (&[f32], &[f32], usize),
    p: &mut Pass,
) -> Result<f32, String> {
    forward(m, jit, x, rows, p)?;
    let mut dout = Vec::new();
    let loss = cross_entropy(&p.out, y, rows, &mut dout);
    let w2 = &m.params[2];
    let (mut gw2, mut gb2) = (vec![0f32; CLASSES * HIDDEN], vec![0f32; CLASSES]);
    let mut da = vec![0f32; rows * HIDDEN];
    for j in 0..CLASSES {
        for k in 0..HIDDEN {
            let s: f64 = (0..rows)
                .map(|r| dout[r * CLASSES + j] as f64 * p.hidden[r * HIDDEN + k] as f64)
                .sum();
            gw2[j * HIDDEN + k] = s as f32;
        }
        gb2[j] = (0..rows).map(|r| dout[r * CLASSES + j] as f64).sum::<f64>() as f32;
    }
    for r in 0..rows {
        for k in 0..HIDDEN {
            let s: f64 = (0..CLASSES)
                .map(|j| dout[r * CLASSES + j] as f64 * w2[j * HIDDEN + k] as f64)
                .sum();
            da[r * HIDDEN + k] = s as f32;
        }
    }
    let mut dh = Vec::new();
    let reaches = m.activation.backward(jit, &p.pre, &da, rows, &mut dh)?;
    let (mut gw1, mut gb1) = (vec![0f32; HIDDEN * INPUT], vec![0f32; HIDDEN]);
    if reaches {
        first_layer_grads(x, &dh, rows, &mut gw1, &mut gb1);
    }
    // With no gradient path to the first layer, torch leaves its `.grad` at None and Adam
    // skips it; zero gradients on a fresh Adam leave it unchanged just the same.
    adam.step(&mut m.params, &[gw1, gb1, gw2, gb2]);
    Ok(loss)
}

/// dL/dW1 = dh^T x and dL/db1 = the column sums of dh: each (unit, feature) sum over the rows
/// in order, in f64, rounded once; the eight units' rows updated together per input row.
fn first_layer_grads(x: &[f32], dh: &[f32], rows: usize, gw1: &mut [f32], gb1: &mut [f32]) {
    let mut acc = vec![0f64; HIDDEN * INPUT];
    let mut sb = [0f64; HIDDEN];
    for r in 0..rows {
        let xr = &x[r * INPUT..(r + 1) * INPUT];
        for k in 0..HIDDEN {
            let d = dh[r * HIDDEN + k] as f64;
            sb[k] += d;
            axpy_f64(&mut acc[k * INPUT..(k + 1) * INPUT], d, xr);
        }
    }
    for (g, a) in gw1.iter_mut().zip(&acc) {
        *g = *a as f32;
    }
    for (g, a) in gb1.iter_mut().zip(&sb) {
        *g = *a as f32;
    }
}

/// AMM's `_full_evaluate` on the task's model: the validation accuracy, or why it failed.
fn train(data: &AmmData, m: &mut TaskModel, jit: &mut Option<Jit>) -> Result<f64, String> {
    let n_train = data.train_x.len() / INPUT;
    let mut adam = Adam::new(&m.params, LR);
    let mut best = f64::INFINITY;
    let mut stale = 0;
    let mut p = Pass::default();
    for epoch in 0..EPOCHS {
        let mut total = 0f64;
        let mut batches = 0usize;
        for start in (0..n_train).step_by(BATCH) {
            let rows = BATCH.min(n_train - start);
            let x = &data.train_x[start * INPUT..(start + rows) * INPUT];
            let y = &data.train_y[start * CLASSES..(start + rows) * CLASSES];
            let loss = step(m, jit, &mut adam, (x, y, rows), &mut p)
                .map_err(|e| format!("epoch {epoch}, rows {start}..: {e}"))?;
            total += loss as f64;
            batches += 1;
        }
        let avg = total / batches as f64;
        if avg < best - MIN_IMPROVEMENT {
            best = avg;
            stale = 0;
        } else {
            stale += 1;
            if stale >= PATIENCE {
                return Err(format!("epoch {epoch}: early stop"));
            }
        }
    }
    if m.activation.not_float {
        return Err(
            "evaluation: the activation's result is not float and the next layer refuses it".into(),
        );
    }
    let n_val = data.val_len();
    let mut correct = 0usize;
    for start in (0..n_val).step_by(BATCH) {
        let rows = BATCH.min(n_val - start);
        let x = &data.val_x[start * INPUT..(start + rows) * INPUT];
        forward(m, jit, x, rows, &mut p).map_err(|e| format!("evaluation: {e}"))?;
        correct += p
            .out
            .chunks_exact(CLASSES)
            .zip(&data.val_labels[start..start + rows])
            .filter(|(row, label)| torch_argmax(row) == **label)
            .count();
    }
    Ok(correct as f64 / n_val as f64)
}
