//! Softmax over the last axis, one row at a time: the row's max, `exp(x - max)` summed in
//! element order, then the quotients. Exact math: the exponentials in f64 (`ncp_ir::math`'s
//! sequence, kept in the row's f64 buffer), divided and rounded once, bit for bit the
//! interpreter's. Fast math: the inline f32 exp, stored, summed in f64, divided in f32.
//!
//! With wide calls (`Jit::wide_calls`), a contiguous input goes to one call on the whole
//! buffer (`ncp_ir::vmath::softmax_f32`, the same values). Otherwise, in the hot tier, when
//! the input is contiguous along the last dim, each pass runs four elements at a time (exact
//! exponentials in f64x2 halves) and the remainder one at a time; otherwise every element
//! goes through the one-at-a-time loops. Both do the same operations in the same order, so
//! the lanes never change a value.

use super::super::exactmath::D;
use super::super::fastmath::W;
use super::Gen;
use super::simd::vflags;
use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{InstBuilder, Value as CV, types};
use cranelift_frontend::Variable;
use ncp_ir::{DType, Dim, Inst, Opcode, Value};

/// What one row's passes need.
struct Row<'s> {
    /// The softmax instruction (its row buffer) and its input.
    i: Inst,
    x: Value,
    xs: &'s [Dim],
    slot: usize,
    r: CV,
    /// Elements `0..c4` run in lanes, `c4..cols` one at a time.
    c4: CV,
    cols: CV,
}

impl Row<'_> {
    fn at(&self, c: CV) -> Vec<CV> {
        if self.xs.len() == 1 {
            vec![c]
        } else {
            vec![self.r, c]
        }
    }
}

impl Gen<'_, '_> {
    /// Whether softmax of `x` can run in lanes: f32 of rank 1 or 2, contiguous along the
    /// last dim.
    fn softmax_simd_ok(&self, x: Value) -> bool {
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

    /// Softmax instruction `i` (see the module doc).
    pub(in crate::jit) fn softmax(&mut self, i: Inst) {
        let d = self.f.insts[i].clone();
        let x = d.args[0];
        if self.vcalls && self.softmax_simd_ok(x) && self.contiguous_buffer(x) {
            // The whole buffer in the CPU's widest lanes (`ncp_ir::vmath::softmax_f32`).
            let xs = self.f.ty(x).shape.clone();
            let n = self.product(&xs);
            let cols = self.dim(*xs.last().expect("softmax has rank >= 1"));
            let src = self.base_ptr(self.slot[&x]);
            let dst = self.base_ptr(self.slot[&d.result]);
            return self.call_void("ncp_vsoftmaxf", &[src, dst, n, cols]);
        }
        let lanes = self.simd && self.softmax_simd_ok(x);
        let xs = self.f.ty(x).shape.clone();
        let slot = self.slot[&d.result];
        let (rows, cols) = if xs.len() == 1 {
            (self.extents[0], self.dim(xs[0]))
        } else {
            (self.dim(xs[0]), self.dim(xs[1]))
        };
        let zero = self.b.ins().iconst(types::I64, 0);
        self.for_range(zero, rows, 1, |g, r| {
            let c4 = if lanes {
                g.b.ins().band_imm_s(cols, !3)
            } else {
                g.b.ins().iconst(types::I64, 0)
            };
            let row = Row {
                i,
                x,
                xs: &xs,
                slot,
                r,
                c4,
                cols,
            };
            let m = g.softmax_row_max(&row, lanes);
            let sum = g.b.declare_var(types::F64);
            let z64 = g.b.ins().f64const(0.0);
            g.b.def_var(sum, z64);
            if g.fast {
                g.softmax_fast_exp(&row, lanes, m, sum);
            } else {
                g.softmax_exact_exp(&row, lanes, m, sum);
            }
            let s = g.b.use_var(sum);
            g.softmax_quotients(&row, lanes, s);
        });
    }

    /// The row's max: lane maxima folded in lane order, then the remainder (NaN wins).
    fn softmax_row_max(&mut self, row: &Row, lanes: bool) -> CV {
        let mx = self.b.declare_var(types::F32);
        let init = self.acc_init(Opcode::RMax);
        self.b.def_var(mx, init);
        if lanes {
            let ninf = self.kf(W::V, f32::NEG_INFINITY);
            let vmx = self.b.declare_var(types::F32X4);
            self.b.def_var(vmx, ninf);
            let z = self.b.ins().iconst(types::I64, 0);
            self.for_range(z, row.c4, 4, |g, c| {
                let v = g.vload(row.x, row.xs, &row.at(c));
                let cur = g.b.use_var(vmx);
                let better = g.b.ins().fcmp(FloatCC::GreaterThan, v, cur);
                let vnan = g.b.ins().fcmp(FloatCC::Unordered, v, v);
                let anan = g.b.ins().fcmp(FloatCC::Unordered, cur, cur);
                let take = g.b.ins().bor(better, vnan);
                let r1 = g.sel(W::V, take, v, cur);
                let nv = g.sel(W::V, anan, cur, r1);
                g.b.def_var(vmx, nv);
            });
            let v = self.b.use_var(vmx);
            for lane in 0..4u8 {
                let e = self.b.ins().extractlane(v, lane);
                let cur = self.b.use_var(mx);
                let nv = self.combine32(Opcode::RMax, cur, e);
                self.b.def_var(mx, nv);
            }
        }
        self.for_range(row.c4, row.cols, 1, |g, c| {
            let v = g.read(row.x, row.xs, &row.at(c));
            let cur = g.b.use_var(mx);
            let nv = g.combine32(Opcode::RMax, cur, v);
            g.b.def_var(mx, nv);
        });
        self.b.use_var(mx)
    }

    /// `sum += e` in f64 for an f64 value.
    fn add_to(&mut self, sum: Variable, e: CV) {
        let cur = self.b.use_var(sum);
        let nv = self.b.ins().fadd(cur, e);
        self.b.def_var(sum, nv);
    }

    /// Exact: `exp(x - m)` in f64 into the row buffer, summed in element order.
    fn softmax_exact_exp(&mut self, row: &Row, lanes: bool, m: CV, sum: Variable) {
        let md = self.b.ins().fpromote(types::F64, m);
        if lanes {
            let mdv = self.b.ins().splat(types::F64X2, md);
            let z = self.b.ins().iconst(types::I64, 0);
            self.for_range(z, row.c4, 4, |g, c| {
                let v = g.vload(row.x, row.xs, &row.at(c));
                let (lo, hi) = g.halves(v);
                let a = g.aux_addr(row.i, c);
                for (k, h) in [lo, hi].into_iter().enumerate() {
                    let dl = g.b.ins().fsub(h, mdv);
                    let e = g.exact_exp64(D::V, dl);
                    g.b.ins().store(vflags(), e, a, 16 * k as i32);
                    for lane in 0..2u8 {
                        let el = g.b.ins().extractlane(e, lane);
                        g.add_to(sum, el);
                    }
                }
            });
        }
        self.for_range(row.c4, row.cols, 1, |g, c| {
            let v = g.read(row.x, row.xs, &row.at(c));
            let vd = g.b.ins().fpromote(types::F64, v);
            let dl = g.b.ins().fsub(vd, md);
            // Inline in the hot tier, a call in the quick one: the same value.
            let e = if g.simd {
                g.exact_exp64(D::S, dl)
            } else {
                g.math_call("ncp_exp64", &[dl])
            };
            let a = g.aux_addr(row.i, c);
            let fl = g.mem();
            g.b.ins().store(fl, e, a, 0);
            g.add_to(sum, e);
        });
    }

    /// Fast: `exp(x - m)` by the inline f32 polynomial into the output, summed in f64 in
    /// element order.
    fn softmax_fast_exp(&mut self, row: &Row, lanes: bool, m: CV, sum: Variable) {
        let st = super::contiguous(row.xs);
        if lanes {
            let mv = self.b.ins().splat(types::F32X4, m);
            let z = self.b.ins().iconst(types::I64, 0);
            self.for_range(z, row.c4, 4, |g, c| {
                let v = g.vload(row.x, row.xs, &row.at(c));
                let dl = g.b.ins().fsub(v, mv);
                let e = g.fast_exp_w(W::V, dl);
                let off = g.offset(&st, &row.at(c));
                let ad = g.addr(row.slot, off);
                g.b.ins().store(vflags(), e, ad, 0);
                for lane in 0..4u8 {
                    let el = g.b.ins().extractlane(e, lane);
                    let ed = g.b.ins().fpromote(types::F64, el);
                    g.add_to(sum, ed);
                }
            });
        }
        self.for_range(row.c4, row.cols, 1, |g, c| {
            let v = g.read(row.x, row.xs, &row.at(c));
            let dl = g.b.ins().fsub(v, m);
            let e = g.fast_exp(dl);
            g.write(row.slot, row.xs, &row.at(c), e, DType::F32);
            let ed = g.b.ins().fpromote(types::F64, e);
            g.add_to(sum, ed);
        });
    }

    /// The quotients by the f64 sum `s`: exact, the f64 exponentials divided and rounded
    /// once; fast, the stored f32 exponentials divided by `s` rounded to f32.
    fn softmax_quotients(&mut self, row: &Row, lanes: bool, s: CV) {
        let st = super::contiguous(row.xs);
        let fast = self.fast;
        let s32 = if fast {
            self.b.ins().fdemote(types::F32, s)
        } else {
            s
        };
        if lanes {
            let z = self.b.ins().iconst(types::I64, 0);
            let sv = if fast {
                self.b.ins().splat(types::F32X4, s32)
            } else {
                self.b.ins().splat(types::F64X2, s)
            };
            self.for_range(z, row.c4, 4, |g, c| {
                let off = g.offset(&st, &row.at(c));
                let ad = g.addr(row.slot, off);
                let q = if fast {
                    let e = g.b.ins().load(types::F32X4, vflags(), ad, 0);
                    g.b.ins().fdiv(e, sv)
                } else {
                    let a = g.aux_addr(row.i, c);
                    let lo = g.b.ins().load(types::F64X2, vflags(), a, 0);
                    let hi = g.b.ins().load(types::F64X2, vflags(), a, 16);
                    let lo = g.b.ins().fdiv(lo, sv);
                    let hi = g.b.ins().fdiv(hi, sv);
                    g.join(lo, hi)
                };
                g.b.ins().store(vflags(), q, ad, 0);
            });
        }
        self.for_range(row.c4, row.cols, 1, |g, c| {
            let fl = g.mem();
            let q = if fast {
                let off = g.offset(&st, &row.at(c));
                let ad = g.addr(row.slot, off);
                let e = g.b.ins().load(types::F32, fl, ad, 0);
                g.b.ins().fdiv(e, s32)
            } else {
                let a = g.aux_addr(row.i, c);
                let e = g.b.ins().load(types::F64, fl, a, 0);
                let q = g.b.ins().fdiv(e, s);
                g.b.ins().fdemote(types::F32, q)
            };
            g.write(row.slot, row.xs, &row.at(c), q, DType::F32);
        });
    }
}
