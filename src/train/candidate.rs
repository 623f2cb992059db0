//! A candidate loss inside training: the loss and dL/dy_pred of one batch, from the Cranelift
//! kernel when the JIT takes the function, else from the reference interpreter. In exact
//! math mode the two give bit-identical results (tested), so the engine never changes a score.

use crate::jit::{CompiledLoss, Jit, MathMode};
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

/// A loss function ready for repeated calls on batches of one shape.
pub struct CandidateLoss {
    func: Function,
    jit: Option<(Jit, CompiledLoss)>,
}

impl CandidateLoss {
    /// Prepare `func` (`(y_pred, y_true) -> f32`). With [`Backend::Jit`], compile its kernel
    /// when the JIT takes it; otherwise every call runs the interpreter.
    pub fn new(func: Function, backend: Backend, math: MathMode) -> CandidateLoss {
        let jit = match backend {
            Backend::Interp => None,
            Backend::Jit => Jit::with_math(math).ok().and_then(|mut jit| {
                // Anything the JIT refuses or fails on runs on the interpreter, the oracle.
                match jit.compile_loss(&func) {
                    Ok(Some(cl)) => Some((jit, cl)),
                    _ => None,
                }
            }),
        };
        CandidateLoss { func, jit }
    }

    /// Which engine computes this loss.
    pub fn engine(&self) -> Backend {
        if self.jit.is_some() {
            Backend::Jit
        } else {
            Backend::Interp
        }
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
            Some((jit, cl)) => {
                if !cl.has_grad {
                    return Err(StepFault::NoGradient);
                }
                grad.clear();
                grad.resize(b * c, 0.0);
                jit.run(cl, y_pred, y_true, b, c, grad)
                    .map_err(|e| StepFault::Failed(e.to_string()))?
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
