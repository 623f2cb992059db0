//! A candidate loss inside training: the loss and dL/dy_pred of one batch, from the Cranelift
//! kernel when the JIT takes the function, else from the reference interpreter. In exact
//! math mode the two give bit-identical results (tested), so the engine never changes a score.
//!
//! A loss that branches on the data runs its first step on the interpreter, which also
//! records the path taken; the JIT then compiles that path with its branches as guards
//! (`jit::paths::guarded_path`). A step whose inputs take another path (the kernel's loss
//! is NaN) runs on the interpreter and retraces, up to [`MAX_TRACES`] paths per loss.

use crate::jit::{CompiledLoss, Jit, MathMode, Tier};
use crate::loss::{Backend, evaluate_function_traced};
use ncp_ir::interp::{DEFAULT_FUEL, Step};
use ncp_ir::tensor::Tensor;
use ncp_ir::{DType, Function, TrapCode};

/// Why a training step could not use the candidate's loss.
#[derive(Clone, Debug, PartialEq)]
pub enum StepFault {
    /// The program faulted (AMM's interpreter raised).
    Trap(TrapCode),
    /// The loss does not depend on the prediction, so it cannot train anything (PyTorch's
    /// `backward()` raises on such a loss).
    NoGradient,
    /// The loss was NaN or infinite.
    NonFinite(f32),
    /// The loss failed to run for another reason (a bug, or an input the IR refuses).
    Failed(String),
}

impl std::fmt::Display for StepFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepFault::Trap(t) => write!(f, "the program faulted ({t:?})"),
            StepFault::NoGradient => write!(f, "the loss does not depend on y_pred"),
            StepFault::NonFinite(x) => write!(f, "the loss was {x}"),
            StepFault::Failed(m) => write!(f, "the loss failed: {m}"),
        }
    }
}

/// Kernels a thread's JIT holds before it is replaced by a fresh one (compiled code is never
/// freed otherwise; an evolution run compiles thousands of candidates).
const JIT_CAPACITY: usize = 4096;

/// One JIT per thread and math mode, shared by every candidate the thread trains: kernels
/// are cached by the structure of the gradient IR, so seeds of one candidate, and candidates
/// that differ only in constants, compile once.
struct ThreadJit {
    /// Bumped when the JIT is replaced, so losses compiled by the old one recompile.
    generation: u64,
    math: MathMode,
    jit: Jit,
}

thread_local! {
    static THREAD_JIT: std::cell::RefCell<Option<ThreadJit>> = const { std::cell::RefCell::new(None) };
}

/// Training steps after which a loss's kernel is recompiled in [`Tier::Hot`]: the quick
/// kernel compiles in about half the time, the hot one runs its elements in vector lanes.
/// Short runs (AMM's ten steps, probes) never pay for the larger kernel. Both compute the
/// same values bit for bit.
pub const HOT_AFTER_CALLS: u32 = 48;

/// Compile `func` on this thread's JIT in `tier`: `(generation, compiled)`, or `None` when
/// the JIT does not take it.
fn compile_here(func: &Function, math: MathMode, tier: Tier) -> Option<(u64, CompiledLoss)> {
    THREAD_JIT.with(|cell| {
        let mut slot = cell.borrow_mut();
        let stale = slot
            .as_ref()
            .is_none_or(|t| t.math != math || t.jit.compiled >= JIT_CAPACITY);
        if stale {
            let generation = slot.as_ref().map_or(0, |t| t.generation + 1);
            *slot = Some(ThreadJit {
                generation,
                math,
                jit: Jit::with_math(math).ok()?,
            });
        }
        let t = slot.as_mut()?;
        // Anything the JIT refuses or fails on runs on the interpreter, the oracle.
        match t.jit.compile_loss_tier(func, tier) {
            Ok(Some(cl)) => Some((t.generation, cl)),
            _ => None,
        }
    })
}

/// Paths a loss that branches on the data may trace before it stays on the interpreter
/// (a loss whose path changes at every step would otherwise compile at every step).
pub const MAX_TRACES: u32 = 8;

/// A loss function ready for repeated calls on batches of one shape.
pub struct CandidateLoss {
    func: Function,
    math: MathMode,
    /// The JIT generation and compiled loss, when the JIT takes the function.
    jit: Option<(u64, CompiledLoss)>,
    /// For a loss that branches on the data (and is trained on the JIT): the guarded path
    /// its kernel was compiled from, and how many paths it has traced.
    traced: Option<Function>,
    traces: u32,
    /// Whether the loss branches on the data and trains on the JIT.
    traceable: bool,
    /// Kernel calls so far (the tier goes up after [`HOT_AFTER_CALLS`]).
    calls: u32,
}

impl CandidateLoss {
    /// Prepare `func` (`(y_pred, y_true) -> f32`). With [`Backend::Jit`], compile its kernel
    /// on this thread's JIT when the JIT takes it; otherwise every call runs the interpreter.
    /// Use it on the thread that made it.
    pub fn new(func: Function, backend: Backend, math: MathMode) -> CandidateLoss {
        let jit = match backend {
            Backend::Interp => None,
            Backend::Jit => compile_here(&func, math, Tier::Quick),
        };
        let traceable = backend == Backend::Jit && crate::jit::paths::dynamic_branches(&func);
        CandidateLoss {
            func,
            math,
            jit,
            traced: None,
            traces: 0,
            traceable,
            calls: 0,
        }
    }

    /// Compile the guarded `path` the interpreter's run of a step took (a loss that branches
    /// on the data), unless it has traced [`MAX_TRACES`] paths already. Later steps on that
    /// path run on the JIT.
    fn trace(&mut self, path: &[Step]) {
        if !self.traceable || self.traces >= MAX_TRACES {
            self.jit = None;
            return;
        }
        self.traces += 1;
        self.calls = 0;
        self.traced = crate::jit::paths::guarded_path_of(&self.func, path);
        self.jit = self
            .traced
            .as_ref()
            .and_then(|g| compile_here(g, self.math, Tier::Quick));
        if self.jit.is_none() {
            // The JIT does not take this path (an op it does not lower, a path too long):
            // the loss stays on the interpreter.
            self.traceable = false;
        }
    }

    /// Which engine computes this loss.
    pub fn engine(&self) -> Backend {
        if self.jit.is_some() {
            Backend::Jit
        } else {
            Backend::Interp
        }
    }

    /// Run the compiled kernel on this thread's JIT (recompiling if that JIT was replaced).
    fn run_jit(
        &mut self,
        y_pred: &[f32],
        y_true: &[f32],
        b: usize,
        c: usize,
        grad: &mut [f32],
    ) -> Result<f32, StepFault> {
        let current = THREAD_JIT.with(|cell| cell.borrow().as_ref().map(|t| t.generation));
        self.calls = self.calls.saturating_add(1);
        let tier = if self.calls > HOT_AFTER_CALLS {
            Tier::Hot
        } else {
            Tier::Quick
        };
        let stale = self.jit.as_ref().map(|(g, _)| Some(*g)) != Some(current);
        if stale || self.jit.as_ref().is_some_and(|(_, cl)| cl.tier != tier) {
            let func = self.traced.as_ref().unwrap_or(&self.func);
            let compiled = compile_here(func, self.math, tier).or_else(|| {
                // (Not expected: both tiers lower the same ops.) Stay in the quick tier.
                self.calls = 0;
                compile_here(func, self.math, Tier::Quick)
            });
            self.jit = compiled;
        }
        let Some((_, cl)) = &self.jit else {
            return Err(StepFault::Failed(
                "the JIT no longer takes this loss".into(),
            ));
        };
        THREAD_JIT.with(|cell| {
            let slot = cell.borrow();
            let t = slot
                .as_ref()
                .ok_or_else(|| StepFault::Failed("no JIT on this thread".into()))?;
            t.jit
                .run(cl, y_pred, y_true, b, c, grad)
                .map_err(|e| StepFault::Failed(e.to_string()))
        })
    }

    /// The loss of row-major `[b, c]` predictions against targets, and dL/dy_pred written to
    /// `grad` (resized to `b * c`).
    pub fn loss_and_grad(
        &mut self,
        y_pred: &[f32],
        y_true: &[f32],
        b: usize,
        c: usize,
        grad: &mut Vec<f32>,
    ) -> Result<f32, StepFault> {
        let on_jit = match &self.jit {
            Some((_, cl)) => {
                if !cl.has_grad {
                    return Err(StepFault::NoGradient);
                }
                grad.clear();
                grad.resize(b * c, 0.0);
                let loss = self.run_jit(y_pred, y_true, b, c, grad)?;
                // A guarded path's NaN: another path, or a NaN loss; the interpreter says.
                (self.traced.is_none() || !loss.is_nan()).then_some(loss)
            }
            None => None,
        };
        let loss = match on_jit {
            Some(loss) => loss,
            None => {
                let as_tensor = |v: &[f32]| {
                    Tensor::new(
                        DType::F32,
                        vec![b, c],
                        v.iter().map(|x| *x as f64).collect(),
                    )
                };
                let (value, path) = evaluate_function_traced(
                    &self.func,
                    &as_tensor(y_pred),
                    &as_tensor(y_true),
                    true,
                    DEFAULT_FUEL,
                )
                .map_err(|e| StepFault::Failed(e.to_string()))?;
                if self.traceable && value.fault.is_none() && value.loss.is_finite() {
                    self.trace(&path);
                }
                if let Some(t) = value.fault {
                    return Err(StepFault::Trap(t));
                }
                let rows = value.grad.ok_or(StepFault::NoGradient)?;
                grad.clear();
                grad.extend(rows.iter().flatten());
                value.loss
            }
        };
        if !loss.is_finite() {
            return Err(StepFault::NonFinite(loss));
        }
        Ok(loss)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `mean(y_pred) > 0 ? mean((y_pred - y_true)^2) : mean(|y_pred - y_true|)`.
    fn branchy() -> Function {
        ncp_ir::text::parse_function(
            "function g(f32[B,C], f32[B,C]) -> f32 {\nblock0(v0: f32[B,C], v1: f32[B,C]):\n    v2 = mean<all> v0 : f32\n    v3 = const<0.0> : f32\n    v4 = gt v2, v3 : bool\n    v5 = sub v0, v1 : f32[B,C]\n    brif v4, block1, block2\nblock1:\n    v6 = mul v5, v5 : f32[B,C]\n    v7 = mean<all> v6 : f32\n    return v7\nblock2:\n    v8 = abs v5 : f32[B,C]\n    v9 = mean<all> v8 : f32\n    return v9\n}",
        )
        .unwrap()
    }

    #[test]
    fn a_loss_that_branches_on_the_data_trains_on_guarded_kernels_exactly() {
        let (b, c) = (6, 4);
        let mut jit = CandidateLoss::new(branchy(), Backend::Jit, MathMode::Exact);
        let mut interp = CandidateLoss::new(branchy(), Backend::Interp, MathMode::Exact);
        assert_eq!(jit.engine(), Backend::Interp, "nothing traced yet");
        let (mut g1, mut g2) = (Vec::new(), Vec::new());
        // The sign of the batch picks the branch: two paths, revisited.
        for (step, sign) in [1.0f32, 1.0, 1.0, -1.0, -1.0, 1.0, -1.0].iter().enumerate() {
            let yp: Vec<f32> = (0..b * c)
                .map(|k| sign * (0.1 + (k * 7 % 5) as f32 / 7.0 + step as f32 / 100.0))
                .collect();
            let yt: Vec<f32> = (0..b * c).map(|k| ((k % c) == 1) as u8 as f32).collect();
            let a = jit.loss_and_grad(&yp, &yt, b, c, &mut g1).unwrap();
            let want = interp.loss_and_grad(&yp, &yt, b, c, &mut g2).unwrap();
            assert_eq!(a.to_bits(), want.to_bits(), "loss at step {step}");
            assert_eq!(g1, g2, "gradient at step {step}");
            assert_eq!(
                jit.engine(),
                Backend::Jit,
                "a path is compiled after step {step}"
            );
        }
        assert_eq!(jit.traces, 4, "one trace per change of path (+, -, +, -)");
    }

    #[test]
    fn a_loss_that_never_repeats_its_path_stops_tracing() {
        let (b, c) = (2, 3);
        let mut l = CandidateLoss::new(branchy(), Backend::Jit, MathMode::Exact);
        let mut g = Vec::new();
        for step in 0..3 * MAX_TRACES {
            let s = if step % 2 == 0 { 1.0 } else { -1.0 };
            let yt = [0.0, 1.0, 0.0, 1.0, 0.0, 0.0];
            l.loss_and_grad(&[s; 6], &yt, b, c, &mut g).unwrap();
        }
        assert_eq!(l.traces, MAX_TRACES);
        assert_eq!(l.engine(), Backend::Interp);
    }
}
