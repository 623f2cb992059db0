//! Functional-equivalence cache: a candidate whose optimized IR has a known canonical hash,
//! or whose loss and gradient on fixed random inputs match a known candidate's, gets that
//! candidate's fitness without training (AutoML-Zero's FEC, with AutoLoss-Zero's gradient
//! check). The same probe rejects degenerate losses before any training.

use crate::formats::CompileOptions;
use crate::jit::MathMode;
use crate::loss::{Backend, compile_for_inputs};
use crate::train::candidate::{CandidateLoss, StepFault};
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Rows and classes of the probe inputs.
const PROBE_B: usize = 32;
const PROBE_C: usize = 10;

/// What the probe learned about a candidate.
#[derive(Clone, Debug, PartialEq)]
pub enum Probe {
    /// Worth training: its canonical IR hash and behavioural fingerprint.
    Keys {
        /// Canonical hash of the optimized IR.
        hash: String,
        /// Hash of the loss and gradient on the probe inputs, rounded to 6 significant digits.
        fingerprint: String,
    },
    /// Not worth training, and why (does not compile, no gradient, NaN on typical inputs...).
    Degenerate(String),
}

/// Round to 6 significant digits so that reorderings of the same math agree.
fn quantize(x: f32) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    format!("{x:.5e}")
}

/// The fixed probe inputs: y_pred standard-normal-ish logits, y_true one-hot.
fn probe_inputs() -> (Vec<f32>, Vec<f32>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x00fe_c0de);
    let y_pred = (0..PROBE_B * PROBE_C)
        .map(|_| rng.random_range(-3.0f32..3.0))
        .collect();
    let mut y_true = vec![0f32; PROBE_B * PROBE_C];
    for r in 0..PROBE_B {
        y_true[r * PROBE_C + rng.random_range(0..PROBE_C)] = 1.0;
    }
    (y_pred, y_true)
}

/// Probe a genome: compile it, hash its IR, and run it once with its gradient.
pub fn probe(text: &str, opts: &CompileOptions) -> Probe {
    let f = match compile_for_inputs(text, opts, PROBE_B, PROBE_C, true) {
        Ok(f) => f,
        Err(e) => return Probe::Degenerate(format!("does not compile: {e}")),
    };
    let hash = ncp_ir::passes::canonical_hash(&f);
    let (y_pred, y_true) = probe_inputs();
    let mut loss = CandidateLoss::new(f, Backend::Jit, MathMode::Exact);
    let mut grad = Vec::new();
    let value = match loss.loss_and_grad(&y_pred, &y_true, PROBE_B, PROBE_C, &mut grad) {
        Ok(v) => v,
        Err(StepFault::NonFinite(x)) => {
            return Probe::Degenerate(format!("loss {x} on typical inputs"));
        }
        Err(e) => return Probe::Degenerate(e.to_string()),
    };
    if grad.iter().all(|g| *g == 0.0) {
        return Probe::Degenerate("zero gradient on typical inputs".into());
    }
    if grad.iter().any(|g| !g.is_finite()) {
        return Probe::Degenerate("non-finite gradient on typical inputs".into());
    }
    let mut h = Sha256::new();
    h.update(quantize(value));
    for g in &grad {
        h.update(b",");
        h.update(quantize(*g));
    }
    let fingerprint = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Probe::Keys { hash, fingerprint }
}

/// Hit counts of the cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FecStats {
    /// Candidates answered by their canonical IR hash.
    pub hash_hits: u64,
    /// Candidates answered by their behavioural fingerprint (different IR, same function).
    pub fingerprint_hits: u64,
    /// Candidates rejected by the probe without training.
    pub degenerate: u64,
    /// Candidates that had to be trained.
    pub misses: u64,
}

/// The cache: fitness by canonical hash and by fingerprint.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Fec {
    #[serde(with = "crate::numbers::lenient_map")]
    by_hash: HashMap<String, f64>,
    #[serde(with = "crate::numbers::lenient_map")]
    by_fingerprint: HashMap<String, f64>,
    /// Hit counts.
    pub stats: FecStats,
}

impl Fec {
    /// The known fitness of a probed candidate, counting the hit.
    pub fn lookup(&mut self, p: &Probe) -> Option<f64> {
        match p {
            Probe::Degenerate(_) => {
                self.stats.degenerate += 1;
                Some(f64::NEG_INFINITY)
            }
            Probe::Keys { hash, fingerprint } => {
                if let Some(f) = self.by_hash.get(hash) {
                    self.stats.hash_hits += 1;
                    Some(*f)
                } else if let Some(f) = self.by_fingerprint.get(fingerprint) {
                    self.stats.fingerprint_hits += 1;
                    // Remember the new IR form too.
                    let f = *f;
                    self.by_hash.insert(hash.clone(), f);
                    Some(f)
                } else {
                    None
                }
            }
        }
    }

    /// Record a trained candidate's fitness.
    pub fn insert(&mut self, p: &Probe, fitness: f64) {
        if let Probe::Keys { hash, fingerprint } = p {
            self.stats.misses += 1;
            self.by_hash.insert(hash.clone(), fitness);
            self.by_fingerprint.insert(fingerprint.clone(), fitness);
        }
    }

    /// Fraction of lookups answered without training.
    pub fn hit_rate(&self) -> f64 {
        let s = self.stats;
        let hits = s.hash_hits + s.fingerprint_hits + s.degenerate;
        hits as f64 / (hits + s.misses).max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equivalent_programs_share_keys_and_degenerate_ones_are_caught() {
        let o = CompileOptions::default();
        let mse = probe(
            "[[100,1,0],[100,2,1],[2,1,2,3],[10,3,4],[201,4,-1,9],[453,9]]",
            &o,
        );
        // (y_pred - y_true)^2 instead of (y_true - y_pred)^2: another IR, the same function.
        let swapped = probe(
            "[[100,1,0],[100,2,1],[2,2,1,3],[10,3,4],[201,4,-1,9],[453,9]]",
            &o,
        );
        let (Probe::Keys { fingerprint: a, .. }, Probe::Keys { fingerprint: b, .. }) =
            (&mse, &swapped)
        else {
            panic!("{mse:?} {swapped:?}");
        };
        assert_eq!(a, b);
        let mut fec = Fec::default();
        fec.insert(&mse, 0.5);
        assert_eq!(fec.lookup(&swapped), Some(0.5));
        assert_eq!(fec.stats.fingerprint_hits + fec.stats.hash_hits, 1);
        // mean(y_true): no gradient.
        let flat = probe("[[100,1,0],[100,2,1],[201,1,-1,9],[453,9]]", &o);
        assert!(
            matches!(flat, Probe::Degenerate(ref m) if m.contains("y_pred")),
            "{flat:?}"
        );
        assert_eq!(fec.lookup(&flat), Some(f64::NEG_INFINITY));
    }
}
