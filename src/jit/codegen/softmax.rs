//! Softmax in f32x4 lanes for exact math, when its input is contiguous along the last dim:
//! per row, the max four lanes at a time, `exp(x - max)` in f64x2 lanes (`ncp_ir::math`'s
//! sequence, kept in the row's f64 buffer) summed in element order, then the quotients
//! rounded once. Each value is the interpreter's, bit for bit. Fast math does the same with
//! the inline f32 exp.

use super::super::exactmath::D;
use super::super::fastmath::W;
use super::Gen;
use super::simd::vflags;
use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{InstBuilder, Value as CV, types};
use ncp_ir::{DType, Inst, Opcode, Value};

impl Gen<'_, '_> {
    /// Whether softmax of `x` can run in lanes: f32 of rank 1 or 2, contiguous along the
    /// last dim.
    pub(in crate::jit) fn softmax_simd_ok(&self, x: Value) -> bool {
        let ty = self.f.ty(x);
        if ty.dtype != DType::F32 || !(1..=2).contains(&ty.shape.len()) {
            return false;
        }
        if self.scalars.contains_key(&x) {
            return false;
        }
        let Some((_, st)) = self.access(x) else {
            return false;
        };
        let st = super::broadcast_strides(&ty.shape, &st, &ty.shape);
        matches!(st.last(), Some(Some(ds)) if ds.is_empty())
    }

    /// Softmax instruction `i` (see the module doc; [`Self::softmax_simd_ok`] holds).
    pub(in crate::jit) fn softmax_simd(&mut self, i: Inst) {
        let d = self.f.insts[i].clone();
        let x = d.args[0];
        let xs = self.f.ty(x).shape.clone();
        let rank = xs.len();
        let slot = self.slot[&d.result];
        let (rows, cols) = if rank == 2 {
            (self.dim(xs[0]), self.dim(xs[1]))
        } else {
            (self.extents[0], self.dim(xs[0]))
        };
        let at = move |r: CV, c: CV| if rank == 2 { vec![r, c] } else { vec![c] };
        let zero = self.b.ins().iconst(types::I64, 0);
        self.for_range(zero, rows, 1, |g, r| {
            let c4 = g.b.ins().band_imm_s(cols, !3);
            let z = g.b.ins().iconst(types::I64, 0);
            // The row's max: lane maxima, folded, then the tail.
            let ninf = g.kf(W::V, f32::NEG_INFINITY);
            let vmx = g.b.declare_var(types::F32X4);
            g.b.def_var(vmx, ninf);
            g.for_range(z, c4, 4, |g, c| {
                let v = g.vload(x, &xs, &at(r, c));
                let cur = g.b.use_var(vmx);
                let better = g.b.ins().fcmp(FloatCC::GreaterThan, v, cur);
                let vnan = g.b.ins().fcmp(FloatCC::Unordered, v, v);
                let anan = g.b.ins().fcmp(FloatCC::Unordered, cur, cur);
                let take = g.b.ins().bor(better, vnan);
                let r1 = g.sel(W::V, take, v, cur);
                let nv = g.sel(W::V, anan, cur, r1);
                g.b.def_var(vmx, nv);
            });
            let mx = g.b.declare_var(types::F32);
            let init = g.acc_init(Opcode::RMax);
            g.b.def_var(mx, init);
            let lanes = g.b.use_var(vmx);
            for lane in 0..4u8 {
                let e = g.b.ins().extractlane(lanes, lane);
                let cur = g.b.use_var(mx);
                let nv = g.combine32(Opcode::RMax, cur, e);
                g.b.def_var(mx, nv);
            }
            g.for_range(c4, cols, 1, |g, c| {
                let v = g.read(x, &xs, &at(r, c));
                let cur = g.b.use_var(mx);
                let nv = g.combine32(Opcode::RMax, cur, v);
                g.b.def_var(mx, nv);
            });
            let m = g.b.use_var(mx);
            if g.fast {
                return g.softmax_fast_row(i, &xs, r, c4, cols, m);
            }
            let md = g.b.ins().fpromote(types::F64, m);
            let mdv = g.b.ins().splat(types::F64X2, md);
            // exp(x - max) in f64, into the row buffer, summed in element order.
            let sum = g.b.declare_var(types::F64);
            let z64 = g.b.ins().f64const(0.0);
            g.b.def_var(sum, z64);
            g.for_range(z, c4, 4, |g, c| {
                let v = g.vload(x, &xs, &at(r, c));
                let (lo, hi) = g.halves(v);
                let a = g.aux_addr(i, c);
                for (k, h) in [lo, hi].into_iter().enumerate() {
                    let dl = g.b.ins().fsub(h, mdv);
                    let e = g.exact_exp64(D::V, dl);
                    g.b.ins().store(vflags(), e, a, 16 * k as i32);
                    for lane in 0..2u8 {
                        let el = g.b.ins().extractlane(e, lane);
                        let cur = g.b.use_var(sum);
                        let nv = g.b.ins().fadd(cur, el);
                        g.b.def_var(sum, nv);
                    }
                }
            });
            g.for_range(c4, cols, 1, |g, c| {
                let v = g.read(x, &xs, &at(r, c));
                let vd = g.b.ins().fpromote(types::F64, v);
                let dl = g.b.ins().fsub(vd, md);
                let e = g.exact_exp64(D::S, dl);
                let a = g.aux_addr(i, c);
                let fl = g.mem();
                g.b.ins().store(fl, e, a, 0);
                let cur = g.b.use_var(sum);
                let nv = g.b.ins().fadd(cur, e);
                g.b.def_var(sum, nv);
            });
            // The quotients, rounded once.
            let s = g.b.use_var(sum);
            let sv = g.b.ins().splat(types::F64X2, s);
            g.for_range(z, c4, 4, |g, c| {
                let a = g.aux_addr(i, c);
                let lo = g.b.ins().load(types::F64X2, vflags(), a, 0);
                let hi = g.b.ins().load(types::F64X2, vflags(), a, 16);
                let lo = g.b.ins().fdiv(lo, sv);
                let hi = g.b.ins().fdiv(hi, sv);
                let q = g.join(lo, hi);
                let st = super::contiguous(&xs);
                let off = g.offset(&st, &at(r, c));
                let ad = g.addr(slot, off);
                g.b.ins().store(vflags(), q, ad, 0);
            });
            g.for_range(c4, cols, 1, |g, c| {
                let a = g.aux_addr(i, c);
                let fl = g.mem();
                let e = g.b.ins().load(types::F64, fl, a, 0);
                let q = g.b.ins().fdiv(e, s);
                let q32 = g.b.ins().fdemote(types::F32, q);
                g.write(slot, &xs, &at(r, c), q32, DType::F32);
            });
        });
    }

    /// Fast math, after the max `m` of row `r`: `exp(x - m)` by the inline f32 polynomial
    /// into the output, summed in f64 in element order, then divided in f32 (the scalar fast
    /// path's arithmetic, four lanes at a time).
    fn softmax_fast_row(&mut self, i: Inst, xs: &[ncp_ir::Dim], r: CV, c4: CV, cols: CV, m: CV) {
        let x = self.f.insts[i].args[0];
        let slot = self.slot[&self.f.insts[i].result];
        let rank = xs.len();
        let at = move |r: CV, c: CV| if rank == 2 { vec![r, c] } else { vec![c] };
        let st = super::contiguous(xs);
        let z = self.b.ins().iconst(types::I64, 0);
        let mv = self.b.ins().splat(types::F32X4, m);
        let sum = self.b.declare_var(types::F64);
        let z64 = self.b.ins().f64const(0.0);
        self.b.def_var(sum, z64);
        self.for_range(z, c4, 4, |g, c| {
            let v = g.vload(x, xs, &at(r, c));
            let dl = g.b.ins().fsub(v, mv);
            let e = g.fast_exp_w(W::V, dl);
            let off = g.offset(&st, &at(r, c));
            let ad = g.addr(slot, off);
            g.b.ins().store(vflags(), e, ad, 0);
            for lane in 0..4u8 {
                let el = g.b.ins().extractlane(e, lane);
                let ed = g.b.ins().fpromote(types::F64, el);
                let cur = g.b.use_var(sum);
                let nv = g.b.ins().fadd(cur, ed);
                g.b.def_var(sum, nv);
            }
        });
        self.for_range(c4, cols, 1, |g, c| {
            let v = g.read(x, xs, &at(r, c));
            let dl = g.b.ins().fsub(v, m);
            let e = g.fast_exp(dl);
            g.write(slot, xs, &at(r, c), e, DType::F32);
            let ed = g.b.ins().fpromote(types::F64, e);
            let cur = g.b.use_var(sum);
            let nv = g.b.ins().fadd(cur, ed);
            g.b.def_var(sum, nv);
        });
        let s = self.b.use_var(sum);
        let s32 = self.b.ins().fdemote(types::F32, s);
        let sv = self.b.ins().splat(types::F32X4, s32);
        self.for_range(z, c4, 4, |g, c| {
            let off = g.offset(&st, &at(r, c));
            let ad = g.addr(slot, off);
            let e = g.b.ins().load(types::F32X4, vflags(), ad, 0);
            let q = g.b.ins().fdiv(e, sv);
            g.b.ins().store(vflags(), q, ad, 0);
        });
        self.for_range(c4, cols, 1, |g, c| {
            let off = g.offset(&st, &at(r, c));
            let ad = g.addr(slot, off);
            let fl = g.mem();
            let e = g.b.ins().load(types::F32, fl, ad, 0);
            let q = g.b.ins().fdiv(e, s32);
            g.b.ins().store(fl, q, ad, 0);
        });
    }
}
