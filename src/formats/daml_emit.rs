//! IR -> DAML expression.
//!
//! The emitter rebuilds the expression tree that the DAML front end ([`super::daml::lower`])
//! would lower to the same IR. It recognizes the front end's patterns: `safe_div(a, b)` is
//! `div(a, add(b, 1e-8))`, `safe_log` is `log(add(abs x, 1e-8))`, `safe_sqrt` is
//! `sqrt(abs x)`, `safe_exp` is `exp(clamp_max(clamp_min(x, -100), 100))`, `leaky_relu` is
//! `select(gt(x, 0), x, mul(x, 0.01))`, and `square` / `cube` are `pow(x, 2)` / `pow(x, 3)`.
//! A plain op is written as a primitive only where the primitive computes exactly the same
//! thing, for every input (NaN, infinities and signed zeros included). `neg x` becomes
//! `safe_mul(x, -1.0)`, which the optimizer turns back into `neg`. Values used more than once
//! are written out again at each use. Common-subexpression elimination merges them again when
//! the expression is compiled.

use super::daml::{self, Expr, MAX_DEPTH};
use super::{Format, FormatError};
use ncp_ir::{
    Axis, ConstVal, DType, Function, Imm, InstData, Opcode, Terminator, TrapCode, Value, ValueDef,
};
use std::collections::{HashMap, HashSet};

/// The largest expression written, in nodes, counting a shared value once per use.
pub const MAX_NODES: usize = 100_000;

/// The epsilon that `safe_div` and `safe_log` add.
const EPS: f32 = 1e-8;

fn err(msg: impl Into<String>) -> FormatError {
    FormatError::Emit {
        format: Format::Daml,
        msg: msg.into(),
    }
}

/// The one value a straight-line `f` returns, or the trap it always raises. `format` and
/// `target` (e.g. "a DAML loss") word the errors.
pub(crate) fn single_result(
    f: &Function,
    format: Format,
    target: &str,
) -> Result<Result<Value, TrapCode>, FormatError> {
    let err = |msg: String| FormatError::Emit { format, msg };
    if !f.is_straight_line() {
        return Err(err("control flow is not supported by the emitter".into()));
    }
    match &f.blocks[f.entry()].term {
        Terminator::Return(vs) if vs.len() == 1 => Ok(Ok(vs[0])),
        Terminator::Return(vs) => Err(err(format!(
            "the function returns {} values; {target} returns one",
            vs.len()
        ))),
        Terminator::Trap(t) => Ok(Err(*t)),
        _ => Err(err("control flow is not supported by the emitter".into())),
    }
}

/// Check that `root` is an f32 scalar, as a loss must be; `target` words the error.
pub(crate) fn check_scalar_loss(
    f: &Function,
    root: Value,
    format: Format,
    target: &str,
) -> Result<(), FormatError> {
    if f.ty(root).dtype != DType::F32 || !f.ty(root).is_scalar() {
        return Err(FormatError::Emit {
            format,
            msg: format!("the result is {}; {target} is an f32 scalar", f.ty(root)),
        });
    }
    Ok(())
}

fn no_equiv(op: &str) -> FormatError {
    err(format!("op `{op}` has no DAML equivalent"))
}

/// Pattern helpers over a function's data-flow graph. The AMM emitter uses them too.
pub(crate) struct Pat<'f> {
    /// The function being matched.
    pub f: &'f Function,
}

impl<'f> Pat<'f> {
    /// The instruction that defines `v`, if `v` is an instruction result.
    pub fn def(&self, v: Value) -> Option<&'f InstData> {
        self.f.def_inst(v)
    }
    /// The value of `v` if it is a constant.
    pub fn konst(&self, v: Value) -> Option<ConstVal> {
        match self.def(v) {
            Some(d) if d.op == Opcode::Const => match d.imm {
                Imm::Const(c) => Some(c),
                _ => None,
            },
            _ => None,
        }
    }
    /// Whether `v` is the f32 constant `k`, bit for bit.
    pub fn is_f32(&self, v: Value, k: f32) -> bool {
        matches!(self.konst(v), Some(ConstVal::F32(c)) if c.to_bits() == k.to_bits())
    }
    /// `x` when `v` is `op x`.
    pub fn un(&self, v: Value, op: Opcode) -> Option<Value> {
        match self.def(v) {
            Some(d) if d.op == op && d.args.len() == 1 => Some(d.args[0]),
            _ => None,
        }
    }
    /// `(x, y)` when `v` is `op x, y`.
    pub fn bin(&self, v: Value, op: Opcode) -> Option<(Value, Value)> {
        match self.def(v) {
            Some(d) if d.op == op && d.args.len() == 2 => Some((d.args[0], d.args[1])),
            _ => None,
        }
    }
    /// `x` when `v` is `op x, k` (or `op k, x` for a commutative op), with `k` the f32
    /// constant `k`.
    pub fn with_const(&self, v: Value, op: Opcode, k: f32) -> Option<Value> {
        let (a, b) = self.bin(v, op)?;
        if self.is_f32(b, k) {
            Some(a)
        } else if op.is_commutative() && self.is_f32(a, k) {
            Some(b)
        } else {
            None
        }
    }
    /// Whether `v` is an f32 value.
    pub fn is_f32_val(&self, v: Value) -> bool {
        self.f.ty(v).dtype == DType::F32
    }
}

/// A constant `c'` such that adding `eps` to it gives `c` when folded: how a front end's
/// `b + eps` looks once `b` is a constant. `None` when no f32 does.
pub(crate) fn pre_add(c: f32, eps: f32) -> Option<f32> {
    // The interpreter (and so constant folding) adds in f64 and rounds to f32.
    let add = |a: f32| (a as f64 + eps as f64) as f32;
    let same = |a: f32, b: f32| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
    if same(add(c), c) {
        return Some(c);
    }
    let base = (c as f64 - eps as f64) as f32;
    let (mut up, mut down) = (base, base);
    for _ in 0..8 {
        if same(add(up), c) {
            return Some(up);
        }
        if same(add(down), c) {
            return Some(down);
        }
        up = up.next_up();
        down = down.next_down();
    }
    None
}

/// An argument of a primitive call: a value or a constant of its own.
enum Arg {
    V(Value),
    C(f32),
}

/// How one value is written.
enum Node {
    Leaf(Expr),
    Call(&'static str, Vec<Arg>),
}

/// Write `f` as a DAML expression where its ops allow. `f` must be straight-line and return
/// one f32 scalar. Entry parameter 0 is `x` (y_pred), parameter 1 is `y` (y_true).
pub fn emit(f: &Function) -> Result<String, FormatError> {
    let b = f.entry();
    let root = match single_result(f, Format::Daml, "a DAML loss")? {
        Ok(v) => v,
        Err(t) => {
            return Err(err(format!(
                "the function always faults (`{t}`); DAML has no equivalent"
            )));
        }
    };
    let p = Pat { f };
    check_scalar_loss(f, root, Format::Daml, "a DAML loss")?;
    // Which values must be written, deciding each one's node, users before definitions.
    let mut needed: HashSet<Value> = HashSet::from([root]);
    let mut nodes: HashMap<Value, Node> = HashMap::new();
    for &i in f.blocks[b].insts.iter().rev() {
        let d = &f.insts[i];
        if !needed.contains(&d.result) {
            continue;
        }
        let n = node(&p, d)?;
        if let Node::Call(_, args) = &n {
            needed.extend(args.iter().filter_map(|a| match a {
                Arg::V(v) => Some(*v),
                Arg::C(_) => None,
            }));
        }
        nodes.insert(d.result, n);
    }
    // Build the trees, definitions before users: (tree, nodes, depth) per value.
    let mut built: HashMap<Value, (Expr, usize, usize)> = HashMap::new();
    for (k, &pv) in f.blocks[b].params.iter().enumerate() {
        let e = match k {
            0 => Expr::X,
            1 => Expr::Y,
            _ if needed.contains(&pv) => {
                return Err(err(format!(
                    "parameter {k} has no DAML terminal (only x and y)"
                )));
            }
            _ => continue,
        };
        built.insert(pv, (e, 1, 1));
    }
    for &i in &f.blocks[b].insts {
        let r = f.insts[i].result;
        let Some(n) = nodes.remove(&r) else { continue };
        let t = match n {
            Node::Leaf(e) => (e, 1, 1),
            Node::Call(name, args) => {
                let (mut size, mut depth) = (1usize, 1usize);
                let mut out = Vec::with_capacity(args.len());
                for a in &args {
                    let (e, s, d) = match a {
                        Arg::C(c) => (Expr::Const(*c), 1, 1),
                        Arg::V(v) => match built.get(v) {
                            Some((e, s, d)) => {
                                if size.saturating_add(*s) > MAX_NODES {
                                    return Err(too_big());
                                }
                                (e.clone(), *s, *d)
                            }
                            None => {
                                return Err(err(format!("value {v} is used before it is defined")));
                            }
                        },
                    };
                    size = size.saturating_add(s);
                    depth = depth.max(d + 1);
                    out.push(e);
                }
                if size > MAX_NODES {
                    return Err(too_big());
                }
                if depth > MAX_DEPTH {
                    return Err(err(format!(
                        "the expression nests deeper than {MAX_DEPTH}, which DAML's parser refuses"
                    )));
                }
                (Expr::Call(name, out), size, depth)
            }
        };
        built.insert(r, t);
    }
    let Some((expr, _, _)) = built.remove(&root) else {
        return Err(err("the returned value is not defined in the function"));
    };
    let text = daml::print_expr(&expr);
    // The printed constants must read back as the same f32s.
    match daml::parse_expr(&text) {
        Ok(back) if daml::print_expr(&back) == text => Ok(text),
        _ => Err(err(
            "a constant does not survive DAML's text form (it would read back as another f32)",
        )),
    }
}

fn too_big() -> FormatError {
    err(format!(
        "the expression would have more than {MAX_NODES} nodes once shared values are written out at each use"
    ))
}

/// How the value `d` defines is written in DAML.
fn node(p: &Pat, d: &InstData) -> Result<Node, FormatError> {
    use Opcode as O;
    let f32_only = |v: Value| {
        if p.is_f32_val(v) {
            Ok(())
        } else {
            Err(err(format!(
                "a {} value is used; every DAML value is f32",
                p.f.ty(v)
            )))
        }
    };
    if d.args.len() != d.op.info().arity {
        return Err(err(format!("a malformed `{}` instruction", d.op.name())));
    }
    f32_only(d.result)?;
    for &a in &d.args {
        if d.op != O::Select {
            f32_only(a)?;
        }
    }
    let a = &d.args;
    let call1 = |name: &'static str| Ok(Node::Call(name, vec![Arg::V(a[0])]));
    let call2 = |name: &'static str| Ok(Node::Call(name, vec![Arg::V(a[0]), Arg::V(a[1])]));
    match d.op {
        O::Const => match d.imm {
            Imm::Const(ConstVal::F32(c)) => Ok(Node::Leaf(Expr::Const(c))),
            _ => Err(no_equiv("const")),
        },
        O::Add => call2("safe_add"),
        O::Sub => call2("safe_sub"),
        O::Mul => call2("safe_mul"),
        O::Neg => Ok(Node::Call("safe_mul", vec![Arg::V(a[0]), Arg::C(-1.0)])),
        O::Div => {
            if let Some(y) = p.with_const(a[1], O::Add, EPS) {
                return Ok(Node::Call("safe_div", vec![Arg::V(a[0]), Arg::V(y)]));
            }
            if let Some(ConstVal::F32(c)) = p.konst(a[1])
                && let Some(c0) = pre_add(c, EPS)
            {
                return Ok(Node::Call("safe_div", vec![Arg::V(a[0]), Arg::C(c0)]));
            }
            Err(err(
                "op `div` has no DAML equivalent (safe_div adds 1e-8 to the divisor)",
            ))
        }
        O::Log => match p
            .with_const(a[0], O::Add, EPS)
            .and_then(|s| p.un(s, O::Abs))
        {
            Some(x) => Ok(Node::Call("safe_log", vec![Arg::V(x)])),
            None => Err(err(
                "op `log` has no DAML equivalent (safe_log is log(|x| + 1e-8))",
            )),
        },
        O::Sqrt => match p.un(a[0], O::Abs) {
            Some(x) => Ok(Node::Call("safe_sqrt", vec![Arg::V(x)])),
            None => Err(err(
                "op `sqrt` has no DAML equivalent (safe_sqrt takes |x|)",
            )),
        },
        O::Exp => match p
            .with_const(a[0], O::ClampMax, 100.0)
            .and_then(|t| p.with_const(t, O::ClampMin, -100.0))
        {
            Some(x) => Ok(Node::Call("safe_exp", vec![Arg::V(x)])),
            None => Err(err(
                "op `exp` has no DAML equivalent (safe_exp clamps to [-100, 100])",
            )),
        },
        O::Pow => match p.konst(a[1]) {
            Some(ConstVal::F32(k)) if k.to_bits() == 2.0f32.to_bits() => call1("square"),
            Some(ConstVal::F32(k)) if k.to_bits() == 3.0f32.to_bits() => call1("cube"),
            _ => Err(err(
                "op `pow` has no DAML equivalent (only square and cube)",
            )),
        },
        O::Select => {
            let x = a[1];
            let is_leaky = p.with_const(a[0], O::Gt, 0.0) == Some(x)
                && p.with_const(a[2], O::Mul, 0.01) == Some(x)
                && p.is_f32_val(x);
            if is_leaky {
                call1_of("leaky_relu", x)
            } else {
                Err(no_equiv("select"))
            }
        }
        O::Mean | O::Std => match d.imm {
            Imm::Axis(Axis::All) => call1(if d.op == O::Mean { "mean" } else { "std" }),
            _ => Err(err(format!(
                "op `{}` over one axis has no DAML equivalent (DAML reduces over all elements)",
                d.op.name()
            ))),
        },
        _ => match direct(d.op) {
            Some((name, 1)) => call1(name),
            Some((name, _)) => call2(name),
            None => Err(no_equiv(d.op.name())),
        },
    }
}

fn call1_of(name: &'static str, v: Value) -> Result<Node, FormatError> {
    Ok(Node::Call(name, vec![Arg::V(v)]))
}

/// IR ops that are exactly one DAML primitive (the op table's DAML column): its name and arity.
fn direct(op: Opcode) -> Option<(&'static str, usize)> {
    let info = op.info();
    info.daml.map(|name| (name, info.arity))
}

/// The entry parameter a value is, if it is one.
pub(crate) fn param_index(f: &Function, v: Value) -> Option<usize> {
    match f.values[v].def {
        ValueDef::Param(b, k) if b == f.entry() => Some(k),
        _ => None,
    }
}
