//! Inline f32 exp and log in CLIF (Cephes-style range reduction and polynomials), used when
//! the JIT runs in [`super::MathMode::Fast`]: no call, a few multiply-adds. Their error
//! against the correctly rounded result is measured by `tests/jit.rs`
//! (`fast_math_error_in_ulp`) and stated in docs/jit.md.

use super::codegen::Gen;
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Value as CV, types};

impl Gen<'_, '_> {
    fn fc(&mut self, x: f32) -> CV {
        self.b.ins().f32const(x)
    }

    /// Horner evaluation of `coeffs[0] * x^(n-1) + ... + coeffs[n-1]`.
    fn horner(&mut self, x: CV, coeffs: &[f32]) -> CV {
        let mut acc = self.fc(coeffs[0]);
        for &c in &coeffs[1..] {
            let t = self.b.ins().fmul(acc, x);
            let k = self.fc(c);
            acc = self.b.ins().fadd(t, k);
        }
        acc
    }

    /// e^x: x = n ln2 + r with |r| <= ln2/2, e^r by a degree-7 polynomial, times 2^n built in
    /// the exponent bits. Overflow gives +inf, underflow 0, NaN stays NaN.
    pub(super) fn fast_exp(&mut self, x: CV) -> CV {
        let hi = self.fc(88.722_84);
        let lo = self.fc(-103.972_08);
        let log2e = self.fc(std::f32::consts::LOG2_E);
        let half = self.fc(0.5);
        let xc = self.b.ins().fmin(x, hi);
        let xc = self.b.ins().fmax(xc, lo);
        let t = self.b.ins().fmul(xc, log2e);
        let t = self.b.ins().fadd(t, half);
        let n = self.b.ins().floor(t);
        let c1 = self.fc(0.693_359_4);
        let c2 = self.fc(-2.121_944_4e-4);
        let a = self.b.ins().fmul(n, c1);
        let r = self.b.ins().fsub(xc, a);
        let bb = self.b.ins().fmul(n, c2);
        let r = self.b.ins().fsub(r, bb);
        let z = self.b.ins().fmul(r, r);
        let p = self.horner(
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
        let one = self.fc(1.0);
        let p = self.b.ins().fadd(p, one);
        // 2^n in two halves so that n down to -150 (subnormal results) still works.
        let ni = self.b.ins().fcvt_to_sint_sat(types::I32, n);
        let h = self.b.ins().sshr_imm_u(ni, 1);
        let l = self.b.ins().isub(ni, h);
        let scale = |g: &mut Self, k: CV| {
            let e = g.b.ins().iadd_imm_s(k, 127);
            let e = g.b.ins().ishl_imm_u(e, 23);
            g.b.ins().bitcast(types::F32, MemFlagsData::new(), e)
        };
        let sh = scale(self, h);
        let sl = scale(self, l);
        let y = self.b.ins().fmul(p, sh);
        let y = self.b.ins().fmul(y, sl);
        let inf = self.fc(f32::INFINITY);
        let big = self.fc(88.722_84);
        let over = self.b.ins().fcmp(FloatCC::GreaterThan, x, big);
        let y = self.b.ins().select(over, inf, y);
        let nan = self.b.ins().fcmp(FloatCC::Unordered, x, x);
        self.b.ins().select(nan, x, y)
    }

    /// ln x: x = m 2^e with m in [sqrt(1/2), sqrt(2)), ln m by a degree-9 polynomial of m-1.
    /// ln 0 = -inf, ln(x<0) = NaN, ln inf = inf, NaN stays NaN; subnormals are scaled first.
    pub(super) fn fast_log(&mut self, x: CV) -> CV {
        // Scale subnormals into the normal range.
        let tiny = self.fc(f32::MIN_POSITIVE);
        let is_sub = self.b.ins().fcmp(FloatCC::LessThan, x, tiny);
        let two23 = self.fc(8_388_608.0);
        let xs = self.b.ins().fmul(x, two23);
        let xn = self.b.ins().select(is_sub, xs, x);
        let zero_i = self.b.ins().iconst(types::I32, 0);
        let k23 = self.b.ins().iconst(types::I32, 23);
        let eadj = self.b.ins().select(is_sub, k23, zero_i);
        let bits = self.b.ins().bitcast(types::I32, MemFlagsData::new(), xn);
        let e = self.b.ins().ushr_imm_u(bits, 23);
        let e = self.b.ins().band_imm_u(e, 0xff);
        let e = self.b.ins().iadd_imm_s(e, -126);
        let e = self.b.ins().isub(e, eadj);
        let mbits = self.b.ins().band_imm_u(bits, 0x007f_ffff);
        let mbits = self.b.ins().bor_imm_u(mbits, 0x3f00_0000);
        let m = self.b.ins().bitcast(types::F32, MemFlagsData::new(), mbits);
        // m in [0.5, 1): below sqrt(1/2) use 2m - 1 and e - 1.
        let sqrthf = self.fc(std::f32::consts::FRAC_1_SQRT_2);
        let small = self.b.ins().fcmp(FloatCC::LessThan, m, sqrthf);
        let one = self.fc(1.0);
        let m2 = self.b.ins().fadd(m, m);
        let a = self.b.ins().fsub(m2, one);
        let bm = self.b.ins().fsub(m, one);
        let xr = self.b.ins().select(small, a, bm);
        let em1 = self.b.ins().iadd_imm_s(e, -1);
        let e = self.b.ins().select(small, em1, e);
        let ef = self.b.ins().fcvt_from_sint(types::F32, e);
        let z = self.b.ins().fmul(xr, xr);
        let p = self.horner(
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
        let c2 = self.fc(-2.121_944_4e-4);
        let t = self.b.ins().fmul(ef, c2);
        let y = self.b.ins().fadd(y, t);
        let mhalf = self.fc(-0.5);
        let t = self.b.ins().fmul(z, mhalf);
        let y = self.b.ins().fadd(y, t);
        let r = self.b.ins().fadd(xr, y);
        let c1 = self.fc(0.693_359_4);
        let t = self.b.ins().fmul(ef, c1);
        let r = self.b.ins().fadd(r, t);
        // Special values.
        let zero = self.fc(0.0);
        let ninf = self.fc(f32::NEG_INFINITY);
        let inf = self.fc(f32::INFINITY);
        let nanv = self.fc(f32::NAN);
        let is_zero = self.b.ins().fcmp(FloatCC::Equal, x, zero);
        let is_neg = self.b.ins().fcmp(FloatCC::LessThan, x, zero);
        let is_inf = self.b.ins().fcmp(FloatCC::Equal, x, inf);
        let is_nan = self.b.ins().fcmp(FloatCC::Unordered, x, x);
        let r = self.b.ins().select(is_inf, inf, r);
        let r = self.b.ins().select(is_zero, ninf, r);
        let r = self.b.ins().select(is_neg, nanv, r);
        let _ = IntCC::Equal;
        self.b.ins().select(is_nan, x, r)
    }
}
