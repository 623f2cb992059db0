//! The optimization pipeline: fold, simplify, CSE, DCE and canonicalization, repeated until
//! nothing changes, re-verifying after every pass in debug builds (and when asked).

use super::simplify::FastMath;
use super::{canon::canon, cse::cse, dce::dce, fold::fold, simplify::simplify, sink::sink};
use crate::IrError;
use crate::function::Function;
use crate::verify::verify;

/// Pipeline options.
#[derive(Copy, Clone, Debug, Default)]
pub struct OptOptions {
    /// Rewrites beyond the IEEE-exact ones.
    pub fast_math: FastMath,
    /// Verify after every pass even in release builds.
    pub verify_each: bool,
}

/// What one pass did over the whole run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassStats {
    /// Pass name.
    pub pass: &'static str,
    /// Instructions removed or rewritten.
    pub changes: usize,
}

const MAX_ROUNDS: usize = 8;

/// Optimize `f` in place. Returns per-pass statistics.
pub fn optimize(f: &mut Function, opts: OptOptions) -> Result<Vec<PassStats>, IrError> {
    let mut stats: Vec<PassStats> = ["fold", "simplify", "cse", "dce", "canon"]
        .into_iter()
        .map(|pass| PassStats { pass, changes: 0 })
        .collect();
    let check = cfg!(debug_assertions) || opts.verify_each;
    for _ in 0..MAX_ROUNDS {
        let mut counts = [0usize; 4];
        counts[0] = fold(f);
        after(f, check, "fold")?;
        counts[1] = simplify(f, opts.fast_math) + sink(f);
        after(f, check, "simplify")?;
        counts[2] = cse(f);
        after(f, check, "cse")?;
        counts[3] = dce(f);
        after(f, check, "dce")?;
        for (s, c) in stats.iter_mut().zip(counts) {
            s.changes += c;
        }
        if counts.iter().all(|c| *c == 0) {
            break;
        }
    }
    stats[4].changes += canon(f);
    after(f, check, "canon")?;
    Ok(stats)
}

fn after(f: &Function, check: bool, pass: &str) -> Result<(), IrError> {
    if check {
        verify(f).map_err(|e| match e {
            IrError::Verify(mut v) => {
                v.insert(0, format!("after pass `{pass}`:"));
                IrError::Verify(v)
            }
            other => other,
        })?;
    }
    Ok(())
}
