//! Population-batched training on a burn device: K networks, each with its own loss and seed,
//! trained in lockstep, one batched pass per step.
//!
//! Each layer's weights of all K networks form one `[K, in, out]` tensor, so the forward
//! and backward passes of the whole population are a few batched matmuls whatever K is. The
//! losses run per member, each as its own lowered graph on its slice of the logits, or, with
//! [`LossStep::Kernel`] on wgpu, all the members the population kernel lowers in one dispatch
//! (`kernel_loss`), their gradients entering as the surrogate `sum(logits * G)`. Summing the
//! members' losses and calling burn-autodiff's `backward` once gives every member its own
//! gradient, as the losses share no parameters.
//!
//! A member reproduces the trainer's own run ([`crate::train::seed_run::train_run`]) under the same
//! seed: the same initial weights, batch order, dropout masks and optimizer rule. Results agree
//! within float rounding (summation orders differ), not to the bit.

use super::nets::Net;
use crate::burn_backend::LossStep;
use crate::burn_backend::lower::{LowerError, lower_loss};
use crate::train::candidate::StepFault;
use crate::train::model::extend_dropout_mask;
use crate::train::optim::{BETA1, BETA2, OptimizerKind, adam_step};
use crate::train::protocol::Protocol;
use crate::train::seed_run::{
    Batches, CurvePoint, Patience, SeedRun, curve_due, hurdle_failure, score_logits,
};
use crate::train::task::TaskData;
use burn::tensor::{Device, Int, Tensor, TensorData};
use ncp_ir::Function;
use ncp_ir::interp::DEFAULT_FUEL;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// One member of a population: its loss and its seed.
#[derive(Clone, Debug)]
pub struct Member {
    /// The loss, compiled for `[batch, classes]` inputs.
    pub func: Function,
    /// The seed (initial weights, batch order, dropout), as in the trainer's own runs.
    pub seed: u64,
}

/// Validation rows per batched forward pass, at most (fewer for large populations or wide
/// networks, so that a chunk's largest activation stays near 16M floats, well inside wgpu's
/// default 128 MiB storage binding: the CNN's first convolution makes 5408 floats per MNIST
/// image and member).
const VAL_CHUNK: usize = 2000;

/// One layer of the population: weights `[K, in, out]`, bias `[K, 1, out]`, and Adam's
/// moments for both.
struct Layer {
    w: Tensor<3>,
    b: Tensor<3>,
    moments: Option<[Tensor<3>; 4]>,
}

/// Per-member state on the host.
struct MemberState {
    run: SeedRun,
    batches: Batches,
    dropout: ChaCha8Rng,
    patience: Patience,
    done: bool,
}

impl MemberState {
    /// End the member at `step` (0-based) with `fault`.
    fn fail(&mut self, step: usize, fault: StepFault) {
        self.run.failure = Some(format!("step {}: {fault}", step + 1));
        self.done = true;
    }

    /// Record this step's loss `v`; a non-finite one ends the member instead. Whether the
    /// member trains on.
    fn record(&mut self, step: usize, v: f32) -> bool {
        if !v.is_finite() {
            self.fail(step, StepFault::NonFinite(v));
            return false;
        }
        self.run.losses.push(v);
        self.run.steps = step + 1;
        true
    }
}

fn upload3(data: Vec<f32>, shape: [usize; 3], device: &Device) -> Tensor<3> {
    Tensor::from_data(TensorData::new(data, shape), device)
}

fn upload2(data: Vec<f32>, shape: [usize; 2], device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(data, shape), device)
}

/// Features with the task's normalisation applied, `[n, dim]` on the device.
fn features(x: &[f32], data: &TaskData, device: &Device) -> Tensor<2> {
    let a = data.input;
    let v: Vec<f32> = x.iter().map(|v| v * a.scale + a.shift).collect();
    upload2(v, [x.len() / data.dim.max(1), data.dim], device)
}

fn one_hot(y: &[u8], c: usize, device: &Device) -> Tensor<2> {
    let mut v = vec![0f32; y.len() * c];
    for (r, l) in y.iter().enumerate() {
        v[r * c + *l as usize] = 1.0;
    }
    upload2(v, [y.len(), c], device)
}

fn to_vec(t: Tensor<3>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}

/// Train every member; one [`SeedRun`] per member, in order. With [`LossStep::Kernel`] (and
/// the `wgpu` feature; `device` should then be a wgpu device, whose adapter the kernel shares)
/// the members whose loss the population kernel lowers take their loss step from it
/// (`kernel_loss`); the others, and all members with [`LossStep::Graph`], use burn graphs.
pub fn train_population(
    members: &[Member],
    data: &TaskData,
    p: &Protocol,
    device: &Device,
    loss_step: LossStep,
) -> Vec<SeedRun> {
    let k_all = members.len();
    if k_all == 0 {
        return Vec::new();
    }
    let c = data.classes;
    let net = match Net::for_protocol(p, data.dim, c) {
        Ok(net) => net,
        Err(why) => {
            return members
                .iter()
                .map(|m| SeedRun::failed(m.seed, why.clone()))
                .collect();
        }
    };
    // Initial weights: each member's from its seed (the native trainer's for the MLP),
    // stacked member after member.
    let inits: Vec<Vec<(Vec<f32>, Vec<f32>)>> = members.iter().map(|m| net.init(m.seed)).collect();
    let layers: Vec<Layer> = net
        .shapes(k_all)
        .into_iter()
        .enumerate()
        .map(|(i, (ws, bs))| Layer {
            w: upload3(
                inits.iter().flat_map(|l| l[i].0.iter().copied()).collect(),
                ws,
                device,
            ),
            b: upload3(
                inits.iter().flat_map(|l| l[i].1.iter().copied()).collect(),
                bs,
                device,
            ),
            moments: None,
        })
        .collect();
    let mut layers = layers;
    let kernel = match loss_step {
        LossStep::Kernel => {
            let losses: Vec<&Function> = members.iter().map(|m| &m.func).collect();
            KernelStep::build(&losses, c)
        }
        LossStep::Graph => None,
    };
    let train_x = features(&data.train_x, data, device);
    let train_y = one_hot(&data.train_y, c, device);
    let val_x = features(&data.val_x, data, device);
    let n = data.train_y.len();
    let steps = p.steps_for(n);
    let mut states: Vec<MemberState> = members
        .iter()
        .map(|m| {
            let mut dropout = ChaCha8Rng::seed_from_u64(m.seed);
            dropout.set_stream(2);
            MemberState {
                run: SeedRun::new(m.seed),
                batches: Batches::new(p.sampling, n, m.seed),
                dropout,
                patience: Patience::new(),
                done: false,
            }
        })
        .collect();
    let mut idx = Vec::new();
    let mut all_idx: Vec<i64> = Vec::new();
    for step in 0..steps {
        if states.iter().all(|s| s.done) {
            break;
        }
        // The batch of every member (failed members keep drawing so that nothing depends
        // on who else is in the population).
        all_idx.clear();
        let mut b = 0;
        for s in &mut states {
            s.batches.next(p.batch, &mut idx);
            b = idx.len();
            all_idx.extend(idx.iter().map(|i| *i as i64));
        }
        let index =
            Tensor::<1, Int>::from_data(TensorData::new(all_idx.clone(), [k_all * b]), device);
        let x = train_x
            .clone()
            .select(0, index.clone())
            .reshape([k_all, b, data.dim]);
        let y = train_y.clone().select(0, index).reshape([k_all, b, c]);
        let widths = net.dropout_widths();
        let masks =
            (!widths.is_empty()).then(|| dropout_masks(&mut states, &widths, b, p.dropout, device));
        let tracked: Vec<(Tensor<3>, Tensor<3>)> = layers
            .iter()
            .map(|l| {
                (
                    l.w.clone().autodiff().require_grad(),
                    l.b.clone().autodiff().require_grad(),
                )
            })
            .collect();
        let logits = net.forward(&tracked, x.autodiff(), masks);
        // The kernel's members: losses and gradients from one dispatch, as the surrogate
        // `sum(logits * G)`, whose gradient is G.
        let surrogate = kernel.as_ref().and_then(|kl| {
            kernel_step(
                kl,
                &logits,
                &data.train_y,
                &all_idx,
                (b, c),
                step,
                &mut states,
            )
            .map(|g| logits.clone().mul(g).sum().reshape([1, 1]))
        });
        // Each live member's loss on its slice, as a burn graph.
        let mut live: Vec<(usize, Tensor<2>)> = Vec::new();
        for (k, (m, s)) in members.iter().zip(&mut states).enumerate() {
            if s.done || kernel.as_ref().is_some_and(|kl| kl.has(k)) {
                continue;
            }
            let pred = logits.clone().slice([k..k + 1, 0..b, 0..c]).reshape([b, c]);
            let truth = y.clone().slice([k..k + 1, 0..b, 0..c]).reshape([b, c]);
            let lowered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                lower_loss(&m.func, pred, truth, DEFAULT_FUEL)
            }));
            let fault = match lowered {
                Ok(Ok(t)) if t.is_tracked() => {
                    live.push((k, t));
                    continue;
                }
                Ok(Ok(_)) => StepFault::NoGradient,
                Ok(Err(LowerError::Trap(t))) => StepFault::Trap(t),
                Ok(Err(e)) => StepFault::Failed(e.to_string()),
                Err(_) => StepFault::Failed("the burn backend panicked on this loss".into()),
            };
            s.fail(step, fault);
        }
        if live.is_empty() && surrogate.is_none() {
            break;
        }
        let values: Vec<f32> = if live.is_empty() {
            Vec::new()
        } else {
            let stacked = Tensor::cat(live.iter().map(|(_, t)| t.clone()).collect(), 0);
            stacked.inner().into_data().iter::<f32>().collect()
        };
        let mut finite: Vec<Tensor<2>> = surrogate.into_iter().collect();
        for ((k, t), v) in live.into_iter().zip(values) {
            if states[k].record(step, v) {
                finite.push(t);
            }
        }
        if !finite.is_empty() {
            let total = Tensor::cat(finite, 0).sum();
            let grads = total.backward();
            for (l, (tw, tb)) in layers.iter_mut().zip(&tracked) {
                let gw = tw.grad(&grads);
                let gb = tb.grad(&grads);
                if let (Some(gw), Some(gb)) = (gw, gb) {
                    update(l, gw, gb, p, step + 1);
                }
            }
        }
        // Early stops, then validation where the protocol asks for it.
        for s in states.iter_mut() {
            if s.done || s.run.steps != step + 1 {
                continue;
            }
            let value = s.run.losses[step];
            if let Some(stop) = s.patience.update(p, step, value) {
                s.run.failure = Some(stop);
                s.done = true;
            }
        }
        if curve_due(p, step, steps) {
            let accs = validate(&net, &layers, &val_x, data, &states);
            for (s, (acc, _)) in states.iter_mut().zip(accs) {
                if s.done {
                    continue;
                }
                s.run.curve.push(CurvePoint {
                    step: step + 1,
                    accuracy: acc,
                });
                if let Some(fail) = hurdle_failure(p, step, acc) {
                    s.run.accuracy = acc;
                    s.run.failure = Some(fail);
                    s.done = true;
                }
            }
        }
    }
    let finals = validate(&net, &layers, &val_x, data, &states);
    states
        .into_iter()
        .zip(finals)
        .map(|(mut s, (acc, ce))| {
            if !s.done {
                s.run.finish(p, steps, acc, ce);
            }
            s.run
        })
        .collect()
}

/// Steps whose losses came from the population kernel, in this process (each counts once
/// however many members it served): how a caller or a test sees that the kernel ran.
static KERNEL_STEPS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Training steps whose losses came from the population kernel so far, in this process.
pub fn kernel_steps() -> u64 {
    KERNEL_STEPS.load(std::sync::atomic::Ordering::Relaxed)
}

/// The population kernel where the `wgpu` feature is built.
#[cfg(feature = "wgpu")]
use super::kernel_loss::KernelLoss as KernelStep;

/// Without the `wgpu` feature there is no population kernel: every loss is a graph.
#[cfg(not(feature = "wgpu"))]
struct KernelStep;

#[cfg(not(feature = "wgpu"))]
impl KernelStep {
    fn build(_: &[&Function], _: usize) -> Option<KernelStep> {
        None
    }
    fn has(&self, _: usize) -> bool {
        false
    }
}

/// The kernel members' step: their losses recorded (a non-finite one, or a kernel that
/// fails, ends the member as the graph path would) and dL/dlogits of the live ones as one
/// `[K, b, c]` tensor (zero for everyone else), or `None` when no kernel member is live.
#[cfg(feature = "wgpu")]
fn kernel_step(
    kl: &KernelStep,
    logits: &Tensor<3>,
    labels: &[u8],
    idx: &[i64],
    (b, c): (usize, usize),
    step: usize,
    states: &mut [MemberState],
) -> Option<Tensor<3>> {
    let k_all = states.len();
    for (m, why) in kl.refusals(b, c) {
        if !states[m].done {
            states[m].fail(step, StepFault::Failed(why));
        }
    }
    if (0..k_all).all(|m| !kl.has(m) || states[m].done) {
        return None;
    }
    let yp: Vec<f32> = logits.clone().inner().into_data().iter::<f32>().collect();
    let mut yt = vec![0f32; k_all * b * c];
    for (row, i) in idx.iter().enumerate() {
        yt[row * c + labels[*i as usize] as usize] = 1.0;
    }
    let outs = match kl.run(&yp, &yt, b, c) {
        Ok(outs) => outs,
        Err(e) => {
            for (m, s) in states.iter_mut().enumerate() {
                if kl.has(m) && !s.done {
                    s.fail(
                        step,
                        StepFault::Failed(format!("the population kernel failed: {e}")),
                    );
                }
            }
            return None;
        }
    };
    KERNEL_STEPS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut g = vec![0f32; k_all * b * c];
    let mut any = false;
    for (m, v, grad) in outs {
        if !states[m].done && states[m].record(step, v) {
            g[m * b * c..(m + 1) * b * c].copy_from_slice(&grad);
            any = true;
        }
    }
    any.then(|| upload3(g, [k_all, b, c], &logits.device()))
}

#[cfg(not(feature = "wgpu"))]
fn kernel_step(
    _: &KernelStep,
    _: &Tensor<3>,
    _: &[u8],
    _: &[i64],
    _: (usize, usize),
    _: usize,
    _: &mut [MemberState],
) -> Option<Tensor<3>> {
    None
}

/// Dropout masks of this step for every member, drawn in the trainer's own order (per hidden
/// layer, row-major), so a member sees the masks its native run would.
fn dropout_masks(
    states: &mut [MemberState],
    hidden: &[usize],
    b: usize,
    prob: f32,
    device: &Device,
) -> Vec<Tensor<3>> {
    let k_all = states.len();
    let mut per_layer: Vec<Vec<f32>> = hidden
        .iter()
        .map(|w| Vec::with_capacity(k_all * b * w))
        .collect();
    for s in states.iter_mut() {
        for (layer, w) in per_layer.iter_mut().zip(hidden) {
            extend_dropout_mask(&mut s.dropout, prob, b * w, layer);
        }
    }
    per_layer
        .into_iter()
        .zip(hidden)
        .map(|(m, w)| upload3(m, [k_all, b, *w], device))
        .collect()
}

/// One optimizer step of a layer (the same rules as [`crate::train::optim::Optimizer`]).
fn update(l: &mut Layer, gw: Tensor<3>, gb: Tensor<3>, p: &Protocol, t: usize) {
    match p.optimizer {
        OptimizerKind::Sgd => {
            l.w = l.w.clone().sub(gw.mul_scalar(p.lr));
            l.b = l.b.clone().sub(gb.mul_scalar(p.lr));
        }
        OptimizerKind::Adam => {
            let [mw, vw, mb, vb] = l.moments.take().unwrap_or_else(|| {
                [
                    l.w.zeros_like(),
                    l.w.zeros_like(),
                    l.b.zeros_like(),
                    l.b.zeros_like(),
                ]
            });
            let (step, eps) = adam_step(p.lr, t as i32);
            let adam = |param: Tensor<3>, g: Tensor<3>, m: Tensor<3>, v: Tensor<3>| {
                let m = m.mul_scalar(BETA1).add(g.clone().mul_scalar(1.0 - BETA1));
                let v = v
                    .mul_scalar(BETA2)
                    .add(g.clone().mul(g).mul_scalar(1.0 - BETA2));
                let delta = m
                    .clone()
                    .div(v.clone().sqrt().add_scalar(eps))
                    .mul_scalar(step);
                (param.sub(delta), m, v)
            };
            let (w, mw, vw) = adam(l.w.clone(), gw, mw, vw);
            let (b, mb, vb) = adam(l.b.clone(), gb, mb, vb);
            l.w = w;
            l.b = b;
            l.moments = Some([mw, vw, mb, vb]);
        }
    }
}

/// Validation accuracy and cross-entropy of every member (NaN for members already done).
fn validate(
    net: &Net,
    layers: &[Layer],
    val_x: &Tensor<2>,
    data: &TaskData,
    states: &[MemberState],
) -> Vec<(f64, f64)> {
    let k_all = states.len();
    let n = data.val_y.len();
    let c = data.classes;
    if n == 0 || states.iter().all(|s| s.done) {
        return vec![(f64::NAN, f64::NAN); k_all];
    }
    let plain: Vec<(Tensor<3>, Tensor<3>)> =
        layers.iter().map(|l| (l.w.clone(), l.b.clone())).collect();
    let chunk_rows = (16_000_000 / (k_all * net.floats_per_sample()).max(1)).clamp(1, VAL_CHUNK);
    let mut correct = vec![0usize; k_all];
    let mut ce = vec![0f64; k_all];
    for start in (0..n).step_by(chunk_rows) {
        let rows = chunk_rows.min(n - start);
        let x = val_x
            .clone()
            .slice([start..start + rows, 0..data.dim])
            .unsqueeze_dim::<3>(0)
            .expand([k_all, rows, data.dim]);
        let logits = to_vec(net.forward(&plain, x, None));
        for (k, chunk) in logits.chunks_exact(rows * c).enumerate() {
            let (hit, e) = score_logits(chunk, &data.val_y[start..start + rows], c);
            correct[k] += hit;
            ce[k] += e;
        }
    }
    correct
        .into_iter()
        .zip(ce)
        .map(|(hit, e)| (hit as f64 / n as f64, e / n as f64))
        .collect()
}
