//! One training run: a network trained with one loss under one seed, validated as the
//! protocol says (curve points, hurdles, early stop), on one thread with fixed summation
//! orders, so a run is reproducible bit for bit.

use super::candidate::CandidateLoss;
use super::linalg::{SparseRows, argmax};
use super::model::{Input, Mlp, Workspace};
use super::optim::Optimizer;
use super::protocol::{Protocol, Sampling};
use super::task::TaskData;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// Rows per chunk when validating (bounds the workspace).
const VAL_CHUNK: usize = 500;

/// Validation accuracy after a given number of steps.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CurvePoint {
    /// Steps trained.
    pub step: usize,
    /// Validation accuracy.
    pub accuracy: f64,
}

/// One training run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SeedRun {
    /// The seed (initial weights, batch order, dropout).
    pub seed: u64,
    /// Steps trained.
    pub steps: usize,
    /// Final validation accuracy (NaN when the run failed before validating).
    #[serde(with = "crate::numbers::lenient")]
    pub accuracy: f64,
    /// Final validation cross-entropy (NaN when the run failed).
    #[serde(with = "crate::numbers::lenient")]
    pub cross_entropy: f64,
    /// Validation accuracy during training (protocols with `curve_every`).
    pub curve: Vec<CurvePoint>,
    /// Training loss at each step.
    pub losses: Vec<f32>,
    /// Why the run failed (early stop, a non-finite loss, a fault, a hurdle), if it did.
    pub failure: Option<String>,
}

impl SeedRun {
    /// A run that has not trained yet.
    pub(crate) fn new(seed: u64) -> SeedRun {
        SeedRun {
            seed,
            steps: 0,
            accuracy: f64::NAN,
            cross_entropy: f64::NAN,
            curve: Vec::new(),
            losses: Vec::new(),
            failure: None,
        }
    }

    /// A run that failed before training, for `why`.
    #[cfg_attr(not(feature = "burn-cpu"), allow(dead_code))]
    pub(crate) fn failed(seed: u64, why: String) -> SeedRun {
        SeedRun {
            failure: Some(why),
            ..SeedRun::new(seed)
        }
    }

    /// Record the final validation after `steps` steps.
    pub(crate) fn finish(&mut self, p: &Protocol, steps: usize, acc: f64, ce: f64) {
        self.accuracy = acc;
        self.cross_entropy = ce;
        if p.curve_every > 0 {
            self.curve.push(CurvePoint {
                step: steps,
                accuracy: acc,
            });
        }
    }
}

/// Correct predictions and summed cross-entropy (log-softmax in f64) of `logits` rows
/// (`labels.len() x c`) against `labels`.
pub(crate) fn score_logits(logits: &[f32], labels: &[u8], c: usize) -> (usize, f64) {
    let (mut correct, mut ce) = (0usize, 0f64);
    for (row, label) in logits.chunks_exact(c).zip(labels) {
        let label = *label as usize;
        correct += (argmax(row) == label) as usize;
        // logsumexp - logit[label].
        let m = row.iter().fold(f64::NEG_INFINITY, |m, v| m.max(*v as f64));
        let lse = m + row.iter().map(|v| (*v as f64 - m).exp()).sum::<f64>().ln();
        ce += lse - row[label] as f64;
    }
    (correct, ce)
}

/// Validation accuracy and cross-entropy of the network.
fn validate(model: &Mlp, data: &TaskData, ws: &mut Workspace) -> (f64, f64) {
    let n = data.val_y.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let (mut correct, mut ce) = (0usize, 0f64);
    let mut chunk = SparseRows::default();
    for start in (0..n).step_by(VAL_CHUNK) {
        let rows = VAL_CHUNK.min(n - start);
        let input = match &data.val_sparse {
            Some(sx) => {
                sx.gather(start..start + rows, &mut chunk);
                Input::Sparse(&chunk)
            }
            None => Input::Dense(&data.val_x[start * data.dim..(start + rows) * data.dim]),
        };
        let logits = model.forward_input(input, None, ws);
        let (k, e) = score_logits(logits, &data.val_y[start..start + rows], data.classes);
        correct += k;
        ce += e;
    }
    (correct as f64 / n as f64, ce / n as f64)
}

/// The protocol's early stop: tracks the best loss and says when patience has run out.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Patience {
    best: f32,
    stale: usize,
}

impl Patience {
    pub(crate) fn new() -> Patience {
        Patience {
            best: f32::INFINITY,
            stale: 0,
        }
    }

    /// Record the loss of 0-based `step`; the failure message when the run must stop.
    pub(crate) fn update(&mut self, p: &Protocol, step: usize, value: f32) -> Option<String> {
        let es = p.early_stop?;
        if value < self.best - es.min_improvement {
            self.best = value;
            self.stale = 0;
            return None;
        }
        self.stale += 1;
        (self.stale >= es.patience).then(|| {
            format!(
                "step {}: early stop, {} steps without the loss improving by {}",
                step + 1,
                es.patience,
                es.min_improvement
            )
        })
    }
}

/// Whether validation is due after 0-based `step` of `steps` (the final one is separate).
pub(crate) fn curve_due(p: &Protocol, step: usize, steps: usize) -> bool {
    p.curve_every > 0 && (step + 1).is_multiple_of(p.curve_every) && step + 1 < steps
}

/// The hurdle failure at 0-based `step` for validation accuracy `acc`, if there is one.
pub(crate) fn hurdle_failure(p: &Protocol, step: usize, acc: f64) -> Option<String> {
    let h = p.hurdles.iter().find(|h| h.step == step + 1)?;
    (acc.is_nan() || acc < h.min_accuracy).then(|| {
        format!(
            "step {}: hurdle, validation accuracy {acc:.4} below {}",
            step + 1,
            h.min_accuracy
        )
    })
}

/// Draws training batches in a protocol's order.
pub(crate) struct Batches {
    rng: ChaCha8Rng,
    sampling: Sampling,
    n: usize,
    order: Vec<usize>,
    pos: usize,
}

impl Batches {
    pub(crate) fn new(sampling: Sampling, n: usize, seed: u64) -> Batches {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(1);
        Batches {
            rng,
            sampling,
            n,
            order: Vec::new(),
            pos: n,
        }
    }

    pub(crate) fn next(&mut self, size: usize, out: &mut Vec<usize>) {
        use rand::seq::SliceRandom;
        out.clear();
        match self.sampling {
            Sampling::WithReplacement => {
                out.extend((0..size).map(|_| self.rng.random_range(0..self.n)));
            }
            Sampling::Epochs => {
                // A shuffling DataLoader: the last batch of an epoch may be short.
                if self.pos >= self.n {
                    self.order = (0..self.n).collect();
                    self.order.shuffle(&mut self.rng);
                    self.pos = 0;
                }
                let end = (self.pos + size).min(self.n);
                out.extend_from_slice(&self.order[self.pos..end]);
                self.pos = end;
            }
        }
    }
}

/// Train one network with `loss` under `seed` as the protocol says.
pub fn train_run(loss: &mut CandidateLoss, data: &TaskData, p: &Protocol, seed: u64) -> SeedRun {
    let c = data.classes;
    let mut model = Mlp::new(p.model(data.dim, c), seed).with_input_affine(Some(data.input));
    let mut opt = Optimizer::new(p.optimizer, p.lr, model.params.len());
    let mut batches = Batches::new(p.sampling, data.train_y.len(), seed);
    let mut dropout_rng = ChaCha8Rng::seed_from_u64(seed);
    dropout_rng.set_stream(2);
    let mut ws = Workspace::default();
    let steps = p.steps_for(data.train_y.len());
    let mut run = SeedRun::new(seed);
    let (mut idx, mut bx, mut by, mut grad) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut sparse_batch = SparseRows::default();
    let mut pgrads = vec![0f32; model.params.len()];
    let mut patience = Patience::new();
    for step in 0..steps {
        batches.next(p.batch, &mut idx);
        let b = idx.len();
        by.clear();
        by.resize(b * c, 0.0);
        for (r, i) in idx.iter().enumerate() {
            by[r * c + data.train_y[*i] as usize] = 1.0;
        }
        let input = match &data.train_sparse {
            Some(sx) => {
                sx.gather(idx.iter().copied(), &mut sparse_batch);
                Input::Sparse(&sparse_batch)
            }
            None => {
                bx.clear();
                for i in &idx {
                    bx.extend_from_slice(&data.train_x[i * data.dim..(i + 1) * data.dim]);
                }
                Input::Dense(&bx)
            }
        };
        let logits = model
            .forward_input(input, Some(&mut dropout_rng), &mut ws)
            .to_vec();
        let value = match loss.loss_and_grad(&logits, &by, b, c, &mut grad) {
            Ok(v) => v,
            Err(f) => {
                run.failure = Some(format!("step {}: {f}", step + 1));
                return run;
            }
        };
        model.backward(&mut ws, &grad, b, &mut pgrads);
        opt.step(&mut model.params, &pgrads);
        run.losses.push(value);
        run.steps = step + 1;
        if let Some(stop) = patience.update(p, step, value) {
            run.failure = Some(stop);
            return run;
        }
        if curve_due(p, step, steps) {
            let (acc, _) = validate(&model, data, &mut ws);
            run.curve.push(CurvePoint {
                step: step + 1,
                accuracy: acc,
            });
            if let Some(fail) = hurdle_failure(p, step, acc) {
                run.accuracy = acc;
                run.failure = Some(fail);
                return run;
            }
        }
    }
    let (acc, ce) = validate(&model, data, &mut ws);
    run.finish(p, steps, acc, ce);
    run
}
