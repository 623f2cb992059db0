//! Scalar stages: one instruction on scalars (constants, dims, reductions of whole values
//! already computed), kept in registers.

use super::{Gen, contiguous};
use cranelift_codegen::ir::{InstBuilder, Value as CV, types};
use cranelift_frontend::Variable;
use ncp_ir::{Axis, ConstVal, DType, Dim, Imm, Inst, Opcode, Value};
use std::collections::HashMap;

impl Gen<'_, '_> {
    pub(in crate::jit) fn scalar(&mut self, i: Inst) {
        let d = &self.f.insts[i];
        let out = self.f.ty(d.result).dtype;
        let v = match (&d.op, &d.imm) {
            (Opcode::Const, Imm::Const(ConstVal::F32(x))) => {
                match self.layout.consts.iter().position(|c| *c == i) {
                    Some(k) => {
                        self.b
                            .ins()
                            .load(types::F32, self.flags, self.consts, (k * 4) as i32)
                    }
                    None => {
                        self.baked.insert(d.result, *x);
                        self.b.ins().f32const(*x)
                    }
                }
            }
            (Opcode::Const, Imm::Const(ConstVal::I64(x))) => self.b.ins().iconst(types::I64, *x),
            (Opcode::Const, Imm::Const(ConstVal::Bool(x))) => {
                self.b.ins().iconst(types::I8, *x as i64)
            }
            (Opcode::Dim, Imm::Dim(Dim::B)) => self.batch_total,
            (Opcode::Dim, Imm::Dim(dm)) => self.dim(*dm),
            _ => {
                let args: Vec<CV> = d
                    .args
                    .iter()
                    .enumerate()
                    .map(|(k, a)| {
                        if super::super::plan::reads_value(d.op, k) {
                            self.scalar_of(*a)
                        } else {
                            self.extents[0]
                        }
                    })
                    .collect();
                self.elem_inst(i, &args)
            }
        };
        let _ = out;
        self.scalars.insert(d.result, v);
    }

    /// A fused group: one loop nest computing every member, storing what others read, and
    /// accumulating the fused reductions.
    /// One element of a fused group: every member, stores of the members others read, and
    /// the fused reductions.
    pub(in crate::jit) fn scalar_body(
        &mut self,
        members: &[Inst],
        reds: &[(Inst, Variable, Axis, Opcode)],
        shape: &[Dim],
        idx: &[CV],
    ) {
        let rank = shape.len();
        let gg = self;
        let mut regs: HashMap<Value, CV> = HashMap::new();
        for &i in members {
            let d = &gg.f.insts[i];
            let mut args = Vec::with_capacity(d.args.len());
            for (k, &a) in d.args.iter().enumerate() {
                if !super::super::plan::reads_value(d.op, k) {
                    args.push(gg.extents[0]);
                    continue;
                }
                let v = if let Some(v) = regs.get(&a) {
                    *v
                } else if let Some(v) = gg.scalars.get(&a) {
                    *v
                } else {
                    gg.load(a, shape, idx)
                };
                args.push(v);
            }
            let out = gg.f.ty(d.result).dtype;
            let v = gg.elem_inst(i, &args);
            regs.insert(d.result, v);
            if gg.plan.stored.contains(&d.result) {
                let slot = gg.slot[&d.result];
                let st = contiguous(shape);
                let off = gg.offset(&st, idx);
                gg.store_at(slot, off, v, out);
            }
        }
        for &(r, var, axis, op) in reds {
            let src = gg.f.insts[r].args[0];
            let x = match regs.get(&src) {
                Some(v) => *v,
                None => gg.load(src, shape, idx),
            };
            let x = if gg.f.ty(src).dtype == DType::Bool {
                gg.bool_to_f32(x)
            } else {
                x
            };
            match (rank, axis) {
                (2, Axis::Index(0)) => {
                    let slot = gg.slot[&gg.f.insts[r].result];
                    let a = gg.addr(slot, idx[1]);
                    let cur = gg.b.ins().load(types::F32, gg.flags, a, 0);
                    let nv = gg.combine32(op, cur, x);
                    gg.b.ins().store(gg.flags, nv, a, 0);
                }
                _ => {
                    let cur = gg.b.use_var(var);
                    let nv = gg.combine(op, cur, x);
                    gg.b.def_var(var, nv);
                }
            }
        }
    }
}
