//! Fused groups in f32x4. The last dim runs four elements at a time, with a scalar loop for
//! the remainder. In fast math, fused sums accumulate per lane and are folded at the end of
//! each row (a different summation order). In exact math every lane computes what the
//! interpreter computes (exp, log and sigmoid by `ncp_ir::math`'s sequence in f64x2 lanes,
//! see `exactmath`), and each vector's four lanes are folded into the reductions in element
//! order, so the kernel stays bit-equal to the interpreter.

use super::super::fastmath::{W, lane_flags};
use super::super::plan::{Group, Home, reads_value};
use super::{Gen, broadcast_strides};
use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Value as CV, types};
use cranelift_frontend::Variable;
use ncp_ir::{Axis, DType, Dim, Imm, Inst, Opcode, Value};
use std::collections::HashMap;

/// Vector memory accesses need not be aligned.
pub(super) fn vflags() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

impl Gen<'_, '_> {
    /// Whether every member and operand of `g` has a four-lane lowering.
    pub(super) fn simd_ok(&self, g: &Group) -> bool {
        let rank = g.shape.len();
        if !(1..=2).contains(&rank) {
            return false;
        }
        if g.reductions
            .iter()
            .any(|r| rank == 2 && self.f.insts[*r].imm == Imm::Axis(Axis::Index(0)))
        {
            return false;
        }
        let members: std::collections::HashSet<Value> =
            g.insts.iter().map(|i| self.f.insts[*i].result).collect();
        for &i in &g.insts {
            let d = &self.f.insts[i];
            let f32_or_bool = |v: Value| matches!(self.f.ty(v).dtype, DType::F32 | DType::Bool);
            if !f32_or_bool(d.result) {
                return false;
            }
            use Opcode as O;
            let ok = match d.op {
                O::Neg
                | O::Abs
                | O::Sqrt
                | O::Floor
                | O::Ceil
                | O::Round
                | O::Recip
                | O::Relu
                | O::Sign
                | O::Exp
                | O::Log
                | O::Sigmoid => self.f.ty(d.args[0]).dtype == DType::F32,
                O::Add | O::Mul | O::Max | O::Min | O::Select => true,
                O::Sub | O::Div | O::ClampMin | O::ClampMax | O::Gt | O::Ge | O::Eq => {
                    self.f.ty(d.args[0]).dtype == DType::F32
                }
                O::Pow => {
                    matches!(self.baked.get(&d.args[1]), Some(e) if *e == 0.0 || *e == 1.0 || *e == 2.0)
                }
                O::Cast => {
                    let Imm::DType(to) = d.imm else { return false };
                    matches!(to, DType::F32 | DType::Bool) && f32_or_bool(d.args[0])
                }
                O::OnesLike | O::ZerosLike | O::Expand | O::BroadcastLike => true,
                _ => false,
            };
            if !ok {
                return false;
            }
            for (k, &a) in d.args.iter().enumerate() {
                if !reads_value(d.op, k) || members.contains(&a) || self.scalars.contains_key(&a) {
                    continue;
                }
                if matches!(self.plan.homes.get(&a), Some(Home::Scalar)) || self.f.ty(a).is_scalar()
                {
                    continue;
                }
                if !f32_or_bool(a) {
                    return false;
                }
                let Some((_, st)) = self.access(a) else {
                    return false;
                };
                let st = broadcast_strides(&self.f.ty(a).shape, &st, &g.shape);
                match st.last() {
                    Some(None) => {}
                    Some(Some(ds)) if ds.is_empty() => {}
                    _ => return false,
                }
            }
        }
        true
    }

    /// A scalar value in four lanes: f32 splatted; bool (i8) as a lane mask.
    fn vsplat(&mut self, v: CV, dt: DType) -> CV {
        match dt {
            DType::Bool => {
                let m = self.b.ins().sextend(types::I32, v);
                let m = self.b.ins().ineg(m);
                self.b.ins().splat(types::I32X4, m)
            }
            _ => self.b.ins().splat(types::F32X4, v),
        }
    }

    /// Four consecutive elements (along the last dim) of a stored or viewed value, or its one
    /// element splatted when it is broadcast along the last dim.
    pub(super) fn vload(&mut self, v: Value, shape: &[Dim], idx: &[CV]) -> CV {
        let ty = self.f.ty(v).clone();
        let (slot, st) = self.access(v).expect("simd_ok checked the access");
        let st = broadcast_strides(&ty.shape, &st, shape);
        let off = self.offset(&st, idx);
        let a = self.addr(slot, off);
        let x = if matches!(st.last(), Some(None)) {
            let s = self.b.ins().load(types::F32, self.flags, a, 0);
            self.b.ins().splat(types::F32X4, s)
        } else {
            self.b.ins().load(types::F32X4, vflags(), a, 0)
        };
        if ty.dtype == DType::Bool {
            let z = self.kf(W::V, 0.0);
            self.b.ins().fcmp(FloatCC::NotEqual, x, z)
        } else {
            x
        }
    }

    fn vmask_f32(&mut self, m: CV) -> CV {
        let one = self.kf(W::V, 1.0);
        let zero = self.kf(W::V, 0.0);
        self.sel(W::V, m, one, zero)
    }

    /// Instruction `i` on four lanes.
    fn velem(&mut self, i: Inst, a: &[CV]) -> CV {
        use Opcode as O;
        let d = self.f.insts[i].clone();
        let dt0 = d.args.first().map(|x| self.f.ty(*x).dtype);
        let boolish = dt0 == Some(DType::Bool);
        let w = W::V;
        match d.op {
            O::Neg => self.b.ins().fneg(a[0]),
            O::Abs => self.b.ins().fabs(a[0]),
            O::Sqrt => self.b.ins().sqrt(a[0]),
            O::Floor => self.b.ins().floor(a[0]),
            O::Ceil => self.b.ins().ceil(a[0]),
            O::Round => self.b.ins().nearest(a[0]),
            O::Recip => {
                let one = self.kf(w, 1.0);
                self.b.ins().fdiv(one, a[0])
            }
            O::Relu => {
                let z = self.kf(w, 0.0);
                self.b.ins().fmax(a[0], z)
            }
            O::Sign => {
                let one = self.kf(w, 1.0);
                let m1 = self.kf(w, -1.0);
                let z = self.kf(w, 0.0);
                let gt = self.b.ins().fcmp(FloatCC::GreaterThan, a[0], z);
                let lt = self.b.ins().fcmp(FloatCC::LessThan, a[0], z);
                let keep = self.b.ins().fmul(a[0], z);
                let s = self.sel(w, lt, m1, keep);
                self.sel(w, gt, one, s)
            }
            O::Exp if !self.fast => self.exact_f32(w, a[0], Self::exact_exp64),
            O::Log if !self.fast => self.exact_f32(w, a[0], Self::exact_ln64),
            O::Sigmoid if !self.fast => self.exact_f32(w, a[0], Self::exact_sigmoid64),
            O::Exp => self.fast_exp_w(w, a[0]),
            O::Log => self.fast_log_w(w, a[0]),
            O::Sigmoid => {
                let n = self.b.ins().fneg(a[0]);
                let e = self.fast_exp_w(w, n);
                let one = self.kf(w, 1.0);
                let dd = self.b.ins().fadd(one, e);
                self.b.ins().fdiv(one, dd)
            }
            O::Pow => match self.baked.get(&d.args[1]).copied() {
                Some(0.0) => self.kf(w, 1.0),
                Some(1.0) => a[0],
                _ => self.b.ins().fmul(a[0], a[0]),
            },
            O::Add if boolish => self.b.ins().bor(a[0], a[1]),
            O::Mul | O::Min if boolish => self.b.ins().band(a[0], a[1]),
            O::Max if boolish => self.b.ins().bor(a[0], a[1]),
            O::Add => self.b.ins().fadd(a[0], a[1]),
            O::Sub => self.b.ins().fsub(a[0], a[1]),
            O::Mul => self.b.ins().fmul(a[0], a[1]),
            O::Div => self.b.ins().fdiv(a[0], a[1]),
            O::Max | O::Min => {
                let (x, y) = (a[0], a[1]);
                let better = if d.op == O::Max {
                    self.b.ins().fcmp(FloatCC::LessThan, x, y)
                } else {
                    self.b.ins().fcmp(FloatCC::LessThan, y, x)
                };
                let r = self.sel(w, better, y, x);
                let uno = self.b.ins().fcmp(FloatCC::Unordered, x, y);
                let nan = self.b.ins().fadd(x, y);
                self.sel(w, uno, nan, r)
            }
            O::ClampMin => {
                let lt = self.b.ins().fcmp(FloatCC::LessThan, a[0], a[1]);
                self.sel(w, lt, a[1], a[0])
            }
            O::ClampMax => {
                let gt = self.b.ins().fcmp(FloatCC::GreaterThan, a[0], a[1]);
                self.sel(w, gt, a[1], a[0])
            }
            O::Gt => self.b.ins().fcmp(FloatCC::GreaterThan, a[0], a[1]),
            O::Ge => self.b.ins().fcmp(FloatCC::GreaterThanOrEqual, a[0], a[1]),
            O::Eq => self.b.ins().fcmp(FloatCC::Equal, a[0], a[1]),
            O::Select => self.sel(w, a[0], a[1], a[2]),
            O::Cast => {
                let Imm::DType(to) = d.imm else {
                    return self.unsupported("a cast without a dtype".into());
                };
                match (dt0, to) {
                    (Some(x), y) if x == y => a[0],
                    (_, DType::Bool) => {
                        let z = self.kf(w, 0.0);
                        self.b.ins().fcmp(FloatCC::NotEqual, a[0], z)
                    }
                    _ => self.vmask_f32(a[0]),
                }
            }
            O::OnesLike => self.kf(w, 1.0),
            O::ZerosLike => self.kf(w, 0.0),
            O::Expand | O::BroadcastLike => a[0],
            other => self.unsupported(format!("op `{}` in a vector loop", other.name())),
        }
    }

    /// Four elements of a group at `idx` (the last index is the first of the four).
    fn vector_body(
        &mut self,
        members: &[Inst],
        reds: &[(Inst, Variable, Opcode)],
        shape: &[Dim],
        idx: &[CV],
    ) {
        let mut regs: HashMap<Value, CV> = HashMap::new();
        for &i in members {
            let d = self.f.insts[i].clone();
            let mut args = Vec::with_capacity(d.args.len());
            for (k, &a) in d.args.iter().enumerate() {
                if !reads_value(d.op, k) {
                    args.push(self.extents[0]);
                    continue;
                }
                let v = if let Some(v) = regs.get(&a) {
                    *v
                } else if let Some(s) = self.scalars.get(&a).copied() {
                    self.vsplat(s, self.f.ty(a).dtype)
                } else {
                    self.vload(a, shape, idx)
                };
                args.push(v);
            }
            let v = self.velem(i, &args);
            regs.insert(d.result, v);
            if self.plan.stored.contains(&d.result) {
                let slot = self.slot[&d.result];
                let st = super::contiguous(shape);
                let off = self.offset(&st, idx);
                let a = self.addr(slot, off);
                let x = if self.f.ty(d.result).dtype == DType::Bool {
                    self.vmask_f32(v)
                } else {
                    v
                };
                self.b.ins().store(vflags(), x, a, 0);
            }
        }
        for &(r, vvar, op) in reds {
            let src = self.f.insts[r].args[0];
            let x = regs[&src];
            let x = if self.f.ty(src).dtype == DType::Bool {
                self.vmask_f32(x)
            } else {
                x
            };
            if !self.fast {
                // Exact: `vvar` is the scalar accumulator; lanes in element order.
                for lane in 0..4u8 {
                    let e = self.b.ins().extractlane(x, lane);
                    let cur = self.b.use_var(vvar);
                    let nv = self.combine(op, cur, e);
                    self.b.def_var(vvar, nv);
                }
                continue;
            }
            let cur = self.b.use_var(vvar);
            let nv = match op {
                Opcode::RMax | Opcode::RMin => {
                    let better = if op == Opcode::RMax {
                        self.b.ins().fcmp(FloatCC::GreaterThan, x, cur)
                    } else {
                        self.b.ins().fcmp(FloatCC::LessThan, x, cur)
                    };
                    let xnan = self.b.ins().fcmp(FloatCC::Unordered, x, x);
                    let anan = self.b.ins().fcmp(FloatCC::Unordered, cur, cur);
                    let take = self.b.ins().bor(better, xnan);
                    let r1 = self.sel(W::V, take, x, cur);
                    self.sel(W::V, anan, cur, r1)
                }
                _ => self.b.ins().fadd(cur, x),
            };
            self.b.def_var(vvar, nv);
        }
    }

    /// A fused group with its last dim in f32x4.
    pub(super) fn group_simd(&mut self, g: &Group) {
        let shape = g.shape.clone();
        let rank = shape.len();
        // (inst, scalar accumulator, lane accumulator, axis, op)
        let mut accs: Vec<(Inst, Variable, Variable, Axis, Opcode)> = Vec::new();
        for &r in &g.reductions {
            let d = &self.f.insts[r];
            let Imm::Axis(axis) = d.imm else {
                unreachable!("reductions have an axis")
            };
            let is_max = matches!(d.op, Opcode::RMax | Opcode::RMin);
            let var = self
                .b
                .declare_var(if is_max { types::F32 } else { types::F64 });
            let init = self.acc_start(r, d.op);
            self.b.def_var(var, init);
            let vvar = self.b.declare_var(types::F32X4);
            accs.push((r, var, vvar, axis, d.op));
        }
        let members = g.insts.clone();
        let scalar_reds: Vec<(Inst, Variable, Axis, Opcode)> =
            accs.iter().map(|a| (a.0, a.1, a.3, a.4)).collect();
        // Exact math folds each vector into the scalar accumulators at once.
        let exact = !self.fast;
        let vreds: Vec<(Inst, Variable, Opcode)> = accs
            .iter()
            .map(|a| (a.0, if exact { a.1 } else { a.2 }, a.4))
            .collect();
        let (rows, cols) = if rank == 2 {
            (self.dim(shape[0]), self.dim(shape[1]))
        } else {
            (self.extents[0], self.dim(shape[0]))
        };
        let zero = self.b.ins().iconst(types::I64, 0);
        self.for_range(zero, rows, 1, |gg, i| {
            for &(_, var, vvar, axis, op) in &accs {
                if axis == Axis::Index(1) {
                    let init = gg.acc_init(op);
                    gg.b.def_var(var, init);
                }
                let init32 = gg.acc_init32(op);
                let vinit = gg.b.ins().splat(types::F32X4, init32);
                gg.b.def_var(vvar, vinit);
            }
            let c4 = gg.b.ins().band_imm_s(cols, !3);
            let z = gg.b.ins().iconst(types::I64, 0);
            let at = |i: CV, j: CV| if rank == 2 { vec![i, j] } else { vec![j] };
            gg.for_range(z, c4, 4, |gg, j| {
                gg.vector_body(&members, &vreds, &shape, &at(i, j))
            });
            // Fold the lanes into the scalar accumulators, lane 0 first.
            for &(_, var, vvar, _, op) in accs.iter().filter(|_| !exact) {
                let v = gg.b.use_var(vvar);
                for lane in 0..4u8 {
                    let x = gg.b.ins().extractlane(v, lane);
                    let cur = gg.b.use_var(var);
                    let nv = gg.combine(op, cur, x);
                    gg.b.def_var(var, nv);
                }
            }
            gg.for_range(c4, cols, 1, |gg, j| {
                gg.scalar_body(&members, &scalar_reds, &shape, &at(i, j))
            });
            for &(inst, var, _, axis, op) in &accs {
                if axis == Axis::Index(1) {
                    let v = gg.b.use_var(var);
                    let n = gg.dim(gg.f.ty(gg.f.insts[inst].args[0]).shape[1]);
                    let out = gg.finish(op, v, n);
                    let slot = gg.slot[&gg.f.insts[inst].result];
                    gg.store_at(slot, i, out, DType::F32);
                }
            }
        });
        for &(inst, var, _, axis, op) in &accs {
            if axis == Axis::Index(1) && rank == 2 {
                continue;
            }
            let d = &self.f.insts[inst];
            let src_shape = self.f.ty(d.args[0]).shape.clone();
            let v = self.b.use_var(var);
            self.acc_carry_out(inst, v);
            let n = self.count_of(&src_shape);
            let out = self.finish(op, v, n);
            let out = self.as_dtype(out, self.f.ty(d.result).dtype);
            self.scalars.insert(d.result, out);
        }
        let _ = lane_flags();
    }
}
