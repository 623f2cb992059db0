//! Splat sinking: an elementwise op whose tensor operands are all splats (a scalar broadcast
//! by `expand<all>` / `broadcast_like`) is computed once on the scalars and broadcast after.
//! Every element of the result is the same value either way, so this is exact; it turns the
//! gradient seeds (`expand<all> 1.0 / count`, ...) into scalar work that backends hoist out of
//! their loops.

use crate::entities::{EntityRef, Inst, Value};
use crate::function::{Function, InstData, ValueData, ValueDef};
use crate::op::{Axis, Class, Imm, Opcode, infer_type};
use crate::types::Type;
use std::collections::HashMap;

/// Sink splats through elementwise ops; returns how many instructions were rewritten.
pub fn sink(f: &mut Function) -> usize {
    let mut n = 0;
    for b in f.layout.clone() {
        let mut splat: HashMap<Value, Value> = HashMap::new();
        let mut out: Vec<Inst> = Vec::with_capacity(f.blocks[b].insts.len());
        for i in f.blocks[b].insts.clone() {
            let d = f.insts[i].clone();
            let rty = f.ty(d.result).clone();
            if rty.is_scalar() {
                out.push(i);
                continue;
            }
            let scalar_of = |v: &Value| -> Option<Value> {
                if f.ty(*v).is_scalar() {
                    Some(*v)
                } else {
                    splat.get(v).copied()
                }
            };
            match d.op {
                Opcode::Expand | Opcode::BroadcastLike => {
                    if let Some(s) = scalar_of(&d.args[0]) {
                        if !(d.op == Opcode::Expand
                            && d.imm == Imm::Axis(Axis::All)
                            && f.ty(d.args[0]).is_scalar())
                        {
                            let inst = &mut f.insts[i];
                            inst.op = Opcode::Expand;
                            inst.imm = Imm::Axis(Axis::All);
                            inst.args = vec![s, d.args[1]];
                            n += 1;
                        }
                        splat.insert(d.result, s);
                    }
                    out.push(i);
                }
                op if matches!(
                    op.info().class,
                    Class::Unary | Class::Binary | Class::Compare | Class::Select | Class::Cast
                ) =>
                {
                    let scalars: Option<Vec<Value>> = d.args.iter().map(scalar_of).collect();
                    let like = d
                        .args
                        .iter()
                        .find(|a| f.ty(**a).shape == rty.shape)
                        .copied();
                    let (Some(scalars), Some(like)) = (scalars, like) else {
                        out.push(i);
                        continue;
                    };
                    let tys: Vec<&Type> = scalars.iter().map(|v| f.ty(*v)).collect();
                    let Ok(sty) = infer_type(op, &d.imm, &tys) else {
                        out.push(i);
                        continue;
                    };
                    // The scalar computation, placed just before the instruction it replaces.
                    let si = <Inst as EntityRef>::new(f.insts.len());
                    let sv = f.values.push(ValueData {
                        ty: sty,
                        def: ValueDef::Inst(si),
                    });
                    f.insts.push(InstData {
                        op,
                        imm: d.imm.clone(),
                        args: scalars,
                        result: sv,
                    });
                    out.push(si);
                    let inst = &mut f.insts[i];
                    inst.op = Opcode::Expand;
                    inst.imm = Imm::Axis(Axis::All);
                    inst.args = vec![sv, like];
                    splat.insert(d.result, sv);
                    out.push(i);
                    n += 1;
                }
                _ => out.push(i),
            }
        }
        f.blocks[b].insts = out;
    }
    n
}
