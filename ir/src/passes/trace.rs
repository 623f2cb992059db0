//! Path specialization: the straight-line function that one run of a function with control
//! flow executed. Differentiating it gives the gradient PyTorch's autograd computes for that
//! run (autograd, too, differentiates the path that was taken).
//!
//! [`specialize_guarded`] keeps the path's branch conditions: its loss is NaN whenever the
//! inputs would take another path, so a kernel compiled from it can serve every input and
//! say when it must not be trusted.

use crate::entities::Value;
use crate::function::{Function, Terminator};
use crate::interp::Step;
use crate::{ConstVal, DType, Imm, IrError, Opcode, Type};
use std::collections::HashMap;

/// Inline the blocks of `path` (as returned by [`crate::interp::run_traced`]) into one block.
pub fn specialize(f: &Function, path: &[Step]) -> Result<Function, IrError> {
    inline_path(f, path, false)
}

/// [`specialize`], with the path's branches kept as guards: the function's first result
/// (the loss) becomes `select(every branch went as on this path, loss, NaN)`. On inputs that
/// take this path it computes exactly what [`specialize`]'s function computes (the gradient
/// too: the guard's select passes the loss's gradient through unchanged); on any other
/// input its loss is NaN, so a NaN loss means "ask the interpreter".
pub fn specialize_guarded(f: &Function, path: &[Step]) -> Result<Function, IrError> {
    inline_path(f, path, true)
}

/// `ok && (cond == want)` as IR (`ok` absent means true).
fn add_guard(
    g: &mut Function,
    nb: crate::entities::Block,
    ok: Option<Value>,
    cond: Value,
    want: bool,
) -> Value {
    let bool_const = |g: &mut Function, b: bool| {
        g.push_inst(
            nb,
            Opcode::Const,
            Imm::Const(ConstVal::Bool(b)),
            vec![],
            Type::scalar(DType::Bool),
        )
    };
    let term = if want {
        cond
    } else {
        let (f_, t_) = (bool_const(g, false), bool_const(g, true));
        g.push_inst(
            nb,
            Opcode::Select,
            Imm::None,
            vec![cond, f_, t_],
            Type::scalar(DType::Bool),
        )
    };
    match ok {
        None => term,
        Some(o) => {
            let f_ = bool_const(g, false);
            g.push_inst(
                nb,
                Opcode::Select,
                Imm::None,
                vec![o, term, f_],
                Type::scalar(DType::Bool),
            )
        }
    }
}

fn inline_path(f: &Function, path: &[Step], guarded: bool) -> Result<Function, IrError> {
    let mut ok: Option<Value> = None;
    let entry = f.entry();
    let ptys: Vec<_> = f.blocks[entry]
        .params
        .iter()
        .map(|p| f.ty(*p).clone())
        .collect();
    let (mut g, nb) = Function::new(f.name.clone(), &ptys, f.results.clone());
    let mut map: HashMap<Value, Value> = HashMap::new();
    for (p, q) in f.blocks[entry]
        .params
        .iter()
        .zip(g.blocks[nb].params.clone())
    {
        map.insert(*p, q);
    }
    let Some(first) = path.first() else {
        return Err(IrError::Grad("empty path".into()));
    };
    if first.block != entry {
        return Err(IrError::Grad(
            "the path does not start at the entry block".into(),
        ));
    }
    for (k, step) in path.iter().enumerate() {
        let data = &f.blocks[step.block];
        for &i in &data.insts {
            let inst = &f.insts[i];
            let args = inst
                .args
                .iter()
                .map(|a| {
                    map.get(a)
                        .copied()
                        .ok_or_else(|| IrError::Grad(format!("{a} undefined on the path")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let v = g.push_inst(
                nb,
                inst.op,
                inst.imm.clone(),
                args,
                f.ty(inst.result).clone(),
            );
            map.insert(inst.result, v);
        }
        let call = match (&data.term, step.took_then) {
            (Terminator::Return(vs), _) => {
                let mut vs: Vec<Value> = vs.iter().map(|v| map[v]).collect();
                if let (Some(ok), Some(loss)) = (ok, vs.first_mut())
                    && *g.ty(*loss) == Type::f32()
                {
                    let nan = g.push_inst(
                        nb,
                        Opcode::Const,
                        Imm::Const(ConstVal::F32(f32::NAN)),
                        vec![],
                        Type::f32(),
                    );
                    *loss = g.push_inst(
                        nb,
                        Opcode::Select,
                        Imm::None,
                        vec![ok, *loss, nan],
                        Type::f32(),
                    );
                }
                g.set_term(nb, Terminator::Return(vs));
                return Ok(g);
            }
            (Terminator::Trap(t), _) => {
                g.set_term(nb, Terminator::Trap(*t));
                return Ok(g);
            }
            (Terminator::Jump(c), _) => c,
            (Terminator::Brif(cond, t, e), Some(went)) => {
                if guarded {
                    let c = *map
                        .get(cond)
                        .ok_or_else(|| IrError::Grad(format!("{cond} undefined on the path")))?;
                    ok = Some(add_guard(&mut g, nb, ok, c, went));
                }
                if went { t } else { e }
            }
            (Terminator::Brif(..), None) => {
                return Err(IrError::Grad(
                    "the path does not say which way a branch went".into(),
                ));
            }
        };
        let next = path
            .get(k + 1)
            .ok_or_else(|| IrError::Grad("the path ends in the middle".into()))?;
        if next.block != call.block {
            return Err(IrError::Grad(
                "the path does not follow the branches".into(),
            ));
        }
        let args: Vec<Value> = call.args.iter().map(|a| map[a]).collect();
        for (p, a) in f.blocks[call.block].params.iter().zip(args) {
            map.insert(*p, a);
        }
    }
    Err(IrError::Grad("the path does not end".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interp::{DEFAULT_FUEL, Outcome, run, run_traced};
    use crate::tensor::Tensor;

    /// `mean(y_pred) > 0 ? mean(y_pred^2) : mean(y_true)`: a branch on the data.
    fn branchy() -> Function {
        crate::text::parse_function(
            "function g(f32[B,C], f32[B,C]) -> f32 {\nblock0(v0: f32[B,C], v1: f32[B,C]):\n    v2 = mean<all> v0 : f32\n    v3 = const<0.0> : f32\n    v4 = gt v2, v3 : bool\n    brif v4, block1, block2\nblock1:\n    v5 = mul v0, v0 : f32[B,C]\n    v6 = mean<all> v5 : f32\n    return v6\nblock2:\n    v7 = mean<all> v1 : f32\n    return v7\n}",
        )
        .unwrap()
    }

    fn inputs(x: f64) -> Vec<Tensor> {
        vec![
            Tensor::new(DType::F32, vec![2, 3], vec![x; 6]),
            Tensor::new(DType::F32, vec![2, 3], vec![0.25; 6]),
        ]
    }

    fn loss(f: &Function, inputs: &[Tensor]) -> f64 {
        match run(f, inputs, DEFAULT_FUEL).unwrap() {
            Outcome::Return(v) => v[0].data[0],
            Outcome::Trap(t) => panic!("trapped: {t:?}"),
        }
    }

    #[test]
    fn a_guarded_path_agrees_on_its_path_and_is_nan_off_it() {
        let f = branchy();
        for (on, off) in [(0.5, -0.5), (-0.5, 0.5)] {
            let (_, path) = run_traced(&f, &inputs(on), DEFAULT_FUEL).unwrap();
            let g = specialize_guarded(&f, &path).unwrap();
            assert!(g.is_straight_line());
            crate::verify::verify(&g).unwrap();
            assert_eq!(
                loss(&g, &inputs(on)).to_bits(),
                loss(&f, &inputs(on)).to_bits()
            );
            assert_eq!(
                loss(&g, &inputs(on * 3.0)).to_bits(),
                loss(&f, &inputs(on * 3.0)).to_bits(),
                "another input on the same path"
            );
            assert!(loss(&g, &inputs(off)).is_nan(), "an input off the path");
            let plain = specialize(&f, &path).unwrap();
            assert!(
                !loss(&plain, &inputs(off)).is_nan(),
                "specialize has no guard"
            );
        }
    }
}
