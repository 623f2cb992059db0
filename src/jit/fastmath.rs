//! Inline f32 exp and log in CLIF (Cephes-style range reduction and polynomials), used when
//! the JIT runs in [`super::MathMode::Fast`]: no call, a few multiply-adds, for one lane or
//! four (f32x4). Their error against the correctly rounded result is measured by
//! `tests/jit.rs` (`fast_math_error_in_ulp`) and stated in docs/jit.md.

use super::codegen::Gen;
use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{Endianness, InstBuilder, MemFlagsData, Type, Value as CV, types};

/// Scalar or four lanes.
#[derive(Copy, Clone, PartialEq, Eq)]
pub(super) enum W {
    /// One f32.
    S,
    /// f32x4 / i32x4.
    V,
}

impl W {
    fn f(self) -> Type {
        if self == W::S {
            types::F32
        } else {
            types::F32X4
        }
    }
    fn i(self) -> Type {
        if self == W::S {
            types::I32
        } else {
            types::I32X4
        }
    }
}

/// Flags for bitcasts between vector types (lane order must be explicit).
pub(super) fn lane_flags() -> MemFlagsData {
    MemFlagsData::new().with_endianness(Endianness::Little)
}

impl Gen<'_, '_> {
    /// An f32 constant, splatted for four lanes.
    pub(super) fn kf(&mut self, w: W, x: f32) -> CV {
        let c = self.b.ins().f32const(x);
        if w == W::S {
            c
        } else {
            self.b.ins().splat(types::F32X4, c)
        }
    }

    fn ki(&mut self, w: W, x: i32) -> CV {
        let c = self.b.ins().iconst(types::I32, x as i64);
        if w == W::S {
            c
        } else {
            self.b.ins().splat(types::I32X4, c)
        }
    }

    /// `m ? a : b` per lane; `m` is a compare result (i8 for one lane, a lane mask for a
    /// vector of any lane type).
    pub(super) fn sel(&mut self, w: W, m: CV, a: CV, b: CV) -> CV {
        if w == W::S {
            return self.b.ins().select(m, a, b);
        }
        let ty = self.b.func.dfg.value_type(a);
        let mt = self.b.func.dfg.value_type(m);
        let m = if mt == ty {
            m
        } else {
            self.b.ins().bitcast(ty, lane_flags(), m)
        };
        self.b.ins().bitselect(m, a, b)
    }

    pub(super) fn bits(&mut self, w: W, to: Type, x: CV) -> CV {
        let fl = if w == W::S {
            MemFlagsData::new()
        } else {
            lane_flags()
        };
        self.b.ins().bitcast(to, fl, x)
    }

    /// Horner evaluation of `coeffs[0] * x^(n-1) + ... + coeffs[n-1]`.
    fn horner(&mut self, w: W, x: CV, coeffs: &[f32]) -> CV {
        let mut acc = self.kf(w, coeffs[0]);
        for &c in &coeffs[1..] {
            let t = self.b.ins().fmul(acc, x);
            let k = self.kf(w, c);
            acc = self.b.ins().fadd(t, k);
        }
        acc
    }

    /// e^x (one lane).
    pub(super) fn fast_exp(&mut self, x: CV) -> CV {
        self.fast_exp_w(W::S, x)
    }

    /// ln x (one lane).
    pub(super) fn fast_log(&mut self, x: CV) -> CV {
        self.fast_log_w(W::S, x)
    }

    /// e^x: x = n ln2 + r with |r| <= ln2/2, e^r by a degree-7 polynomial, times 2^n built in
    /// the exponent bits. Overflow gives +inf, underflow 0, NaN stays NaN.
    pub(super) fn fast_exp_w(&mut self, w: W, x: CV) -> CV {
        let hi = self.kf(w, 88.722_84);
        let lo = self.kf(w, -103.972_08);
        let log2e = self.kf(w, std::f32::consts::LOG2_E);
        let half = self.kf(w, 0.5);
        // Clamp by compare-and-select: `fmin`/`fmax` carry NaN rules that cost several
        // instructions per lane on x86, and a NaN input is restored at the end anyway.
        let over = self.b.ins().fcmp(FloatCC::GreaterThan, x, hi);
        let xc = self.sel(w, over, hi, x);
        let under = self.b.ins().fcmp(FloatCC::LessThan, xc, lo);
        let xc = self.sel(w, under, lo, xc);
        let t = self.b.ins().fmul(xc, log2e);
        let t = self.b.ins().fadd(t, half);
        let n = self.b.ins().floor(t);
        let c1 = self.kf(w, 0.693_359_4);
        let c2 = self.kf(w, -2.121_944_4e-4);
        let a = self.b.ins().fmul(n, c1);
        let r = self.b.ins().fsub(xc, a);
        let bb = self.b.ins().fmul(n, c2);
        let r = self.b.ins().fsub(r, bb);
        let z = self.b.ins().fmul(r, r);
        let p = self.horner(
            w,
            r,
            &[
                1.987_569_1e-4,
                1.398_2e-3,
                8.333_452e-3,
                4.166_579_6e-2,
                1.666_666_5e-1,
                0.5,
            ],
        );
        let p = self.b.ins().fmul(p, z);
        let p = self.b.ins().fadd(p, r);
        let one = self.kf(w, 1.0);
        let p = self.b.ins().fadd(p, one);
        // 2^n in two halves so that n down to -150 (subnormal results) still works.
        // n is a whole number in [-150, 129]: added to 1.5 * 2^23 it sits in the low
        // mantissa bits, read off as an integer (cheaper than a saturating conversion).
        let magic = self.kf(w, 12_582_912.0);
        let nm = self.b.ins().fadd(n, magic);
        let nm = self.bits(w, w.i(), nm);
        let magic_bits = self.ki(w, 0x4b40_0000);
        let ni = self.b.ins().isub(nm, magic_bits);
        let one_i = self.b.ins().iconst(types::I32, 1);
        let h = self.b.ins().sshr(ni, one_i);
        let l = self.b.ins().isub(ni, h);
        let k127 = self.ki(w, 127);
        let k23 = self.b.ins().iconst(types::I32, 23);
        let scale = |g: &mut Self, k: CV| {
            let e = g.b.ins().iadd(k, k127);
            let e = g.b.ins().ishl(e, k23);
            g.bits(w, w.f(), e)
        };
        let sh = scale(self, h);
        let sl = scale(self, l);
        let y = self.b.ins().fmul(p, sh);
        let y = self.b.ins().fmul(y, sl);
        let inf = self.kf(w, f32::INFINITY);
        let y = self.sel(w, over, inf, y);
        let nan = self.b.ins().fcmp(FloatCC::Unordered, x, x);
        self.sel(w, nan, x, y)
    }

    /// ln x: x = m 2^e with m in [sqrt(1/2), sqrt(2)), ln m by a degree-9 polynomial of m-1.
    /// ln 0 = -inf, ln(x<0) = NaN, ln inf = inf, NaN stays NaN; subnormals are scaled first.
    pub(super) fn fast_log_w(&mut self, w: W, x: CV) -> CV {
        let tiny = self.kf(w, f32::MIN_POSITIVE);
        let is_sub = self.b.ins().fcmp(FloatCC::LessThan, x, tiny);
        let two23 = self.kf(w, 8_388_608.0);
        let xs = self.b.ins().fmul(x, two23);
        let xn = self.sel(w, is_sub, xs, x);
        let zero_i = self.ki(w, 0);
        let k23 = self.ki(w, 23);
        let eadj = self.sel(w, is_sub, k23, zero_i);
        let bits = self.bits(w, w.i(), xn);
        let s23 = self.b.ins().iconst(types::I32, 23);
        let e = self.b.ins().ushr(bits, s23);
        let kff = self.ki(w, 0xff);
        let e = self.b.ins().band(e, kff);
        let k126 = self.ki(w, 126);
        let e = self.b.ins().isub(e, k126);
        let e = self.b.ins().isub(e, eadj);
        let kmant = self.ki(w, 0x007f_ffff);
        let mbits = self.b.ins().band(bits, kmant);
        let khalf = self.ki(w, 0x3f00_0000);
        let mbits = self.b.ins().bor(mbits, khalf);
        let m = self.bits(w, w.f(), mbits);
        // m in [0.5, 1): below sqrt(1/2) use 2m - 1 and e - 1.
        let sqrthf = self.kf(w, std::f32::consts::FRAC_1_SQRT_2);
        let small = self.b.ins().fcmp(FloatCC::LessThan, m, sqrthf);
        let one = self.kf(w, 1.0);
        let m2 = self.b.ins().fadd(m, m);
        let a = self.b.ins().fsub(m2, one);
        let bm = self.b.ins().fsub(m, one);
        let xr = self.sel(w, small, a, bm);
        let k1 = self.ki(w, 1);
        let em1 = self.b.ins().isub(e, k1);
        let e = self.sel(w, small, em1, e);
        let ef = self.b.ins().fcvt_from_sint(w.f(), e);
        let z = self.b.ins().fmul(xr, xr);
        let p = self.horner(
            w,
            xr,
            &[
                7.037_683_6e-2,
                -1.151_461e-1,
                1.167_699_9e-1,
                -1.242_014_1e-1,
                1.424_932_3e-1,
                -1.666_805_8e-1,
                2.000_071_4e-1,
                -2.499_999_4e-1,
                3.333_333e-1,
            ],
        );
        let y = self.b.ins().fmul(p, xr);
        let y = self.b.ins().fmul(y, z);
        let c2 = self.kf(w, -2.121_944_4e-4);
        let t = self.b.ins().fmul(ef, c2);
        let y = self.b.ins().fadd(y, t);
        let mhalf = self.kf(w, -0.5);
        let t = self.b.ins().fmul(z, mhalf);
        let y = self.b.ins().fadd(y, t);
        let r = self.b.ins().fadd(xr, y);
        let c1 = self.kf(w, 0.693_359_4);
        let t = self.b.ins().fmul(ef, c1);
        let r = self.b.ins().fadd(r, t);
        // Special values.
        let zero = self.kf(w, 0.0);
        let ninf = self.kf(w, f32::NEG_INFINITY);
        let inf = self.kf(w, f32::INFINITY);
        let nanv = self.kf(w, f32::NAN);
        let is_zero = self.b.ins().fcmp(FloatCC::Equal, x, zero);
        let is_neg = self.b.ins().fcmp(FloatCC::LessThan, x, zero);
        let is_inf = self.b.ins().fcmp(FloatCC::Equal, x, inf);
        let is_nan = self.b.ins().fcmp(FloatCC::Unordered, x, x);
        let r = self.sel(w, is_inf, inf, r);
        let r = self.sel(w, is_zero, ninf, r);
        let r = self.sel(w, is_neg, nanv, r);
        self.sel(w, is_nan, x, r)
    }
}
