//! ncpc's exp, log, sigmoid and softmax over whole slices of f32, in the widest vector lanes
//! the CPU has (AVX-512F, else AVX2, found at run time), bit for bit the values of
//! [`crate::math`]'s scalar functions and of the interpreter's softmax.
//!
//! Each element goes through the scalar definitions themselves (`math::exp64`,
//! `math::ln64_normal`, `math::sigmoid64`: written without branches, inlined here into a copy
//! compiled for each instruction set, so the compiler puts eight or four f64 lanes through
//! them); no operation is fused or reordered, so the instruction set changes the speed and
//! never a value. The JIT's kernels call these on whole buffers (`jit::math`'s `ncp_v*`
//! symbols; "wide calls") instead of a call per element or the same sequence in Cranelift's
//! two-lane f64 vectors.
//!
//! `NCPC_VMATH=avx512|avx2|generic` overrides the detected level (for measurements and
//! tests); a level the CPU lacks falls back to the detected one.

use crate::math::{exp64, ln64_normal, sigmoid64};
use std::sync::OnceLock;

/// The instruction set the slice functions run in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Eight f64 lanes (x86-64 AVX-512F).
    Avx512,
    /// Four f64 lanes (x86-64 AVX2).
    Avx2,
    /// Whatever the compiler makes of the baseline target (two lanes at best on x86-64).
    Generic,
}

impl Level {
    /// Whether this CPU can run `self`.
    pub fn supported(self) -> bool {
        match self {
            Level::Generic => true,
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The name `NCPC_VMATH` takes.
    pub fn name(self) -> &'static str {
        match self {
            Level::Avx512 => "avx512",
            Level::Avx2 => "avx2",
            Level::Generic => "generic",
        }
    }

    /// Every level, widest first.
    pub const ALL: [Level; 3] = [Level::Avx512, Level::Avx2, Level::Generic];
}

/// The level the slice functions use in this process: `NCPC_VMATH` if set and supported,
/// else the widest this CPU has.
pub fn level() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        let wanted = std::env::var("NCPC_VMATH").ok();
        if let Some(l) = Level::ALL
            .into_iter()
            .find(|l| wanted.as_deref() == Some(l.name()))
            && l.supported()
        {
            return l;
        }
        Level::ALL
            .into_iter()
            .find(|l| l.supported())
            .unwrap_or(Level::Generic)
    })
}

/// Whether [`level`] has lanes wider than the JIT's own (two f64 lanes): the JIT makes wide
/// calls by default only then.
pub fn wide() -> bool {
    level() != Level::Generic
}

/// Softmax rows are processed this many elements at a time (at least one row).
const BLOCK: usize = 1024;

/// (`f` is a function item inlined into each instruction set's copy; see [`softmax_body`]
/// on closures.)
#[inline(always)]
fn map_body(src: &[f32], dst: &mut [f32], f: impl Fn(f64) -> f64) {
    for (o, x) in dst.iter_mut().zip(src) {
        *o = f(*x as f64) as f32;
    }
}

/// The interpreter's softmax row max (NaN if any element is NaN, else the largest), as one
/// compare-and-select per element and a NaN flag: no dependent mask moves, so rows overlap in
/// the core. The maximum does not depend on the order, and a zero maximum's sign does not
/// change any `x - max` that matters (`±0 - ±0` is `±0`, and e^±0 is 1).
#[inline(always)]
fn row_max(row: &[f32]) -> f64 {
    let mut m = f32::NEG_INFINITY;
    let mut nan = false;
    for &b in row {
        m = if b > m { b } else { m };
        nan |= b.is_nan();
    }
    if nan { f64::NAN } else { m as f64 }
}

#[inline(always)]
fn softmax_body(src: &[f32], dst: &mut [f32], cols: usize) {
    if cols == 0 {
        return;
    }
    let per = (BLOCK / cols).max(1);
    let block = (per * cols).min(src.len());
    // Per element of a block: `x - max`, then its exponential; then its row's sum. Whole
    // blocks go through the exponentials and the quotients in full-width lanes; only the
    // row max and the row sums (in element order, as the interpreter adds) go row by row.
    // The two f64 scratch blocks live in the thread, so a call neither allocates nor zeroes.
    // (Taken and put back rather than borrowed in a closure: a closure would be compiled
    // without the caller's instruction set.)
    let mut scratch = SCRATCH.take();
    if scratch.len() < 2 * block {
        scratch.resize(2 * block, 0.0);
    }
    let (t_all, s_all) = scratch.split_at_mut(block);
    softmax_blocks(src, dst, cols, per, t_all, s_all);
    SCRATCH.set(scratch);
}

thread_local! {
    /// [`softmax_body`]'s scratch.
    static SCRATCH: std::cell::Cell<Vec<f64>> = const { std::cell::Cell::new(Vec::new()) };
}

#[inline(always)]
fn softmax_blocks(
    src: &[f32],
    dst: &mut [f32],
    cols: usize,
    per: usize,
    t_all: &mut [f64],
    s_all: &mut [f64],
) {
    for (xs, os) in src.chunks(per * cols).zip(dst.chunks_mut(per * cols)) {
        let t = &mut t_all[..xs.len()];
        let sums = &mut s_all[..xs.len()];
        for (xr, tr) in xs.chunks(cols).zip(t.chunks_mut(cols)) {
            let m = row_max(xr);
            for (d, x) in tr.iter_mut().zip(xr) {
                *d = *x as f64 - m;
            }
        }
        for d in t.iter_mut() {
            *d = exp64(*d);
        }
        for (tr, sr) in t.chunks(cols).zip(sums.chunks_mut(cols)) {
            let s: f64 = tr.iter().sum();
            sr.fill(s);
        }
        for ((o, e), s) in os.iter_mut().zip(t.iter()).zip(sums.iter()) {
            *o = (e / s) as f32;
        }
    }
}

/// One entry point per function and level: `$body` inlined into a function compiled for
/// each instruction set, and a dispatcher on [`level`].
macro_rules! dispatch {
    ($(#[$doc:meta])* $name:ident, $at:ident, ($($arg:ident: $ty:ty),*), $body:expr) => {
        $(#[$doc])*
        pub fn $name($($arg: $ty),*) {
            $at(level(), $($arg),*)
        }

        /// The same at a given level (which must be [`Level::supported`]; an unsupported
        /// one runs [`Level::Generic`]).
        pub fn $at(l: Level, $($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                unsafe fn avx512($($arg: $ty),*) {
                    $body
                }
                #[target_feature(enable = "avx2")]
                unsafe fn avx2($($arg: $ty),*) {
                    $body
                }
                if l == Level::Avx512 && l.supported() {
                    // SAFETY: the CPU has AVX-512F (checked just above).
                    return unsafe { avx512($($arg),*) };
                }
                if l == Level::Avx2 && l.supported() {
                    // SAFETY: the CPU has AVX2 (checked just above).
                    return unsafe { avx2($($arg),*) };
                }
            }
            let _ = l;
            $body
        }
    };
}

dispatch!(
    /// `dst[i] = expf(src[i])` ([`crate::math::expf`]); the shorter length bounds the work.
    exp_f32, exp_f32_at, (src: &[f32], dst: &mut [f32]), map_body(src, dst, exp64)
);
dispatch!(
    /// `dst[i] = logf(src[i])` ([`crate::math::logf`]).
    log_f32, log_f32_at, (src: &[f32], dst: &mut [f32]), map_body(src, dst, ln64_normal)
);
dispatch!(
    /// `dst[i] = sigmoidf(src[i])` ([`crate::math::sigmoidf`]).
    sigmoid_f32, sigmoid_f32_at, (src: &[f32], dst: &mut [f32]),
    map_body(src, dst, sigmoid64)
);
dispatch!(
    /// Softmax of each row of `cols` elements, as the interpreter computes it
    /// ([`crate::kernels::softmax`]): the row's max, `exp64(x - max)`, their sum in element
    /// order, each quotient rounded once. `src` and `dst` have the same whole number of rows.
    softmax_f32, softmax_f32_at, (src: &[f32], dst: &mut [f32], cols: usize),
    softmax_body(src, dst, cols)
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::{expf, logf, sigmoidf};
    use crate::tensor::Tensor;

    /// Inputs: a dense sweep of bit patterns (every sign, exponent and special), then the
    /// ranges the losses live in.
    fn inputs() -> Vec<f32> {
        let mut v: Vec<f32> = (0..u32::MAX).step_by(40_009).map(f32::from_bits).collect();
        v.extend((0..200_000).map(|i| (i as f32 - 100_000.0) * 1.1e-3));
        v.extend([
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
            f32::from_bits(0x7fc0_1234),
            f32::MIN_POSITIVE,
            f32::from_bits(1),
            88.72,
            -103.9,
            1e-7,
        ]);
        v
    }

    /// Bit-equal, any NaN equal to any NaN: Rust leaves a NaN's payload and quiet bit to the
    /// compiled code (a debug build and a release build pass a signaling NaN through
    /// differently), as the JIT tests do.
    fn same(a: &[f32], b: &[f32], what: &str, l: Level) {
        for (k, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
                "{what} at {l:?}, element {k}: {x} ({:#x}) vs {y} ({:#x})",
                x.to_bits(),
                y.to_bits()
            );
        }
    }

    #[test]
    fn every_level_is_bit_equal_to_the_scalar_functions() {
        let xs = inputs();
        let want_exp: Vec<f32> = xs.iter().map(|x| expf(*x)).collect();
        let want_log: Vec<f32> = xs.iter().map(|x| logf(*x)).collect();
        let want_sig: Vec<f32> = xs.iter().map(|x| sigmoidf(*x)).collect();
        let mut got = vec![0f32; xs.len()];
        for l in Level::ALL.into_iter().filter(|l| l.supported()) {
            exp_f32_at(l, &xs, &mut got);
            same(&got, &want_exp, "exp", l);
            log_f32_at(l, &xs, &mut got);
            same(&got, &want_log, "log", l);
            sigmoid_f32_at(l, &xs, &mut got);
            same(&got, &want_sig, "sigmoid", l);
        }
    }

    #[test]
    fn softmax_is_the_interpreters_at_every_level() {
        let xs = inputs();
        for cols in [1usize, 3, 10, 17, 1000, 1500] {
            let rows = (xs.len() / cols).min(300);
            let src = &xs[..rows * cols];
            let t = Tensor::new(
                crate::DType::F32,
                vec![rows, cols],
                src.iter().map(|x| *x as f64).collect(),
            );
            let want: Vec<f32> = crate::kernels::softmax(&t)
                .data
                .iter()
                .map(|x| *x as f32)
                .collect();
            let mut got = vec![0f32; src.len()];
            for l in Level::ALL.into_iter().filter(|l| l.supported()) {
                softmax_f32_at(l, src, &mut got, cols);
                same(&got, &want, &format!("softmax, {cols} columns"), l);
            }
        }
    }

    #[test]
    fn level_is_one_the_cpu_has() {
        assert!(level().supported());
    }
}
