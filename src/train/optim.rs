//! Optimizers over a flat parameter vector, with PyTorch's update rules.

/// Which optimizer trains the network.
#[derive(
    Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Adam (β1 0.9, β2 0.999, ε 1e-8), as `torch.optim.Adam`.
    Adam,
    /// Plain stochastic gradient descent, as `torch.optim.SGD` without momentum.
    Sgd,
}

/// Optimizer state.
#[derive(Clone, Debug)]
pub enum Optimizer {
    /// Adam's moments and step count.
    Adam {
        /// Learning rate.
        lr: f32,
        /// First moments.
        m: Vec<f32>,
        /// Second moments.
        v: Vec<f32>,
        /// Steps taken.
        t: i32,
    },
    /// SGD's learning rate.
    Sgd {
        /// Learning rate.
        lr: f32,
    },
}

/// Adam's β1.
pub(crate) const BETA1: f32 = 0.9;
/// Adam's β2.
pub(crate) const BETA2: f32 = 0.999;
const EPS: f32 = 1e-8;

/// Adam's step size and ε at step `t` (from 1), bias corrections folded in:
/// torch.optim.Adam's p -= lr / (1 - β1^t) * m / (sqrt(v) / sqrt(1 - β2^t) + ε) is
/// p -= step * m / (sqrt(v) + ε') with step = lr * sqrt(1 - β2^t) / (1 - β1^t) and
/// ε' = ε * sqrt(1 - β2^t): the same value with one division per parameter instead of two
/// (the last bits can differ from PyTorch's).
pub(crate) fn adam_step(lr: f32, t: i32) -> (f32, f32) {
    let bc1 = 1.0 - BETA1.powi(t);
    let bc2_sqrt = (1.0 - BETA2.powi(t)).sqrt();
    (lr * bc2_sqrt / bc1, EPS * bc2_sqrt)
}

impl Optimizer {
    /// A fresh optimizer for `n` parameters.
    pub fn new(kind: OptimizerKind, lr: f32, n: usize) -> Optimizer {
        match kind {
            OptimizerKind::Adam => Optimizer::Adam {
                lr,
                m: vec![0.0; n],
                v: vec![0.0; n],
                t: 0,
            },
            OptimizerKind::Sgd => Optimizer::Sgd { lr },
        }
    }

    /// One update of `params` by `grads`.
    pub fn step(&mut self, params: &mut [f32], grads: &[f32]) {
        match self {
            Optimizer::Sgd { lr } => {
                for (p, g) in params.iter_mut().zip(grads) {
                    *p -= *lr * g;
                }
            }
            Optimizer::Adam { lr, m, v, t } => {
                *t += 1;
                let (step, eps) = adam_step(*lr, *t);
                adam_update(params, grads, m, v, step, eps);
            }
        }
    }
}

#[inline(always)]
fn adam_body(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], step: f32, eps: f32) {
    for (((p, g), mi), vi) in p.iter_mut().zip(g).zip(m).zip(v) {
        *mi = BETA1 * *mi + (1.0 - BETA1) * g;
        *vi = BETA2 * *vi + (1.0 - BETA2) * g * g;
        *p -= step * *mi / (vi.sqrt() + eps);
    }
}

/// One Adam update, vectorized with AVX2 where the CPU has it (sqrt and division are
/// correctly rounded in every width, so the result is the same bits either way).
fn adam_update(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], step: f32, eps: f32) {
    #[cfg(target_arch = "x86_64")]
    if super::linalg::has_avx2() {
        #[target_feature(enable = "avx2")]
        fn avx2(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], step: f32, eps: f32) {
            adam_body(p, g, m, v, step, eps)
        }
        // SAFETY: the CPU has AVX2 (checked above).
        return unsafe { avx2(p, g, m, v, step, eps) };
    }
    adam_body(p, g, m, v, step, eps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adam_first_step_moves_each_parameter_by_about_lr() {
        // After one step m/(1-β1) = g and sqrt(v/(1-β2)) = |g|: the step is lr * sign(g).
        let mut opt = Optimizer::new(OptimizerKind::Adam, 0.01, 3);
        let mut p = vec![1.0, 1.0, 1.0];
        opt.step(&mut p, &[2.0, -0.5, 0.0]);
        assert!((p[0] - 0.99).abs() < 1e-6, "{p:?}");
        assert!((p[1] - 1.01).abs() < 1e-6, "{p:?}");
        assert_eq!(p[2], 1.0);
    }

    #[test]
    fn sgd_steps_against_the_gradient() {
        let mut opt = Optimizer::new(OptimizerKind::Sgd, 0.5, 2);
        let mut p = vec![1.0, -1.0];
        opt.step(&mut p, &[1.0, -2.0]);
        assert_eq!(p, vec![0.5, 0.0]);
    }
}
