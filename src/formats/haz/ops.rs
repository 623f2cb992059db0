//! IR for the HAZ ops, with torch's semantics.
//!
//! A slot value is a [`Tv`]: an IR value plus the *logical* shape torch would give it. The IR
//! value's shape broadcasts to the logical shape (each of its dims, aligned right, is 1 or the
//! logical dim), so that a zero slot of shape `[128]` is one IR constant and a repeated or
//! broadcast tensor is not copied. Every op is written so that its value and its gradient
//! (through ncpc's gradient pass) are torch's; reductions over a broadcast value account for
//! the copies.

use super::table::{Bin, Un};
use crate::formats::FormatError;
use ncp_ir::{Axis, Block, ConstVal, DType, Dim, Function, Imm, IrError, Opcode, Shape, Value};
mod linear_algebra;

/// A slot value.
#[derive(Clone, Debug)]
pub(super) struct Tv {
    /// The IR value (its shape broadcasts to `shape`).
    pub v: Value,
    /// torch's shape.
    pub shape: Shape,
    /// Whether torch would say `requires_grad` (y_pred and y_true do; zero slots, constants
    /// and `.item()` results do not).
    pub rg: bool,
    /// Whether the IR value depends on y_pred.
    pub dp: bool,
}

/// Why lowering an instruction stopped.
pub(super) enum Stop {
    /// torch raises: the whole evaluation faults.
    Fault(String),
    /// ncpc cannot compile this.
    Err(FormatError),
}

impl From<FormatError> for Stop {
    fn from(e: FormatError) -> Stop {
        Stop::Err(e)
    }
}
impl From<IrError> for Stop {
    fn from(e: IrError) -> Stop {
        Stop::Err(FormatError::Ir(e))
    }
}

pub(super) type R<T> = Result<T, Stop>;

/// The `place` of errors that go away when compiling for concrete dims.
pub(super) const DIMS_PLACE: &str = "shapes";

fn fault<T>(msg: impl Into<String>) -> R<T> {
    Err(Stop::Fault(msg.into()))
}

/// Display a shape the way torch prints sizes.
pub(super) fn show(s: &[Dim]) -> String {
    let d: Vec<String> = s.iter().map(|d| d.to_string()).collect();
    format!("[{}]", d.join(", "))
}

fn is_one(shape: &[Dim]) -> bool {
    shape.iter().all(|d| *d == Dim::Fixed(1))
}

/// The IR function under construction.
pub(super) struct Emit {
    pub f: Function,
    pub b: Block,
    pub pred: Value,
    /// Set when an op's result cannot be represented; it gets a placeholder so that a later
    /// fault (which does not depend on values) is still found.
    pub unsupported: Option<String>,
}

impl Emit {
    pub fn ins(&mut self, op: Opcode, imm: Imm, args: &[Value]) -> R<Value> {
        Ok(self.f.ins(self.b, op, imm, args)?)
    }
    pub(super) fn op1(&mut self, op: Opcode, a: Value) -> R<Value> {
        self.ins(op, Imm::None, &[a])
    }
    pub(super) fn op2(&mut self, op: Opcode, a: Value, b: Value) -> R<Value> {
        self.ins(op, Imm::None, &[a, b])
    }
    pub(super) fn select(&mut self, c: Value, a: Value, b: Value) -> R<Value> {
        self.ins(Opcode::Select, Imm::None, &[c, a, b])
    }
    pub fn c(&mut self, x: f32) -> R<Value> {
        self.ins(Opcode::Const, Imm::Const(ConstVal::F32(x)), &[])
    }
    pub(super) fn all(&mut self, op: Opcode, a: Value) -> R<Value> {
        self.ins(op, Imm::Axis(Axis::All), &[a])
    }
    pub(super) fn axis(&mut self, op: Opcode, i: usize, a: Value) -> R<Value> {
        self.ins(op, Imm::Axis(Axis::Index(i as u32)), &[a])
    }
    pub fn reshape(&mut self, v: Value, shape: Shape) -> R<Value> {
        if self.f.ty(v).shape == shape {
            return Ok(v);
        }
        self.ins(Opcode::Reshape, Imm::Shape(shape), &[v])
    }
    pub fn ir_shape(&self, v: Value) -> Shape {
        self.f.ty(v).shape.clone()
    }
    /// Reshape `v` to `rank` dims by prepending 1s (its rank is at most `rank`).
    fn pad(&mut self, v: Value, rank: usize) -> R<Value> {
        let s = self.ir_shape(v);
        if s.len() >= rank {
            return Ok(v);
        }
        let mut t = vec![Dim::Fixed(1); rank - s.len()];
        t.extend(s);
        self.reshape(v, t)
    }

    /// Whether two dims are equal; an error when that depends on B or C.
    pub fn deq(&self, a: Dim, b: Dim) -> R<bool> {
        match (a, b) {
            _ if a == b => Ok(true),
            (Dim::Fixed(_), Dim::Fixed(_)) => Ok(false),
            (Dim::Fixed(1), _) | (_, Dim::Fixed(1)) => Ok(false),
            (Dim::B | Dim::C, Dim::B | Dim::C) => Ok(false),
            (Dim::Fixed(n), s) | (s, Dim::Fixed(n)) => Err(Stop::Err(FormatError::Haz {
                place: DIMS_PLACE.into(),
                msg: format!(
                    "a slot size {n} meets the input dim {s}, so the result depends on the value of {s}; compile for concrete dims"
                ),
            })),
        }
    }

    /// torch's broadcast of two shapes; `None` when torch raises.
    pub fn bcast(&self, a: &[Dim], b: &[Dim]) -> R<Option<Shape>> {
        let rank = a.len().max(b.len());
        let mut out = Vec::with_capacity(rank);
        for i in 0..rank {
            let da = (i + a.len() >= rank).then(|| a[i + a.len() - rank]);
            let db = (i + b.len() >= rank).then(|| b[i + b.len() - rank]);
            out.push(match (da, db) {
                (Some(x), None) | (None, Some(x)) => x,
                (Some(x), Some(y)) if self.deq(x, y)? => x,
                (Some(Dim::Fixed(1)), Some(y)) => y,
                (Some(x), Some(Dim::Fixed(1))) => x,
                _ => return Ok(None),
            });
        }
        Ok(Some(out))
    }

    /// A dim's size as an f32 scalar (not connected to the inputs).
    fn dim_value(&mut self, d: Dim) -> R<Value> {
        match d {
            Dim::Fixed(n) => self.c(n as f32),
            s => {
                let i = self.ins(Opcode::Dim, Imm::Dim(s), &[])?;
                self.ins(Opcode::Cast, Imm::DType(DType::F32), &[i])
            }
        }
    }

    /// Multiply `v` by the number of copies the broadcast from `ir` to `logical` makes.
    fn times_copies(&mut self, v: Value, logical: &[Dim], ir: &[Dim]) -> R<Value> {
        let off = logical.len().saturating_sub(ir.len());
        let mut out = v;
        for (i, d) in logical.iter().enumerate() {
            let own = if i >= off { ir[i - off] } else { Dim::Fixed(1) };
            if own == Dim::Fixed(1) && *d != Dim::Fixed(1) {
                let k = self.dim_value(*d)?;
                out = self.op2(Opcode::Mul, out, k)?;
            }
        }
        Ok(out)
    }

    /// `|a|` with torch's gradient, which is 0 (not NaN) where `a` is NaN.
    fn abs(&mut self, a: Value) -> R<Value> {
        let ok = self.op2(Opcode::Eq, a, a)?;
        let zero = self.c(0.0)?;
        let clean = self.select(ok, a, zero)?;
        let ab = self.op1(Opcode::Abs, clean)?;
        let nan = self.op2(Opcode::Mul, a, zero)?;
        self.select(ok, ab, nan)
    }

    /// An element-wise unary op.
    pub fn unary(&mut self, u: Un, a: &Tv) -> R<Tv> {
        use Opcode as O;
        let x = a.v;
        let v = match u {
            Un::Abs => self.abs(x)?,
            Un::Recip => self.op1(O::Recip, x)?,
            Un::Sin => self.op1(O::Sin, x)?,
            Un::Cos => self.op1(O::Cos, x)?,
            Un::Tan => self.op1(O::Tan, x)?,
            Un::Asin => self.op1(O::Asin, x)?,
            Un::Acos => self.op1(O::Acos, x)?,
            Un::Atan => self.op1(O::Atan, x)?,
            Un::Sigmoid => {
                let n = self.op1(O::Neg, x)?;
                let e = self.op1(O::Exp, n)?;
                let one = self.c(1.0)?;
                let d = self.op2(O::Add, one, e)?;
                self.op1(O::Recip, d)?
            }
            Un::LeakyRelu => {
                let zero = self.c(0.0)?;
                let pos = self.op2(O::Gt, x, zero)?;
                let slope = self.c(0.01)?;
                let neg = self.op2(O::Mul, x, slope)?;
                self.select(pos, x, neg)?
            }
            Un::Relu => {
                // threshold semantics: 0 where a <= 0; NaN passes value and gradient.
                let zero = self.c(0.0)?;
                let le = self.op2(O::Ge, zero, x)?;
                self.select(le, zero, x)?
            }
            Un::Log => {
                let ab = self.abs(x)?;
                let eps = self.c(1e-10)?;
                let s = self.op2(O::Add, ab, eps)?;
                self.op1(O::Log, s)?
            }
            Un::Sqrt => {
                let ab = self.abs(x)?;
                self.op1(O::Sqrt, ab)?
            }
            Un::Sign => {
                // torch.sign gives +0 for -0 and 0 for NaN.
                let ok = self.op2(O::Eq, x, x)?;
                let s = self.op1(O::Sign, x)?;
                let zero = self.c(0.0)?;
                let s = self.op2(O::Add, s, zero)?;
                self.select(ok, s, zero)?
            }
            Un::Floor => self.op1(O::Floor, x)?,
            Un::Ceil => self.op1(O::Ceil, x)?,
            Un::Round => self.op1(O::Round, x)?,
        };
        Ok(Tv { v, ..a.clone() })
    }

    /// An element-wise binary op with torch broadcasting.
    pub fn binary(&mut self, op: Bin, a: &Tv, b: &Tv) -> R<Tv> {
        let Some(shape) = self.bcast(&a.shape, &b.shape)? else {
            return fault(format!(
                "the shapes {} and {} do not broadcast",
                show(&a.shape),
                show(&b.shape)
            ));
        };
        let ir = match op {
            Bin::Add => Opcode::Add,
            Bin::Sub => Opcode::Sub,
            Bin::Mul => Opcode::Mul,
            Bin::Div => Opcode::Div,
            Bin::Pow => Opcode::Pow,
            Bin::Max => Opcode::Max,
            Bin::Min => Opcode::Min,
            Bin::Rem => Opcode::Rem,
            Bin::Hypot => Opcode::Hypot,
        };
        let v = self.op2(ir, a.v, b.v)?;
        Ok(Tv {
            v,
            shape,
            rg: a.rg || b.rg,
            dp: a.dp || b.dp,
        })
    }

    /// `x - max(x)`, `exp`, divided by the sum, all over every element.
    pub fn softmax_all(&mut self, a: &Tv) -> R<Tv> {
        let m = self.all(Opcode::RMax, a.v)?;
        let z = self.op2(Opcode::Sub, a.v, m)?;
        let e = self.op1(Opcode::Exp, z)?;
        let s = self.all(Opcode::Sum, e)?;
        let irs = self.ir_shape(a.v);
        let s = self.times_copies(s, &a.shape, &irs)?;
        let v = self.op2(Opcode::Div, e, s)?;
        Ok(Tv { v, ..a.clone() })
    }

    /// A reduction over every element (mean, max, min): the copies of a broadcast value change
    /// neither the value nor the gradient.
    pub fn reduce_all(&mut self, op: Opcode, a: &Tv) -> R<Tv> {
        let v = self.all(op, a.v)?;
        Ok(Tv {
            v,
            shape: Vec::new(),
            ..a.clone()
        })
    }

    /// `torch.std(a, dim=0)`, unbiased, with torch's zero gradient where the result is 0.
    pub fn std0(&mut self, a: &Tv) -> R<Tv> {
        let (w, n, rest) = if a.shape.is_empty() {
            (
                self.reshape(a.v, vec![Dim::Fixed(1)])?,
                Dim::Fixed(1),
                Vec::new(),
            )
        } else {
            let w = self.pad(a.v, a.shape.len())?;
            (w, a.shape[0], a.shape[1..].to_vec())
        };
        let ws = self.ir_shape(w);
        let m = self.axis(Opcode::Mean, 0, w)?;
        let mut ms = vec![Dim::Fixed(1)];
        ms.extend_from_slice(&ws[1..]);
        let m = self.reshape(m, ms)?;
        let d = self.op2(Opcode::Sub, w, m)?;
        let d2 = self.op2(Opcode::Mul, d, d)?;
        let ss = self.axis(Opcode::Sum, 0, d2)?;
        let ss = self.times_copies(ss, &[n], &ws[..1])?;
        let nm1 = match n {
            Dim::Fixed(k) => self.c(k as f32 - 1.0)?,
            s => {
                let k = self.dim_value(s)?;
                let one = self.c(1.0)?;
                self.op2(Opcode::Sub, k, one)?
            }
        };
        let var = self.op2(Opcode::Div, ss, nm1)?;
        let zero = self.c(0.0)?;
        let one = self.c(1.0)?;
        let z = self.op2(Opcode::Eq, var, zero)?;
        let safe = self.select(z, one, var)?;
        let s = self.op1(Opcode::Sqrt, safe)?;
        let v = self.select(z, zero, s)?;
        Ok(Tv {
            v,
            shape: rest,
            ..a.clone()
        })
    }

    /// A rank-1 zero tensor of size `d`, built from the shape of y_pred or of `srcs`.
    fn vec_of(&mut self, d: Dim, srcs: &[Value]) -> R<Option<Value>> {
        if d == Dim::Fixed(1) {
            let z = self.c(0.0)?;
            return Ok(Some(self.reshape(z, vec![d])?));
        }
        let mut all = vec![self.pred];
        all.extend_from_slice(srcs);
        for &src in &all {
            let s = self.ir_shape(src);
            if let Some(ax) = s.iter().position(|x| *x == d) {
                let mut z = self.op1(Opcode::ZerosLike, src)?;
                for j in (0..s.len()).rev().filter(|j| *j != ax) {
                    z = self.axis(Opcode::Sum, j, z)?;
                }
                return Ok(Some(z));
            }
        }
        // A fixed size that divides a fixed element count: reshape and sum the rest away.
        let Dim::Fixed(n) = d else {
            return Ok(None);
        };
        for src in all {
            let s = self.ir_shape(src);
            let total = s.iter().try_fold(1u64, |acc, x| match x {
                Dim::Fixed(k) => Some(acc * *k as u64),
                _ => None,
            });
            if let Some(total) = total.filter(|t| *t % n as u64 == 0) {
                let z = self.op1(Opcode::ZerosLike, src)?;
                let rest = Dim::Fixed((total / n as u64) as u32);
                let z = self.reshape(z, vec![d, rest])?;
                return Ok(Some(self.axis(Opcode::Sum, 1, z)?));
            }
        }
        Ok(None)
    }

    /// A zero tensor of `shape` that is not connected to the inputs, for `broadcast_like`;
    /// `None` when no input has one of its dims.
    fn like_of(&mut self, shape: &[Dim], srcs: &[Value]) -> R<Option<Value>> {
        let mut acc = self.c(0.0)?;
        for (i, d) in shape.iter().enumerate() {
            let Some(v) = self.vec_of(*d, srcs)? else {
                return Ok(None);
            };
            let mut s = vec![Dim::Fixed(1); shape.len()];
            s[i] = *d;
            let v = self.reshape(v, s)?;
            acc = self.op2(Opcode::Add, acc, v)?;
        }
        Ok(Some(acc))
    }
}
