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

/// What `NCPC_VMATH` asks for, checked against this CPU: `Ok(None)` when it is unset or empty,
/// `Ok(Some(level))` for a level this CPU runs, else an error that says what was wrong
/// (an unknown name, or a level the CPU lacks).
pub fn requested() -> Result<Option<Level>, String> {
    let wanted = match std::env::var("NCPC_VMATH") {
        Ok(w) if !w.is_empty() => w,
        Ok(_) | Err(std::env::VarError::NotPresent) => return Ok(None),
        Err(std::env::VarError::NotUnicode(w)) => {
            return Err(format!("NCPC_VMATH={w:?} is not valid UTF-8"));
        }
    };
    match Level::ALL.into_iter().find(|l| l.name() == wanted) {
        None => Err(format!(
            "NCPC_VMATH={wanted:?} is not one of avx512, avx2, generic"
        )),
        Some(l) if !l.supported() => Err(format!(
            "NCPC_VMATH={wanted}: this CPU lacks the instructions ({})",
            match l {
                Level::Avx512 => "AVX-512F",
                _ => "AVX2",
            }
        )),
        Some(l) => Ok(Some(l)),
    }
}

/// The widest level this CPU runs.
pub fn detected() -> Level {
    Level::ALL
        .into_iter()
        .find(|l| l.supported())
        .unwrap_or(Level::Generic)
}

/// A warning for the user when `NCPC_VMATH` is set to something this process cannot honour,
/// naming the level used instead ([`level`] falls back to [`detected`]); `None` when the
/// variable is unset or honoured. Values never depend on the level, only speed does.
pub fn override_warning() -> Option<String> {
    requested()
        .err()
        .map(|e| format!("{e}; using {}", detected().name()))
}

/// The level the slice functions use in this process: `NCPC_VMATH` if set and supported,
/// else the widest this CPU has ([`override_warning`] says when a setting was ignored).
pub fn level() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(|| requested().ok().flatten().unwrap_or_else(detected))
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
/// compare-and-select per element and a NaN flag, eight independent lanes at a time in rows
/// of 16 or more: no dependent mask moves, so rows overlap in the core. The maximum does not
/// depend on the order, and a zero maximum's sign does not change any `x - max` that matters
/// (`±0 - ±0` is `±0`, and e^±0 is 1).
#[inline(always)]
fn row_max(row: &[f32]) -> f64 {
    // Short rows (AMM's ten classes) go faster through one compare-and-select chain.
    if row.len() < 16 {
        return row_max_short(row);
    }
    const L: usize = 8;
    let mut lanes = [f32::NEG_INFINITY; L];
    let mut nans = [false; L];
    let chunks = row.chunks_exact(L);
    let rest = chunks.remainder();
    for c in chunks {
        for k in 0..L {
            lanes[k] = if c[k] > lanes[k] { c[k] } else { lanes[k] };
            nans[k] |= c[k].is_nan();
        }
    }
    let mut m = f32::NEG_INFINITY;
    let mut nan = false;
    for (&b, &n) in lanes.iter().zip(&nans) {
        m = if b > m { b } else { m };
        nan |= n;
    }
    for &b in rest {
        m = if b > m { b } else { m };
        nan |= b.is_nan();
    }
    if nan { f64::NAN } else { m as f64 }
}

/// [`row_max`] for a short row: one compare-and-select per element.
#[inline(always)]
fn row_max_short(row: &[f32]) -> f64 {
    let mut m = f32::NEG_INFINITY;
    let mut nan = false;
    for &b in row {
        m = if b > m { b } else { m };
        nan |= b.is_nan();
    }
    if nan { f64::NAN } else { m as f64 }
}

/// `(e / s) as f32` for the row sum `s`, the interpreter's quotient, computed as `e * r`
/// with `r = 1 / s` rounded once per row: `e * r` is within 3 f64 ulps of `e / s`
/// (two roundings of relative size 2^-53 against one), so both round to the same f32 unless
/// `e * r` lies within 4 ulps of a midpoint between two f32 values (its low 29 bits within 4 of
/// `2^28`), or is below f32's normal range (where f32's rounding point moves), or is not a
/// number. Those it reports as `false`: the caller then divides. Random quotients land there
/// about once in 6e7.
#[inline(always)]
fn quotient(e: f64, r: f64) -> (f32, bool) {
    const MID: u64 = 1 << 28;
    const LOW: u64 = (1 << 29) - 1;
    let q = e * r;
    let near_mid = ((q.to_bits() & LOW).wrapping_sub(MID - 4)) <= 8;
    // 2^-125: at least twice f32's least normal, so `e / s` is normal too.
    let ok = q >= f64::from_bits(0x3820_0000_0000_0000) && !near_mid;
    (q as f32, ok)
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
    let (t_all, r_all) = scratch.split_at_mut(block);
    softmax_blocks(src, dst, cols, per, t_all, r_all);
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
    r_all: &mut [f64],
) {
    for (xs, os) in src.chunks(per * cols).zip(dst.chunks_mut(per * cols)) {
        let t = &mut t_all[..xs.len()];
        let recips = &mut r_all[..xs.len()];
        for (xr, tr) in xs.chunks(cols).zip(t.chunks_mut(cols)) {
            let m = row_max(xr);
            for (d, x) in tr.iter_mut().zip(xr) {
                *d = *x as f64 - m;
            }
        }
        for d in t.iter_mut() {
            *d = exp64(*d);
        }
        // One division per row; each quotient is a product, checked (see `quotient`).
        for (tr, rr) in t.chunks(cols).zip(recips.chunks_mut(cols)) {
            let s: f64 = tr.iter().sum();
            rr.fill(1.0 / s);
        }
        let mut all_ok = true;
        for ((o, e), r) in os.iter_mut().zip(t.iter()).zip(recips.iter()) {
            let (q, ok) = quotient(*e, *r);
            *o = q;
            all_ok &= ok;
        }
        if !all_ok {
            // Rare (a quotient near an f32 rounding point) or a row with tiny, zero or NaN
            // quotients: this block's quotients as the interpreter divides.
            for (tr, or) in t.chunks(cols).zip(os.chunks_mut(cols)) {
                let s: f64 = tr.iter().sum();
                for (o, e) in or.iter_mut().zip(tr) {
                    *o = (e / s) as f32;
                }
            }
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

    /// `softmax_f32` of `src` (rows of `cols`) at every level the CPU has against the
    /// interpreter's softmax, bit for bit.
    fn softmax_at_every_level(src: &[f32], cols: usize, what: &str) {
        let rows = src.len() / cols;
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
            same(&got, &want, &format!("{what}, {cols} columns"), l);
        }
    }

    #[test]
    fn softmax_is_the_interpreters_at_every_level() {
        let xs = inputs();
        for cols in [1usize, 3, 10, 17, 1000, 1500] {
            let rows = (xs.len() / cols).min(300);
            let src = &xs[..rows * cols];
            softmax_at_every_level(src, cols, "softmax");
        }
    }

    /// A deterministic stream of u64 (splitmix64).
    fn stream(mut seed: u64) -> impl FnMut() -> u64 {
        move || {
            seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
    }

    #[test]
    fn checked_products_round_as_the_quotients_do() {
        // The hard cases on purpose: `e` chosen so that `e / s` falls on, or a few f64 ulps
        // from, a midpoint between two f32 values, and plain random pairs.
        let mut next = stream(7);
        let unit = |u: u64| (u >> 11) as f64 / (1u64 << 53) as f64;
        let (mut checked, mut kept) = (0u32, 0u32);
        for k in 0..400_000u32 {
            let s = 1.0 + 999.0 * unit(next());
            let e = if k % 2 == 0 {
                // A random f32 in [2^-40, 1), its upper midpoint, nudged by -8..=8 ulps.
                let f = f32::from_bits(0x2b80_0000 + (next() % 0x1380_0000) as u32);
                let mid = f as f64 + (f32::from_bits(f.to_bits() + 1) as f64 - f as f64) / 2.0;
                let nudge = (next() % 17) as i64 - 8;
                f64::from_bits(((mid * s).to_bits() as i64 + nudge) as u64)
            } else {
                unit(next()) * s
            };
            let (q, ok) = quotient(e, 1.0 / s);
            checked += 1;
            if ok {
                kept += 1;
                let want = (e / s) as f32;
                assert_eq!(q.to_bits(), want.to_bits(), "e = {e:e}, s = {s:e}");
            }
        }
        // Near the midpoints most are refused; the random half nearly all kept.
        assert!(
            kept > checked / 2 - checked / 100,
            "{kept} of {checked} kept"
        );
        assert!(kept < checked - checked / 4, "{kept} of {checked} kept");
    }

    #[test]
    fn softmax_of_ordinary_logits_is_the_interpreters_at_every_level() {
        let mut next = stream(11);
        for cols in [2usize, 10, 16, 100] {
            let rows = 40_000 / cols;
            let src: Vec<f32> = (0..rows * cols)
                .map(|_| ((next() >> 40) as f32 / (1u32 << 24) as f32 - 0.5) * 24.0)
                .collect();
            softmax_at_every_level(&src, cols, "softmax of logits");
        }
    }

    #[test]
    fn level_is_one_the_cpu_has() {
        assert!(level().supported());
    }
}
