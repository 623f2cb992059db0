//! The networks of a population: parameter layout, initialisation and forward pass, for K
//! members at once.
//!
//! Every parameter tensor is held as a rank-3 tensor holding all K members (reshaped where an
//! op needs another rank), so the optimizer treats all of them alike.
//!
//! - The MLP: weights `[K, in, out]`, biases `[K, 1, out]`; members' initial values are the
//!   native trainer's ([`crate::train::model::Mlp::new`]).
//! - The small CNN: conv 3x3 (8) - ReLU - max-pool 2 - conv 3x3 (16) - ReLU - max-pool 2 -
//!   linear. The K members' convolutions run as one grouped convolution (groups = K, member
//!   k's images in input channels `k*ch..(k+1)*ch`); conv weights are `[K*out, in, 9]`,
//!   conv biases `[1, 1, K*out]`. Initialised as PyTorch's `nn.Conv2d` and `nn.Linear` are
//!   (uniform in ±1/sqrt(fan_in)), from the member's seed.

use crate::train::model::{Mlp, MlpSpec};
use crate::train::protocol::{Architecture, Protocol};
use burn::tensor::module::{conv2d, max_pool2d};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use burn::tensor::{Tensor, activation};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Channels of the CNN's two convolutions.
const C1: usize = 8;
const C2: usize = 16;

/// The shape of the small CNN for one input size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cnn {
    /// Input channels (1 or 3).
    pub ch: usize,
    /// Image side.
    pub side: usize,
    /// Classes.
    pub classes: usize,
}

impl Cnn {
    /// The CNN for `dim` features (1 x side x side or 3 x side x side) and `classes`; `None`
    /// when the features are not a square image of at least 10 x 10.
    pub fn for_input(dim: usize, classes: usize) -> Option<Cnn> {
        [3, 1].into_iter().find_map(|ch| {
            if !dim.is_multiple_of(ch) {
                return None;
            }
            let side = ((dim / ch) as f64).sqrt().round() as usize;
            (side * side * ch == dim && side >= 10 && (ch == 1 || dim == 3 * side * side))
                .then_some(Cnn { ch, side, classes })
        })
    }

    /// Side after each conv + pool.
    fn sides(&self) -> (usize, usize) {
        let s1 = (self.side - 2) / 2;
        (s1, (s1 - 2) / 2)
    }

    /// Features into the linear layer.
    fn features(&self) -> usize {
        let (_, s2) = self.sides();
        C2 * s2 * s2
    }

    /// `(fan_in, weights, bias)` sizes per layer, one member.
    fn layers(&self) -> [(usize, usize, usize); 3] {
        [
            (self.ch * 9, C1 * self.ch * 9, C1),
            (C1 * 9, C2 * C1 * 9, C2),
            (
                self.features(),
                self.features() * self.classes,
                self.classes,
            ),
        ]
    }

    /// A one-line description.
    pub fn describe(&self) -> String {
        let (s1, s2) = self.sides();
        format!(
            "cnn {}x{}x{}: conv3x3({C1})-pool {s1}x{s1}, conv3x3({C2})-pool {s2}x{s2}, linear {}-{}",
            self.ch,
            self.side,
            self.side,
            self.features(),
            self.classes
        )
    }
}

/// A population's network.
#[derive(Clone, Debug)]
pub enum Net {
    /// The protocol's MLP.
    Mlp(MlpSpec),
    /// The small CNN.
    Cnn(Cnn),
}

impl Net {
    /// The network the protocol asks for, for `dim` features and `classes`.
    pub fn for_protocol(p: &Protocol, dim: usize, classes: usize) -> Result<Net, String> {
        match p.architecture {
            Architecture::Mlp => Ok(Net::Mlp(p.model(dim, classes))),
            Architecture::Cnn => Cnn::for_input(dim, classes).map(Net::Cnn).ok_or_else(|| {
                format!(
                    "the CNN needs square images with 1 or 3 channels; the data has {dim} features"
                )
            }),
        }
    }

    /// Each layer's `(weights, bias)` initial values for one member.
    pub fn init(&self, seed: u64) -> Vec<(Vec<f32>, Vec<f32>)> {
        match self {
            Net::Mlp(spec) => {
                let params = Mlp::new(spec.clone(), seed).params;
                let mut off = 0;
                spec.layers()
                    .into_iter()
                    .map(|(i, o)| {
                        let w = params[off..off + i * o].to_vec();
                        let b = params[off + i * o..off + i * o + o].to_vec();
                        off += i * o + o;
                        (w, b)
                    })
                    .collect()
            }
            Net::Cnn(cnn) => {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                cnn.layers()
                    .into_iter()
                    .map(|(fan_in, nw, nb)| {
                        let bound = 1.0 / (fan_in as f32).sqrt();
                        let w = (0..nw).map(|_| rng.random_range(-bound..bound)).collect();
                        let b = (0..nb).map(|_| rng.random_range(-bound..bound)).collect();
                        (w, b)
                    })
                    .collect()
            }
        }
    }

    /// Each layer's stacked `(weights, bias)` shapes for `k` members (members concatenated
    /// in order along the first axis, or the last for conv biases).
    pub fn shapes(&self, k: usize) -> Vec<([usize; 3], [usize; 3])> {
        match self {
            Net::Mlp(spec) => spec
                .layers()
                .into_iter()
                .map(|(i, o)| ([k, i, o], [k, 1, o]))
                .collect(),
            Net::Cnn(c) => vec![
                ([k * C1, c.ch, 9], [1, 1, k * C1]),
                ([k * C2, C1, 9], [1, 1, k * C2]),
                ([k, c.features(), c.classes], [k, 1, c.classes]),
            ],
        }
    }

    /// The largest activation one sample makes in one member's forward pass, in floats (the
    /// input, a hidden layer, or the CNN's first convolution): what sizes a batch's buffers.
    pub fn floats_per_sample(&self) -> usize {
        match self {
            Net::Mlp(spec) => spec
                .hidden
                .iter()
                .copied()
                .chain([spec.input, spec.output])
                .max()
                .unwrap_or(1),
            Net::Cnn(c) => {
                let (s1, _) = c.sides();
                let conv1 = C1 * (c.side - 2) * (c.side - 2);
                let conv2 = C2 * (s1 - 2) * (s1 - 2);
                [c.ch * c.side * c.side, conv1, conv2]
                    .into_iter()
                    .max()
                    .unwrap_or(1)
            }
        }
    }

    /// Widths of the layers dropout applies to (the MLP's hidden layers; none for the CNN).
    pub fn dropout_widths(&self) -> Vec<usize> {
        match self {
            Net::Mlp(spec) if spec.dropout > 0.0 => spec.hidden.clone(),
            _ => Vec::new(),
        }
    }

    /// A one-line description.
    pub fn describe(&self) -> String {
        match self {
            Net::Mlp(spec) => spec.describe(),
            Net::Cnn(c) => c.describe(),
        }
    }

    /// Forward pass of every member over `x` (`[K, n, dim]`), with dropout masks per hidden
    /// layer (`[K, n, width]`) while training: the logits, `[K, n, classes]`.
    pub fn forward(
        &self,
        params: &[(Tensor<3>, Tensor<3>)],
        x: Tensor<3>,
        masks: Option<Vec<Tensor<3>>>,
    ) -> Tensor<3> {
        match self {
            Net::Mlp(_) => {
                let mut h = x;
                let depth = params.len();
                let mut masks = masks.map(|m| m.into_iter());
                for (i, (w, b)) in params.iter().enumerate() {
                    h = h.matmul(w.clone()).add(b.clone());
                    if i + 1 < depth {
                        h = activation::relu(h);
                        if let Some(m) = masks.as_mut().and_then(|m| m.next()) {
                            h = h.mul(m);
                        }
                    }
                }
                h
            }
            Net::Cnn(c) => {
                let [k, n, _] = x.dims();
                let img: Tensor<5> = x.reshape([k, n, c.ch, c.side, c.side]);
                let img: Tensor<4> = img.swap_dims(0, 1).reshape([n, k * c.ch, c.side, c.side]);
                let conv = |h: Tensor<4>, (w, b): &(Tensor<3>, Tensor<3>), cin: usize| {
                    let [kout, _, _] = w.dims();
                    let w4: Tensor<4> = w.clone().reshape([kout, cin, 3, 3]);
                    let b1: Tensor<1> = b.clone().reshape([kout]);
                    let h = conv2d(h, w4, Some(b1), ConvOptions::new([1, 1], [0, 0], [1, 1], k));
                    max_pool2d(activation::relu(h), MaxPoolOptions::new([2, 2]))
                };
                let h = conv(img, &params[0], c.ch);
                let h = conv(h, &params[1], C1);
                let feats: Tensor<3> = h.reshape([n, k, c.features()]).swap_dims(0, 1);
                let (w, b) = &params[2];
                feats.matmul(w.clone()).add(b.clone())
            }
        }
    }
}
