//! Constant folding. An instruction whose operands are all scalar constants is evaluated with
//! the interpreter's own kernels and replaced by the constant it yields, so folding never
//! changes a result, NaN and infinities included. A `brif` on a constant becomes a `jump`.

use crate::function::{Function, Terminator};
use crate::interp::fold_scalar;
use crate::op::{Class, ConstVal, Imm, Opcode};

fn const_of(f: &Function, v: crate::Value) -> Option<ConstVal> {
    match f.def_inst(v) {
        Some(d) if d.op == Opcode::Const => match d.imm {
            Imm::Const(c) => Some(c),
            _ => None,
        },
        _ => None,
    }
}

/// Fold constant instructions and constant branches; returns how many were folded.
pub fn fold(f: &mut Function) -> usize {
    let mut n = 0;
    let layout = f.layout.clone();
    for b in layout {
        let insts = f.blocks[b].insts.clone();
        for i in insts {
            let inst = &f.insts[i];
            if inst.op.info().class == Class::Leaf || inst.args.is_empty() {
                continue;
            }
            let Some(args) = inst
                .args
                .iter()
                .map(|a| const_of(f, *a))
                .collect::<Option<Vec<_>>>()
            else {
                continue;
            };
            if !f.ty(inst.result).is_scalar() {
                continue;
            }
            if let Some(c) = fold_scalar(f, inst, &args) {
                let inst = &mut f.insts[i];
                inst.op = Opcode::Const;
                inst.imm = Imm::Const(c);
                inst.args.clear();
                n += 1;
            }
        }
        if let Terminator::Brif(c, t, e) = &f.blocks[b].term
            && let Some(ConstVal::Bool(k)) = const_of(f, *c)
        {
            let target = if k { t.clone() } else { e.clone() };
            f.blocks[b].term = Terminator::Jump(target);
            n += 1;
        }
    }
    n
}
