//! Fused loops: a group of elementwise instructions over one shape in one loop nest, with
//! the reductions it feeds accumulated on the way (and the accumulators' arithmetic).

use super::{CARRY_IN, CARRY_OUT, F32_OVERFLOW, Gen};
use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{InstBuilder, Value as CV, types};
use cranelift_frontend::Variable;
use ncp_ir::{Axis, DType, Imm, Inst, Opcode};

impl Gen<'_, '_> {
    pub(in crate::jit) fn group(&mut self, g: &super::super::plan::Group) {
        if self.simd && self.simd_ok(g) {
            return self.group_simd(g);
        }
        let shape = g.shape.clone();
        let rank = shape.len();
        // Accumulators: (reduction inst, variable, kind).
        struct Acc {
            inst: Inst,
            var: Variable,
            axis: Axis,
            op: Opcode,
        }
        let mut accs: Vec<Acc> = Vec::new();
        for &r in &g.reductions {
            let d = &self.f.insts[r];
            let Imm::Axis(axis) = d.imm else {
                unreachable!("reductions have an axis")
            };
            let is_max = matches!(d.op, Opcode::RMax | Opcode::RMin);
            let ty = if is_max { types::F32 } else { types::F64 };
            let var = self.b.declare_var(ty);
            let init = self.acc_start(r, d.op);
            self.b.def_var(var, init);
            accs.push(Acc {
                inst: r,
                var,
                axis,
                op: d.op,
            });
            // A reduction over axis 0 of a rank-2 group accumulates into its output buffer.
            if rank == 2 && axis == Axis::Index(0) {
                let slot = self.slot[&d.result];
                let n = self.dim(shape[1]);
                let init32 = self.acc_init32(d.op);
                self.for_loop(n, |gg, j| gg.store_at(slot, j, init32, DType::F32));
            }
        }
        let members = g.insts.clone();
        let reds: Vec<(Inst, Variable, Axis, Opcode)> =
            accs.iter().map(|a| (a.inst, a.var, a.axis, a.op)).collect();
        let body = |gg: &mut Self, idx: &[CV]| gg.scalar_body(&members, &reds, &shape, idx);
        let has_row_reduction = rank == 2 && accs.iter().any(|a| a.axis == Axis::Index(1));
        if has_row_reduction {
            let r = self.dim(shape[0]);
            let c = self.dim(shape[1]);
            let row_accs: Vec<(Inst, Variable, Opcode)> = accs
                .iter()
                .filter(|a| a.axis == Axis::Index(1))
                .map(|a| (a.inst, a.var, a.op))
                .collect();
            self.for_loop(r, |gg, i| {
                for &(_, var, op) in &row_accs {
                    let init = gg.acc_init(op);
                    gg.b.def_var(var, init);
                }
                gg.for_loop(c, |gg, j| body(gg, &[i, j]));
                for &(inst, var, op) in &row_accs {
                    let v = gg.b.use_var(var);
                    let n = gg.dim(gg.f.ty(gg.f.insts[inst].args[0]).shape[1]);
                    let out = gg.finish(op, v, n);
                    let slot = gg.slot[&gg.f.insts[inst].result];
                    gg.store_at(slot, i, out, DType::F32);
                }
            });
        } else {
            let mut body = body;
            self.loops(&shape, &mut body);
        }
        for a in &accs {
            let d = &self.f.insts[a.inst];
            let src_shape = self.f.ty(d.args[0]).shape.clone();
            match (rank, a.axis) {
                (2, Axis::Index(1)) => {}
                (2, Axis::Index(0)) => {
                    if a.op == Opcode::Mean {
                        let slot = self.slot[&d.result];
                        let n = self.dim(src_shape[0]);
                        let nf = self.b.ins().fcvt_from_sint(types::F32, n);
                        let cols = self.dim(src_shape[1]);
                        self.for_loop(cols, |gg, j| {
                            let ad = gg.addr(slot, j);
                            let cur = gg.b.ins().load(types::F32, gg.flags, ad, 0);
                            let q = gg.b.ins().fdiv(cur, nf);
                            gg.b.ins().store(gg.flags, q, ad, 0);
                        });
                    }
                }
                _ => {
                    let v = self.b.use_var(a.var);
                    self.acc_carry_out(a.inst, v);
                    let n = self.count_of(&src_shape);
                    let out = self.finish(a.op, v, n);
                    let out = self.as_dtype(out, self.f.ty(d.result).dtype);
                    self.scalars.insert(d.result, out);
                }
            }
        }
    }

    /// A reduction's f32 value as its IR dtype (max/min of bool tensors are bool).
    pub(in crate::jit) fn as_dtype(&mut self, v: CV, dt: DType) -> CV {
        if dt == DType::Bool {
            let z = self.fconst(0.0);
            self.b.ins().fcmp(FloatCC::NotEqual, v, z)
        } else {
            v
        }
    }

    /// The start of reduction `r`'s accumulator: the carried sum for the carried loss
    /// ([`Gen::carry`]), else the reduction's identity.
    pub(in crate::jit) fn acc_start(&mut self, r: Inst, op: Opcode) -> CV {
        if self.carry == Some(r) {
            self.layout.carries_loss = true;
            let p = self.dims_ptr;
            return self.b.ins().load(types::F64, self.flags, p, CARRY_IN);
        }
        self.acc_init(op)
    }

    /// Hand the carried loss's unfinished accumulator to the next block (`dims[4]`).
    pub(in crate::jit) fn acc_carry_out(&mut self, r: Inst, acc: CV) {
        if self.carry == Some(r) {
            let p = self.dims_ptr;
            self.b.ins().store(self.flags, acc, p, CARRY_OUT);
        }
    }

    pub(in crate::jit) fn acc_init(&mut self, op: Opcode) -> CV {
        match op {
            Opcode::RMax => self.fconst(f32::NEG_INFINITY),
            Opcode::RMin => self.fconst(f32::INFINITY),
            _ => self.b.ins().f64const(0.0),
        }
    }

    pub(in crate::jit) fn acc_init32(&mut self, op: Opcode) -> CV {
        match op {
            Opcode::RMax => self.fconst(f32::NEG_INFINITY),
            Opcode::RMin => self.fconst(f32::INFINITY),
            _ => self.fconst(0.0),
        }
    }

    /// Fold one f32 element into an accumulator (f64 for sums, f32 for max/min).
    pub(in crate::jit) fn combine(&mut self, op: Opcode, acc: CV, x: CV) -> CV {
        match op {
            Opcode::RMax | Opcode::RMin => self.combine32(op, acc, x),
            _ => {
                // f64 accumulation; `finish` maps a total beyond f32's range to ±inf.
                let xd = self.b.ins().fpromote(types::F64, x);
                self.b.ins().fadd(acc, xd)
            }
        }
    }

    /// Max/min keeping NaN; sums in f32 (column accumulators).
    pub(in crate::jit) fn combine32(&mut self, op: Opcode, acc: CV, x: CV) -> CV {
        match op {
            Opcode::RMax | Opcode::RMin => {
                let better = if op == Opcode::RMax {
                    self.b.ins().fcmp(FloatCC::GreaterThan, x, acc)
                } else {
                    self.b.ins().fcmp(FloatCC::LessThan, x, acc)
                };
                let xnan = self.b.ins().fcmp(FloatCC::Unordered, x, x);
                let anan = self.b.ins().fcmp(FloatCC::Unordered, acc, acc);
                let take = self.b.ins().bor(better, xnan);
                let r = self.b.ins().select(take, x, acc);
                self.b.ins().select(anan, acc, r)
            }
            _ => self.b.ins().fadd(acc, x),
        }
    }

    /// The reduction's value from its accumulator over `n` elements.
    pub(in crate::jit) fn finish(&mut self, op: Opcode, acc: CV, n: CV) -> CV {
        if matches!(op, Opcode::RMax | Opcode::RMin) {
            return acc;
        }
        // As the interpreter: a total beyond f32's range is ±inf (PyTorch's f32 overflow).
        let mag = self.b.ins().fabs(acc);
        let limit = self.b.ins().f64const(F32_OVERFLOW);
        let over = self.b.ins().fcmp(FloatCC::GreaterThanOrEqual, mag, limit);
        let inf = self.b.ins().f64const(f64::INFINITY);
        let sinf = self.b.ins().fcopysign(inf, acc);
        let acc = self.b.ins().select(over, sinf, acc);
        match op {
            Opcode::Mean => {
                let nf = self.b.ins().fcvt_from_sint(types::F64, n);
                let q = self.b.ins().fdiv(acc, nf);
                self.b.ins().fdemote(types::F32, q)
            }
            _ => self.b.ins().fdemote(types::F32, acc),
        }
    }
}
