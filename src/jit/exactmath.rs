//! Exact-mode exp, log and sigmoid inlined in CLIF: the very sequence of `ncp_ir::math`
//! (same constants, same operations in the same order, no fused multiply-add), in one f64
//! lane or in f64x2 lanes. An f32x4 vector is split into two f64x2 halves, computed and
//! rounded once back to f32. Each lane does exactly what the interpreter does, so exact mode
//! stays bit-equal to it while running four elements at a time.

use super::codegen::Gen;
use super::fastmath::{W, lane_flags};
use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{ConstantData, InstBuilder, Type, Value as CV, types};
use ncp_ir::math as m;

/// One f64 or two (f64x2).
#[derive(Copy, Clone, PartialEq, Eq)]
pub(super) enum D {
    /// One f64.
    S,
    /// f64x2.
    V,
}

impl D {
    /// One lane or a vector, for the helpers shared with fast math.
    fn w(self) -> W {
        if self == D::S { W::S } else { W::V }
    }
    fn f(self) -> Type {
        if self == D::S {
            types::F64
        } else {
            types::F64X2
        }
    }
    fn i(self) -> Type {
        if self == D::S {
            types::I64
        } else {
            types::I64X2
        }
    }
}

impl Gen<'_, '_> {
    fn kd(&mut self, d: D, x: f64) -> CV {
        let c = self.b.ins().f64const(x);
        if d == D::S {
            c
        } else {
            self.b.ins().splat(types::F64X2, c)
        }
    }

    fn kl(&mut self, d: D, x: u64) -> CV {
        let c = self.b.ins().iconst(types::I64, x as i64);
        if d == D::S {
            c
        } else {
            self.b.ins().splat(types::I64X2, c)
        }
    }

    fn dsel(&mut self, d: D, m: CV, a: CV, b: CV) -> CV {
        self.sel(d.w(), m, a, b)
    }

    fn dbits(&mut self, d: D, to: Type, x: CV) -> CV {
        self.bits(d.w(), to, x)
    }

    /// `ncp_ir::math::estrin`: the same operations in the same order.
    fn destrin(&mut self, d: D, x: CV, coeffs: &[f64]) -> CV {
        // The first round reads the coefficients; each constant is made where it is used, so
        // that few are live at once (fewer spills).
        let a: Vec<f64> = coeffs.iter().rev().copied().collect();
        let mut terms: Vec<CV> = Vec::with_capacity(a.len().div_ceil(2));
        for t in a.chunks(2) {
            terms.push(if t.len() == 2 {
                let hi = self.kd(d, t[1]);
                let m = self.b.ins().fmul(hi, x);
                let lo = self.kd(d, t[0]);
                self.b.ins().fadd(lo, m)
            } else {
                self.kd(d, t[0])
            });
        }
        let mut p = if terms.len() > 1 {
            self.b.ins().fmul(x, x)
        } else {
            x
        };
        while terms.len() > 1 {
            let mut next = Vec::with_capacity(terms.len().div_ceil(2));
            for t in terms.chunks(2) {
                next.push(if t.len() == 2 {
                    let m = self.b.ins().fmul(t[1], p);
                    self.b.ins().fadd(t[0], m)
                } else {
                    t[0]
                });
            }
            terms = next;
            if terms.len() > 1 {
                p = self.b.ins().fmul(p, p);
            }
        }
        terms[0]
    }

    /// `ncp_ir::math::exp64`.
    pub(super) fn exact_exp64(&mut self, d: D, x: CV) -> CV {
        let lo = self.kd(d, -m::EXP_CLAMP);
        let hi = self.kd(d, m::EXP_CLAMP);
        let below = self.b.ins().fcmp(FloatCC::LessThan, x, lo);
        let xc = self.dsel(d, below, lo, x);
        let above = self.b.ins().fcmp(FloatCC::GreaterThan, xc, hi);
        let xc = self.dsel(d, above, hi, xc);
        let log2e = self.kd(d, m::LOG2_E);
        let half = self.kd(d, 0.5);
        let t = self.b.ins().fmul(xc, log2e);
        let t = self.b.ins().fadd(t, half);
        let k = self.b.ins().floor(t);
        let c1 = self.kd(d, m::LN2_HI);
        let c2 = self.kd(d, m::LN2_LO);
        let a = self.b.ins().fmul(k, c1);
        let r = self.b.ins().fsub(xc, a);
        let bb = self.b.ins().fmul(k, c2);
        let r = self.b.ins().fsub(r, bb);
        let p = self.destrin(d, r, &m::EXP_COEFFS);
        let magic = self.kd(d, m::ROUND_MAGIC);
        let km = self.b.ins().fadd(k, magic);
        let kb = self.dbits(d, d.i(), km);
        let mb = self.kl(d, m::ROUND_MAGIC.to_bits().wrapping_sub(1023));
        let e = self.b.ins().isub(kb, mb);
        let e = self.b.ins().ishl_imm_u(e, 52);
        let scale = self.dbits(d, d.f(), e);
        let y = self.b.ins().fmul(p, scale);
        let nan = self.b.ins().fcmp(FloatCC::Unordered, x, x);
        self.dsel(d, nan, x, y)
    }

    /// `ncp_ir::math::ln64` for arguments that are f32 values (never f64 subnormals).
    pub(super) fn exact_ln64(&mut self, d: D, x: CV) -> CV {
        let bits = self.dbits(d, d.i(), x);
        let eb = self.b.ins().ushr_imm_u(bits, 52);
        let k4330 = self.kl(d, 0x4330_0000_0000_0000);
        let eb = self.b.ins().bor(eb, k4330);
        let ef = self.dbits(d, d.f(), eb);
        let bias = self.kd(d, 4_503_599_627_371_519.0);
        let e = self.b.ins().fsub(ef, bias);
        let kmant = self.kl(d, m::MANT_MASK);
        let mb = self.b.ins().band(bits, kmant);
        let kone = self.kl(d, 0x3ff0_0000_0000_0000);
        let mb = self.b.ins().bor(mb, kone);
        let mv = self.dbits(d, d.f(), mb);
        let sqrt2 = self.kd(d, m::SQRT2);
        let big = self.b.ins().fcmp(FloatCC::GreaterThan, mv, sqrt2);
        let half = self.kd(d, 0.5);
        let mh = self.b.ins().fmul(mv, half);
        let mv = self.dsel(d, big, mh, mv);
        let one = self.kd(d, 1.0);
        let e1 = self.b.ins().fadd(e, one);
        let e = self.dsel(d, big, e1, e);
        let num = self.b.ins().fsub(mv, one);
        let den = self.b.ins().fadd(mv, one);
        let f = self.b.ins().fdiv(num, den);
        let s = self.b.ins().fmul(f, f);
        let p = self.destrin(d, s, &m::LOG_COEFFS);
        let t = self.b.ins().fadd(f, f);
        let y = self.b.ins().fmul(t, p);
        let ln2 = self.kd(d, m::LN2);
        let el = self.b.ins().fmul(e, ln2);
        let y = self.b.ins().fadd(y, el);
        // Special values, as ln64 returns them.
        let zero = self.kd(d, 0.0);
        let inf = self.kd(d, f64::INFINITY);
        let ninf = self.kd(d, f64::NEG_INFINITY);
        let nanv = self.kd(d, f64::NAN);
        let is_inf = self.b.ins().fcmp(FloatCC::Equal, x, inf);
        let y = self.dsel(d, is_inf, inf, y);
        let is_neg = self.b.ins().fcmp(FloatCC::LessThan, x, zero);
        let y = self.dsel(d, is_neg, nanv, y);
        let is_zero = self.b.ins().fcmp(FloatCC::Equal, x, zero);
        let y = self.dsel(d, is_zero, ninf, y);
        let is_nan = self.b.ins().fcmp(FloatCC::Unordered, x, x);
        self.dsel(d, is_nan, x, y)
    }

    /// `ncp_ir::math::sigmoid64`.
    pub(super) fn exact_sigmoid64(&mut self, d: D, x: CV) -> CV {
        let n = self.b.ins().fneg(x);
        let e = self.exact_exp64(d, n);
        let one = self.kd(d, 1.0);
        let den = self.b.ins().fadd(one, e);
        self.b.ins().fdiv(one, den)
    }

    /// An f64 function of f32 lanes: promoted, computed, rounded once.
    pub(super) fn exact_f32(&mut self, w: W, x: CV, f: fn(&mut Self, D, CV) -> CV) -> CV {
        if w == W::S {
            let xd = self.b.ins().fpromote(types::F64, x);
            let y = f(self, D::S, xd);
            return self.b.ins().fdemote(types::F32, y);
        }
        let (lo, hi) = self.halves(x);
        let ylo = f(self, D::V, lo);
        let yhi = f(self, D::V, hi);
        self.join(ylo, yhi)
    }

    /// The low and high lane pairs of an f32x4 as two f64x2.
    pub(super) fn halves(&mut self, x: CV) -> (CV, CV) {
        let lo = self.b.ins().fvpromote_low(x);
        let bytes = self.b.ins().bitcast(types::I8X16, lane_flags(), x);
        let mask: Vec<u8> = (8..16).chain(8..16).collect();
        let imm = self.b.func.dfg.immediates.push(ConstantData::from(mask));
        let up = self.b.ins().shuffle(bytes, bytes, imm);
        let up = self.b.ins().bitcast(types::F32X4, lane_flags(), up);
        let hi = self.b.ins().fvpromote_low(up);
        (lo, hi)
    }

    /// Two f64x2 rounded to f32 and put back together as one f32x4 (low pair first).
    pub(super) fn join(&mut self, lo: CV, hi: CV) -> CV {
        let l = self.b.ins().fvdemote(lo);
        let h = self.b.ins().fvdemote(hi);
        let lb = self.b.ins().bitcast(types::I8X16, lane_flags(), l);
        let hb = self.b.ins().bitcast(types::I8X16, lane_flags(), h);
        let mask: Vec<u8> = (0..8).chain(16..24).collect();
        let imm = self.b.func.dfg.immediates.push(ConstantData::from(mask));
        let j = self.b.ins().shuffle(lb, hb, imm);
        self.b.ins().bitcast(types::F32X4, lane_flags(), j)
    }
}
