//! Multilayer perceptrons with ReLU and optional dropout, trained by the trainer's own
//! backward pass. Parameters live in one flat vector so optimizers treat them uniformly.
//!
//! Initialisation follows PyTorch's `nn.Linear` default (weights and biases uniform in
//! ±1/sqrt(fan_in)) from a seeded ChaCha8 stream; the numbers differ from PyTorch's (another
//! generator) but have the same distribution.

use super::linalg::{
    Affine, SparseRows, linear_backward, linear_forward, sparse_linear_backward,
    sparse_linear_forward,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The shape of an MLP: `input -> hidden... -> output`, ReLU after each hidden layer, and
/// dropout with probability `dropout` after each ReLU while training.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct MlpSpec {
    /// Features per sample.
    pub input: usize,
    /// Widths of the hidden layers.
    pub hidden: Vec<usize>,
    /// Outputs (classes).
    pub output: usize,
    /// Dropout probability after each hidden layer (0 for none).
    pub dropout: f32,
}

impl MlpSpec {
    /// Layer sizes `(in, out)` in order (parameters are stored in this order, each layer's
    /// weights `[in][out]` then its bias).
    pub fn layers(&self) -> Vec<(usize, usize)> {
        let mut sizes = vec![self.input];
        sizes.extend(&self.hidden);
        sizes.push(self.output);
        sizes.windows(2).map(|w| (w[0], w[1])).collect()
    }

    /// Number of parameters.
    pub fn param_count(&self) -> usize {
        self.layers().iter().map(|(i, o)| i * o + o).sum()
    }

    /// A one-line description, e.g. `784-64-10`.
    pub fn describe(&self) -> String {
        let mut parts = vec![self.input.to_string()];
        parts.extend(self.hidden.iter().map(|h| h.to_string()));
        parts.push(self.output.to_string());
        let mut s = parts.join("-");
        if self.dropout > 0.0 {
            s.push_str(&format!(" (dropout {})", self.dropout));
        }
        s
    }
}

/// Where one layer's weights and bias sit in the flat parameter vector.
#[derive(Clone, Copy, Debug)]
struct Layer {
    ins: usize,
    outs: usize,
    w: usize,
    b: usize,
}

/// An MLP: its spec and parameters.
#[derive(Clone, Debug)]
pub struct Mlp {
    /// The shape.
    pub spec: MlpSpec,
    /// All parameters, layer by layer: weights `[in][out]` (the transpose of PyTorch's
    /// layout, so both passes run along contiguous output rows), then bias.
    pub params: Vec<f32>,
    /// An affine applied to the input (normalisation folded into the first layer, so raw
    /// zero pixels can be skipped).
    pub input_affine: Option<Affine>,
    layers: Vec<Layer>,
}

/// Activations kept from a forward pass for the backward pass, reused between steps.
#[derive(Default, Debug)]
pub struct Workspace {
    /// `acts[0]` is the input; `acts[k]` the output of layer k (after ReLU and dropout for
    /// hidden layers; the logits for the last).
    acts: Vec<Vec<f32>>,
    /// Dropout multipliers (0 or 1/(1-p)) per hidden layer, empty without dropout.
    masks: Vec<Vec<f32>>,
    delta: Vec<f32>,
    next: Vec<f32>,
    /// The input when it came sparse (then `acts[0]` is unused).
    sparse_in: Option<SparseRows>,
    /// Scratch for the sparse backward pass.
    columns: SparseRows,
}

/// A batch of inputs.
#[derive(Copy, Clone, Debug)]
pub enum Input<'a> {
    /// Row-major dense features.
    Dense(&'a [f32]),
    /// Sparse rows (skips the zeros without scanning for them).
    Sparse(&'a SparseRows),
}

/// Append `n` dropout multipliers (0 with probability `p`, else 1/(1-p)) drawn from `rng`,
/// in the order the trainer draws them (every backend must draw the same masks).
pub(crate) fn extend_dropout_mask(rng: &mut ChaCha8Rng, p: f32, n: usize, mask: &mut Vec<f32>) {
    let keep = 1.0 / (1.0 - p);
    mask.extend((0..n).map(|_| if rng.random::<f32>() < p { 0.0 } else { keep }));
}

impl Mlp {
    /// A freshly initialised network.
    pub fn new(spec: MlpSpec, seed: u64) -> Mlp {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut params = Vec::with_capacity(spec.param_count());
        let mut layers = Vec::new();
        for (ins, outs) in spec.layers() {
            let bound = 1.0 / (ins as f32).sqrt();
            let w = params.len();
            params.extend((0..ins * outs).map(|_| rng.random_range(-bound..bound)));
            let b = params.len();
            params.extend((0..outs).map(|_| rng.random_range(-bound..bound)));
            layers.push(Layer { ins, outs, w, b });
        }
        Mlp {
            spec,
            params,
            input_affine: None,
            layers,
        }
    }

    /// The same network reading its input through `affine`.
    pub fn with_input_affine(mut self, affine: Option<Affine>) -> Mlp {
        self.input_affine = affine;
        self
    }

    /// Forward pass over `n` rows of `x`. With `dropout_rng`, training mode (dropout on);
    /// without, evaluation mode. Returns the logits (`n x output`), kept in `ws`.
    pub fn forward<'w>(
        &self,
        x: &[f32],
        n: usize,
        dropout_rng: Option<&mut ChaCha8Rng>,
        ws: &'w mut Workspace,
    ) -> &'w [f32] {
        self.forward_input(Input::Dense(&x[..n * self.spec.input]), dropout_rng, ws)
    }

    /// [`Mlp::forward`] on dense or sparse input (the same bits either way).
    pub fn forward_input<'w>(
        &self,
        x: Input,
        dropout_rng: Option<&mut ChaCha8Rng>,
        ws: &'w mut Workspace,
    ) -> &'w [f32] {
        let depth = self.layers.len();
        ws.acts.resize_with(depth + 1, Vec::new);
        ws.masks.resize_with(depth, Vec::new);
        ws.acts[0].clear();
        let n = match x {
            Input::Dense(d) => {
                ws.sparse_in = None;
                ws.acts[0].extend_from_slice(d);
                d.len() / self.spec.input
            }
            Input::Sparse(s) => {
                match &mut ws.sparse_in {
                    Some(mine) => mine.clone_from(s),
                    slot => *slot = Some(s.clone()),
                }
                s.rows()
            }
        };
        let p = self.spec.dropout;
        let mut rng = dropout_rng.filter(|_| p > 0.0);
        for (k, l) in self.layers.iter().enumerate() {
            let (done, rest) = ws.acts.split_at_mut(k + 1);
            let (w, b) = (
                &self.params[l.w..l.w + l.ins * l.outs],
                &self.params[l.b..l.b + l.outs],
            );
            let affine = if k == 0 { self.input_affine } else { None };
            match (&ws.sparse_in, k) {
                (Some(sx), 0) => sparse_linear_forward(sx, w, b, affine, &mut rest[0]),
                _ => linear_forward(&done[k], w, b, n, affine, &mut rest[0]),
            }
            if k + 1 < depth {
                for v in rest[0].iter_mut() {
                    *v = v.max(0.0);
                }
                let mask = &mut ws.masks[k];
                mask.clear();
                if let Some(rng) = rng.as_deref_mut() {
                    extend_dropout_mask(rng, p, rest[0].len(), mask);
                    for (v, m) in rest[0].iter_mut().zip(mask.iter()) {
                        *v *= m;
                    }
                }
            }
        }
        &ws.acts[depth]
    }

    /// Backward pass after [`Mlp::forward`] on the same workspace: `dlogits` is dL/dlogits
    /// (`n x output`); the parameter gradients are written (not added) to `grads`.
    pub fn backward(&self, ws: &mut Workspace, dlogits: &[f32], n: usize, grads: &mut [f32]) {
        grads.fill(0.0);
        let Workspace {
            acts,
            masks,
            delta,
            next,
            sparse_in,
            columns,
        } = ws;
        delta.clear();
        delta.extend_from_slice(dlogits);
        for (k, l) in self.layers.iter().enumerate().rev() {
            let w = &self.params[l.w..l.w + l.ins * l.outs];
            let (gw, gb) = grads[l.w..l.b + l.outs].split_at_mut(l.ins * l.outs);
            let want_dx = k > 0;
            let affine = if k == 0 { self.input_affine } else { None };
            match (&*sparse_in, k) {
                (Some(sx), 0) => sparse_linear_backward(sx, delta, affine, gw, gb, columns),
                _ => linear_backward(
                    &acts[k],
                    w,
                    delta,
                    n,
                    affine,
                    gw,
                    gb,
                    want_dx.then_some(&mut *next),
                ),
            }
            if want_dx {
                // Through dropout (the mask of layer k-1) and ReLU (zero where the output was).
                let mask = &masks[k - 1];
                for (i, (g, a)) in next.iter_mut().zip(&acts[k]).enumerate() {
                    if *a <= 0.0 {
                        *g = 0.0;
                    } else if !mask.is_empty() {
                        *g *= mask[i];
                    }
                }
                std::mem::swap(delta, next);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dropout: f32) -> MlpSpec {
        MlpSpec {
            input: 5,
            hidden: vec![4, 3],
            output: 2,
            dropout,
        }
    }

    /// Half the squared norm of the logits, so dL/dlogits = logits.
    fn loss(m: &Mlp, x: &[f32]) -> f64 {
        let mut ws = Workspace::default();
        m.forward(x, 2, None, &mut ws)
            .iter()
            .map(|v| 0.5 * (*v as f64).powi(2))
            .sum()
    }

    #[test]
    fn gradients_match_central_differences() {
        let affine = Some(Affine {
            scale: 1.5,
            shift: -0.25,
        });
        let m = Mlp::new(spec(0.0), 7).with_input_affine(affine);
        let x: Vec<f32> = (0..10).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut ws = Workspace::default();
        let logits = m.forward(&x, 2, None, &mut ws).to_vec();
        let mut grads = vec![0.0; m.params.len()];
        m.backward(&mut ws, &logits, 2, &mut grads);
        for (i, g) in grads.iter().enumerate() {
            let h = 1e-2;
            let (mut up, mut down) = (m.clone(), m.clone());
            up.params[i] += h;
            down.params[i] -= h;
            let num = (loss(&up, &x) - loss(&down, &x)) / (2.0 * h as f64);
            assert!(
                (num - *g as f64).abs() < 1e-3 * (1.0 + num.abs()),
                "param {i}: numeric {num} vs {g}"
            );
        }
    }

    #[test]
    fn same_seed_same_network_and_dropout_only_in_training() {
        let (a, b) = (Mlp::new(spec(0.5), 3), Mlp::new(spec(0.5), 3));
        assert_eq!(a.params, b.params);
        assert_ne!(a.params, Mlp::new(spec(0.5), 4).params);
        let x = vec![1.0; 10];
        let mut ws = Workspace::default();
        let eval1 = a.forward(&x, 2, None, &mut ws).to_vec();
        let eval2 = a.forward(&x, 2, None, &mut ws).to_vec();
        assert_eq!(eval1, eval2);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let train = a.forward(&x, 2, Some(&mut rng), &mut ws).to_vec();
        assert_ne!(train, eval1, "dropout 0.5 changed nothing");
    }
}
