//! AMM's process-wide score cache (`automl_client/utils/fec.py`): before training a loss,
//! AMM runs it once on two fixed `[32, 10]` probe tensors (`y_true`, `y_pred`), quantizes
//! the output as `round(out * 1e4)` cast to float16, and keys a score cache by the SHA-256 of
//! those bytes; a key seen before returns the earlier score without training.
//!
//! What is reproduced: the quantization (×1e4 in float32, round half to even, float16 with
//! overflow to ±inf), and so every collision that does not depend on the probe values:
//! identical functions, functions equal as maps, and outputs that saturate float16 (|loss|
//! above 6.5504 on the probe) or are NaN. What is not: AMM seeds its probes from Python's
//! `hash()` of a string, which changes with every process (PYTHONHASHSEED), so its probe
//! values are unknowable; ncpc uses fixed probes drawn from torch's generator. Collisions
//! that depend on the probe values (two different functions whose outputs happen to
//! quantize alike) can differ. ncpc keys the scalar loss; AMM keys the interpreter's raw
//! output, which for a non-scalar output is the whole tensor (such outputs collide in AMM
//! only when equal everywhere).

use crate::loss::evaluate_function;
use crate::train::torch_rng::TorchGenerator;
use ncp_ir::tensor::Tensor;
use ncp_ir::{DType, Function, TrapCode};
use std::collections::HashMap;

/// The cache key: the float16 bits of the quantized probe output (NaNs share one key).
pub type Key = u16;

/// Rows and columns of the probe tensors.
const PROBE_SHAPE: (usize, usize) = (32, 10);

/// The score cache of one AMM miner process.
#[derive(Debug)]
pub struct ScoreCache {
    y_true: Tensor,
    y_pred: Tensor,
    scores: HashMap<Key, f64>,
}

/// `n` standard normal values (Box-Muller over torch's generator), as float32.
pub(super) fn normals(seed: u64, n: usize) -> Vec<f64> {
    let mut g = TorchGenerator::manual_seed(seed);
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u1 = 1.0 - g.uniform_f32(0.0, 1.0) as f64;
        let u2 = g.uniform_f32(0.0, 1.0) as f64;
        let r = (-2.0 * u1.ln()).sqrt();
        let th = std::f64::consts::TAU * u2;
        out.push((r * th.cos()) as f32 as f64);
        out.push((r * th.sin()) as f32 as f64);
    }
    out.truncate(n);
    out
}

/// float32 to float16 bits, round to nearest even, overflow to infinity (torch's `.to(float16)`).
pub fn f32_to_f16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32;
    let man = b & 0x7f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if man != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        let m = man | 0x80_0000;
        let shift = (14 - e) as u32;
        let half = m >> shift;
        let rem = m & ((1 << shift) - 1);
        let mid = 1 << (shift - 1);
        let r = if rem > mid || (rem == mid && half & 1 == 1) {
            half + 1
        } else {
            half
        };
        return sign | r as u16;
    }
    let half = ((e as u32) << 10) | (man >> 13);
    let rem = man & 0x1fff;
    let r = if rem > 0x1000 || (rem == 0x1000 && half & 1 == 1) {
        half + 1
    } else {
        half
    };
    sign | r as u16 // a carry into the exponent (up to infinity) is the right rounding
}

/// AMM's quantization of a probe output: `round(out * 1e4)` in float32, as float16 bits; all
/// NaNs map to one key.
pub fn quantize(out: f32) -> Key {
    let q = (out * 1e4f32).round_ties_even();
    if q.is_nan() {
        0x7e00
    } else {
        f32_to_f16_bits(q)
    }
}

impl ScoreCache {
    /// An empty cache with ncpc's fixed probes.
    pub fn new() -> ScoreCache {
        let (b, c) = PROBE_SHAPE;
        let t = |seed| Tensor::new(DType::F32, vec![b, c], normals(seed, b * c));
        ScoreCache {
            y_true: t(1),
            y_pred: t(2),
            scores: HashMap::new(),
        }
    }

    /// The key of `func`: its loss on the probes, quantized. `Err` when AMM's strategy
    /// raises on the probe, before any training (its interpreter raised); `Ok(None)` for a
    /// result that is an integer or bool tensor, which AMM quantizes without complaint but
    /// ncpc has no scalar for (such a function then fails its first training step, as in
    /// AMM, and is not cached).
    pub fn key(&self, func: &Function) -> Result<Option<Key>, String> {
        let v = evaluate_function(func, &self.y_pred, &self.y_true, false)
            .map_err(|e| format!("the function failed on the probe: {e}"))?;
        match v.fault {
            None => Ok(Some(quantize(v.loss))),
            Some(TrapCode::NonFloatResult) => Ok(None),
            Some(t) => Err(format!("the function faulted on the probe ({t:?})")),
        }
    }

    /// The cached score for `key`.
    pub fn get(&self, key: &Key) -> Option<f64> {
        self.scores.get(key).copied()
    }

    /// Remember `score` for `key`.
    pub fn insert(&mut self, key: Key, score: f64) {
        self.scores.insert(key, score);
    }

    /// Scores cached.
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }
}

impl Default for ScoreCache {
    fn default() -> Self {
        ScoreCache::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float16_conversion_rounds_and_saturates() {
        assert_eq!(f32_to_f16_bits(1.0), 0x3c00);
        assert_eq!(f32_to_f16_bits(-2.0), 0xc000);
        assert_eq!(f32_to_f16_bits(65504.0), 0x7bff);
        assert_eq!(f32_to_f16_bits(65520.0), 0x7c00, "rounds up to infinity");
        assert_eq!(f32_to_f16_bits(1e6), 0x7c00);
        assert_eq!(
            f32_to_f16_bits(20001.0),
            f32_to_f16_bits(20000.0),
            "spacing 16 there"
        );
        assert_eq!(
            f32_to_f16_bits(5.960_464_5e-8),
            0x0001,
            "smallest subnormal"
        );
        assert_eq!(f32_to_f16_bits(0.0), 0);
    }

    #[test]
    fn quantization_saturates_large_losses_into_one_key() {
        assert_eq!(quantize(7.0), quantize(1e9));
        assert_ne!(quantize(1.0), quantize(1.01));
        assert_eq!(quantize(f32::NAN), quantize(-f32::NAN));
    }
}
