//! A loss's functional identity, for the pool's deduplication: what the optimizer sees of it.
//!
//! Training only ever reads a loss through its gradient dL/dy_pred, so two losses whose
//! gradients point the same way on every input train the same network (exactly under Adam,
//! up to a learning-rate factor under SGD). The fingerprint is the gradient on fixed probe
//! inputs, divided by its L2 norm and rounded to [`QUANTUM`]: multiplying a loss by a
//! positive constant or adding a constant to it does not change it, so `MSE * (1 + 1e-6)`
//! and `MSE + 3` are the MSE seed. (A negative factor flips the gradient: a different loss.)
//!
//! Rounding has edges: two gradients a hair apart can round to different grid points when a
//! component sits next to a rounding boundary. Every component within [`BAND`] of a boundary
//! is "ambiguous", and [`Fingerprint::alternates`] lists the keys with such components
//! rounded the other way (at most 2^[`MAX_AMBIGUOUS`] keys), so a lookup of all of them finds
//! any stored function whose normalized gradient lies within [`BAND`] of this one's in every
//! component. Gradients further apart than that but within [`QUANTUM`] usually collide too;
//! further still, they are different functions as far as the pool is concerned.
//!
//! Functions whose gradient cannot be taken on the probes (a fault, no gradient, out of the
//! work budget) have no functional key; the canonical IR hash is their only identity.

use crate::loss::evaluate_function_with_fuel;
use ncp_ir::tensor::Tensor;
use ncp_ir::{DType, Function};
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

/// Rows of the probe batch: the batch size the pool's scores are trained with (AMM's loss
/// protocol draws batches of 32), so a loss that reads the batch size (AMM's register 102)
/// is fingerprinted as training sees it: `(batch - 16) * MSE` is MSE, and a loss that
/// vanishes at 32 rows trains nothing. Half logits in [-3, 3], half probabilities in (0, 1).
const PROBE_ROWS: [usize; 1] = [32];
/// Classes of the probe batches.
const PROBE_CLASSES: usize = 10;

/// The grid the normalized gradient is rounded to.
pub const QUANTUM: f64 = 1e-3;
/// Components this close to a rounding boundary are ambiguous.
pub const BAND: f64 = 1e-6;
/// Ambiguous components whose other rounding is enumerated.
pub const MAX_AMBIGUOUS: usize = 6;

/// A function's functional keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    /// The key stored with the function.
    pub key: String,
    /// Keys of the same gradient with ambiguous components rounded the other way; a
    /// submission is a duplicate when any of these (or `key`) is stored.
    pub alternates: Vec<String>,
}

/// The fixed probe inputs (`y_pred`, `y_true`), `[rows, PROBE_CLASSES]`.
fn probe_inputs(rows: usize) -> (Tensor, Tensor) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x0090_01f1 ^ rows as u64);
    let n = rows * PROBE_CLASSES;
    let mut pred = Vec::with_capacity(n);
    for r in 0..rows {
        for _ in 0..PROBE_CLASSES {
            pred.push(if r < rows / 2 {
                rng.random_range(-3.0..3.0)
            } else {
                rng.random_range(0.01..0.99)
            });
        }
    }
    let mut truth = vec![0.0; n];
    for r in 0..rows {
        truth[r * PROBE_CLASSES + rng.random_range(0..PROBE_CLASSES)] = 1.0;
    }
    let shape = vec![rows, PROBE_CLASSES];
    (
        Tensor::new(DType::F32, shape.clone(), pred),
        Tensor::new(DType::F32, shape, truth),
    )
}

/// One component of the normalized gradient, before hashing.
#[derive(Clone, Copy)]
enum Component {
    /// A finite value rounded to the grid, and whether it lies within [`BAND`] of the
    /// boundary with its other neighbour (and which: +1 or -1).
    Finite(i64, i8),
    /// NaN, +inf or -inf (kept apart: a loss that is NaN somewhere differs from one that is
    /// not).
    Special(u8),
}

fn key_of(parts: &[Component], flip: &[usize]) -> String {
    let mut h = Sha256::new();
    for (i, c) in parts.iter().enumerate() {
        match *c {
            Component::Finite(q, other) => {
                let q = if flip.contains(&i) {
                    q + i64::from(other)
                } else {
                    q
                };
                h.update(q.to_le_bytes());
            }
            Component::Special(s) => h.update([0xff, s]),
        }
    }
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What the probes say of a loss.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probed {
    /// Its functional keys.
    Keys(Fingerprint),
    /// Its gradient is zero on every probe: at the batch sizes the protocols use it trains
    /// nothing (whatever it does elsewhere).
    Flat,
    /// Its gradient cannot be taken on the probes (a fault, out of fuel, non-finite
    /// everywhere): no functional key.
    Unknown,
}

/// The fingerprint of `f` (an optimized loss of `(y_pred, y_true)`), running at most `fuel`
/// interpreter instructions per probe batch.
pub fn fingerprint(f: &Function, fuel: u64) -> Probed {
    let mut grad: Vec<f64> = Vec::new();
    for rows in PROBE_ROWS {
        let (pred, truth) = probe_inputs(rows);
        let Ok(value) = evaluate_function_with_fuel(f, &pred, &truth, true, fuel) else {
            return Probed::Unknown;
        };
        if value.fault.is_some() {
            return Probed::Unknown;
        }
        match value.grad {
            Some(g) => grad.extend(g.into_iter().flatten().map(f64::from)),
            None => return Probed::Flat,
        }
    }
    let norm = grad
        .iter()
        .filter(|g| g.is_finite())
        .map(|g| g * g)
        .sum::<f64>()
        .sqrt();
    if norm == 0.0 && grad.iter().all(|g| g.is_finite()) {
        return Probed::Flat;
    }
    if !(norm > 0.0 && norm.is_finite()) {
        return Probed::Unknown;
    }
    let mut ambiguous = Vec::new();
    let parts: Vec<Component> = grad
        .iter()
        .enumerate()
        .map(|(i, g)| {
            if g.is_nan() {
                return Component::Special(0);
            }
            if g.is_infinite() {
                return Component::Special(if *g > 0.0 { 1 } else { 2 });
            }
            let x = g / norm / QUANTUM;
            let q = x.round();
            // Distance to the boundary between q and its nearer other neighbour.
            let other: i8 = if x >= q { 1 } else { -1 };
            let boundary = q + f64::from(other) * 0.5;
            let near = (boundary - x).abs() * QUANTUM <= BAND;
            if near && ambiguous.len() < MAX_AMBIGUOUS {
                ambiguous.push(i);
            }
            Component::Finite(q as i64, other)
        })
        .collect();
    let key = key_of(&parts, &[]);
    let mut alternates = Vec::new();
    for mask in 1u32..(1u32 << ambiguous.len()) {
        let flip: Vec<usize> = ambiguous
            .iter()
            .enumerate()
            .filter(|(bit, _)| mask & (1 << bit) != 0)
            .map(|(_, i)| *i)
            .collect();
        alternates.push(key_of(&parts, &flip));
    }
    Probed::Keys(Fingerprint { key, alternates })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::{CompileOptions, Format, compile};
    use ncp_ir::passes::{OptOptions, optimize};

    fn func(program: &str) -> Function {
        let opts = CompileOptions {
            format: Some(Format::Amm),
            ..CompileOptions::default()
        };
        let mut f = compile(program, &opts).unwrap().func;
        optimize(&mut f, OptOptions::default()).unwrap();
        f
    }

    const MSE: &str = "[[100,1,0],[100,2,1],[2,1,2,3],[10,3,4],[201,4,-1,9],[453,9]]";
    const MAE: &str = "[[100,1,0],[100,2,1],[2,1,2,3],[9,3,4],[201,4,-1,9],[453,9]]";

    /// MSE times `k` plus 3 (AMM's MUL_CONST and ADD_CONST).
    fn scaled_mse(k: f64) -> String {
        format!(
            "[[100,1,0],[100,2,1],[2,1,2,3],[10,3,4],[201,4,-1,9],[21,9,{k:?},9],[20,9,3.0,9],[453,9]]"
        )
    }

    fn keys(p: &str) -> Fingerprint {
        match fingerprint(&func(p), 100_000) {
            Probed::Keys(k) => k,
            other => panic!("{p}: {other:?}"),
        }
    }

    /// `(batch + shift) * MSE * k` in AMM: register 102 is the batch size.
    fn batch_scaled_mse(shift: i64, k: f64) -> String {
        format!(
            "[[100,1,0],[100,2,1],[2,1,2,3],[10,3,4],[201,4,-1,9],[20,102,{shift},5],[3,9,5,8],[21,8,{k:?},8],[453,8]]"
        )
    }

    #[test]
    fn losses_that_read_the_batch_size_are_judged_at_the_training_batch() {
        // Zero at 32 rows, MSE elsewhere: trains nothing where the pool scores it.
        assert_eq!(
            fingerprint(&func(&batch_scaled_mse(-32, 1.0)), 100_000),
            Probed::Flat
        );
        // (batch - 16) * MSE * k: zero at other probe sizes once, MSE at 32 rows.
        let base = keys(MSE);
        for i in 1..=4 {
            let k = keys(&batch_scaled_mse(-16, 1.0 + f64::from(i) * 1e-6));
            assert!(
                k.key == base.key || k.alternates.contains(&base.key),
                "(batch - 16) * MSE is MSE"
            );
        }
    }

    #[test]
    fn positive_scaling_and_constants_keep_the_key_and_other_losses_do_not() {
        let base = keys(MSE);
        let mae = keys(MAE);
        assert_ne!(base.key, mae.key);
        for i in 1..=12 {
            let k = 1.0 + f64::from(i) * 1e-6;
            let scaled = keys(&scaled_mse(k));
            let all: Vec<&String> = std::iter::once(&scaled.key)
                .chain(&scaled.alternates)
                .collect();
            assert!(all.contains(&&base.key), "MSE * {k} is MSE");
        }
        let ten = keys(&scaled_mse(10.0));
        assert_eq!(ten.key, base.key);
    }
}
