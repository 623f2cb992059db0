//! The op declarations: one [`define_ops!`](super::define_ops) entry per op. This is the one
//! place an op is added (docs/ir.md); the kernels the entries name are in `scalar.rs`.

use super::scalar::*;
use super::{Class, ImmKind, OpInfo, define_ops};

define_ops! {
    Const = "const" {
        arity: 0, imm: Const, class: Leaf, dtypes: FIB, commutative: false,
        kernel: None,
        libm: None, torch: None, daml: None,
    }
    Dim = "dim" {
        arity: 0, imm: Dim, class: Leaf, dtypes: FIB, commutative: false,
        kernel: None,
        libm: None, torch: None, daml: None,
    }
    Neg = "neg" {
        arity: 1, imm: None, class: Unary, dtypes: FI, commutative: false,
        kernel: Some(|a| -a[0]),
        libm: None, torch: None, daml: None,
    }
    Abs = "abs" {
        arity: 1, imm: None, class: Unary, dtypes: FI, commutative: false,
        kernel: Some(|a| a[0].abs()),
        libm: None, torch: Some("torch.abs"), daml: Some("abs"),
    }
    Sqrt = "sqrt" {
        arity: 1, imm: None, class: Unary, dtypes: F, commutative: false,
        kernel: Some(|a| a[0].sqrt()),
        libm: None, torch: Some("torch.sqrt"), daml: None,
    }
    Exp = "exp" {
        arity: 1, imm: None, class: Unary, dtypes: F, commutative: false,
        kernel: Some(|a| crate::math::exp64(a[0])),
        libm: Some("ncp_expf"), torch: Some("torch.exp"), daml: None,
    }
    Log = "log" {
        arity: 1, imm: None, class: Unary, dtypes: F, commutative: false,
        kernel: Some(|a| crate::math::ln64(a[0])),
        libm: Some("ncp_logf"), torch: Some("torch.log"), daml: None,
    }
    Sin = "sin" {
        arity: 1, imm: None, class: Unary, dtypes: F, commutative: false,
        kernel: Some(|a| a[0].sin()),
        libm: Some("ncp_sinf"), torch: Some("torch.sin"), daml: Some("sin"),
    }
    Cos = "cos" {
        arity: 1, imm: None, class: Unary, dtypes: F, commutative: false,
        kernel: Some(|a| a[0].cos()),
        libm: Some("ncp_cosf"), torch: Some("torch.cos"), daml: Some("cos"),
    }
    Tan = "tan" {
        arity: 1, imm: None, class: Unary, dtypes: F, commutative: false,
        kernel: Some(|a| a[0].tan()),
        libm: Some("ncp_tanf"), torch: Some("torch.tan"), daml: Some("tan"),
    }
    Asin = "asin" {
        arity: 1, imm: None, class: Unary, dtypes: F, commutative: false,
        kernel: Some(|a| a[0].asin()),
        libm: Some("ncp_asinf"), torch: Some("torch.asin"), daml: Some("arcsin"),
    }
    Acos = "acos" {
        arity: 1, imm: None, class: Unary, dtypes: F, commutative: false,
        kernel: Some(|a| a[0].acos()),
        libm: Some("ncp_acosf"), torch: Some("torch.acos"), daml: Some("arccos"),
    }
    Atan = "atan" {
        arity: 1, imm: None, class: Unary, dtypes: F, commutative: false,
        kernel: Some(|a| a[0].atan()),
        libm: Some("ncp_atanf"), torch: Some("torch.atan"), daml: Some("arctan"),
    }
    Tanh = "tanh" {
        arity: 1, imm: None, class: Unary, dtypes: F, commutative: false,
        kernel: Some(|a| a[0].tanh()),
        libm: Some("ncp_tanhf"), torch: Some("torch.tanh"), daml: Some("tanh"),
    }
    Sigmoid = "sigmoid" {
        arity: 1, imm: None, class: Unary, dtypes: F, commutative: false,
        kernel: Some(|a| sigmoid(a[0])),
        libm: Some("ncp_sigmoidf"), torch: Some("torch.sigmoid"), daml: Some("sigmoid"),
    }
    Relu = "relu" {
        arity: 1, imm: None, class: Unary, dtypes: FI, commutative: false,
        kernel: Some(|a| if a[0] > 0.0 || a[0].is_nan() {
            a[0]
        } else {
            0.0
        }),
        libm: None, torch: Some("torch.relu"), daml: Some("relu"),
    }
    Floor = "floor" {
        arity: 1, imm: None, class: Unary, dtypes: F, commutative: false,
        kernel: Some(|a| a[0].floor()),
        libm: None, torch: Some("torch.floor"), daml: Some("floor"),
    }
    Ceil = "ceil" {
        arity: 1, imm: None, class: Unary, dtypes: F, commutative: false,
        kernel: Some(|a| a[0].ceil()),
        libm: None, torch: Some("torch.ceil"), daml: Some("ceil"),
    }
    Round = "round" {
        arity: 1, imm: None, class: Unary, dtypes: F, commutative: false,
        kernel: Some(|a| a[0].round_ties_even()),
        libm: None, torch: Some("torch.round"), daml: Some("round"),
    }
    Sign = "sign" {
        arity: 1, imm: None, class: Unary, dtypes: FI, commutative: false,
        kernel: Some(|a| sign(a[0])),
        libm: None, torch: Some("torch.sign"), daml: Some("sign"),
    }
    Recip = "recip" {
        arity: 1, imm: None, class: Unary, dtypes: F, commutative: false,
        kernel: Some(|a| 1.0 / a[0]),
        libm: None, torch: Some("torch.reciprocal"), daml: Some("reciprocal"),
    }
    Add = "add" {
        arity: 2, imm: None, class: Binary, dtypes: FIB, commutative: true,
        kernel: Some(|a| a[0] + a[1]),
        libm: None, torch: None, daml: None,
    }
    Sub = "sub" {
        arity: 2, imm: None, class: Binary, dtypes: FI, commutative: false,
        kernel: Some(|a| a[0] - a[1]),
        libm: None, torch: None, daml: None,
    }
    Mul = "mul" {
        arity: 2, imm: None, class: Binary, dtypes: FIB, commutative: true,
        kernel: Some(|a| a[0] * a[1]),
        libm: None, torch: None, daml: None,
    }
    Div = "div" {
        arity: 2, imm: None, class: Binary, dtypes: F, commutative: false,
        kernel: Some(|a| a[0] / a[1]),
        libm: None, torch: None, daml: None,
    }
    Pow = "pow" {
        arity: 2, imm: None, class: Binary, dtypes: FI, commutative: false,
        kernel: Some(|a| a[0].powf(a[1])),
        libm: Some("ncp_powf"), torch: Some("torch.pow"), daml: None,
    }
    Max = "max" {
        arity: 2, imm: None, class: Binary, dtypes: FIB, commutative: false,
        kernel: Some(|a| nan_max(a[0], a[1])),
        libm: None, torch: Some("torch.maximum"), daml: Some("max"),
    }
    Min = "min" {
        arity: 2, imm: None, class: Binary, dtypes: FIB, commutative: false,
        kernel: Some(|a| nan_min(a[0], a[1])),
        libm: None, torch: Some("torch.minimum"), daml: Some("min"),
    }
    Rem = "rem" {
        arity: 2, imm: None, class: Binary, dtypes: F, commutative: false,
        kernel: Some(|a| remainder(a[0], a[1])),
        libm: Some("ncp_remf"), torch: Some("torch.remainder"), daml: Some("mod"),
    }
    Hypot = "hypot" {
        arity: 2, imm: None, class: Binary, dtypes: F, commutative: true,
        kernel: Some(|a| a[0].hypot(a[1])),
        libm: Some("ncp_hypotf"), torch: Some("torch.hypot"), daml: Some("hypot"),
    }
    ClampMin = "clamp_min" {
        arity: 2, imm: None, class: Binary, dtypes: F, commutative: false,
        kernel: Some(|a| clamp_min(a[0], a[1])),
        libm: None, torch: None, daml: None,
    }
    ClampMax = "clamp_max" {
        arity: 2, imm: None, class: Binary, dtypes: F, commutative: false,
        kernel: Some(|a| clamp_max(a[0], a[1])),
        libm: None, torch: None, daml: None,
    }
    Gt = "gt" {
        arity: 2, imm: None, class: Compare, dtypes: FIB, commutative: false,
        kernel: Some(|a| b2f(a[0] > a[1])),
        libm: None, torch: None, daml: None,
    }
    Ge = "ge" {
        arity: 2, imm: None, class: Compare, dtypes: FIB, commutative: false,
        kernel: Some(|a| b2f(a[0] >= a[1])),
        libm: None, torch: None, daml: None,
    }
    Eq = "eq" {
        arity: 2, imm: None, class: Compare, dtypes: FIB, commutative: true,
        kernel: Some(|a| b2f(a[0] == a[1])),
        libm: None, torch: None, daml: None,
    }
    Select = "select" {
        arity: 3, imm: None, class: Select, dtypes: FIB, commutative: false,
        kernel: Some(|a| if a[0] != 0.0 { a[1] } else { a[2] }),
        libm: None, torch: Some("torch.where"), daml: None,
    }
    Cast = "cast" {
        arity: 1, imm: DType, class: Cast, dtypes: FIB, commutative: false,
        kernel: Some(|a| a[0]),
        libm: None, torch: None, daml: None,
    }
    OnesLike = "ones_like" {
        arity: 1, imm: None, class: Like, dtypes: FIB, commutative: false,
        kernel: Some(|_| 1.0),
        libm: None, torch: None, daml: None,
    }
    ZerosLike = "zeros_like" {
        arity: 1, imm: None, class: Like, dtypes: FIB, commutative: false,
        kernel: Some(|_| 0.0),
        libm: None, torch: None, daml: None,
    }
    Sum = "sum" {
        arity: 1, imm: Axis, class: Reduce, dtypes: FI, commutative: false,
        kernel: None,
        libm: None, torch: None, daml: None,
    }
    Mean = "mean" {
        arity: 1, imm: Axis, class: Reduce, dtypes: F, commutative: false,
        kernel: None,
        libm: None, torch: None, daml: None,
    }
    RMax = "reduce_max" {
        arity: 1, imm: Axis, class: Reduce, dtypes: FIB, commutative: false,
        kernel: None,
        libm: None, torch: None, daml: None,
    }
    RMin = "reduce_min" {
        arity: 1, imm: Axis, class: Reduce, dtypes: FIB, commutative: false,
        kernel: None,
        libm: None, torch: None, daml: None,
    }
    Std = "std" {
        arity: 1, imm: Axis, class: Reduce, dtypes: F, commutative: false,
        kernel: None,
        libm: None, torch: None, daml: None,
    }
    AnyNonzero = "any_nonzero" {
        arity: 1, imm: None, class: Special, dtypes: FIB, commutative: false,
        kernel: None,
        libm: None, torch: None, daml: None,
    }
    Matmul = "matmul" {
        arity: 2, imm: None, class: Special, dtypes: FI, commutative: false,
        kernel: None,
        libm: None, torch: None, daml: None,
    }
    Transpose = "transpose" {
        arity: 1, imm: None, class: Special, dtypes: FIB, commutative: false,
        kernel: None,
        libm: None, torch: None, daml: None,
    }
    Softmax = "softmax" {
        arity: 1, imm: None, class: Special, dtypes: F, commutative: false,
        kernel: None,
        libm: None, torch: None, daml: None,
    }
    Reshape = "reshape" {
        arity: 1, imm: Shape, class: Special, dtypes: FIB, commutative: false,
        kernel: None,
        libm: None, torch: None, daml: None,
    }
    Expand = "expand" {
        arity: 2, imm: Axis, class: Special, dtypes: FIB, commutative: false,
        kernel: None,
        libm: None, torch: None, daml: None,
    }
    BroadcastLike = "broadcast_like" {
        arity: 2, imm: None, class: Special, dtypes: FIB, commutative: false,
        kernel: None,
        libm: None, torch: None, daml: None,
    }
    SumTo = "sum_to" {
        arity: 2, imm: None, class: Special, dtypes: FI, commutative: false,
        kernel: None,
        libm: None, torch: None, daml: None,
    }
    Count = "count" {
        arity: 1, imm: Axis, class: Special, dtypes: FIB, commutative: false,
        kernel: None,
        libm: None, torch: None, daml: None,
    }
    MaxMask = "max_mask" {
        arity: 1, imm: Axis, class: Special, dtypes: FIB, commutative: false,
        kernel: None,
        libm: None, torch: None, daml: None,
    }
    MinMask = "min_mask" {
        arity: 1, imm: Axis, class: Special, dtypes: FIB, commutative: false,
        kernel: None,
        libm: None, torch: None, daml: None,
    }
}
