//! The derivative of every op, following PyTorch's autograd formulas. The match is
//! exhaustive: a new op does not compile until it says how (or that no) gradient flows.

use super::{DerivCtx, GradBuilder};
use crate::IrError;
use crate::entities::Value;
use crate::op::Opcode;

/// Derivative rule: the adjoints of the operands given the adjoint of the result.
/// `None` for an operand means no gradient flows into it.
pub type DerivFn = fn(&mut GradBuilder, &DerivCtx) -> Result<[Option<Value>; 3], IrError>;

/// The derivative rule of `op`; `None` when no gradient flows through the op.
pub fn rule(op: Opcode) -> Option<DerivFn> {
    use Opcode as O;
    match op {
        O::Const => None,
        O::Dim => None,
        O::Neg => Some(|b, c| Ok([Some(b.neg(c.g)?), None, None])),
        O::Abs => Some(|b, c| {
            let s = b.unary(Opcode::Sign, c.args[0])?;
            Ok([Some(b.mul(c.g, s)?), None, None])
        }),
        O::Sqrt => Some(|b, c| {
            let two = b.constf(2.0)?;
            let d = b.mul(two, c.result)?;
            Ok([Some(b.div(c.g, d)?), None, None])
        }),
        O::Exp => Some(|b, c| Ok([Some(b.mul(c.g, c.result)?), None, None])),
        O::Log => Some(|b, c| Ok([Some(b.div(c.g, c.args[0])?), None, None])),
        O::Sin => Some(|b, c| {
            let d = b.unary(Opcode::Cos, c.args[0])?;
            Ok([Some(b.mul(c.g, d)?), None, None])
        }),
        O::Cos => Some(|b, c| {
            let s = b.unary(Opcode::Sin, c.args[0])?;
            let d = b.neg(s)?;
            Ok([Some(b.mul(c.g, d)?), None, None])
        }),
        O::Tan => Some(|b, c| {
            let r2 = b.mul(c.result, c.result)?;
            let one = b.constf(1.0)?;
            let d = b.add(one, r2)?;
            Ok([Some(b.mul(c.g, d)?), None, None])
        }),
        O::Asin => Some(|b, c| {
            let d = b.one_minus_sq_sqrt(c.args[0])?;
            Ok([Some(b.div(c.g, d)?), None, None])
        }),
        O::Acos => Some(|b, c| {
            let d = b.one_minus_sq_sqrt(c.args[0])?;
            let q = b.div(c.g, d)?;
            Ok([Some(b.neg(q)?), None, None])
        }),
        O::Atan => Some(|b, c| {
            let x2 = b.mul(c.args[0], c.args[0])?;
            let one = b.constf(1.0)?;
            let d = b.add(x2, one)?;
            Ok([Some(b.div(c.g, d)?), None, None])
        }),
        O::Tanh => Some(|b, c| {
            let r2 = b.mul(c.result, c.result)?;
            let one = b.constf(1.0)?;
            let d = b.sub(one, r2)?;
            Ok([Some(b.mul(c.g, d)?), None, None])
        }),
        O::Sigmoid => Some(|b, c| {
            let one = b.constf(1.0)?;
            let om = b.sub(one, c.result)?;
            let t = b.mul(c.g, om)?;
            Ok([Some(b.mul(t, c.result)?), None, None])
        }),
        O::Relu => Some(|b, c| {
            let zero = b.constf(0.0)?;
            let m = b.cmp(Opcode::Gt, c.result, zero)?;
            Ok([Some(b.select(m, c.g, zero)?), None, None])
        }),
        O::Floor => Some(|b, c| Ok([Some(b.zeros_like(c.args[0])?), None, None])),
        O::Ceil => Some(|b, c| Ok([Some(b.zeros_like(c.args[0])?), None, None])),
        O::Round => Some(|b, c| Ok([Some(b.zeros_like(c.args[0])?), None, None])),
        O::Sign => Some(|b, c| Ok([Some(b.zeros_like(c.args[0])?), None, None])),
        O::Recip => Some(|b, c| {
            let r2 = b.mul(c.result, c.result)?;
            let ng = b.neg(c.g)?;
            Ok([Some(b.mul(ng, r2)?), None, None])
        }),
        O::Add => Some(|_, c| Ok([Some(c.g), Some(c.g), None])),
        O::Sub => Some(|b, c| Ok([Some(c.g), Some(b.neg(c.g)?), None])),
        O::Mul => Some(|b, c| {
            Ok([
                Some(b.mul(c.g, c.args[1])?),
                Some(b.mul(c.g, c.args[0])?),
                None,
            ])
        }),
        O::Div => Some(|b, c| {
            let (x, y) = (c.args[0], c.args[1]);
            let dx = b.div(c.g, y)?;
            let ng = b.neg(c.g)?;
            let t = b.mul(ng, x)?;
            let y2 = b.mul(y, y)?;
            Ok([Some(dx), Some(b.div(t, y2)?), None])
        }),
        O::Pow => Some(|b, c| b.pow_deriv(c)),
        O::Max => Some(|b, c| b.minmax_deriv(c, true)),
        O::Min => Some(|b, c| b.minmax_deriv(c, false)),
        O::Rem => Some(|b, c| {
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
        }),
        O::Hypot => Some(|b, c| {
            let gx = b.mul(c.g, c.args[0])?;
            let gy = b.mul(c.g, c.args[1])?;
            Ok([Some(b.div(gx, c.result)?), Some(b.div(gy, c.result)?), None])
        }),
        O::ClampMin => Some(|b, c| {
            // A Python-number bound: the gradient passes only strictly inside (PyTorch 2.x).
            let zero = b.constf(0.0)?;
            let keep = b.cmp(Opcode::Gt, c.args[0], c.args[1])?;
            Ok([Some(b.select(keep, c.g, zero)?), None, None])
        }),
        O::ClampMax => Some(|b, c| {
            let zero = b.constf(0.0)?;
            let keep = b.cmp(Opcode::Gt, c.args[1], c.args[0])?;
            Ok([Some(b.select(keep, c.g, zero)?), None, None])
        }),
        O::Gt => None,
        O::Ge => None,
        O::Eq => None,
        O::Select => Some(|b, c| {
            let zero = b.constf(0.0)?;
            Ok([
                None,
                Some(b.select(c.args[0], c.g, zero)?),
                Some(b.select(c.args[0], zero, c.g)?),
            ])
        }),
        O::Cast => Some(|_, c| Ok([Some(c.g), None, None])),
        O::OnesLike => None,
        O::ZerosLike => None,
        O::Sum => Some(|b, c| Ok([Some(b.expand(c.axis(), c.g, c.args[0])?), None, None])),
        O::Mean => Some(|b, c| {
            let e = b.expand(c.axis(), c.g, c.args[0])?;
            let n = b.count(c.axis(), c.args[0])?;
            Ok([Some(b.div(e, n)?), None, None])
        }),
        O::RMax => Some(|b, c| b.select_reduce_deriv(c, Opcode::MaxMask)),
        O::RMin => Some(|b, c| b.select_reduce_deriv(c, Opcode::MinMask)),
        O::Std => Some(|b, c| b.std_deriv(c)),
        O::AnyNonzero => None,
        O::Matmul => Some(|b, c| b.matmul_deriv(c)),
        O::Transpose => Some(|b, c| Ok([Some(b.transpose(c.g)?), None, None])),
        O::Softmax => Some(|b, c| b.softmax_deriv(c)),
        O::Reshape => Some(|b, c| Ok([Some(b.reshape_like(c.g, c.args[0])?), None, None])),
        O::Expand => Some(|b, c| b.expand_deriv(c)),
        O::BroadcastLike => Some(|b, c| Ok([Some(b.sum_to(c.g, c.args[0])?), None, None])),
        O::SumTo => Some(|b, c| Ok([Some(b.broadcast_like(c.g, c.args[0])?), None, None])),
        O::Count => None,
        O::MaxMask => None,
        O::MinMask => None,
    }
}
