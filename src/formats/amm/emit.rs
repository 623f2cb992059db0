//! IR -> AMM program.
//!
//! Each IR op becomes one AMM instruction. Where the AMM front end ([`super::lower`]) lowers an
//! opcode to several ops, the emitter recognizes that pattern and writes the one opcode:
//! `div(x, add(y, eps))` is DIV, `log(max(x, eps))` is LOG, `sqrt(clamp_min(x, 0))` is SQRT,
//! `exp(clamp_max(x, 88))` is EXP, `recip(add(x, eps))` is RECIPROCAL,
//! `select(ge(x, y), x, e)` is WHERE, and the loss ops MSE, MAE and BCE are recognized too
//! (eps is the f32 constant 1e-7). Compiling the program gives back the same ops. Casts from
//! bool or i64 are `MUL_CONST x 1.0` (or the integer 1), because PyTorch promotes `x * c` to
//! the constant's category. The inputs and specials are LOADed just before their first use. A
//! final `mean<all>` of a non-scalar value is left to AMM's loss wrapper, which averages a
//! non-scalar RETURN itself.
//!
//! Registers are allocated over AMM's 20 general registers, and a register is reused once its
//! value is dead.

use super::Program;
use super::opcodes as op;
use crate::formats::daml_emit::{Pat, check_scalar_loss, param_index, pre_add, single_result};
use crate::formats::{Format, FormatError};
use ncp_ir::types::{broadcast, numel_signature};
use ncp_ir::{Axis, ConstVal, DType, Function, Imm, InstData, Opcode, TrapCode, Value};
use serde_json::{Number, Value as Json, json};
use std::collections::{HashMap, HashSet};
mod loss_patterns;

/// AMM's general registers.
const NREG: usize = 20;
/// AMM's epsilon (special register 104).
const EPS: f32 = 1e-7;
/// Special registers, as LOAD reads them.
const SP_Y_TRUE: i64 = 0;
const SP_Y_PRED: i64 = 1;
const SP_BATCH: i64 = 2;
const SP_ONES: i64 = 5;
const SP_ZEROS: i64 = 6;

fn err(msg: impl Into<String>) -> FormatError {
    FormatError::Emit {
        format: Format::Amm,
        msg: msg.into(),
    }
}

fn no_equiv(op: &str) -> FormatError {
    err(format!("op `{op}` has no AMM equivalent"))
}

fn refuse(op: &str, why: &str) -> FormatError {
    err(format!("op `{op}` has no AMM equivalent ({why})"))
}

/// One parameter of an emitted instruction.
#[derive(Clone, Debug)]
enum P {
    /// The register holding an IR value.
    Reg(Value),
    /// The destination register.
    Dest,
    /// A literal (a special register id, an axis, a constant).
    Lit(Json),
    /// A constant loaded into a scratch register just before the instruction.
    Scratch(Json),
}

/// The AMM instruction that computes one value: opcode and parameters.
#[derive(Clone, Debug)]
struct Node {
    code: i64,
    params: Vec<P>,
}

impl Node {
    fn new(code: i64, params: Vec<P>) -> Node {
        Node { code, params }
    }
    fn un(code: i64, x: Value) -> Node {
        Node::new(code, vec![P::Reg(x), P::Dest])
    }
    fn bin(code: i64, x: Value, y: Value) -> Node {
        Node::new(code, vec![P::Reg(x), P::Reg(y), P::Dest])
    }
    fn imm(code: i64, x: Value, lit: Json) -> Node {
        Node::new(code, vec![P::Reg(x), P::Lit(lit), P::Dest])
    }
    fn load(k: i64) -> Node {
        Node::new(op::LOAD, vec![P::Dest, P::Lit(json!(k))])
    }
    fn reads(&self) -> impl Iterator<Item = Value> + '_ {
        self.params.iter().filter_map(|p| match p {
            P::Reg(v) => Some(*v),
            _ => None,
        })
    }
}

/// A constant as the JSON literal that LOAD_CONST / ADD_CONST / MUL_CONST read back as the
/// same constant: f32 as a JSON float (never `2`, which AMM reads as an i64), i64 as an
/// integer, bool as a boolean.
fn const_json(c: ConstVal) -> Result<Json, FormatError> {
    match c {
        ConstVal::I64(i) => Ok(json!(i)),
        ConstVal::Bool(b) => Ok(json!(b)),
        ConstVal::F32(x) if x.is_nan() => Err(err(
            "a NaN constant cannot be written: JSON has no NaN".to_string(),
        )),
        // torch.tensor(1e40) is inf in f32.
        ConstVal::F32(x) if x.is_infinite() => Ok(json!(if x > 0.0 { 1e40 } else { -1e40 })),
        ConstVal::F32(x) => {
            // The shortest decimal, unless reading it as f64 and rounding to f32 misses `x`.
            let short = format!("{x:?}").parse::<f64>().ok();
            let d = match short {
                Some(d) if (d as f32).to_bits() == x.to_bits() => d,
                _ => x as f64,
            };
            Number::from_f64(d)
                .map(Json::Number)
                .ok_or_else(|| err(format!("the constant {x} cannot be written as JSON")))
        }
    }
}

struct Ctx<'f> {
    p: Pat<'f>,
}

impl Ctx<'_> {
    fn f(&self) -> &Function {
        self.p.f
    }
    fn dtype(&self, v: Value) -> DType {
        self.f().ty(v).dtype
    }
    /// `x` when `v` is `op(x, eps)` / `op(eps, x)` and `x` is f32.
    fn with_eps(&self, v: Value, opc: Opcode) -> Option<Value> {
        self.p
            .with_const(v, opc, EPS)
            .filter(|x| self.p.is_f32_val(*x))
    }

    /// The AMM instruction for the value `d` defines.
    fn node(&self, d: &InstData) -> Result<Node, FormatError> {
        use Opcode as O;
        let a = &d.args;
        let p = &self.p;
        if a.len() != d.op.info().arity {
            return Err(err(format!("a malformed `{}` instruction", d.op.name())));
        }
        Ok(match d.op {
            O::Const => match d.imm {
                Imm::Const(c) => Node::new(op::LOAD_CONST, vec![P::Dest, P::Lit(const_json(c)?)]),
                _ => return Err(no_equiv("const")),
            },
            O::Dim if d.imm == Imm::Dim(ncp_ir::Dim::B) => Node::load(SP_BATCH),
            O::Dim => return Err(refuse("dim<C>", "only the batch size")),
            O::OnesLike | O::ZerosLike => {
                let input = self.f().ty(self.f().blocks[self.f().entry()].params[1]);
                if self.f().ty(a[0]).shape != input.shape {
                    return Err(err(format!(
                        "op `{}` of a {} value has no AMM equivalent (only of the inputs' shape)",
                        d.op.name(),
                        self.f().ty(a[0])
                    )));
                }
                Node::load(if d.op == O::OnesLike {
                    SP_ONES
                } else {
                    SP_ZEROS
                })
            }
            O::Add | O::Mul => {
                let code = if d.op == O::Add { op::ADD } else { op::MUL };
                let kcode = if d.op == O::Add {
                    op::ADD_CONST
                } else {
                    op::MUL_CONST
                };
                let konst = |k: Value, x: Value| {
                    p.konst(k)
                        .filter(|_| p.konst(x).is_none() && self.dtype(k) == self.dtype(x))
                        .and_then(|c| const_json(c).ok())
                };
                if let Some(c) = konst(a[1], a[0]) {
                    Node::imm(kcode, a[0], c)
                } else if let Some(c) = konst(a[0], a[1]) {
                    Node::imm(kcode, a[1], c)
                } else {
                    Node::bin(code, a[0], a[1])
                }
            }
            O::Sub => Node::bin(op::SUB, a[0], a[1]),
            O::Div => {
                if let Some(y) = self.with_eps(a[1], O::Add) {
                    Node::bin(op::DIV, a[0], y)
                } else if let Some(c0) = match p.konst(a[1]) {
                    Some(ConstVal::F32(c)) => pre_add(c, EPS),
                    _ => None,
                } {
                    let lit = const_json(ConstVal::F32(c0))?;
                    Node::new(op::DIV, vec![P::Reg(a[0]), P::Scratch(lit), P::Dest])
                } else {
                    return Err(refuse("div", "AMM's DIV adds 1e-7 to the divisor"));
                }
            }
            O::Pow => {
                let square = match (self.dtype(a[0]), p.konst(a[1])) {
                    (DType::F32, Some(ConstVal::F32(k))) => k.to_bits() == 2.0f32.to_bits(),
                    (DType::I64, Some(ConstVal::I64(k))) => k == 2,
                    _ => false,
                };
                if square {
                    Node::un(op::SQUARE, a[0])
                } else {
                    Node::bin(op::POW, a[0], a[1])
                }
            }
            O::Sqrt => match p.with_const(a[0], O::ClampMin, 0.0) {
                Some(x) if p.is_f32_val(x) => Node::un(op::SQRT, x),
                _ => return Err(refuse("sqrt", "AMM's SQRT clamps its input at 0")),
            },
            O::Log => match self.with_eps(a[0], O::Max) {
                Some(x) => Node::un(op::LOG, x),
                None => return Err(refuse("log", "AMM's LOG clamps its input at 1e-7")),
            },
            O::Exp => match p.with_const(a[0], O::ClampMax, 88.0) {
                Some(x) if p.is_f32_val(x) => Node::un(op::EXP, x),
                _ => return Err(refuse("exp", "AMM's EXP clamps its input at 88")),
            },
            O::Recip => match self.with_eps(a[0], O::Add) {
                Some(x) => Node::un(op::RECIPROCAL, x),
                None => return Err(refuse("recip", "AMM's RECIPROCAL adds 1e-7")),
            },
            O::Abs => Node::un(op::ABS, a[0]),
            O::Neg => match self.loss_op(d.result) {
                // BCE of scalars: the optimizer drops the mean of one element.
                Some((op::BCE, yt, yp)) if self.f().ty(d.result).is_scalar() => {
                    Node::new(op::BCE, vec![yt, yp, P::Dest])
                }
                _ => Node::un(op::NEGATE, a[0]),
            },
            O::Relu | O::Sigmoid | O::Tanh | O::Softmax => {
                let code = match d.op {
                    O::Relu => op::RELU,
                    O::Sigmoid => op::SIGMOID,
                    O::Tanh => op::TANH,
                    _ => op::SOFTMAX,
                };
                Node::imm(code, a[0], json!(0))
            }
            O::Max => Node::bin(op::MAXIMUM, a[0], a[1]),
            O::Gt => Node::bin(op::GT, a[0], a[1]),
            O::Ge => Node::bin(op::GE, a[0], a[1]),
            O::Matmul => Node::bin(op::MATMUL, a[0], a[1]),
            O::Transpose => Node::un(op::TRANSPOSE, a[0]),
            O::Select => self.select(a[0], a[1], a[2])?,
            O::Cast => {
                let to = match d.imm {
                    Imm::DType(t) => t,
                    _ => return Err(no_equiv("cast")),
                };
                match (self.dtype(a[0]), to) {
                    (DType::I64 | DType::Bool, DType::F32) => {
                        Node::imm(op::MUL_CONST, a[0], json!(1.0))
                    }
                    (DType::Bool, DType::I64) => Node::imm(op::MUL_CONST, a[0], json!(1)),
                    (from, _) => {
                        return Err(err(format!(
                            "op `cast<{to}>` of {from} has no AMM equivalent (only bool/i64 to f32 and bool to i64)"
                        )));
                    }
                }
            }
            O::Sum | O::Mean | O::RMax | O::RMin | O::Std => self.reduce(d)?,
            _ => return Err(no_equiv(d.op.name())),
        })
    }

    /// WHERE computes `select(ge(x, y), x, e)`, casting `x` and `e` to their common dtype.
    fn select(&self, c: Value, t: Value, e: Value) -> Result<Node, FormatError> {
        // A condition folded to a constant: compare a constant true arm with something that
        // folds the same way (itself for true, +inf for false).
        if let (Some(ConstVal::Bool(k)), Some(tc)) = (self.p.konst(c), self.p.konst(t)) {
            let tv = tc.as_f64();
            let y = match k {
                true if !tv.is_nan() => Some(P::Reg(t)),
                false if tv < f64::INFINITY => Some(P::Scratch(json!(1e40))),
                _ => None,
            };
            if let Some(y) = y {
                return Ok(Node::new(op::WHERE, vec![P::Reg(t), y, P::Dest, P::Reg(e)]));
            }
        }
        let Some((x, y)) = self.p.bin(c, Opcode::Ge) else {
            return Err(refuse("select", "WHERE selects on x >= y"));
        };
        let arm_ok = t == x
            || (self.p.un(t, Opcode::Cast) == Some(x)
                && self.dtype(t) == self.dtype(e)
                && super::lower::promote(self.dtype(x), self.dtype(e)) == self.dtype(t));
        if !arm_ok {
            return Err(refuse(
                "select",
                "WHERE's true arm is the left side of x >= y",
            ));
        }
        Ok(Node::new(
            op::WHERE,
            vec![P::Reg(x), P::Reg(y), P::Dest, P::Reg(e)],
        ))
    }

    fn reduce(&self, d: &InstData) -> Result<Node, FormatError> {
        use Opcode as O;
        let x = d.args[0];
        let code = match d.op {
            O::Sum => op::SUM,
            O::Mean => op::MEAN,
            O::RMax => op::MAX,
            O::RMin => op::MIN,
            _ => op::STD,
        };
        let loss = match (d.op, &d.imm) {
            (O::Mean, Imm::Axis(Axis::All)) => self.loss_op(x),
            _ => None,
        };
        if let Some((code, yt, yp)) = loss {
            return Ok(Node::new(code, vec![yt, yp, P::Dest]));
        }
        let axis = match d.imm {
            Imm::Axis(Axis::Index(k)) => k,
            // One axis of a rank-1 value is every element, in the same order: the same
            // numbers, though not the same IR. (Not for max/min: over all elements, ties share
            // the gradient; over an axis, the first extremum takes it.)
            Imm::Axis(Axis::All)
                if self.f().ty(x).rank() == 1 && matches!(d.op, O::Sum | O::Mean | O::Std) =>
            {
                0
            }
            _ => {
                let name = format!("{}<all>", d.op.name());
                let tx = self.f().ty(x);
                return Err(refuse(
                    &name,
                    &if tx.is_scalar() {
                        "AMM's reductions pass a scalar through".to_string()
                    } else if d.op == O::Mean {
                        format!(
                            "AMM reduces one axis at a time, and averaging the axes of a {tx} value in turn rounds differently; only the returned loss is averaged whole"
                        )
                    } else {
                        format!("AMM reduces one axis of a {tx} value at a time")
                    },
                ));
            }
        };
        Ok(Node::imm(code, x, json!(axis)))
    }
}

/// The coefficient of a BCE log term.
#[derive(Copy, Clone)]
enum Coef {
    /// A value.
    V(Value),
    /// A constant (1.0 or -1.0 when the multiply was simplified away).
    K(f32),
}

/// A program that faults the same way.
fn trap_program(t: TrapCode) -> Vec<Json> {
    match t {
        TrapCode::NoReturn => vec![json!([op::END])],
        TrapCode::EmptyProgram => vec![],
        TrapCode::BadReturn => vec![json!([op::RETURN])],
        TrapCode::BadOpcode => vec![json!(["?"])],
        TrapCode::BadJumpTarget => vec![json!([op::JUMP, 0.0])],
        TrapCode::BudgetExhausted => vec![json!([op::JUMP, 0])],
        // AMM cannot raise like the HAZ interpreter; END is its plainest fault.
        TrapCode::HazFault => vec![json!([op::END])],
        TrapCode::NonFloatResult => vec![
            json!([op::LOAD, 0, SP_Y_TRUE]),
            json!([op::GT, 0, 0, 1]),
            json!([op::RETURN, 1]),
        ],
    }
}

/// Write `f` as an AMM program where its ops allow. `f` must be straight-line and return one
/// f32 scalar; entry parameter 0 is y_pred and parameter 1 is y_true.
pub fn emit(f: &Function) -> Result<Program, FormatError> {
    let b = f.entry();
    let root = match single_result(f, Format::Amm, "an AMM program")? {
        Ok(v) => v,
        Err(t) => {
            return Ok(Program {
                instrs: trap_program(t),
            });
        }
    };
    if f.blocks[b].params.len() != 2 {
        return Err(err("the function must take (y_pred, y_true)"));
    }
    check_scalar_loss(f, root, Format::Amm, "an AMM loss")?;
    let cx = Ctx { p: Pat { f } };
    // RETURN of a non-scalar value averages it, so a final `mean<all>` needs no instruction;
    // where the value it averages has no equivalent, the mean may still be a loss op.
    let mut rets = Vec::with_capacity(2);
    if let Some(d) = cx.p.def(root)
        && d.op == Opcode::Mean
        && d.imm == Imm::Axis(Axis::All)
        && !f.ty(d.args[0]).is_scalar()
    {
        rets.push(d.args[0]);
    }
    rets.push(root);
    let mut first_err = None;
    for ret in rets {
        match plan(&cx, ret).and_then(|steps| allocate(&steps, ret)) {
            Ok(instrs) => return Ok(Program { instrs }),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    Err(first_err.unwrap_or_else(|| err("nothing to return")))
}

/// The instructions computing `ret`, in the block's order, each input LOADed just before its
/// first use.
fn plan(cx: &Ctx, ret: Value) -> Result<Vec<(Value, Node)>, FormatError> {
    let f = cx.f();
    let b = f.entry();
    // Decide each needed value's instruction, users before definitions.
    let mut needed: HashSet<Value> = HashSet::from([ret]);
    let mut nodes: HashMap<Value, Node> = HashMap::new();
    for &i in f.blocks[b].insts.iter().rev() {
        let d = &f.insts[i];
        if needed.contains(&d.result) {
            let n = cx.node(d)?;
            needed.extend(n.reads());
            nodes.insert(d.result, n);
        }
    }
    let mut steps: Vec<(Value, Node)> = Vec::new();
    let mut loaded: HashSet<Value> = HashSet::new();
    let mut load_inputs = |reads: Vec<Value>, steps: &mut Vec<(Value, Node)>| {
        for v in reads {
            if let Some(k) = param_index(f, v)
                && loaded.insert(v)
            {
                let sp = if k == 0 { SP_Y_PRED } else { SP_Y_TRUE };
                steps.push((v, Node::load(sp)));
            }
        }
    };
    for &i in &f.blocks[b].insts {
        let r = f.insts[i].result;
        if let Some(n) = nodes.remove(&r) {
            load_inputs(n.reads().collect(), &mut steps);
            steps.push((r, n));
        }
    }
    load_inputs(vec![ret], &mut steps);
    Ok(steps)
}

/// Assign registers and write the instructions, ending with RETURN of `ret`.
fn allocate(steps: &[(Value, Node)], ret: Value) -> Result<Vec<Json>, FormatError> {
    let mut last_use: HashMap<Value, usize> = HashMap::new();
    for (k, (_, n)) in steps.iter().enumerate() {
        for v in n.reads() {
            last_use.insert(v, k);
        }
    }
    last_use.insert(ret, steps.len());
    let mut free: Vec<usize> = (0..NREG).rev().collect();
    let mut reg: HashMap<Value, usize> = HashMap::new();
    let full = || {
        err(format!(
            "more than {NREG} values are live at once; AMM has {NREG} registers"
        ))
    };
    let mut out = Vec::with_capacity(steps.len() + 1);
    for (k, (v, n)) in steps.iter().enumerate() {
        let mut scratch = Vec::new();
        for p in &n.params {
            if let P::Scratch(c) = p {
                let r = free.pop().ok_or_else(full)?;
                out.push(json!([op::LOAD_CONST, r, c]));
                scratch.push(r);
            }
        }
        let mut params = Vec::with_capacity(n.params.len() + 1);
        params.push(json!(n.code));
        let mut dest_at = None;
        let mut next_scratch = scratch.iter();
        for p in &n.params {
            params.push(match p {
                P::Reg(x) => json!(
                    reg.get(x)
                        .copied()
                        .ok_or_else(|| err(format!("value {x} is read before it is computed")))?
                ),
                P::Lit(c) => c.clone(),
                P::Scratch(_) => json!(next_scratch.next().copied().unwrap_or(0)),
                P::Dest => {
                    dest_at = Some(params.len());
                    Json::Null
                }
            });
        }
        // Operands are read before the destination is written, so a dying operand's
        // register may be the destination.
        for x in n.reads() {
            if last_use.get(&x) == Some(&k)
                && let Some(r) = reg.remove(&x)
            {
                free.push(r);
            }
        }
        free.extend(scratch);
        free.sort_unstable_by(|a, b| b.cmp(a));
        free.dedup();
        let r = free.pop().ok_or_else(full)?;
        reg.insert(*v, r);
        if let Some(at) = dest_at {
            params[at] = json!(r);
        }
        out.push(Json::Array(params));
    }
    let r = reg
        .get(&ret)
        .copied()
        .ok_or_else(|| err("the returned value is never computed"))?;
    out.push(json!([op::RETURN, r]));
    Ok(out)
}
