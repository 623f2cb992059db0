//! THE op table. Every op is declared once here: its name (printing and parsing), arity,
//! immediate, operand dtypes and type rule (inference and verification), elementwise kernel
//! (interpretation and constant folding), and derivative (the gradient pass).
//!
//! Adding an op means adding a variant to [`Opcode`] and a row to [`OPS`]; backends then add a
//! lowering for it.

use crate::passes::grad::{DerivCtx, GradBuilder};
use crate::types::{DType, Dim, Shape, Type, broadcast, numel_signature};
use crate::{IrError, Value};

/// Which axis a reduction runs over.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Axis {
    /// Every element: the result is a scalar.
    All,
    /// One axis, counted from 0 (front ends resolve negative and out-of-range axes).
    Index(u32),
}

/// A constant's value; its dtype is the constant's type.
#[derive(Copy, Clone, Debug)]
pub enum ConstVal {
    /// A 32-bit float.
    F32(f32),
    /// A 64-bit integer.
    I64(i64),
    /// A boolean.
    Bool(bool),
}

impl ConstVal {
    /// The element type.
    pub fn dtype(self) -> DType {
        match self {
            ConstVal::F32(_) => DType::F32,
            ConstVal::I64(_) => DType::I64,
            ConstVal::Bool(_) => DType::Bool,
        }
    }
    /// The value as the interpreter stores it.
    pub fn as_f64(self) -> f64 {
        match self {
            ConstVal::F32(x) => x as f64,
            ConstVal::I64(x) => x as f64,
            ConstVal::Bool(b) => b as u8 as f64,
        }
    }
    /// A constant of `dtype` holding `v` (rounded to the dtype).
    pub fn from_f64(dtype: DType, v: f64) -> ConstVal {
        match dtype {
            DType::F32 if v.is_nan() => ConstVal::F32(f32::NAN),
            DType::F32 => ConstVal::F32(v as f32),
            DType::I64 => ConstVal::I64(v as i64),
            DType::Bool => ConstVal::Bool(v != 0.0),
        }
    }
}

/// The bits that identify an f32 constant: every NaN is one NaN (the text form cannot tell
/// NaN payloads apart, so neither may CSE, canonical order or the hash).
fn f32_key(x: f32) -> u32 {
    if x.is_nan() {
        f32::NAN.to_bits()
    } else {
        x.to_bits()
    }
}

impl PartialEq for ConstVal {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (ConstVal::F32(a), ConstVal::F32(b)) => f32_key(*a) == f32_key(*b),
            (ConstVal::I64(a), ConstVal::I64(b)) => a == b,
            (ConstVal::Bool(a), ConstVal::Bool(b)) => a == b,
            _ => false,
        }
    }
}
impl Eq for ConstVal {}
impl std::hash::Hash for ConstVal {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        match self {
            ConstVal::F32(a) => (0u8, f32_key(*a) as u64).hash(h),
            ConstVal::I64(a) => (1u8, *a as u64).hash(h),
            ConstVal::Bool(a) => (2u8, *a as u64).hash(h),
        }
    }
}

/// An instruction's immediate operand.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Imm {
    /// No immediate.
    None,
    /// A constant value (`const`).
    Const(ConstVal),
    /// A reduction axis.
    Axis(Axis),
    /// A target dtype (`cast`).
    DType(DType),
    /// A symbolic dim (`dim`).
    Dim(Dim),
    /// A target shape (`reshape`).
    Shape(Shape),
}

/// The kind of immediate an op takes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ImmKind {
    /// None.
    None,
    /// [`Imm::Const`].
    Const,
    /// [`Imm::Axis`].
    Axis,
    /// [`Imm::DType`].
    DType,
    /// [`Imm::Dim`].
    Dim,
    /// [`Imm::Shape`].
    Shape,
}

/// How an op computes, which decides its type rule and how the interpreter runs it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Class {
    /// `const`, `dim`: no operands.
    Leaf,
    /// Elementwise, one operand, result of the operand's type.
    Unary,
    /// Elementwise, two operands of one dtype, broadcast.
    Binary,
    /// Elementwise comparison, broadcast, bool result.
    Compare,
    /// `select c, a, b`.
    Select,
    /// `cast<dtype> x`.
    Cast,
    /// `ones_like x` / `zeros_like x`: f32 of x's shape.
    Like,
    /// Reduction over an axis or all elements.
    Reduce,
    /// Everything with its own rule.
    Special,
}

/// Every op of the IR.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum Opcode {
    Const,
    Dim,
    Neg,
    Abs,
    Sqrt,
    Exp,
    Log,
    Sin,
    Cos,
    Tan,
    Asin,
    Acos,
    Atan,
    Tanh,
    Sigmoid,
    Relu,
    Floor,
    Ceil,
    Round,
    Sign,
    Recip,
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Max,
    Min,
    Rem,
    Hypot,
    ClampMin,
    ClampMax,
    Gt,
    Ge,
    Eq,
    Select,
    Cast,
    OnesLike,
    ZerosLike,
    Sum,
    Mean,
    RMax,
    RMin,
    Std,
    AnyNonzero,
    Matmul,
    Transpose,
    Softmax,
    Reshape,
    Expand,
    BroadcastLike,
    SumTo,
    Count,
    MaxMask,
    MinMask,
}

/// Derivative rule: the adjoints of the operands given the adjoint of the result.
/// `None` for an operand means no gradient flows into it.
pub type DerivFn = fn(&mut GradBuilder, &DerivCtx) -> Result<[Option<Value>; 3], IrError>;

/// One row of the op table.
pub struct OpInfo {
    /// The op.
    pub op: Opcode,
    /// Text-form name.
    pub name: &'static str,
    /// Number of value operands.
    pub arity: usize,
    /// Immediate kind.
    pub imm: ImmKind,
    /// Computation class.
    pub class: Class,
    /// Operand dtypes accepted (of the first operand; binary ops need equal dtypes).
    pub dtypes: &'static [DType],
    /// Whether operand order does not matter (bit-exactly, gradient included).
    pub commutative: bool,
    /// Elementwise kernel over the interpreter's `f64` storage; the interpreter rounds the
    /// result to the result dtype. `None` for non-elementwise ops.
    pub kernel: Option<fn(&[f64]) -> f64>,
    /// Derivative; `None` when no gradient flows through the op.
    pub deriv: Option<DerivFn>,
}

const F: &[DType] = &[DType::F32];
const FI: &[DType] = &[DType::F32, DType::I64];
const FIB: &[DType] = &[DType::F32, DType::I64, DType::Bool];

macro_rules! row {
    ($op:ident, $name:literal, $arity:literal, $imm:ident, $class:ident, $dt:expr, $comm:literal, $kernel:expr, $deriv:expr) => {
        OpInfo {
            op: Opcode::$op,
            name: $name,
            arity: $arity,
            imm: ImmKind::$imm,
            class: Class::$class,
            dtypes: $dt,
            commutative: $comm,
            kernel: $kernel,
            deriv: $deriv,
        }
    };
}

fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        x * 0.0 // keeps NaN as NaN and zero as zero
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// torch.remainder: the result takes the sign of the divisor.
fn remainder(a: f64, b: f64) -> f64 {
    let m = a % b;
    if m != 0.0 && ((b < 0.0) != (m < 0.0)) {
        m + b
    } else {
        m
    }
}

/// torch.maximum / torch.minimum propagate NaN from either side.
fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}
fn nan_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}
/// torch.clamp propagates NaN from the clamped value.
fn clamp_min(x: f64, lo: f64) -> f64 {
    if x.is_nan() {
        x
    } else if x < lo {
        lo
    } else {
        x
    }
}
fn clamp_max(x: f64, hi: f64) -> f64 {
    if x.is_nan() {
        x
    } else if x > hi {
        hi
    } else {
        x
    }
}
fn b2f(b: bool) -> f64 {
    b as u8 as f64
}

/// The op table, indexed by `Opcode as usize`.
pub static OPS: &[OpInfo] = &[
    row!(Const, "const", 0, Const, Leaf, FIB, false, None, None),
    row!(Dim, "dim", 0, Dim, Leaf, FIB, false, None, None),
    row!(
        Neg,
        "neg",
        1,
        None,
        Unary,
        FI,
        false,
        Some(|a| -a[0]),
        Some(|b, c| Ok([Some(b.neg(c.g)?), None, None]))
    ),
    row!(
        Abs,
        "abs",
        1,
        None,
        Unary,
        FI,
        false,
        Some(|a| a[0].abs()),
        Some(|b, c| {
            let s = b.unary(Opcode::Sign, c.args[0])?;
            Ok([Some(b.mul(c.g, s)?), None, None])
        })
    ),
    row!(
        Sqrt,
        "sqrt",
        1,
        None,
        Unary,
        F,
        false,
        Some(|a| a[0].sqrt()),
        Some(|b, c| {
            let two = b.constf(2.0)?;
            let d = b.mul(two, c.result)?;
            Ok([Some(b.div(c.g, d)?), None, None])
        })
    ),
    row!(
        Exp,
        "exp",
        1,
        None,
        Unary,
        F,
        false,
        Some(|a| a[0].exp()),
        Some(|b, c| Ok([Some(b.mul(c.g, c.result)?), None, None]))
    ),
    row!(
        Log,
        "log",
        1,
        None,
        Unary,
        F,
        false,
        Some(|a| a[0].ln()),
        Some(|b, c| Ok([Some(b.div(c.g, c.args[0])?), None, None]))
    ),
    row!(
        Sin,
        "sin",
        1,
        None,
        Unary,
        F,
        false,
        Some(|a| a[0].sin()),
        Some(|b, c| {
            let d = b.unary(Opcode::Cos, c.args[0])?;
            Ok([Some(b.mul(c.g, d)?), None, None])
        })
    ),
    row!(
        Cos,
        "cos",
        1,
        None,
        Unary,
        F,
        false,
        Some(|a| a[0].cos()),
        Some(|b, c| {
            let s = b.unary(Opcode::Sin, c.args[0])?;
            let d = b.neg(s)?;
            Ok([Some(b.mul(c.g, d)?), None, None])
        })
    ),
    row!(
        Tan,
        "tan",
        1,
        None,
        Unary,
        F,
        false,
        Some(|a| a[0].tan()),
        Some(|b, c| {
            let r2 = b.mul(c.result, c.result)?;
            let one = b.constf(1.0)?;
            let d = b.add(one, r2)?;
            Ok([Some(b.mul(c.g, d)?), None, None])
        })
    ),
    row!(
        Asin,
        "asin",
        1,
        None,
        Unary,
        F,
        false,
        Some(|a| a[0].asin()),
        Some(|b, c| {
            let d = b.one_minus_sq_sqrt(c.args[0])?;
            Ok([Some(b.div(c.g, d)?), None, None])
        })
    ),
    row!(
        Acos,
        "acos",
        1,
        None,
        Unary,
        F,
        false,
        Some(|a| a[0].acos()),
        Some(|b, c| {
            let d = b.one_minus_sq_sqrt(c.args[0])?;
            let q = b.div(c.g, d)?;
            Ok([Some(b.neg(q)?), None, None])
        })
    ),
    row!(
        Atan,
        "atan",
        1,
        None,
        Unary,
        F,
        false,
        Some(|a| a[0].atan()),
        Some(|b, c| {
            let x2 = b.mul(c.args[0], c.args[0])?;
            let one = b.constf(1.0)?;
            let d = b.add(x2, one)?;
            Ok([Some(b.div(c.g, d)?), None, None])
        })
    ),
    row!(
        Tanh,
        "tanh",
        1,
        None,
        Unary,
        F,
        false,
        Some(|a| a[0].tanh()),
        Some(|b, c| {
            let r2 = b.mul(c.result, c.result)?;
            let one = b.constf(1.0)?;
            let d = b.sub(one, r2)?;
            Ok([Some(b.mul(c.g, d)?), None, None])
        })
    ),
    row!(
        Sigmoid,
        "sigmoid",
        1,
        None,
        Unary,
        F,
        false,
        Some(|a| sigmoid(a[0])),
        Some(|b, c| {
            let one = b.constf(1.0)?;
            let om = b.sub(one, c.result)?;
            let t = b.mul(c.g, om)?;
            Ok([Some(b.mul(t, c.result)?), None, None])
        })
    ),
    row!(
        Relu,
        "relu",
        1,
        None,
        Unary,
        FI,
        false,
        Some(|a| if a[0] > 0.0 || a[0].is_nan() {
            a[0]
        } else {
            0.0
        }),
        Some(|b, c| {
            let zero = b.constf(0.0)?;
            let m = b.cmp(Opcode::Gt, c.result, zero)?;
            Ok([Some(b.select(m, c.g, zero)?), None, None])
        })
    ),
    row!(
        Floor,
        "floor",
        1,
        None,
        Unary,
        F,
        false,
        Some(|a| a[0].floor()),
        Some(|b, c| Ok([Some(b.zeros_like(c.args[0])?), None, None]))
    ),
    row!(
        Ceil,
        "ceil",
        1,
        None,
        Unary,
        F,
        false,
        Some(|a| a[0].ceil()),
        Some(|b, c| Ok([Some(b.zeros_like(c.args[0])?), None, None]))
    ),
    row!(
        Round,
        "round",
        1,
        None,
        Unary,
        F,
        false,
        Some(|a| a[0].round_ties_even()),
        Some(|b, c| Ok([Some(b.zeros_like(c.args[0])?), None, None]))
    ),
    row!(
        Sign,
        "sign",
        1,
        None,
        Unary,
        FI,
        false,
        Some(|a| sign(a[0])),
        Some(|b, c| Ok([Some(b.zeros_like(c.args[0])?), None, None]))
    ),
    row!(
        Recip,
        "recip",
        1,
        None,
        Unary,
        F,
        false,
        Some(|a| 1.0 / a[0]),
        Some(|b, c| {
            let r2 = b.mul(c.result, c.result)?;
            let ng = b.neg(c.g)?;
            Ok([Some(b.mul(ng, r2)?), None, None])
        })
    ),
    row!(
        Add,
        "add",
        2,
        None,
        Binary,
        FIB,
        true,
        Some(|a| a[0] + a[1]),
        Some(|_, c| Ok([Some(c.g), Some(c.g), None]))
    ),
    row!(
        Sub,
        "sub",
        2,
        None,
        Binary,
        FI,
        false,
        Some(|a| a[0] - a[1]),
        Some(|b, c| Ok([Some(c.g), Some(b.neg(c.g)?), None]))
    ),
    row!(
        Mul,
        "mul",
        2,
        None,
        Binary,
        FIB,
        true,
        Some(|a| a[0] * a[1]),
        Some(|b, c| {
            Ok([
                Some(b.mul(c.g, c.args[1])?),
                Some(b.mul(c.g, c.args[0])?),
                None,
            ])
        })
    ),
    row!(
        Div,
        "div",
        2,
        None,
        Binary,
        F,
        false,
        Some(|a| a[0] / a[1]),
        Some(|b, c| {
            let (x, y) = (c.args[0], c.args[1]);
            let dx = b.div(c.g, y)?;
            let ng = b.neg(c.g)?;
            let t = b.mul(ng, x)?;
            let y2 = b.mul(y, y)?;
            Ok([Some(dx), Some(b.div(t, y2)?), None])
        })
    ),
    row!(
        Pow,
        "pow",
        2,
        None,
        Binary,
        FI,
        false,
        Some(|a| a[0].powf(a[1])),
        Some(|b, c| b.pow_deriv(c))
    ),
    row!(
        Max,
        "max",
        2,
        None,
        Binary,
        FIB,
        false,
        Some(|a| nan_max(a[0], a[1])),
        Some(|b, c| b.minmax_deriv(c, true))
    ),
    row!(
        Min,
        "min",
        2,
        None,
        Binary,
        FIB,
        false,
        Some(|a| nan_min(a[0], a[1])),
        Some(|b, c| b.minmax_deriv(c, false))
    ),
    row!(
        Rem,
        "rem",
        2,
        None,
        Binary,
        F,
        false,
        Some(|a| remainder(a[0], a[1])),
        Some(|b, c| {
            // d/dy = -floor_divide(x, y), exactly: (x - rem(x, y)) / y is an integer up to
            // rounding, so round it; y == 0 keeps floor(x / y) = ±inf as PyTorch does.
            let (x, y) = (c.args[0], c.args[1]);
            let d = b.sub(x, c.result)?;
            let q = b.div(d, y)?;
            let exact = b.unary(Opcode::Round, q)?;
            let raw = b.div(x, y)?;
            let inf = b.unary(Opcode::Floor, raw)?;
            let zero = b.constf(0.0)?;
            let y0 = b.cmp(Opcode::Eq, y, zero)?;
            let f = b.select(y0, inf, exact)?;
            let ng = b.neg(c.g)?;
            Ok([Some(c.g), Some(b.mul(ng, f)?), None])
        })
    ),
    row!(
        Hypot,
        "hypot",
        2,
        None,
        Binary,
        F,
        true,
        Some(|a| a[0].hypot(a[1])),
        Some(|b, c| {
            let gx = b.mul(c.g, c.args[0])?;
            let gy = b.mul(c.g, c.args[1])?;
            Ok([Some(b.div(gx, c.result)?), Some(b.div(gy, c.result)?), None])
        })
    ),
    row!(
        ClampMin,
        "clamp_min",
        2,
        None,
        Binary,
        F,
        false,
        Some(|a| clamp_min(a[0], a[1])),
        Some(|b, c| {
            // A Python-number bound: the gradient passes only strictly inside (PyTorch 2.x).
            let zero = b.constf(0.0)?;
            let keep = b.cmp(Opcode::Gt, c.args[0], c.args[1])?;
            Ok([Some(b.select(keep, c.g, zero)?), None, None])
        })
    ),
    row!(
        ClampMax,
        "clamp_max",
        2,
        None,
        Binary,
        F,
        false,
        Some(|a| clamp_max(a[0], a[1])),
        Some(|b, c| {
            let zero = b.constf(0.0)?;
            let keep = b.cmp(Opcode::Gt, c.args[1], c.args[0])?;
            Ok([Some(b.select(keep, c.g, zero)?), None, None])
        })
    ),
    row!(
        Gt,
        "gt",
        2,
        None,
        Compare,
        FIB,
        false,
        Some(|a| b2f(a[0] > a[1])),
        None
    ),
    row!(
        Ge,
        "ge",
        2,
        None,
        Compare,
        FIB,
        false,
        Some(|a| b2f(a[0] >= a[1])),
        None
    ),
    row!(
        Eq,
        "eq",
        2,
        None,
        Compare,
        FIB,
        true,
        Some(|a| b2f(a[0] == a[1])),
        None
    ),
    row!(
        Select,
        "select",
        3,
        None,
        Select,
        FIB,
        false,
        Some(|a| if a[0] != 0.0 { a[1] } else { a[2] }),
        Some(|b, c| {
            let zero = b.constf(0.0)?;
            Ok([
                None,
                Some(b.select(c.args[0], c.g, zero)?),
                Some(b.select(c.args[0], zero, c.g)?),
            ])
        })
    ),
    row!(
        Cast,
        "cast",
        1,
        DType,
        Cast,
        FIB,
        false,
        Some(|a| a[0]),
        Some(|_, c| Ok([Some(c.g), None, None]))
    ),
    row!(
        OnesLike,
        "ones_like",
        1,
        None,
        Like,
        FIB,
        false,
        Some(|_| 1.0),
        None
    ),
    row!(
        ZerosLike,
        "zeros_like",
        1,
        None,
        Like,
        FIB,
        false,
        Some(|_| 0.0),
        None
    ),
    row!(
        Sum,
        "sum",
        1,
        Axis,
        Reduce,
        FI,
        false,
        None,
        Some(|b, c| Ok([Some(b.expand(c.axis(), c.g, c.args[0])?), None, None]))
    ),
    row!(
        Mean,
        "mean",
        1,
        Axis,
        Reduce,
        F,
        false,
        None,
        Some(|b, c| {
            let e = b.expand(c.axis(), c.g, c.args[0])?;
            let n = b.count(c.axis(), c.args[0])?;
            Ok([Some(b.div(e, n)?), None, None])
        })
    ),
    row!(
        RMax,
        "reduce_max",
        1,
        Axis,
        Reduce,
        FIB,
        false,
        None,
        Some(|b, c| b.select_reduce_deriv(c, Opcode::MaxMask))
    ),
    row!(
        RMin,
        "reduce_min",
        1,
        Axis,
        Reduce,
        FIB,
        false,
        None,
        Some(|b, c| b.select_reduce_deriv(c, Opcode::MinMask))
    ),
    row!(
        Std,
        "std",
        1,
        Axis,
        Reduce,
        F,
        false,
        None,
        Some(|b, c| b.std_deriv(c))
    ),
    row!(
        AnyNonzero,
        "any_nonzero",
        1,
        None,
        Special,
        FIB,
        false,
        None,
        None
    ),
    row!(
        Matmul,
        "matmul",
        2,
        None,
        Special,
        FI,
        false,
        None,
        Some(|b, c| b.matmul_deriv(c))
    ),
    row!(
        Transpose,
        "transpose",
        1,
        None,
        Special,
        FIB,
        false,
        None,
        Some(|b, c| Ok([Some(b.transpose(c.g)?), None, None]))
    ),
    row!(
        Softmax,
        "softmax",
        1,
        None,
        Special,
        F,
        false,
        None,
        Some(|b, c| b.softmax_deriv(c))
    ),
    row!(
        Reshape,
        "reshape",
        1,
        Shape,
        Special,
        FIB,
        false,
        None,
        Some(|b, c| Ok([Some(b.reshape_like(c.g, c.args[0])?), None, None]))
    ),
    row!(
        Expand,
        "expand",
        2,
        Axis,
        Special,
        FIB,
        false,
        None,
        Some(|b, c| b.expand_deriv(c))
    ),
    row!(
        BroadcastLike,
        "broadcast_like",
        2,
        None,
        Special,
        FIB,
        false,
        None,
        Some(|b, c| Ok([Some(b.sum_to(c.g, c.args[0])?), None, None]))
    ),
    row!(
        SumTo,
        "sum_to",
        2,
        None,
        Special,
        FI,
        false,
        None,
        Some(|b, c| Ok([Some(b.broadcast_like(c.g, c.args[0])?), None, None]))
    ),
    row!(Count, "count", 1, Axis, Special, FIB, false, None, None),
    row!(
        MaxMask, "max_mask", 1, Axis, Special, FIB, false, None, None
    ),
    row!(
        MinMask, "min_mask", 1, Axis, Special, FIB, false, None, None
    ),
];

impl Opcode {
    /// This op's row of the table.
    pub fn info(self) -> &'static OpInfo {
        &OPS[self as usize]
    }
    /// Text-form name.
    pub fn name(self) -> &'static str {
        self.info().name
    }
    /// Look an op up by its text-form name.
    pub fn from_name(name: &str) -> Option<Opcode> {
        OPS.iter().find(|o| o.name == name).map(|o| o.op)
    }
    /// Whether this op's operands may be reordered.
    pub fn is_commutative(self) -> bool {
        self.info().commutative
    }
}

fn check_dtype(op: Opcode, t: &Type) -> Result<(), String> {
    if op.info().dtypes.contains(&t.dtype) {
        Ok(())
    } else {
        Err(format!(
            "`{}` does not accept {} operands",
            op.name(),
            t.dtype
        ))
    }
}

fn axis_ok(axis: Axis, t: &Type, op: Opcode) -> Result<(), String> {
    match axis {
        Axis::All => Ok(()),
        Axis::Index(i) if (i as usize) < t.rank() => Ok(()),
        Axis::Index(i) => Err(format!("`{}` axis {i} is out of range for {t}", op.name())),
    }
}

fn remove_axis(shape: &[Dim], axis: Axis) -> Shape {
    match axis {
        Axis::All => Vec::new(),
        Axis::Index(i) => {
            let mut s = shape.to_vec();
            s.remove(i as usize);
            s
        }
    }
}

fn bcast(op: Opcode, ts: &[&Type]) -> Result<Shape, String> {
    let mut shape: Shape = Vec::new();
    for t in ts {
        shape = broadcast(&shape, &t.shape).ok_or_else(|| {
            format!(
                "`{}` operands do not broadcast: {}",
                op.name(),
                join_types(ts)
            )
        })?;
    }
    Ok(shape)
}

fn join_types(ts: &[&Type]) -> String {
    ts.iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Infer the result type of `op` applied to operands of types `args` with immediate `imm`.
/// This is the type rule used by the builder, the parser and the verifier.
pub fn infer_type(op: Opcode, imm: &Imm, args: &[&Type]) -> Result<Type, String> {
    let info = op.info();
    if args.len() != info.arity {
        return Err(format!(
            "`{}` takes {} operands, got {}",
            op.name(),
            info.arity,
            args.len()
        ));
    }
    let imm_kind = match imm {
        Imm::None => ImmKind::None,
        Imm::Const(_) => ImmKind::Const,
        Imm::Axis(_) => ImmKind::Axis,
        Imm::DType(_) => ImmKind::DType,
        Imm::Dim(_) => ImmKind::Dim,
        Imm::Shape(_) => ImmKind::Shape,
    };
    if imm_kind != info.imm {
        return Err(format!(
            "`{}` takes a {:?} immediate, got {:?}",
            op.name(),
            info.imm,
            imm_kind
        ));
    }
    match info.class {
        Class::Leaf => match imm {
            Imm::Const(c) => Ok(Type::scalar(c.dtype())),
            Imm::Dim(Dim::Fixed(_)) => Err("`dim` takes B or C".into()),
            _ => Ok(Type::scalar(DType::I64)),
        },
        Class::Unary => {
            check_dtype(op, args[0])?;
            Ok(args[0].clone())
        }
        Class::Binary | Class::Compare => {
            check_dtype(op, args[0])?;
            if args[0].dtype != args[1].dtype {
                return Err(format!(
                    "`{}` operands differ in dtype: {}",
                    op.name(),
                    join_types(args)
                ));
            }
            let shape = bcast(op, args)?;
            let dtype = if info.class == Class::Compare {
                DType::Bool
            } else {
                args[0].dtype
            };
            Ok(Type::new(dtype, shape))
        }
        Class::Select => {
            if args[0].dtype != DType::Bool {
                return Err(format!("`select` condition must be bool, got {}", args[0]));
            }
            if args[1].dtype != args[2].dtype {
                return Err(format!(
                    "`select` arms differ in dtype: {}",
                    join_types(args)
                ));
            }
            Ok(Type::new(args[1].dtype, bcast(op, args)?))
        }
        Class::Cast => match imm {
            Imm::DType(d) => Ok(args[0].with_dtype(*d)),
            _ => unreachable!("immediate kind checked above"),
        },
        Class::Like => Ok(args[0].with_dtype(DType::F32)),
        Class::Reduce => {
            check_dtype(op, args[0])?;
            let Imm::Axis(axis) = imm else {
                unreachable!("immediate kind checked above")
            };
            if args[0].is_scalar() && *axis != Axis::All {
                return Err(format!("`{}` over an axis of a scalar", op.name()));
            }
            axis_ok(*axis, args[0], op)?;
            Ok(Type::new(args[0].dtype, remove_axis(&args[0].shape, *axis)))
        }
        Class::Special => infer_special(op, imm, args),
    }
}

fn infer_special(op: Opcode, imm: &Imm, args: &[&Type]) -> Result<Type, String> {
    check_dtype(op, args[0])?;
    match op {
        Opcode::AnyNonzero => Ok(Type::scalar(DType::Bool)),
        Opcode::Matmul => {
            let (a, b) = (args[0], args[1]);
            if b.dtype != a.dtype {
                return Err(format!("`matmul` operands differ in dtype: {a}, {b}"));
            }
            let shape = match (a.shape.as_slice(), b.shape.as_slice()) {
                ([m, k], [k2, n]) if k == k2 => vec![*m, *n],
                ([m, k], [k2]) if k == k2 => vec![*m],
                ([k], [k2, n]) if k == k2 => vec![*n],
                ([k], [k2]) if k == k2 => vec![],
                _ => return Err(format!("`matmul` shapes do not fit: {a}, {b}")),
            };
            Ok(Type::new(a.dtype, shape))
        }
        Opcode::Transpose => match args[0].shape.as_slice() {
            [m, n] => Ok(Type::new(args[0].dtype, vec![*n, *m])),
            _ => Err(format!(
                "`transpose` needs a rank-2 operand, got {}",
                args[0]
            )),
        },
        Opcode::Softmax => {
            if args[0].is_scalar() {
                return Err("`softmax` of a scalar".into());
            }
            Ok(args[0].clone())
        }
        Opcode::Reshape => {
            let Imm::Shape(s) = imm else {
                unreachable!("immediate kind checked above")
            };
            if numel_signature(s) != numel_signature(&args[0].shape) {
                return Err(format!(
                    "`reshape` of {} to a shape with another element count",
                    args[0]
                ));
            }
            Ok(Type::new(args[0].dtype, s.clone()))
        }
        Opcode::Expand => {
            let Imm::Axis(axis) = imm else {
                unreachable!("immediate kind checked above")
            };
            let like = args[1];
            axis_ok(*axis, like, op)?;
            if *axis == Axis::All && !args[0].is_scalar() {
                return Err(format!("`expand<all>` needs a scalar, got {}", args[0]));
            }
            if remove_axis(&like.shape, *axis) != args[0].shape && *axis != Axis::All {
                return Err(format!("`expand` of {} does not fit {like}", args[0]));
            }
            Ok(like.with_dtype(args[0].dtype))
        }
        Opcode::BroadcastLike => match broadcast(&args[0].shape, &args[1].shape) {
            Some(s) if s == args[1].shape => Ok(args[1].with_dtype(args[0].dtype)),
            _ => Err(format!("`broadcast_like` of {} to {}", args[0], args[1])),
        },
        Opcode::SumTo => match broadcast(&args[1].shape, &args[0].shape) {
            Some(s) if s == args[0].shape => Ok(args[1].with_dtype(args[0].dtype)),
            _ => Err(format!("`sum_to` of {} to {}", args[0], args[1])),
        },
        Opcode::Count => {
            let Imm::Axis(axis) = imm else {
                unreachable!("immediate kind checked above")
            };
            axis_ok(*axis, args[0], op)?;
            Ok(Type::f32())
        }
        Opcode::MaxMask | Opcode::MinMask => {
            let Imm::Axis(axis) = imm else {
                unreachable!("immediate kind checked above")
            };
            axis_ok(*axis, args[0], op)?;
            Ok(args[0].with_dtype(DType::Bool))
        }
        _ => unreachable!("{op:?} is not a special op"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_indexed_by_opcode() {
        for (i, row) in OPS.iter().enumerate() {
            assert_eq!(row.op as usize, i, "row {} is out of place", row.name);
            assert_eq!(Opcode::from_name(row.name), Some(row.op));
        }
    }

    #[test]
    fn elementwise_ops_have_kernels() {
        for row in OPS {
            let elementwise = matches!(
                row.class,
                Class::Unary
                    | Class::Binary
                    | Class::Compare
                    | Class::Select
                    | Class::Cast
                    | Class::Like
            );
            assert_eq!(elementwise, row.kernel.is_some(), "{}", row.name);
        }
    }
}
