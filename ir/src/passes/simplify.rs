//! Algebraic simplification.
//!
//! By default only rewrites that are exact under IEEE 754 for every input (NaN, infinities
//! and signed zeros included) and that leave the gradient unchanged:
//!
//! | before | after | why it is exact |
//! | --- | --- | --- |
//! | `mul x, 1` / `div x, 1` / `pow x, 1` | `x` | multiplying by one is the identity |
//! | `add x, -0.0` / `sub x, 0.0` | `x` | `-0 + -0 = -0`, `x - +0 = x` |
//! | `mul x, -1` | `neg x` | negation is exact |
//! | `sub x, (neg y)` | `add x, y` | `x - (-y) = x + y` exactly |
//! | `neg (neg x)`, `transpose (transpose x)` | `x` | involutions |
//! | `abs (abs x)`, `abs (neg x)` | `abs x` | |
//! | `relu (relu x)` | `relu x` | idempotent |
//! | `max x, x` / `min x, x` | `x` | NaN in gives NaN out; ties split the gradient in halves |
//! | `cast<d> x` with `x: d` | `x` | |
//! | `expand`/`broadcast_like x, like` with `x` already of the result type | `x` | a no-op |
//! | `sum/mean/reduce_max/reduce_min<all>` of a scalar | the scalar | one element |
//! | `select` on a constant | the chosen arm | |
//!
//! A rewrite only applies when the replacement has exactly the result's type (so broadcasting
//! is never lost). With [`FastMath`] more rewrites are allowed that can hide NaN or infinity:
//! `mul x, 0 -> zeros`, `sub x, x -> zeros`, `add x, 0 -> x`, `div x, x -> ones`,
//! `log (exp x) -> x`.

use crate::entities::Value;
use crate::function::Function;
use crate::op::{Axis, ConstVal, Imm, Opcode};
use std::collections::HashMap;

/// Named permission for rewrites that are not IEEE-exact.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct FastMath {
    /// Allow rewrites that assume no NaN or infinity reaches them.
    pub no_nans_no_infs: bool,
}

fn fconst(f: &Function, v: Value) -> Option<f32> {
    match f.def_inst(v) {
        Some(d) if d.op == Opcode::Const => match d.imm {
            Imm::Const(ConstVal::F32(x)) => Some(x),
            Imm::Const(ConstVal::I64(x)) => Some(x as f32),
            _ => None,
        },
        _ => None,
    }
}

fn bconst(f: &Function, v: Value) -> Option<bool> {
    match f.def_inst(v) {
        Some(d) if d.op == Opcode::Const => match d.imm {
            Imm::Const(ConstVal::Bool(b)) => Some(b),
            _ => None,
        },
        _ => None,
    }
}

fn is_exact(f: &Function, v: Value, x: f32) -> bool {
    fconst(f, v).is_some_and(|c| c.to_bits() == x.to_bits())
}

fn def_op(f: &Function, v: Value) -> Option<(Opcode, Vec<Value>)> {
    f.def_inst(v).map(|d| (d.op, d.args.clone()))
}

enum Rewrite {
    Replace(Value),
    Reop(Opcode, Vec<Value>),
    Like(Opcode, Value),
}

/// Simplify; returns how many instructions were rewritten.
pub fn simplify(f: &mut Function, fm: FastMath) -> usize {
    let mut map: HashMap<Value, Value> = HashMap::new();
    let mut n = 0;
    // Values computed from y_pred (entry parameter 0).
    let depends = super::depends_on(f, [f.blocks[f.entry()].params[0]], |_| false);
    let layout = f.layout.clone();
    for b in layout {
        for i in f.blocks[b].insts.clone() {
            let inst = f.insts[i].clone();
            let r = inst.result;
            let rty = f.ty(r).clone();
            let a: Vec<Value> = inst.args.iter().map(|v| *map.get(v).unwrap_or(v)).collect();
            let same = |v: Value| f.ty(v) == &rty;
            let rw = match (inst.op, a.as_slice()) {
                (Opcode::Mul, [x, y]) if is_exact(f, *y, 1.0) && same(*x) => {
                    Some(Rewrite::Replace(*x))
                }
                (Opcode::Mul, [y, x]) if is_exact(f, *y, 1.0) && same(*x) => {
                    Some(Rewrite::Replace(*x))
                }
                (Opcode::Div | Opcode::Pow, [x, y])
                    if is_exact(f, *y, 1.0) && same(*x) && f.ty(*x).dtype == crate::DType::F32 =>
                {
                    Some(Rewrite::Replace(*x))
                }
                (Opcode::Add, [x, y]) | (Opcode::Add, [y, x])
                    if is_exact(f, *y, -0.0) && same(*x) =>
                {
                    Some(Rewrite::Replace(*x))
                }
                (Opcode::Sub, [x, y]) if is_exact(f, *y, 0.0) && same(*x) => {
                    Some(Rewrite::Replace(*x))
                }
                (Opcode::Mul, [x, y]) | (Opcode::Mul, [y, x])
                    if is_exact(f, *y, -1.0) && same(*x) =>
                {
                    Some(Rewrite::Reop(Opcode::Neg, vec![*x]))
                }
                (Opcode::Sub, [x, y]) => match def_op(f, *y) {
                    Some((Opcode::Neg, inner)) if f.ty(inner[0]) == f.ty(*y) => {
                        Some(Rewrite::Reop(Opcode::Add, vec![*x, inner[0]]))
                    }
                    _ => None,
                },
                (Opcode::Neg, [x]) => match def_op(f, *x) {
                    Some((Opcode::Neg, inner)) => Some(Rewrite::Replace(inner[0])),
                    _ => None,
                },
                (Opcode::Transpose, [x]) => match def_op(f, *x) {
                    Some((Opcode::Transpose, inner)) => Some(Rewrite::Replace(inner[0])),
                    _ => None,
                },
                (Opcode::Abs, [x]) => match def_op(f, *x) {
                    Some((Opcode::Abs, _)) => Some(Rewrite::Replace(*x)),
                    Some((Opcode::Neg, inner)) => Some(Rewrite::Reop(Opcode::Abs, vec![inner[0]])),
                    _ => None,
                },
                (Opcode::Relu, [x]) => match def_op(f, *x) {
                    Some((Opcode::Relu, _)) => Some(Rewrite::Replace(*x)),
                    _ => None,
                },
                (Opcode::Max | Opcode::Min, [x, y]) if x == y => Some(Rewrite::Replace(*x)),
                (Opcode::Cast, [x]) if same(*x) => Some(Rewrite::Replace(*x)),
                (Opcode::Expand | Opcode::BroadcastLike, [x, _]) if same(*x) => {
                    Some(Rewrite::Replace(*x))
                }
                (Opcode::Sum | Opcode::Mean | Opcode::RMax | Opcode::RMin, [x])
                    if inst.imm == Imm::Axis(Axis::All) && f.ty(*x).is_scalar() && same(*x) =>
                {
                    Some(Rewrite::Replace(*x))
                }
                // Dropping an arm that depends on y_pred would turn a zero gradient into no
                // gradient (PyTorch still reports zeros there), so only constant-like arms go.
                (Opcode::Select, [c, x, y]) => match bconst(f, *c) {
                    Some(true) if same(*x) && !depends.contains(y) => Some(Rewrite::Replace(*x)),
                    Some(false) if same(*y) && !depends.contains(x) => Some(Rewrite::Replace(*y)),
                    _ => None,
                },
                _ => None,
            };
            let rw = rw.or_else(|| {
                if fm.no_nans_no_infs {
                    fast_math(f, inst.op, &a, &rty)
                } else {
                    None
                }
            });
            match rw {
                Some(Rewrite::Replace(v)) => {
                    map.insert(r, v);
                    n += 1;
                }
                Some(Rewrite::Reop(op, args)) => {
                    let inst = &mut f.insts[i];
                    inst.op = op;
                    inst.args = args;
                    n += 1;
                }
                Some(Rewrite::Like(op, x)) => {
                    let inst = &mut f.insts[i];
                    inst.op = op;
                    inst.imm = Imm::None;
                    inst.args = vec![x];
                    n += 1;
                }
                None => {}
            }
        }
    }
    f.substitute(&map);
    n
}

fn fast_math(f: &Function, op: Opcode, a: &[Value], rty: &crate::Type) -> Option<Rewrite> {
    let same = |v: Value| f.ty(v) == rty;
    let f32_ty = rty.dtype == crate::DType::F32;
    match (op, a) {
        (Opcode::Mul, [x, y]) | (Opcode::Mul, [y, x])
            if f32_ty && fconst(f, *y) == Some(0.0) && same(*x) =>
        {
            Some(Rewrite::Like(Opcode::ZerosLike, *x))
        }
        (Opcode::Sub, [x, y]) if f32_ty && x == y => Some(Rewrite::Like(Opcode::ZerosLike, *x)),
        (Opcode::Div, [x, y]) if f32_ty && x == y => Some(Rewrite::Like(Opcode::OnesLike, *x)),
        (Opcode::Add, [x, y]) | (Opcode::Add, [y, x])
            if f32_ty && fconst(f, *y) == Some(0.0) && same(*x) =>
        {
            Some(Rewrite::Replace(*x))
        }
        (Opcode::Log, [x]) => match f.def_inst(*x) {
            Some(d) if d.op == Opcode::Exp => Some(Rewrite::Replace(d.args[0])),
            _ => None,
        },
        _ => None,
    }
}
