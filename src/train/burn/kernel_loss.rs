//! The loss step of population training on the population kernel (`--features wgpu`): the
//! members whose loss the kernel lowers (row-separable, straight-line, with a gradient) get
//! their loss and dL/dy_pred from one WGSL dispatch per step, each on its own predictions and
//! samples ([`crate::gpu::Inputs::PerCandidate`]); burn's backward pass then starts from those
//! gradients (the surrogate `sum(logits * G)` has dL/dlogits = G). The other members keep
//! their burn graphs. A loss trained under several seeds is emitted once.
//!
//! The predictions go through the host: the kernel runs on wgpu's own device, not inside
//! burn's fusion (sharing burn's buffers needs burn's custom-kernel API in both its fusion and
//! autodiff layers). The step already reads every member's loss back, so the transfer adds
//! `K x batch x classes` floats each way per step.

use crate::gpu::PopulationRunner;
use crate::gpu::emit::{Dialect, gradient_ir, population, population_of};
use crate::gpu::wgpu_population::{WgpuPopulation, build};
use ncp_ir::Function;

/// The kernel of a population's lowerable losses, and who runs in it.
pub(super) struct KernelLoss {
    kernel: WgpuPopulation,
    /// The kernel's candidates: the member each one is, in order.
    members: Vec<usize>,
    /// The distinct losses in the kernel, and each candidate's among them (for the
    /// interpreter's check of the batch's shape against the loss's parameter types).
    losses: Vec<Function>,
    slots: Vec<usize>,
}

impl KernelLoss {
    /// The kernel of the members (given by their losses, in member order) whose loss it
    /// lowers, for `c` classes, or `None` when it lowers none of them or cannot be built here
    /// (then every member keeps its graph; the reason is logged).
    pub(super) fn build(members: &[&Function], c: usize) -> Option<KernelLoss> {
        // Each distinct loss once: its row function's index, or `None` where it has none.
        let mut seen: Vec<(&Function, Option<usize>)> = Vec::new();
        let mut grads: Vec<Function> = Vec::new();
        let mut losses: Vec<Function> = Vec::new();
        let mut slots = Vec::new();
        let mut who = Vec::new();
        for (m, func) in members.iter().enumerate() {
            let slot = match seen.iter().find(|(f, _)| f == func) {
                Some((_, slot)) => *slot,
                None => {
                    let slot = gradient_ir(func)
                        .filter(|g| population(std::slice::from_ref(g), c, Dialect::Wgsl).is_ok())
                        .map(|g| {
                            grads.push(g);
                            losses.push((*func).clone());
                            grads.len() - 1
                        });
                    seen.push((func, slot));
                    slot
                }
            };
            if let Some(slot) = slot {
                slots.push(slot);
                who.push(m);
            }
        }
        if who.is_empty() {
            return None;
        }
        let pop = match population_of(&grads, &slots, c, Dialect::Wgsl) {
            Ok(pop) => pop,
            Err(e) => {
                tracing::warn!("population kernel: {e}; the losses keep their burn graphs");
                return None;
            }
        };
        let started = std::time::Instant::now();
        match build(&pop) {
            Ok(kernel) => {
                tracing::debug!(
                    "population kernel on {}: {} of {} members, {} distinct losses, built in {:.3} s",
                    kernel.adapter(),
                    who.len(),
                    members.len(),
                    grads.len(),
                    started.elapsed().as_secs_f64()
                );
                Some(KernelLoss {
                    kernel,
                    members: who,
                    losses,
                    slots,
                })
            }
            Err(e) => {
                tracing::warn!("population kernel: {e}; the losses keep their burn graphs");
                None
            }
        }
    }

    /// Whether member `m` runs in the kernel.
    pub(super) fn has(&self, m: usize) -> bool {
        self.members.contains(&m)
    }

    /// The kernel members whose loss refuses a `[b, c]` batch, with the interpreter's reason
    /// (a fixed dim that does not match, symbolic B and C equal: a short last batch of an
    /// epoch can be either), as the graph path and the trainer's own refuse it.
    pub(super) fn refusals(&self, b: usize, c: usize) -> Vec<(usize, String)> {
        let shape = ncp_ir::tensor::Tensor {
            dtype: ncp_ir::DType::F32,
            shape: vec![b, c],
            data: Vec::new(),
        };
        let inputs = [shape.clone(), shape];
        let why: Vec<Option<String>> = self
            .losses
            .iter()
            .map(|f| {
                ncp_ir::interp::bind_dims(f, &inputs)
                    .err()
                    .map(|e| e.to_string())
            })
            .collect();
        self.members
            .iter()
            .zip(&self.slots)
            .filter_map(|(m, slot)| why[*slot].clone().map(|w| (*m, w)))
            .collect()
    }

    /// The loss and dL/dy_pred of every kernel member on its own batch: `y_pred` and `y_true`
    /// hold every member's `[b, c]` rows, member after member (all members, as the forward
    /// pass returns them). Returns `(member, loss, gradient)` in kernel order.
    pub(super) fn run(
        &self,
        y_pred: &[f32],
        y_true: &[f32],
        b: usize,
        c: usize,
    ) -> Result<Vec<(usize, f32, Vec<f32>)>, String> {
        let n = b * c;
        let gather = |x: &[f32]| -> Vec<f32> {
            self.members
                .iter()
                .flat_map(|m| x[m * n..(m + 1) * n].iter().copied())
                .collect()
        };
        let out = self
            .kernel
            .run_each(&gather(y_pred), &gather(y_true), b)
            .map_err(|e| e.to_string())?;
        Ok(self
            .members
            .iter()
            .zip(out)
            .map(|(m, (loss, g))| (*m, loss, g))
            .collect())
    }
}
