//! ncpc's own exp, log and sigmoid: one definition for every backend that must agree bit for
//! bit (the interpreter, constant folding, the JIT's exact mode in one lane or in SIMD lanes).
//!
//! Each is straight-line f64 arithmetic: `+ - * /`, `floor`, comparisons and bit moves, no
//! fused multiply-add and no table. Every step is an IEEE operation that a vector unit does
//! lane by lane with the same result, so the JIT can emit the same sequence in f64x2 lanes and
//! stay bit-equal to this code. The constants below are the ones the JIT emits.
//!
//! Accuracy: the f64 results are within about 2^-42 (exp) and 2^-44 (log) relative of the
//! true values, far below an f32 ulp (2^-24), so the f32 results ([`expf`], [`logf`],
//! [`sigmoidf`]) are the correctly rounded ones except where the true value lies within that
//! distance of a rounding boundary; `tests` count such inputs over dense sweeps (docs/jit.md
//! states the figures).

/// `log2(e)`.
pub const LOG2_E: f64 = std::f64::consts::LOG2_E;
/// `ln 2`, high part: few enough bits that `k * LN2_HI` is exact for |k| < 2^11.
pub const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
/// `ln 2 - LN2_HI`.
pub const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
/// `ln 2` rounded to f64.
pub const LN2: f64 = std::f64::consts::LN_2;
/// `2^52 + 2^51`: adding it to a small integer-valued f64 puts the integer in the low bits.
pub const ROUND_MAGIC: f64 = 6_755_399_441_055_744.0;
/// exp's argument is clamped to `[-EXP_CLAMP, EXP_CLAMP]`: beyond it every f32 result (and
/// every f32 result of softmax and sigmoid, which use the f64 value) is already 0 or inf.
pub const EXP_CLAMP: f64 = 700.0;

/// Coefficients of `e^r` on `|r| <= ln2/2`, highest degree first: the degree-9 polynomial
/// interpolating e^r at the Chebyshev nodes of that interval (computed with 40-digit
/// arithmetic, then rounded to f64); its error is below 2^-45 relative.
pub const EXP_COEFFS: [f64; 10] = [
    2.763_264_067_543_023_6e-6,
    2.488_445_975_175_111_6e-5,
    1.984_119_064_754_424e-4,
    1.388_880_174_965_654_3e-3,
    8.333_333_367_311_603e-3,
    4.166_666_704_055_191e-2,
    1.666_666_666_661_564_8e-1,
    4.999_999_999_943_859e-1,
    1.000_000_000_000_001_3,
    1.000_000_000_000_013_5,
];

/// Coefficients of `atanh(f) / f = 1 + s/3 + s^2/5 + ...` with `s = f^2`, highest first;
/// `|f| <= 0.1716`, so the first omitted term, `s^8/17`, is below 2^-44 relative.
pub const LOG_COEFFS: [f64; 8] = [
    1.0 / 15.0,
    1.0 / 13.0,
    1.0 / 11.0,
    1.0 / 9.0,
    1.0 / 7.0,
    1.0 / 5.0,
    1.0 / 3.0,
    1.0,
];

/// `sqrt(2)`: mantissas above it are halved so that `log` works on `[sqrt(1/2), sqrt(2)]`.
pub const SQRT2: f64 = std::f64::consts::SQRT_2;

/// Bits of f64's mantissa field.
pub const MANT_MASK: u64 = 0x000f_ffff_ffff_ffff;

/// The polynomial with `coeffs` (highest degree first) at `x` by Estrin's scheme: pairs
/// `a_k + a_(k+1) x`, then pairs of those with `x^2`, `x^4`, ... Its dependency chain is
/// logarithmic in the degree (Horner's is linear), which is what vector lanes need; the JIT
/// emits the same operations in the same order (`jit::exactmath`).
#[inline(always)]
pub fn estrin<const N: usize>(x: f64, coeffs: &[f64; N]) -> f64 {
    // On the stack, with the degree known at compile time so that the loops unroll (the
    // interpreter calls this per element).
    let mut terms = [0.0f64; N];
    let mut n = N;
    for (t, c) in terms.iter_mut().zip(coeffs.iter().rev()) {
        *t = *c;
    }
    let mut p = x;
    while n > 1 {
        for k in 0..n / 2 {
            terms[k] = terms[2 * k] + terms[2 * k + 1] * p;
        }
        if n % 2 == 1 {
            terms[n / 2] = terms[n - 1];
        }
        n = n.div_ceil(2);
        if n > 1 {
            p = p * p;
        }
    }
    terms[0]
}

/// [`estrin`] over [`EXP_COEFFS`], written out: the same operations in the same order (a
/// test checks bit-equality), in a form the compiler keeps in registers and vectorizes
/// (the generic loop is not unrolled and runs through the stack).
#[inline(always)]
pub fn exp_poly(r: f64) -> f64 {
    let c = &EXP_COEFFS;
    let t0 = c[9] + c[8] * r;
    let t1 = c[7] + c[6] * r;
    let t2 = c[5] + c[4] * r;
    let t3 = c[3] + c[2] * r;
    let t4 = c[1] + c[0] * r;
    let r2 = r * r;
    let u0 = t0 + t1 * r2;
    let u1 = t2 + t3 * r2;
    let r4 = r2 * r2;
    let v0 = u0 + u1 * r4;
    let r8 = r4 * r4;
    v0 + t4 * r8
}

/// [`estrin`] over [`LOG_COEFFS`], written out (see [`exp_poly`]).
#[inline(always)]
pub fn log_poly(s: f64) -> f64 {
    let c = &LOG_COEFFS;
    let t0 = c[7] + c[6] * s;
    let t1 = c[5] + c[4] * s;
    let t2 = c[3] + c[2] * s;
    let t3 = c[1] + c[0] * s;
    let s2 = s * s;
    let u0 = t0 + t1 * s2;
    let u1 = t2 + t3 * s2;
    let s4 = s2 * s2;
    u0 + u1 * s4
}

/// e^x in f64 (see the module's accuracy note). NaN gives the same NaN; +inf gives a finite
/// value beyond f32's range (e^700), -inf a value far below f32's smallest (e^-700).
///
/// Written without branches (NaN by a final select), so that `vmath` can put whole slices
/// of it through vector lanes; the JIT emits the same sequence.
#[inline(always)]
pub fn exp64(x: f64) -> f64 {
    // The JIT's two compare-and-selects (a NaN is replaced at the end).
    let xc = x.clamp(-EXP_CLAMP, EXP_CLAMP);
    let k = (xc * LOG2_E + 0.5).floor();
    let r = xc - k * LN2_HI;
    let r = r - k * LN2_LO;
    let p = exp_poly(r);
    // 2^k from k's bits: k + ROUND_MAGIC holds k in its low mantissa bits.
    let kbits = (k + ROUND_MAGIC)
        .to_bits()
        .wrapping_sub(ROUND_MAGIC.to_bits());
    let scale = f64::from_bits(kbits.wrapping_add(1023) << 52);
    let v = p * scale;
    if x.is_nan() { x } else { v }
}

/// ln x in f64 for x > 0 (0 gives -inf, negatives NaN, +inf +inf, NaN the same NaN).
pub fn ln64(x: f64) -> f64 {
    if x > 0.0 && x < f64::MIN_POSITIVE {
        // f64 subnormals (never an f32 value): scale into the normal range first.
        return ln64(x * 18_014_398_509_481_984.0) - 54.0 * LN2;
    }
    ln64_normal(x)
}

/// [`ln64`] of any f64 that is not an f64 subnormal (so of every f32 value), without
/// branches (the special cases by selects at the end), so that `vmath` can put whole slices
/// of it through vector lanes.
#[inline(always)]
pub fn ln64_normal(x: f64) -> f64 {
    let bits = x.to_bits();
    // The exponent as an f64: its field below 2^52's bits, minus 2^52 and the bias.
    let e = f64::from_bits((bits >> 52) | 0x4330_0000_0000_0000) - 4_503_599_627_371_519.0;
    let m = f64::from_bits((bits & MANT_MASK) | 0x3ff0_0000_0000_0000);
    let big = m > SQRT2;
    let m = if big { m * 0.5 } else { m };
    let e = if big { e + 1.0 } else { e };
    let f = (m - 1.0) / (m + 1.0);
    let s = f * f;
    let p = log_poly(s);
    let t = f + f;
    let v = t * p + e * LN2;
    let v = if x == 0.0 { f64::NEG_INFINITY } else { v };
    let v = if x < 0.0 { f64::NAN } else { v };
    let v = if x == f64::INFINITY { x } else { v };
    if x.is_nan() { x } else { v }
}

/// The logistic function `1 / (1 + e^-x)` in f64 with [`exp64`].
#[inline(always)]
pub fn sigmoid64(x: f64) -> f64 {
    1.0 / (1.0 + exp64(-x))
}

/// e^x of an f32, rounded once.
pub fn expf(x: f32) -> f32 {
    exp64(x as f64) as f32
}

/// ln x of an f32, rounded once.
pub fn logf(x: f32) -> f32 {
    ln64(x as f64) as f32
}

/// The logistic function of an f32, rounded once.
pub fn sigmoidf(x: f32) -> f32 {
    sigmoid64(x as f64) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(a: f64, b: f64) -> f64 {
        ((a - b) / b).abs()
    }

    #[test]
    fn exp_is_accurate_in_f64() {
        let mut worst: f64 = 0.0;
        let mut x = -700.0;
        while x <= 700.0 {
            worst = worst.max(rel(exp64(x), x.exp()));
            x += 0.000_913_7;
        }
        eprintln!("exp64: worst relative error {worst:e}");
        assert!(worst < 2f64.powi(-42), "worst relative error {worst:e}");
    }

    #[test]
    fn log_is_accurate_in_f64() {
        let mut worst: f64 = 0.0;
        for k in 0..2_000_000u32 {
            let x = f32::from_bits(1 + k * 1069) as f64;
            if x.is_finite() && x > 0.0 {
                let want = x.ln();
                if want != 0.0 {
                    worst = worst.max(rel(ln64(x), want));
                }
            }
        }
        eprintln!("ln64: worst relative error {worst:e}");
        assert!(worst < 2f64.powi(-44), "worst relative error {worst:e}");
        let tiny = f64::from_bits(3);
        assert!(rel(ln64(tiny), tiny.ln()) < 1e-15);
    }

    #[test]
    fn written_out_polynomials_are_estrins_scheme() {
        for k in 0..200_000u32 {
            let r = (k as f64 / 200_000.0 - 0.5) * 0.7;
            assert_eq!(
                exp_poly(r).to_bits(),
                estrin(r, &EXP_COEFFS).to_bits(),
                "{r}"
            );
            let s = (k as f64 / 200_000.0) * 0.03;
            assert_eq!(
                log_poly(s).to_bits(),
                estrin(s, &LOG_COEFFS).to_bits(),
                "{s}"
            );
        }
    }

    #[test]
    fn ln2_split_is_exact_for_small_multiples() {
        assert_eq!(LN2_HI.to_bits(), 0x3fe6_2e42_fee0_0000);
        assert_eq!(LN2_HI + LN2_LO, LN2);
        assert_eq!(LN2_HI.to_bits() & 0x1f_ffff, 0);
    }

    #[test]
    fn specials() {
        assert!(exp64(f64::NAN).is_nan());
        assert_eq!(expf(f32::INFINITY), f32::INFINITY);
        assert_eq!(expf(f32::NEG_INFINITY), 0.0);
        assert_eq!(expf(0.0), 1.0);
        assert_eq!(expf(-0.0), 1.0);
        assert_eq!(expf(89.0), f32::INFINITY);
        assert_eq!(expf(-104.0), 0.0);
        assert_eq!(logf(1.0), 0.0);
        assert_eq!(logf(0.0), f32::NEG_INFINITY);
        assert_eq!(logf(-0.0), f32::NEG_INFINITY);
        assert!(logf(-1.0).is_nan());
        assert!(logf(f32::NAN).is_nan());
        assert_eq!(logf(f32::INFINITY), f32::INFINITY);
        assert_eq!(sigmoidf(0.0), 0.5);
        assert_eq!(sigmoidf(-200.0), 0.0);
        assert_eq!(sigmoidf(200.0), 1.0);
        assert_eq!(sigmoidf(f32::NEG_INFINITY), 0.0);
        assert_eq!(sigmoidf(f32::INFINITY), 1.0);
    }

    /// The f32 results against the correctly rounded ones (std's f64 functions are accurate
    /// to well under 2^-50 here, so rounding them once is the correctly rounded f32 except
    /// for a vanishing set of inputs): every 61st f32 bit pattern in exp's range, every 97th
    /// positive f32 for log. At most 1 ulp off, and almost always exact.
    #[test]
    fn f32_results_are_correctly_rounded_almost_always() {
        let (mut n, mut off, mut worst) = (0u64, 0u64, 0i64);
        let mut check = |got: f32, want: f32| {
            n += 1;
            let d = (got.to_bits() as i64 - want.to_bits() as i64).abs();
            if d != 0 {
                off += 1;
            }
            worst = worst.max(d);
        };
        for b in (0..u32::MAX).step_by(61) {
            let x = f32::from_bits(b);
            if x.is_finite() && (-104.0..=89.0).contains(&x) {
                check(expf(x), (x as f64).exp() as f32);
            }
        }
        for b in (1..0x7f80_0000u32).step_by(97) {
            let x = f32::from_bits(b);
            check(logf(x), (x as f64).ln() as f32);
        }
        eprintln!("{off} of {n} results not correctly rounded, worst {worst} ulp");
        assert!(worst <= 1, "worst {worst} ulp");
        assert!(
            (off as f64) < 1e-5 * n as f64,
            "{off} of {n} not correctly rounded"
        );
    }
}
