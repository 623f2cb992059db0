//! Function signatures and duplicate resolution.
//!
//! DAML's signature of a function is its output on fixed inputs, rounded to 1e-6 and hashed
//! (dml/record.py); two submissions with the same signature are the same function, and the
//! earlier one (by chain block) is the original. ncpc's signature is a set of keys, any one
//! of which shared makes two submissions the same function:
//!
//! - `ir:` the canonical hash of the optimized IR (register renaming, dead code, operand
//!   order of commutative ops and other rewrites the optimizer undoes leave it unchanged);
//! - `fec:` the evolution engine's FEC fingerprint: the loss and its gradient on fixed
//!   random inputs rounded to 6 significant digits (the closest analogue of DAML's
//!   signature, with the gradient added);
//! - `grad:` (with [`SignatureMode::Gradient`], the default) the pool's normalized-gradient
//!   key: unchanged when the loss is multiplied by a positive constant or a constant is
//!   added, so scaled copies, which DAML's signature lets through, are caught too.
//!
//! A submission whose signature cannot be computed (it does not compile, faults, is NaN or
//! has no gradient on the probe inputs) is treated as a duplicate, as DAML treats it.

use super::submissions::Submission;
use crate::evolve::fec::{Probe, probe};
use crate::formats::CompileOptions;
use crate::loss::compile_for_inputs;
use std::collections::HashMap;

/// Interpreter instructions the gradient key may run (the pool's budget).
pub const GRADIENT_FUEL: u64 = 200_000;

/// Which keys make up a signature.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignatureMode {
    /// The IR hash and the loss-and-gradient fingerprint: what DAML's output signature
    /// catches (renamed or reordered copies), not scaled copies.
    Outputs,
    /// Also the normalized-gradient key: scaled and shifted copies are duplicates too.
    Gradient,
}

/// A submission's signature: the keys it is stored under, and the keys to look up (the
/// stored ones plus the gradient key's alternates at rounding edges).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    /// Keys stored for it.
    pub keys: Vec<String>,
    /// Keys whose presence makes it a duplicate.
    pub lookups: Vec<String>,
}

/// The compile options of a submission.
pub fn options(s: &Submission) -> CompileOptions {
    CompileOptions {
        format: s.format,
        ..CompileOptions::default()
    }
}

/// The signature of `s`, or why it cannot be computed.
pub fn signature(s: &Submission, mode: SignatureMode) -> Result<Signature, String> {
    let opts = options(s);
    let (hash, fingerprint) = match probe(&s.genome, &opts) {
        Probe::Keys { hash, fingerprint } => (hash, fingerprint),
        Probe::Degenerate(why) => return Err(why),
    };
    let mut keys = vec![format!("ir:{hash}"), format!("fec:{fingerprint}")];
    let mut lookups = keys.clone();
    if mode == SignatureMode::Gradient {
        use crate::pool::server::fingerprint::{Probed, fingerprint};
        let f = compile_for_inputs(&s.genome, &opts, 32, 10, true)
            .map_err(|e| format!("does not compile: {e}"))?;
        let fp = match fingerprint(&f, GRADIENT_FUEL) {
            Probed::Keys(k) => k,
            Probed::Flat => return Err("its gradient is zero on every probe input".into()),
            Probed::Unknown => {
                return Err("its gradient cannot be taken on the probe inputs".into());
            }
        };
        keys.push(format!("grad:{}", fp.key));
        lookups.push(format!("grad:{}", fp.key));
        lookups.extend(fp.alternates.iter().map(|k| format!("grad:{k}")));
    }
    Ok(Signature { keys, lookups })
}

/// What duplicate resolution decided for a submission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The first submission of its function: to be scored.
    Original,
    /// The same function as the original at this index, submitted later (or at the same
    /// block by a later hotkey): scores 0.
    Duplicate(usize),
    /// The signature could not be computed (why): scores 0, as a duplicate would.
    NoSignature(String),
}

/// Resolve duplicates, earliest wins: `signatures[i]` belongs to the `i`-th submission, and
/// submissions are in order, earliest first. A submission is a duplicate when one of its
/// lookup keys is stored by an earlier one; it is then the duplicate of that one's original
/// (the earliest, when several match), and its own keys are stored for that original too, so
/// a copy of a copy still finds the original.
pub fn resolve(signatures: &[Result<Signature, String>]) -> Vec<Verdict> {
    let mut owner: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::with_capacity(signatures.len());
    for (i, sig) in signatures.iter().enumerate() {
        let sig = match sig {
            Ok(s) => s,
            Err(why) => {
                out.push(Verdict::NoSignature(why.clone()));
                continue;
            }
        };
        let original = sig
            .lookups
            .iter()
            .filter_map(|k| owner.get(k.as_str()).copied())
            .min();
        let root = original.unwrap_or(i);
        for k in &sig.keys {
            owner.entry(k.as_str()).or_insert(root);
        }
        out.push(match original {
            Some(o) => Verdict::Duplicate(o),
            None => Verdict::Original,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(keys: &[&str]) -> Result<Signature, String> {
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        Ok(Signature {
            lookups: keys.clone(),
            keys,
        })
    }

    #[test]
    fn earliest_wins_and_a_copy_of_a_copy_finds_the_original() {
        let v = resolve(&[
            sig(&["a", "b"]),
            sig(&["c"]),
            sig(&["b", "d"]),
            Err("no".into()),
            sig(&["d"]),
        ]);
        assert_eq!(
            v,
            [
                Verdict::Original,
                Verdict::Original,
                Verdict::Duplicate(0),
                Verdict::NoSignature("no".into()),
                Verdict::Duplicate(0),
            ]
        );
    }
}
