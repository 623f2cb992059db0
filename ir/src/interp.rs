//! The reference interpreter: the oracle every backend is tested against.
//!
//! It runs a function on concrete inputs with a fuel limit (one unit per instruction and per
//! block entered), so no input can make it hang.

use crate::IrError;
use crate::entities::{Block, Value};
use crate::function::{Function, InstData, Terminator, TrapCode};
use crate::kernels::{self, ReduceKind};
use crate::op::{Axis, Class, ConstVal, Imm, Opcode};
use crate::tensor::Tensor;
use crate::types::{Dim, Type};
use std::collections::HashMap;

/// How a run ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The function returned these values.
    Return(Vec<Tensor>),
    /// The program faulted.
    Trap(TrapCode),
}

/// Concrete sizes of the symbolic dims.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Dims {
    /// Batch size.
    pub b: usize,
    /// Number of classes.
    pub c: usize,
}

impl Dims {
    /// The concrete size of `d`.
    pub fn size(&self, d: Dim) -> usize {
        match d {
            Dim::B => self.b,
            Dim::C => self.c,
            Dim::Fixed(n) => n as usize,
        }
    }
    /// The concrete shape of `t`.
    pub fn shape(&self, t: &Type) -> Vec<usize> {
        t.shape.iter().map(|d| self.size(*d)).collect()
    }
}

/// One step of an execution path: a block, and for a `brif` which side was taken.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The block executed.
    pub block: Block,
    /// For a block ending in `brif`: whether the `then` side was taken.
    pub took_then: Option<bool>,
}

/// Default fuel: far above what any genome the front ends accept can use.
pub const DEFAULT_FUEL: u64 = 10_000_000;

/// Run `f` on `inputs` (`y_pred`, `y_true`).
pub fn run(f: &Function, inputs: &[Tensor], fuel: u64) -> Result<Outcome, IrError> {
    run_traced(f, inputs, fuel).map(|(o, _)| o)
}

/// Bind the symbolic dims of the entry block's parameter types to the inputs' shapes.
pub fn bind_dims(f: &Function, inputs: &[Tensor]) -> Result<Dims, IrError> {
    let entry = f.entry();
    let params = &f.blocks[entry].params;
    if inputs.len() != params.len() {
        return Err(IrError::Eval(format!(
            "the function takes {} inputs, got {}",
            params.len(),
            inputs.len()
        )));
    }
    let mut b = None;
    let mut c = None;
    for (k, (p, t)) in params.iter().zip(inputs).enumerate() {
        let ty = f.ty(*p);
        if t.shape.len() != ty.rank() {
            return Err(IrError::Eval(format!(
                "input {k} has shape {:?}, the function expects {ty}",
                t.shape
            )));
        }
        if t.shape.contains(&0) {
            return Err(IrError::Eval(format!(
                "input {k} is empty (shape {:?})",
                t.shape
            )));
        }
        for (d, &n) in ty.shape.iter().zip(&t.shape) {
            let slot = match d {
                Dim::B => &mut b,
                Dim::C => &mut c,
                Dim::Fixed(m) if *m as usize == n => continue,
                Dim::Fixed(m) => {
                    return Err(IrError::Eval(format!(
                        "input {k} has shape {:?}, the function expects size {m} there ({ty})",
                        t.shape
                    )));
                }
            };
            match slot {
                Some(prev) if *prev != n => {
                    return Err(IrError::Eval(format!(
                        "input {k} has shape {:?}, inconsistent with the other input",
                        t.shape
                    )));
                }
                _ => *slot = Some(n),
            }
        }
    }
    let dims = Dims {
        b: b.unwrap_or(1),
        c: c.unwrap_or(1),
    };
    let uses_symbols = params
        .iter()
        .any(|p| f.ty(*p).shape.iter().any(|d| !matches!(d, Dim::Fixed(_))));
    if uses_symbols && (dims.b == dims.c || dims.b < 2 || dims.c < 2) {
        return Err(IrError::Eval(format!(
            "inputs of shape [{}, {}] break the symbolic-dims assumption (B != C, both >= 2); compile for concrete dims instead",
            dims.b, dims.c
        )));
    }
    Ok(dims)
}

/// Run `f` and also return the path of blocks taken (for trace-based differentiation).
pub fn run_traced(
    f: &Function,
    inputs: &[Tensor],
    mut fuel: u64,
) -> Result<(Outcome, Vec<Step>), IrError> {
    let dims = bind_dims(f, inputs)?;
    let mut env: HashMap<Value, Tensor> = HashMap::new();
    let mut block = f.entry();
    let mut args: Vec<Tensor> = inputs.to_vec();
    let mut path = Vec::new();
    loop {
        fuel = fuel.checked_sub(1).ok_or_else(out_of_fuel)?;
        let data = &f.blocks[block];
        for (p, a) in data.params.iter().zip(args.drain(..)) {
            env.insert(*p, a);
        }
        for &i in &data.insts {
            fuel = fuel.checked_sub(1).ok_or_else(out_of_fuel)?;
            let inst = &f.insts[i];
            let vals: Vec<&Tensor> = inst
                .args
                .iter()
                .map(|a| env.get(a).ok_or_else(|| undefined(*a)))
                .collect::<Result<_, _>>()?;
            let out = eval_inst(f, inst, &vals, dims)?;
            env.insert(inst.result, out);
        }
        let get = |v: &Value| env.get(v).cloned().ok_or_else(|| undefined(*v));
        match &data.term {
            Terminator::Return(vs) => {
                path.push(Step {
                    block,
                    took_then: None,
                });
                let out = vs.iter().map(get).collect::<Result<_, _>>()?;
                return Ok((Outcome::Return(out), path));
            }
            Terminator::Trap(t) => {
                path.push(Step {
                    block,
                    took_then: None,
                });
                return Ok((Outcome::Trap(*t), path));
            }
            Terminator::Jump(c) => {
                path.push(Step {
                    block,
                    took_then: None,
                });
                args = c.args.iter().map(get).collect::<Result<_, _>>()?;
                block = c.block;
            }
            Terminator::Brif(cond, t, e) => {
                let taken = get(cond)?.data.first().is_some_and(|x| *x != 0.0);
                path.push(Step {
                    block,
                    took_then: Some(taken),
                });
                let c = if taken { t } else { e };
                args = c.args.iter().map(get).collect::<Result<_, _>>()?;
                block = c.block;
            }
        }
    }
}

fn out_of_fuel() -> IrError {
    IrError::Eval("the interpreter ran out of fuel".into())
}

fn undefined(v: Value) -> IrError {
    IrError::Eval(format!(
        "{v} is used before it is defined (run the verifier)"
    ))
}

fn axis_of(imm: &Imm) -> Axis {
    match imm {
        Imm::Axis(a) => *a,
        _ => Axis::All,
    }
}

/// Evaluate one instruction on concrete operands.
pub fn eval_inst(
    f: &Function,
    inst: &InstData,
    a: &[&Tensor],
    dims: Dims,
) -> Result<Tensor, IrError> {
    let ty = f.ty(inst.result);
    let dtype = ty.dtype;
    let info = inst.op.info();
    let err = |e: String| IrError::Eval(format!("`{}`: {e}", inst.op.name()));
    Ok(match info.class {
        Class::Leaf => match &inst.imm {
            Imm::Const(c) => Tensor::scalar(c.dtype(), c.as_f64()),
            Imm::Dim(d) => Tensor::scalar(dtype, dims.size(*d) as f64),
            _ => return Err(err("bad immediate".into())),
        },
        Class::Unary | Class::Binary | Class::Compare | Class::Select | Class::Cast => {
            let k = info.kernel.ok_or_else(|| err("no kernel".into()))?;
            kernels::elementwise(k, a, dtype).map_err(err)?
        }
        Class::Like => Tensor::full(
            dtype,
            a[0].shape.clone(),
            if inst.op == Opcode::OnesLike {
                1.0
            } else {
                0.0
            },
        ),
        Class::Reduce => {
            let kind = match inst.op {
                Opcode::Sum => ReduceKind::Sum,
                Opcode::Mean => ReduceKind::Mean,
                Opcode::RMax => ReduceKind::Max,
                Opcode::RMin => ReduceKind::Min,
                _ => ReduceKind::Std,
            };
            kernels::reduce(kind, a[0], axis_of(&inst.imm), dtype)
        }
        Class::Special => match inst.op {
            Opcode::AnyNonzero => kernels::any_nonzero(a[0]),
            Opcode::Matmul => kernels::matmul(a[0], a[1], dtype).map_err(err)?,
            Opcode::Transpose => kernels::transpose(a[0]),
            Opcode::Softmax => kernels::softmax(a[0]),
            Opcode::Reshape => Tensor {
                dtype,
                shape: dims.shape(ty),
                data: a[0].data.clone(),
            },
            Opcode::Expand => kernels::expand(a[0], axis_of(&inst.imm), &a[1].shape),
            Opcode::BroadcastLike => kernels::broadcast_to(a[0], &a[1].shape),
            Opcode::SumTo => kernels::sum_to(a[0], &a[1].shape),
            Opcode::Count => kernels::count(a[0], axis_of(&inst.imm)),
            Opcode::MaxMask => kernels::extremum_mask(a[0], axis_of(&inst.imm), true),
            Opcode::MinMask => kernels::extremum_mask(a[0], axis_of(&inst.imm), false),
            _ => return Err(err("not a special op".into())),
        },
    })
}

/// Evaluate an instruction whose operands are all constants (scalars), for constant folding:
/// the same kernels as at run time, so folding never changes a result.
pub fn fold_scalar(f: &Function, inst: &InstData, args: &[ConstVal]) -> Option<ConstVal> {
    let tensors: Vec<Tensor> = args
        .iter()
        .map(|c| Tensor::scalar(c.dtype(), c.as_f64()))
        .collect();
    let refs: Vec<&Tensor> = tensors.iter().collect();
    let dims = Dims { b: 2, c: 3 };
    let out = eval_inst(f, inst, &refs, dims).ok()?;
    if !out.shape.is_empty() {
        return None;
    }
    Some(ConstVal::from_f64(out.dtype, out.data[0]))
}
