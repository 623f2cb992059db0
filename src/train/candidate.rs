//! A candidate loss inside training: the loss and dL/dy_pred of one batch, from the Cranelift
//! kernel when the JIT takes the function, else from the reference interpreter. In exact
//! math mode the two give bit-identical results (tested), so the engine never changes a score.

use crate::jit::{CompiledLoss, Jit, MathMode, Tier};
use crate::loss::{Backend, evaluate_function};
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

/// A loss function ready for repeated calls on batches of one shape.
pub struct CandidateLoss {
    func: Function,
    math: MathMode,
    /// The JIT generation and compiled loss, when the JIT takes the function.
    jit: Option<(u64, CompiledLoss)>,
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
        CandidateLoss {
            func,
            math,
            jit,
            calls: 0,
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
            self.jit = compile_here(&self.func, self.math, tier).or_else(|| {
                // (Not expected: both tiers lower the same ops.) Stay in the quick tier.
                self.calls = 0;
                compile_here(&self.func, self.math, Tier::Quick)
            });
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
        let loss = match &self.jit {
            Some((_, cl)) => {
                if !cl.has_grad {
                    return Err(StepFault::NoGradient);
                }
                grad.clear();
                grad.resize(b * c, 0.0);
                self.run_jit(y_pred, y_true, b, c, grad)?
            }
            None => {
                let as_tensor = |v: &[f32]| {
                    Tensor::new(
                        DType::F32,
                        vec![b, c],
                        v.iter().map(|x| *x as f64).collect(),
                    )
                };
                let value =
                    evaluate_function(&self.func, &as_tensor(y_pred), &as_tensor(y_true), true)
                        .map_err(|e| StepFault::Failed(e.to_string()))?;
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
