//! Path specialization: the straight-line function that one run of a function with control
//! flow executed. Differentiating it gives the gradient PyTorch's autograd computes for that
//! run (autograd, too, differentiates the path that was taken).

use crate::IrError;
use crate::entities::Value;
use crate::function::{Function, Terminator};
use crate::interp::Step;
use std::collections::HashMap;

/// Inline the blocks of `path` (as returned by [`crate::interp::run_traced`]) into one block.
pub fn specialize(f: &Function, path: &[Step]) -> Result<Function, IrError> {
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
                let vs = vs.iter().map(|v| map[v]).collect();
                g.set_term(nb, Terminator::Return(vs));
                return Ok(g);
            }
            (Terminator::Trap(t), _) => {
                g.set_term(nb, Terminator::Trap(*t));
                return Ok(g);
            }
            (Terminator::Jump(c), _) => c,
            (Terminator::Brif(_, t, _), Some(true)) => t,
            (Terminator::Brif(_, _, e), Some(false)) => e,
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
