//! Reverse-mode differentiation of the IR.
//!
//! [`gradient`] takes a straight-line loss function `(y_pred, y_true) -> f32` and builds the
//! gradient IR: a function `(y_pred, y_true) -> (f32, f32[B,C])` that computes the loss and
//! `d loss / d y_pred`. Each op's derivative comes from its rule in [`rules`] and
//! follows PyTorch's autograd formulas (ties of `max`/`min` split the gradient in halves,
//! `max(dim)` sends it to the first maximum, `clamp` passes it at the bounds, ...), so the
//! gradient means what the public systems' `loss.backward()` computes.
//!
//! A function with control flow is differentiated along the path one run took: see
//! [`super::trace::specialize`].

use crate::IrError;
use crate::entities::Value;
use crate::function::{Function, Terminator};
use crate::op::{Axis, ConstVal, Imm, Opcode};
use crate::types::{DType, Type};
use std::collections::{HashMap, HashSet};

mod rules;
pub use rules::{DerivFn, rule};

/// What a derivative rule sees.
pub struct DerivCtx {
    /// The instruction's operands.
    pub args: Vec<Value>,
    /// Its result.
    pub result: Value,
    /// The adjoint of the result (d loss / d result).
    pub g: Value,
    /// Its immediate.
    pub imm: Imm,
}

impl DerivCtx {
    /// The reduction axis of the instruction.
    pub fn axis(&self) -> Axis {
        match self.imm {
            Imm::Axis(a) => a,
            _ => Axis::All,
        }
    }
}

/// Appends gradient instructions to the block being built.
pub struct GradBuilder<'a> {
    f: &'a mut Function,
    block: crate::Block,
}

type R = Result<Value, IrError>;

impl GradBuilder<'_> {
    fn ins(&mut self, op: Opcode, imm: Imm, args: &[Value]) -> R {
        self.f
            .ins(self.block, op, imm, args)
            .map_err(|e| IrError::Grad(format!("{e}")))
    }
    /// The type of `v`.
    pub fn ty(&self, v: Value) -> &Type {
        self.f.ty(v)
    }
    /// An f32 scalar constant.
    pub fn constf(&mut self, x: f32) -> R {
        self.ins(Opcode::Const, Imm::Const(ConstVal::F32(x)), &[])
    }
    /// `-x`.
    pub fn neg(&mut self, x: Value) -> R {
        self.ins(Opcode::Neg, Imm::None, &[x])
    }
    /// `x + y`.
    pub fn add(&mut self, x: Value, y: Value) -> R {
        self.ins(Opcode::Add, Imm::None, &[x, y])
    }
    /// `x - y`.
    pub fn sub(&mut self, x: Value, y: Value) -> R {
        self.ins(Opcode::Sub, Imm::None, &[x, y])
    }
    /// `x * y`.
    pub fn mul(&mut self, x: Value, y: Value) -> R {
        self.ins(Opcode::Mul, Imm::None, &[x, y])
    }
    /// `x / y`.
    pub fn div(&mut self, x: Value, y: Value) -> R {
        self.ins(Opcode::Div, Imm::None, &[x, y])
    }
    /// A unary elementwise op.
    pub fn unary(&mut self, op: Opcode, x: Value) -> R {
        self.ins(op, Imm::None, &[x])
    }
    /// A comparison.
    pub fn cmp(&mut self, op: Opcode, x: Value, y: Value) -> R {
        self.ins(op, Imm::None, &[x, y])
    }
    /// `select c, x, y`.
    pub fn select(&mut self, c: Value, x: Value, y: Value) -> R {
        self.ins(Opcode::Select, Imm::None, &[c, x, y])
    }
    /// f32 zeros of `x`'s shape.
    pub fn zeros_like(&mut self, x: Value) -> R {
        self.ins(Opcode::ZerosLike, Imm::None, &[x])
    }
    /// Broadcast a reduced `g` back over `axis` to `like`'s shape.
    pub fn expand(&mut self, axis: Axis, g: Value, like: Value) -> R {
        self.ins(Opcode::Expand, Imm::Axis(axis), &[g, like])
    }
    /// Number of elements a reduction over `axis` of `x` combines, as f32.
    pub fn count(&mut self, axis: Axis, x: Value) -> R {
        self.ins(Opcode::Count, Imm::Axis(axis), &[x])
    }
    /// Transpose.
    pub fn transpose(&mut self, x: Value) -> R {
        self.ins(Opcode::Transpose, Imm::None, &[x])
    }
    /// Reshape `g` to `like`'s shape.
    pub fn reshape_like(&mut self, g: Value, like: Value) -> R {
        let s = self.ty(like).shape.clone();
        self.ins(Opcode::Reshape, Imm::Shape(s), &[g])
    }
    /// Sum `g` down to `like`'s (broadcast-compatible) shape.
    pub fn sum_to(&mut self, g: Value, like: Value) -> R {
        self.ins(Opcode::SumTo, Imm::None, &[g, like])
    }
    /// Broadcast `g` up to `like`'s shape.
    pub fn broadcast_like(&mut self, g: Value, like: Value) -> R {
        self.ins(Opcode::BroadcastLike, Imm::None, &[g, like])
    }
    /// `sqrt(1 - x*x)`, shared by asin and acos.
    pub fn one_minus_sq_sqrt(&mut self, x: Value) -> R {
        let x2 = self.mul(x, x)?;
        let one = self.constf(1.0)?;
        let d = self.sub(one, x2)?;
        self.unary(Opcode::Sqrt, d)
    }

    /// `pow`: d/dx = y * x^(y-1), zero where y == 0; d/dy = r * log(x), zero where x == 0 and
    /// y >= 0 (PyTorch's `pow_backward_self` / `pow_backward_exponent`).
    pub fn pow_deriv(&mut self, c: &DerivCtx) -> Result<[Option<Value>; 3], IrError> {
        let (x, y) = (c.args[0], c.args[1]);
        let zero = self.constf(0.0)?;
        let one = self.constf(1.0)?;
        let ym1 = self.sub(y, one)?;
        let p = self.ins(Opcode::Pow, Imm::None, &[x, ym1])?;
        let yp = self.mul(y, p)?;
        let t = self.mul(c.g, yp)?;
        let y0 = self.cmp(Opcode::Eq, y, zero)?;
        let dx = self.select(y0, zero, t)?;
        let lx = self.unary(Opcode::Log, x)?;
        let rl = self.mul(c.result, lx)?;
        let x0 = self.cmp(Opcode::Eq, x, zero)?;
        let ypos = self.cmp(Opcode::Ge, y, zero)?;
        let both = self.ins(Opcode::Mul, Imm::None, &[x0, ypos])?;
        let w = self.select(both, zero, rl)?;
        let dy = self.mul(c.g, w)?;
        Ok([Some(dx), Some(dy), None])
    }

    /// Elementwise `max`/`min`: the gradient goes to the winner, halves on a tie.
    pub fn minmax_deriv(&mut self, c: &DerivCtx, max: bool) -> Result<[Option<Value>; 3], IrError> {
        let (x, y) = (c.args[0], c.args[1]);
        let zero = self.constf(0.0)?;
        let half = self.constf(0.5)?;
        let tie = self.cmp(Opcode::Eq, x, y)?;
        let hg = self.mul(c.g, half)?;
        let base = self.select(tie, hg, c.g)?;
        let x_loses = if max {
            self.cmp(Opcode::Gt, y, x)?
        } else {
            self.cmp(Opcode::Gt, x, y)?
        };
        let y_loses = if max {
            self.cmp(Opcode::Gt, x, y)?
        } else {
            self.cmp(Opcode::Gt, y, x)?
        };
        let dx = self.select(x_loses, zero, base)?;
        let dy = self.select(y_loses, zero, base)?;
        Ok([Some(dx), Some(dy), None])
    }

    /// `reduce_max`/`reduce_min`: over an axis the gradient goes to the first extremum; over
    /// all elements it is shared evenly by every extremum.
    pub fn select_reduce_deriv(
        &mut self,
        c: &DerivCtx,
        mask_op: Opcode,
    ) -> Result<[Option<Value>; 3], IrError> {
        let x = c.args[0];
        let axis = c.axis();
        let mask = self.ins(mask_op, Imm::Axis(axis), &[x])?;
        let zero = self.constf(0.0)?;
        let g = match axis {
            Axis::All => {
                let m = self.ins(Opcode::Cast, Imm::DType(DType::F32), &[mask])?;
                let k = self.ins(Opcode::Sum, Imm::Axis(Axis::All), &[m])?;
                self.div(c.g, k)?
            }
            Axis::Index(_) => c.g,
        };
        let e = self.expand(axis, g, x)?;
        Ok([Some(self.select(mask, e, zero)?), None, None])
    }

    /// Unbiased `std`: d/dx = 2/(n-1) * (g / (2 std)) * (x - mean).
    pub fn std_deriv(&mut self, c: &DerivCtx) -> Result<[Option<Value>; 3], IrError> {
        let x = c.args[0];
        let axis = c.axis();
        let two = self.constf(2.0)?;
        let one = self.constf(1.0)?;
        let r2 = self.mul(two, c.result)?;
        let gr = self.div(c.g, r2)?;
        let e = self.expand(axis, gr, x)?;
        let m = self.ins(Opcode::Mean, Imm::Axis(axis), &[x])?;
        let me = self.expand(axis, m, x)?;
        let d = self.sub(x, me)?;
        let n = self.count(axis, x)?;
        let nm1 = self.sub(n, one)?;
        let k = self.div(two, nm1)?;
        let ke = self.mul(k, e)?;
        Ok([Some(self.mul(ke, d)?), None, None])
    }

    /// `matmul` for operands of rank 1 or 2.
    pub fn matmul_deriv(&mut self, c: &DerivCtx) -> Result<[Option<Value>; 3], IrError> {
        let (a, b, g) = (c.args[0], c.args[1], c.g);
        let (ra, rb) = (self.ty(a).rank(), self.ty(b).rank());
        let mm = |s: &mut Self, x, y| s.ins(Opcode::Matmul, Imm::None, &[x, y]);
        let (da, db) = match (ra, rb) {
            (2, 2) => {
                let bt = self.transpose(b)?;
                let at = self.transpose(a)?;
                (mm(self, g, bt)?, mm(self, at, g)?)
            }
            (2, 1) => {
                let ge = self.expand(Axis::Index(1), g, a)?;
                let be = self.expand(Axis::Index(0), b, a)?;
                let at = self.transpose(a)?;
                (self.mul(ge, be)?, mm(self, at, g)?)
            }
            (1, 2) => {
                let ae = self.expand(Axis::Index(1), a, b)?;
                let ge = self.expand(Axis::Index(0), g, b)?;
                (mm(self, b, g)?, self.mul(ae, ge)?)
            }
            _ => (self.mul(g, b)?, self.mul(g, a)?),
        };
        Ok([Some(da), Some(db), None])
    }

    /// `softmax` over the last axis: (g - sum(g * y)) * y.
    pub fn softmax_deriv(&mut self, c: &DerivCtx) -> Result<[Option<Value>; 3], IrError> {
        let y = c.result;
        let last = Axis::Index(self.ty(y).rank() as u32 - 1);
        let gy = self.mul(c.g, y)?;
        let s = self.ins(Opcode::Sum, Imm::Axis(last), &[gy])?;
        let se = self.expand(last, s, y)?;
        let d = self.sub(c.g, se)?;
        Ok([Some(self.mul(d, y)?), None, None])
    }

    /// `expand`: the adjoint sums back over the expanded axis.
    pub fn expand_deriv(&mut self, c: &DerivCtx) -> Result<[Option<Value>; 3], IrError> {
        let s = self.ins(Opcode::Sum, Imm::Axis(c.axis()), &[c.g])?;
        Ok([Some(s), None, None])
    }
}

/// The gradient IR of a loss function.
#[derive(Clone, Debug)]
pub struct GradFunction {
    /// `(y_pred, y_true) -> (loss, d loss / d y_pred)`, or `-> loss` when the loss does not
    /// depend on `y_pred`.
    pub func: Function,
    /// Whether the loss depends on `y_pred` (whether `func` returns a gradient).
    pub has_grad: bool,
}

/// Build the gradient IR of a straight-line loss function.
pub fn gradient(f: &Function) -> Result<GradFunction, IrError> {
    if !f.is_straight_line() {
        return Err(IrError::Grad(
            "the function has control flow; specialize it to one path first".into(),
        ));
    }
    let block = f.entry();
    let Terminator::Return(rets) = f.blocks[block].term.clone() else {
        return Err(IrError::Grad(
            "the function does not return (it always traps)".into(),
        ));
    };
    let [loss] = rets.as_slice() else {
        return Err(IrError::Grad("a loss function returns one value".into()));
    };
    if *f.ty(*loss) != Type::f32() {
        return Err(IrError::Grad(format!(
            "the loss is {}, not an f32 scalar",
            f.ty(*loss)
        )));
    }
    let y_pred = f.blocks[block].params[0];
    let forward: Vec<_> = f.blocks[block].insts.clone();

    // Which values carry a gradient from y_pred.
    let mut connected: HashSet<Value> = HashSet::from([y_pred]);
    for &i in &forward {
        let inst = &f.insts[i];
        if rule(inst.op).is_some()
            && f.ty(inst.result).dtype == DType::F32
            && inst.args.iter().any(|a| connected.contains(a))
        {
            connected.insert(inst.result);
        }
    }
    let mut g = f.clone();
    g.name = format!("{}.grad", f.name);
    if !connected.contains(loss) {
        return Ok(GradFunction {
            func: g,
            has_grad: false,
        });
    }
    let mut adj: HashMap<Value, Value> = HashMap::new();
    let mut b = GradBuilder { f: &mut g, block };
    let seed = b.constf(1.0)?;
    adj.insert(*loss, seed);
    for &i in forward.iter().rev() {
        let inst = b.f.insts[i].clone();
        let Some(&gv) = adj.get(&inst.result) else {
            continue;
        };
        if !connected.contains(&inst.result) {
            continue;
        }
        let Some(rule) = rule(inst.op) else {
            continue;
        };
        let ctx = DerivCtx {
            args: inst.args.clone(),
            result: inst.result,
            g: gv,
            imm: inst.imm.clone(),
        };
        let outs = rule(&mut b, &ctx)?;
        for (k, &arg) in inst.args.iter().enumerate() {
            let Some(mut d) = outs.get(k).copied().flatten() else {
                continue;
            };
            if !connected.contains(&arg) {
                continue;
            }
            if b.ty(d).shape != b.ty(arg).shape {
                d = b.sum_to(d, arg)?;
            }
            let total = match adj.get(&arg) {
                Some(&prev) => b.add(prev, d)?,
                None => d,
            };
            adj.insert(arg, total);
        }
    }
    let grad = match adj.get(&y_pred) {
        Some(&v) => v,
        None => b.zeros_like(y_pred)?,
    };
    let gty = b.ty(grad).clone();
    g.set_term(block, Terminator::Return(vec![*loss, grad]));
    g.results = vec![Type::f32(), gty];
    Ok(GradFunction {
        func: g,
        has_grad: true,
    })
}
