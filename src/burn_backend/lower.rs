//! IR to burn: a loss function run as burn tensor operations on any burn device, so that
//! burn-autodiff differentiates it together with the network that produced `y_pred`.
//!
//! Every IR value (rank 0 to 3) is held as a rank-3 burn tensor, right-aligned: a scalar is
//! `[1, 1, 1]`, a vector of `n` is `[1, 1, n]`, a matrix `[r, c]` is `[1, r, c]`. numpy
//! broadcasting of the IR then is burn's broadcasting of size-1 dims, and each value keeps
//! its logical shape beside it for the ops that care (reductions, matmul, reshape).
//!
//! Control flow (AMM's jumps) is followed on the host: a `brif` reads its condition back
//! from the device, which costs one synchronisation per branch taken. Fuel bounds the walk,
//! as in the interpreter.

use burn::tensor::{Device, Int, Tensor, activation};
use ncp_ir::function::{InstData, Terminator, TrapCode};
use ncp_ir::interp::Dims;
use ncp_ir::op::{Axis, ConstVal, Imm, Opcode};
use ncp_ir::{DType, Function, Value};
use std::collections::HashMap;

/// Why a lowered loss could not produce a value.
#[derive(Clone, Debug, PartialEq)]
pub enum LowerError {
    /// The program faulted (an AMM trap).
    Trap(TrapCode),
    /// The function does something this lowering does not take (rank above 3, inputs of the wrong shape, ...).
    Unsupported(String),
    /// The walk over blocks ran out of fuel.
    OutOfFuel,
}

impl std::fmt::Display for LowerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LowerError::Trap(t) => write!(f, "the program faulted ({t:?})"),
            LowerError::Unsupported(m) => write!(f, "the burn lowering does not take this: {m}"),
            LowerError::OutOfFuel => write!(f, "the program ran out of fuel"),
        }
    }
}

/// A value: its burn tensor (rank 3, right-aligned) and its logical IR shape.
#[derive(Clone, Debug)]
struct Val {
    t: Tensor<3>,
    shape: Vec<usize>,
}

/// The rank of the physical tensors; logical ranks above it are refused.
const R: usize = 3;

/// The physical shape of a logical shape (right-aligned, padded with 1s).
fn physical(shape: &[usize]) -> [usize; R] {
    let mut p = [1; R];
    let pad = R.saturating_sub(shape.len());
    for (slot, n) in p[pad..].iter_mut().zip(shape) {
        *slot = *n;
    }
    p
}

/// The physical dim of logical axis `a` of a value of rank `rank`.
fn phys_axis(rank: usize, a: u32) -> usize {
    a as usize + R - rank
}

/// Result shape of numpy broadcasting (the verifier has checked that the shapes fit).
fn broadcast(a: &[usize], b: &[usize]) -> Result<Vec<usize>, LowerError> {
    ncp_ir::tensor::broadcast_shapes(a, b)
        .ok_or_else(|| LowerError::Unsupported(format!("shapes {a:?} and {b:?} do not broadcast")))
}

fn expand_to(v: &Val, shape: &[usize]) -> Tensor<3> {
    let p = physical(shape);
    if v.t.dims() == p {
        v.t.clone()
    } else {
        v.t.clone().expand(p)
    }
}

/// A constant: a fill, which fusion folds into the kernels that use it (an upload would not).
fn scalar(x: f32, device: &Device) -> Tensor<3> {
    Tensor::full([1, 1, 1], x, device)
}

/// An arithmetic op with a constant operand as burn's scalar form (`add_scalar`, ...), which
/// fused kernels take as a parameter instead of a tensor input.
fn with_constant(op: Opcode, a: &[&Val], k: [Option<f32>; 2]) -> Option<Val> {
    let (x, t) = match (op, k) {
        (Opcode::Add, [_, Some(c)]) => (a[0], a[0].t.clone().add_scalar(c)),
        (Opcode::Add, [Some(c), None]) => (a[1], a[1].t.clone().add_scalar(c)),
        (Opcode::Mul, [_, Some(c)]) => (a[0], a[0].t.clone().mul_scalar(c)),
        (Opcode::Mul, [Some(c), None]) => (a[1], a[1].t.clone().mul_scalar(c)),
        (Opcode::Sub, [_, Some(c)]) => (a[0], a[0].t.clone().sub_scalar(c)),
        (Opcode::Div, [_, Some(c)]) => (a[0], a[0].t.clone().div_scalar(c)),
        (Opcode::Pow, [_, Some(c)]) => (a[0], a[0].t.clone().powf_scalar(c)),
        _ => return None,
    };
    Some(Val {
        t,
        shape: x.shape.clone(),
    })
}

/// Run `func` on `y_pred` and `y_true` (both `[b, c]`, on one device): the loss, a `[1, 1]`
/// tensor tracked by autodiff when `y_pred` is.
pub fn lower_loss(
    func: &Function,
    y_pred: Tensor<2>,
    y_true: Tensor<2>,
    fuel: u64,
) -> Result<Tensor<2>, LowerError> {
    let [b, c] = y_pred.dims();
    // The interpreter's checks of the input shapes against the parameter types (a fixed dim
    // must match; symbolic B and C must differ), on shapes alone.
    let shape_only = ncp_ir::tensor::Tensor {
        dtype: DType::F32,
        shape: vec![b, c],
        data: Vec::new(),
    };
    let dims = ncp_ir::interp::bind_dims(func, &[shape_only.clone(), shape_only])
        .map_err(|e| LowerError::Unsupported(e.to_string()))?;
    let (y_pred, y_true) = (y_pred.unsqueeze::<3>(), y_true.unsqueeze::<3>());
    let device = y_pred.device();
    let mut env: HashMap<Value, Val> = HashMap::new();
    let mut constants: HashMap<Value, f32> = HashMap::new();
    let mut block = func.entry();
    let mut args = vec![
        Val {
            t: y_pred,
            shape: vec![b, c],
        },
        Val {
            t: y_true,
            shape: vec![b, c],
        },
    ];
    let mut fuel = fuel;
    loop {
        fuel = fuel.checked_sub(1).ok_or(LowerError::OutOfFuel)?;
        let data = &func.blocks[block];
        for (p, a) in data.params.iter().zip(args.drain(..)) {
            env.insert(*p, a);
        }
        for &i in &data.insts {
            fuel = fuel.checked_sub(1).ok_or(LowerError::OutOfFuel)?;
            let inst = &func.insts[i];
            let ops: Vec<&Val> = inst
                .args
                .iter()
                .map(|a| env.get(a).ok_or_else(|| undefined(*a)))
                .collect::<Result<_, _>>()?;
            let k = |i: usize| inst.args.get(i).and_then(|v| constants.get(v)).copied();
            let out = match with_constant(inst.op, &ops, [k(0), k(1)]) {
                Some(v) => v,
                None => lower_inst(func, inst, &ops, dims, &device)?,
            };
            let out = round_to_dtype(out, func.ty(inst.result).dtype, inst.op);
            if let (Opcode::Const, Imm::Const(ConstVal::F32(x))) = (inst.op, &inst.imm) {
                constants.insert(inst.result, *x);
            }
            env.insert(inst.result, out);
        }
        let get = |v: &Value| env.get(v).cloned().ok_or_else(|| undefined(*v));
        match &data.term {
            Terminator::Return(vs) => {
                let first = vs.first().ok_or_else(|| {
                    LowerError::Unsupported("a function returning nothing".into())
                })?;
                let loss = get(first)?;
                if !loss.shape.is_empty() {
                    return Err(LowerError::Unsupported(format!(
                        "a loss of shape {:?} (a scalar is needed)",
                        loss.shape
                    )));
                }
                return Ok(loss.t.reshape([1, 1]));
            }
            Terminator::Trap(t) => return Err(LowerError::Trap(*t)),
            Terminator::Jump(call) => {
                args = call.args.iter().map(get).collect::<Result<_, _>>()?;
                block = call.block;
            }
            Terminator::Brif(cond, then, els) => {
                let c = get(cond)?;
                let taken =
                    c.t.into_data()
                        .iter::<f32>()
                        .next()
                        .is_some_and(|x| x != 0.0);
                let call = if taken { then } else { els };
                args = call.args.iter().map(get).collect::<Result<_, _>>()?;
                block = call.block;
            }
        }
    }
}

fn undefined(v: Value) -> LowerError {
    LowerError::Unsupported(format!("{v} is used before it is defined"))
}

fn axis_of(imm: &Imm) -> Axis {
    match imm {
        Imm::Axis(a) => *a,
        _ => Axis::All,
    }
}

/// Reduce with `f` (which keeps the reduced dim) over `axis`; the result is re-laid out
/// right-aligned.
fn reduce(x: &Val, axis: Axis, f: impl Fn(Tensor<3>, usize) -> Tensor<3>) -> Val {
    match axis {
        Axis::All => {
            let n = x.t.dims().iter().product::<usize>();
            let flat = x.t.clone().reshape([1, 1, n]);
            Val {
                t: f(flat, R - 1),
                shape: Vec::new(),
            }
        }
        Axis::Index(a) => {
            let d = phys_axis(x.shape.len(), a);
            let mut shape = x.shape.clone();
            shape.remove(a as usize);
            let t = f(x.t.clone(), d).reshape(physical(&shape));
            Val { t, shape }
        }
    }
}

fn bool_to_f(t: Tensor<3, burn::tensor::Bool>) -> Tensor<3> {
    t.float()
}

fn lower_inst(
    func: &Function,
    inst: &InstData,
    a: &[&Val],
    dims: Dims,
    device: &Device,
) -> Result<Val, LowerError> {
    let ty = func.ty(inst.result);
    if ty.rank() > R {
        return Err(LowerError::Unsupported(format!(
            "`{}` gives a rank-{} value (the lowering holds ranks up to {R})",
            inst.op.name(),
            ty.rank()
        )));
    }
    let out_shape = dims.shape(ty);
    let same = |t: Tensor<3>| Val {
        t,
        shape: a[0].shape.clone(),
    };
    let unary = |f: fn(Tensor<3>) -> Tensor<3>| same(f(a[0].t.clone()));
    let binary = |f: fn(Tensor<3>, Tensor<3>) -> Tensor<3>| -> Result<Val, LowerError> {
        let shape = broadcast(&a[0].shape, &a[1].shape)?;
        Ok(Val {
            t: f(expand_to(a[0], &shape), expand_to(a[1], &shape)),
            shape,
        })
    };
    use Opcode as O;
    Ok(match inst.op {
        O::Const => match &inst.imm {
            Imm::Const(ConstVal::F32(x)) => Val {
                t: scalar(*x, device),
                shape: Vec::new(),
            },
            Imm::Const(cv) => Val {
                t: scalar(cv.as_f64() as f32, device),
                shape: Vec::new(),
            },
            _ => return Err(LowerError::Unsupported("a const without a value".into())),
        },
        O::Dim => match &inst.imm {
            Imm::Dim(d) => Val {
                t: scalar(dims.size(*d) as f32, device),
                shape: Vec::new(),
            },
            _ => return Err(LowerError::Unsupported("a dim without a dim".into())),
        },
        O::Neg => unary(|t| t.neg()),
        O::Abs => unary(|t| t.abs()),
        O::Sqrt => unary(|t| t.sqrt()),
        O::Exp => unary(|t| t.exp()),
        O::Log => unary(|t| t.log()),
        O::Sin => unary(|t| t.sin()),
        O::Cos => unary(|t| t.cos()),
        O::Tan => unary(|t| t.tan()),
        O::Asin => unary(|t| t.asin()),
        O::Acos => unary(|t| t.acos()),
        O::Atan => unary(|t| t.atan()),
        O::Tanh => unary(|t| t.tanh()),
        O::Sigmoid => unary(|t| keep_nan(activation::sigmoid(t.clone()), t)),
        O::Relu => unary(|t| keep_nan(activation::relu(t.clone()), t)),
        O::Floor => unary(|t| t.floor()),
        O::Ceil => unary(|t| t.ceil()),
        O::Round => unary(|t| t.round()),
        O::Sign => unary(|t| keep_nan(t.clone().sign(), t)),
        O::Recip => unary(|t| t.recip()),
        O::Add => binary(|x, y| x.add(y))?,
        O::Sub => binary(|x, y| x.sub(y))?,
        O::Mul => binary(|x, y| x.mul(y))?,
        O::Div => binary(|x, y| x.div(y))?,
        O::Pow => binary(pow)?,
        O::Max => binary(|x, y| extremum(x, y, true))?,
        O::Min => binary(|x, y| extremum(x, y, false))?,
        O::Rem => binary(|x, y| x.remainder(y))?,
        O::Hypot => binary(|x, y| x.hypot(y))?,
        O::ClampMin => binary(|x, lo| clamp(x, lo, true))?,
        O::ClampMax => binary(|x, hi| clamp(x, hi, false))?,
        O::Gt => binary(|x, y| bool_to_f(x.greater(y)))?,
        O::Ge => binary(|x, y| bool_to_f(x.greater_equal(y)))?,
        O::Eq => binary(|x, y| bool_to_f(x.equal(y)))?,
        O::Select => {
            let shape = broadcast(&broadcast(&a[0].shape, &a[1].shape)?, &a[2].shape)?;
            let cond = expand_to(a[0], &shape).not_equal_elem(0.0);
            let t = expand_to(a[2], &shape).mask_where(cond, expand_to(a[1], &shape));
            Val { t, shape }
        }
        O::Cast => match (&inst.imm, ty.dtype) {
            (_, DType::F32) => same(a[0].t.clone()),
            (_, DType::I64) => same(to_i64(a[0].t.clone())),
            (_, DType::Bool) => same(bool_to_f(a[0].t.clone().not_equal_elem(0.0))),
        },
        O::OnesLike => same(Tensor::ones(a[0].t.dims(), device)),
        O::ZerosLike => same(Tensor::zeros(a[0].t.dims(), device)),
        O::Sum => reduce(a[0], axis_of(&inst.imm), |t, d| t.sum_dim(d)),
        O::Mean => reduce(a[0], axis_of(&inst.imm), |t, d| t.mean_dim(d)),
        O::RMax => reduce(a[0], axis_of(&inst.imm), |t, d| t.max_dim(d)),
        O::RMin => reduce(a[0], axis_of(&inst.imm), |t, d| t.min_dim(d)),
        O::Std => reduce(a[0], axis_of(&inst.imm), |t, d| t.var(d).sqrt()),
        O::AnyNonzero => {
            let any = a[0].t.clone().not_equal_elem(0.0).any().float();
            Val {
                t: any.reshape([1, 1, 1]),
                shape: Vec::new(),
            }
        }
        O::Matmul => matmul(a[0], a[1])?,
        O::Transpose => Val {
            t: a[0].t.clone().swap_dims(R - 2, R - 1),
            shape: vec![a[0].shape[1], a[0].shape[0]],
        },
        O::Softmax => same(activation::softmax(a[0].t.clone(), R - 1)),
        O::Reshape => Val {
            t: a[0].t.clone().reshape(physical(&out_shape)),
            shape: out_shape,
        },
        O::Expand => {
            // Re-insert the reduced axis as size 1 (the same element order), then broadcast.
            let like = &a[1].shape;
            let p = physical(like);
            let mut kept = p;
            match axis_of(&inst.imm) {
                Axis::All => kept = [1; R],
                Axis::Index(k) => kept[phys_axis(like.len(), k)] = 1,
            }
            let t = a[0].t.clone().reshape(kept);
            Val {
                t: if kept == p { t } else { t.expand(p) },
                shape: like.clone(),
            }
        }
        O::BroadcastLike => Val {
            t: expand_to(a[0], &a[1].shape),
            shape: a[1].shape.clone(),
        },
        O::SumTo => {
            let target = physical(&a[1].shape);
            let mut t = a[0].t.clone();
            for (d, want) in target.iter().enumerate() {
                if *want == 1 && t.dims()[d] > 1 {
                    t = t.sum_dim(d);
                }
            }
            Val {
                t,
                shape: a[1].shape.clone(),
            }
        }
        O::Count => {
            let n = match axis_of(&inst.imm) {
                Axis::All => a[0].shape.iter().product(),
                Axis::Index(k) => a[0].shape[k as usize],
            };
            Val {
                t: scalar(n as f32, device),
                shape: Vec::new(),
            }
        }
        O::MaxMask | O::MinMask => extremum_mask(a[0], axis_of(&inst.imm), inst.op == O::MaxMask),
    })
}

/// torch.maximum / torch.minimum with the gradient IR's derivative: NaN on either side gives
/// NaN; on a tie each side gets half the gradient.
fn extremum(x: Tensor<3>, y: Tensor<3>, max: bool) -> Tensor<3> {
    let y_wins = if max {
        x.clone().lower(y.clone())
    } else {
        x.clone().greater(y.clone())
    };
    let tie = x.clone().equal(y.clone());
    let halves = x.clone().mul_scalar(0.5).add(y.clone().mul_scalar(0.5));
    x.mask_where(y_wins.bool_or(y.clone().is_nan()), y)
        .mask_where(tie, halves)
}

/// torch.clamp with a bound (`lower`: clamp_min): NaN from the clamped value propagates, a NaN
/// bound leaves the value alone (as the interpreter), and the gradient flows into the value
/// only strictly inside the bound and never into the bound (a Python-number bound in PyTorch).
fn clamp(x: Tensor<3>, bound: Tensor<3>, lower: bool) -> Tensor<3> {
    let inside = if lower {
        x.clone().greater(bound.clone())
    } else {
        x.clone().lower(bound.clone())
    };
    let keep = inside
        .bool_or(x.clone().is_nan())
        .bool_or(bound.clone().is_nan());
    bound.detach().mask_where(keep, x)
}

/// The interpreter's rounding of a result to its dtype (every value is held as f32 here):
/// bools are 0 or 1, integers truncated, NaN 0, saturated at the i64 range. Ops whose results
/// already are (comparisons, constants, casts) are left alone.
fn round_to_dtype(v: Val, dtype: DType, op: Opcode) -> Val {
    use ncp_ir::op::Class;
    let exact = matches!(
        op.info().class,
        Class::Compare | Class::Leaf | Class::Cast | Class::Like
    ) || matches!(
        op,
        Opcode::Reshape | Opcode::Transpose | Opcode::Expand | Opcode::BroadcastLike
    );
    let t = match dtype {
        DType::F32 => return v,
        _ if exact => return v,
        DType::Bool => bool_to_f(v.t.not_equal_elem(0.0)),
        DType::I64 => to_i64(v.t),
    };
    Val { t, shape: v.shape }
}

/// f32 values as the interpreter stores an i64: truncated, NaN as 0, saturated.
fn to_i64(t: Tensor<3>) -> Tensor<3> {
    let nan = t.clone().is_nan();
    let z = t.zeros_like();
    t.trunc()
        .mask_where(nan, z)
        .clamp(-9.223_372e18_f32, 9.223_372e18_f32)
}

/// NaN where `x` is NaN (torch's sigmoid, relu and sign propagate NaN; some burn backends'
/// kernels do not).
fn keep_nan(out: Tensor<3>, x: Tensor<3>) -> Tensor<3> {
    out.mask_where(x.clone().is_nan(), x)
}

/// `x ** y` with the gradient IR's derivative at `x == 0`: no gradient into the exponent there
/// (burn-autodiff's `x^y ln x` would be `0 * -inf`, NaN).
fn pow(x: Tensor<3>, y: Tensor<3>) -> Tensor<3> {
    let zero = x.clone().equal_elem(0.0);
    let at_zero = x.clone().powf(y.clone().detach());
    let safe = x.mask_where(zero.clone(), at_zero.ones_like());
    safe.powf(y).mask_where(zero, at_zero)
}

/// `torch.matmul` for ranks 1 and 2, on the right-aligned layout.
fn matmul(x: &Val, y: &Val) -> Result<Val, LowerError> {
    if x.shape.len() > 2 || y.shape.len() > 2 {
        return Err(LowerError::Unsupported("matmul of rank above 2".into()));
    }
    let lhs = x.t.clone();
    // A vector on the right is a column.
    let rhs = if y.shape.len() == 1 {
        y.t.clone().reshape([1, y.shape[0], 1])
    } else {
        y.t.clone()
    };
    let prod = lhs.matmul(rhs);
    let shape = match (x.shape.len(), y.shape.len()) {
        (2, 2) => vec![x.shape[0], y.shape[1]],
        (2, _) => vec![x.shape[0]],
        (_, 2) => vec![y.shape[1]],
        _ => Vec::new(),
    };
    Ok(Val {
        t: prod.reshape(physical(&shape)),
        shape,
    })
}

/// The interpreter's extremum mask: along an axis, the first extremum of each slice; over
/// everything, every element equal to the extremum. Constant for autodiff.
fn extremum_mask(x: &Val, axis: Axis, max: bool) -> Val {
    let t = x.t.clone().detach();
    let dims = t.dims();
    let mask = match axis {
        Axis::All => {
            let e = if max {
                t.clone().max()
            } else {
                t.clone().min()
            };
            t.equal(e.reshape([1, 1, 1]).expand(dims)).float()
        }
        Axis::Index(a) => {
            let d = phys_axis(x.shape.len(), a);
            let idx = if max {
                t.clone().argmax(d)
            } else {
                t.clone().argmin(d)
            };
            let mut along = [1; R];
            along[d] = dims[d];
            let iota = Tensor::<1, Int>::arange(0..dims[d] as i64, &t.device())
                .reshape(along)
                .expand(dims);
            iota.equal(idx.expand(dims)).float()
        }
    };
    Val {
        t: mask,
        shape: x.shape.clone(),
    }
}
