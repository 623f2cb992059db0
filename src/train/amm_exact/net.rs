//! AMM's loss-evaluation network, `nn.Sequential(Linear(784, 64), ReLU(), Linear(64, 10))`
//! as its ModelFactory builds it, in torch's parameter layout, and `torch.optim.Adam` with
//! AMM's settings (lr 1e-3, betas (0.9, 0.999), eps 1e-8) in torch's update order.
//!
//! The matrix products accumulate in f64 and round once: PyTorch's (MKL's) summation order
//! cannot be reproduced, and the correctly rounded product is the closest stand-in for it.

use crate::train::torch_rng::{TorchGenerator, linear_init};

/// Hidden units.
pub const HIDDEN: usize = 64;

/// The network's parameters in torch's order and layout: `w1 [HIDDEN][ins]`, `b1`,
/// `w2 [outs][HIDDEN]`, `b2`.
#[derive(Clone, Debug, PartialEq)]
pub struct Net {
    /// Input features.
    pub ins: usize,
    /// Outputs.
    pub outs: usize,
    /// The four parameter tensors, flattened, in `model.parameters()` order.
    pub params: [Vec<f32>; 4],
}

/// Activations of one forward pass, kept for the backward pass.
#[derive(Default, Debug)]
pub struct Forward {
    /// Hidden activations after ReLU, `n x HIDDEN`.
    pub hidden: Vec<f32>,
    /// Outputs, `n x outs`.
    pub out: Vec<f32>,
}

/// `out[r][j] = bias[j] + sum_k x[r][k] w[j][k]`, accumulated in f64 in `k` order (the
/// products of two f32 are exact in f64, so only the sums round) and rounded once.
///
/// The weights are read transposed (`[k][j]`), so each input feature updates every output's
/// running sum in turn: the same sums in the same order as a dot product per output, in
/// vector lanes across the outputs.
pub(super) fn affine(x: &[f32], w: &[f32], bias: &[f32], ins: usize, out: &mut Vec<f32>) {
    #[cfg(target_arch = "x86_64")]
    if crate::train::linalg::has_avx2() {
        #[target_feature(enable = "avx2")]
        fn avx2(x: &[f32], w: &[f32], bias: &[f32], ins: usize, out: &mut Vec<f32>) {
            affine_body(x, w, bias, ins, out)
        }
        // SAFETY: the CPU has AVX2 (checked above). No fused multiply-add: the same bits.
        return unsafe { avx2(x, w, bias, ins, out) };
    }
    affine_body(x, w, bias, ins, out)
}

/// `acc[i] += d * x[i]` in f64, vectorized with AVX2 where the CPU has it (the same bits).
pub(super) fn axpy_f64(acc: &mut [f64], d: f64, x: &[f32]) {
    fn body(acc: &mut [f64], d: f64, x: &[f32]) {
        for (a, xv) in acc.iter_mut().zip(x) {
            *a += d * *xv as f64;
        }
    }
    #[cfg(target_arch = "x86_64")]
    if crate::train::linalg::has_avx2() {
        #[target_feature(enable = "avx2")]
        fn avx2(acc: &mut [f64], d: f64, x: &[f32]) {
            body(acc, d, x)
        }
        // SAFETY: the CPU has AVX2 (checked above).
        return unsafe { avx2(acc, d, x) };
    }
    body(acc, d, x)
}

#[inline(always)]
fn affine_body(x: &[f32], w: &[f32], bias: &[f32], ins: usize, out: &mut Vec<f32>) {
    const LANES: usize = 8;
    let outs = bias.len();
    let n = x.len() / ins;
    out.clear();
    out.resize(n * outs, 0.0);
    let mut wt = vec![0f64; ins * outs];
    for (j, row) in w.chunks_exact(ins).enumerate() {
        for (k, v) in row.iter().enumerate() {
            wt[k * outs + j] = *v as f64;
        }
    }
    for (xr, o) in x.chunks_exact(ins).zip(out.chunks_exact_mut(outs)) {
        // Eight outputs at a time, each a running sum over k in order (Rust's f64 `sum`
        // starts from -0.0; so do these).
        let mut j0 = 0;
        while j0 + LANES <= outs {
            let mut acc = [-0.0f64; LANES];
            for (k, xv) in xr.iter().enumerate() {
                let xv = *xv as f64;
                let wk: &[f64; LANES] = wt[k * outs + j0..k * outs + j0 + LANES]
                    .try_into()
                    .expect("eight weights");
                for l in 0..LANES {
                    acc[l] += xv * wk[l];
                }
            }
            for l in 0..LANES {
                o[j0 + l] = (acc[l] + bias[j0 + l] as f64) as f32;
            }
            j0 += LANES;
        }
        for j in j0..outs {
            let mut a = -0.0f64;
            for (k, xv) in xr.iter().enumerate() {
                a += *xv as f64 * wt[k * outs + j];
            }
            o[j] = (a + bias[j] as f64) as f32;
        }
    }
}

impl Net {
    /// The network `ModelFactory` builds after `torch.manual_seed(42)`, drawing from `g`.
    pub fn init(g: &mut TorchGenerator, ins: usize, outs: usize) -> Net {
        let (w1, b1) = linear_init(g, ins, HIDDEN);
        let (w2, b2) = linear_init(g, HIDDEN, outs);
        Net {
            ins,
            outs,
            params: [w1, b1, w2, b2],
        }
    }

    /// The forward pass over the rows of `x`.
    pub fn forward(&self, x: &[f32], fw: &mut Forward) {
        let [w1, b1, w2, b2] = &self.params;
        affine(x, w1, b1, self.ins, &mut fw.hidden);
        for h in fw.hidden.iter_mut() {
            // torch.relu: NaN stays NaN.
            if *h < 0.0 {
                *h = 0.0;
            }
        }
        affine(&fw.hidden, w2, b2, HIDDEN, &mut fw.out);
    }

    /// Parameter gradients of the batch `x` given dL/dout (`n x outs`), after
    /// [`Net::forward`] on `x` into `fw`.
    pub fn backward(&self, x: &[f32], fw: &Forward, dout: &[f32]) -> [Vec<f32>; 4] {
        let (ins, outs) = (self.ins, self.outs);
        let n = dout.len() / outs;
        let w2 = &self.params[2];
        let h = &fw.hidden;
        let mut gw2 = vec![0f32; outs * HIDDEN];
        let mut gb2 = vec![0f32; outs];
        for j in 0..outs {
            let mut sb = 0f64;
            for k in 0..HIDDEN {
                let mut s = 0f64;
                for r in 0..n {
                    s += dout[r * outs + j] as f64 * h[r * HIDDEN + k] as f64;
                }
                gw2[j * HIDDEN + k] = s as f32;
            }
            for r in 0..n {
                sb += dout[r * outs + j] as f64;
            }
            gb2[j] = sb as f32;
        }
        // dL/dhidden through ReLU (threshold_backward: the gradient where the output > 0).
        let mut dh = vec![0f32; n * HIDDEN];
        for r in 0..n {
            for k in 0..HIDDEN {
                if h[r * HIDDEN + k] > 0.0 {
                    let mut s = 0f64;
                    for j in 0..outs {
                        s += dout[r * outs + j] as f64 * w2[j * HIDDEN + k] as f64;
                    }
                    dh[r * HIDDEN + k] = s as f32;
                }
            }
        }
        let mut gw1 = vec![0f32; HIDDEN * ins];
        let mut gb1 = vec![0f32; HIDDEN];
        let mut acc = vec![0f64; ins];
        for j in 0..HIDDEN {
            acc.fill(0.0);
            let mut sb = 0f64;
            for r in 0..n {
                let d = dh[r * HIDDEN + j] as f64;
                sb += d;
                if d != 0.0 {
                    axpy_f64(&mut acc, d, &x[r * ins..(r + 1) * ins]);
                }
            }
            for (g, a) in gw1[j * ins..(j + 1) * ins].iter_mut().zip(&acc) {
                *g = *a as f32;
            }
            gb1[j] = sb as f32;
        }
        [gw1, gb1, gw2, gb2]
    }
}

/// `torch.optim.Adam(params, lr)` (betas (0.9, 0.999), eps 1e-8, no weight decay), the
/// single-tensor path torch takes for CPU tensors.
#[derive(Clone, Debug)]
pub struct Adam {
    lr: f64,
    step: u32,
    m: [Vec<f32>; 4],
    v: [Vec<f32>; 4],
}

/// Elements torch's vectorized CPU loops take per iteration (two AVX-512 vectors); the rest
/// of a tensor goes through the scalar loop.
const VECTOR_BLOCK: usize = 32;

impl Adam {
    /// A fresh optimizer for a network's four parameter tensors.
    pub fn new(params: &[Vec<f32>; 4], lr: f64) -> Adam {
        let zeros = |k: usize| vec![0f32; params[k].len()];
        Adam {
            lr,
            step: 0,
            m: [zeros(0), zeros(1), zeros(2), zeros(3)],
            v: [zeros(0), zeros(1), zeros(2), zeros(3)],
        }
    }

    /// One `optimizer.step()` with `grads`. The fused multiply-add of torch's vector body is
    /// one instruction where the CPU has FMA, a (slower) library call elsewhere: the same bits.
    pub fn step(&mut self, params: &mut [Vec<f32>; 4], grads: &[Vec<f32>; 4]) {
        #[cfg(target_arch = "x86_64")]
        if crate::train::linalg::has_avx2() && std::arch::is_x86_feature_detected!("fma") {
            #[target_feature(enable = "avx2,fma")]
            fn fused(adam: &mut Adam, params: &mut [Vec<f32>; 4], grads: &[Vec<f32>; 4]) {
                adam.step_body(params, grads)
            }
            // SAFETY: the CPU has AVX2 and FMA (checked above). Only `mul_add` fuses.
            return unsafe { fused(self, params, grads) };
        }
        self.step_body(params, grads)
    }

    #[inline(always)]
    fn step_body(&mut self, params: &mut [Vec<f32>; 4], grads: &[Vec<f32>; 4]) {
        const BETA1: f64 = 0.9;
        const BETA2: f64 = 0.999;
        self.step += 1;
        let t = self.step as f64;
        // Python floats, as torch's _single_tensor_adam computes them.
        let bc1 = 1.0 - BETA1.powf(t);
        let bc2 = 1.0 - BETA2.powf(t);
        let step_size = self.lr / bc1;
        let bc2_sqrt = bc2.sqrt();
        // Scalars enter the float32 kernels rounded to float32.
        let w1 = (1.0 - BETA1) as f32;
        let b2 = BETA2 as f32;
        let c2 = (1.0 - BETA2) as f32;
        let neg_step = (-step_size) as f32;
        let bc2s = bc2_sqrt as f32;
        let eps = 1e-8f32;
        let tensors = params
            .iter_mut()
            .zip(grads)
            .zip(&mut self.m)
            .zip(&mut self.v);
        for (((p, g), m), v) in tensors {
            let body = p.len() / VECTOR_BLOCK * VECTOR_BLOCK;
            for i in 0..p.len() {
                let vector = i < body;
                // exp_avg.lerp_(grad, 1 - beta1): the vector kernel is one fused multiply-add.
                m[i] = if vector {
                    w1.mul_add(g[i] - m[i], m[i])
                } else {
                    m[i] + w1 * (g[i] - m[i])
                };
                // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                v[i] *= b2;
                v[i] += c2 * g[i] * g[i];
                // denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
                let denom = v[i].sqrt() / bc2s + eps;
                // param.addcdiv_(exp_avg, denom, value=-step_size)
                p[i] += neg_step * m[i] / denom;
            }
        }
    }
}
