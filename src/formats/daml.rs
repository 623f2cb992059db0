//! DAML expression trees (Hivetrain/DistributedAutoML, DEAP `PrimitiveTree` strings).
//!
//! Arguments: `x` = y_pred (logits), `y` = y_true (one-hot); DEAP's default names `ARG0` and
//! `ARG1` are accepted too. Every primitive of the miner set and of the validator superset is
//! lowered to IR ops with PyTorch's semantics (see docs/formats/daml.md). Ephemeral constants
//! are read both as DAML prints them (`tensor(0.3790)`, `tensor(0.3790, device='cuda:0')`) and as
//! plain numbers. A non-scalar result is averaged, as the validator does.

use super::FormatError;
use ncp_ir::{ConstVal, DType, DimModel, Function, Imm, Opcode, Terminator, Type, Value};

/// Which primitive set a name belongs to.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PSet {
    /// In the miner set (and so in the validator set too).
    Miner,
    /// Only in the validator superset.
    Validator,
}

/// The DAML primitives: name, arity, primitive set.
pub const PRIMITIVES: &[(&str, usize, PSet)] = &[
    ("safe_add", 2, PSet::Miner),
    ("safe_sub", 2, PSet::Miner),
    ("safe_mul", 2, PSet::Miner),
    ("safe_div", 2, PSet::Miner),
    ("safe_log", 1, PSet::Miner),
    ("safe_sqrt", 1, PSet::Miner),
    ("safe_exp", 1, PSet::Miner),
    ("sin", 1, PSet::Miner),
    ("cos", 1, PSet::Miner),
    ("tan", 1, PSet::Miner),
    ("sigmoid", 1, PSet::Miner),
    ("relu", 1, PSet::Miner),
    ("tanh", 1, PSet::Miner),
    ("mean", 1, PSet::Miner),
    ("std", 1, PSet::Miner),
    ("arcsin", 1, PSet::Validator),
    ("arccos", 1, PSet::Validator),
    ("arctan", 1, PSet::Validator),
    ("leaky_relu", 1, PSet::Validator),
    ("abs", 1, PSet::Validator),
    ("reciprocal", 1, PSet::Validator),
    ("square", 1, PSet::Validator),
    ("cube", 1, PSet::Validator),
    ("sign", 1, PSet::Validator),
    ("floor", 1, PSet::Validator),
    ("ceil", 1, PSet::Validator),
    ("round", 1, PSet::Validator),
    ("max", 2, PSet::Validator),
    ("min", 2, PSet::Validator),
    ("mod", 2, PSet::Validator),
    ("hypot", 2, PSet::Validator),
];

/// Named terminals and their values. `pi` and `e` are DAML's own 6-digit values, not the
/// exact constants: reproducing them is the point.
#[allow(clippy::approx_constant)]
pub const TERMINALS: &[(&str, f32, PSet)] = &[
    ("one", 1.0, PSet::Miner),
    ("zero", 0.0, PSet::Miner),
    ("half", 0.5, PSet::Miner),
    ("pi", 3.14159, PSet::Validator),
    ("e", 2.71828, PSet::Validator),
];

/// A parsed expression tree.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// `x` (y_pred).
    X,
    /// `y` (y_true).
    Y,
    /// A named terminal or an ephemeral constant.
    Const(f32),
    /// A primitive applied to arguments.
    Call(&'static str, Vec<Expr>),
}

struct P<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> P<'a> {
    fn err<T>(&self, msg: impl Into<String>) -> Result<T, FormatError> {
        let col = self.s[..self.pos.min(self.s.len())].chars().count() + 1;
        Err(FormatError::Daml {
            col,
            msg: msg.into(),
        })
    }
    fn ws(&mut self) {
        let r = &self.s[self.pos..];
        self.pos += r.len() - r.trim_start().len();
    }
    fn peek(&mut self) -> Option<char> {
        self.ws();
        self.s[self.pos..].chars().next()
    }
    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }
    fn ident(&mut self) -> &'a str {
        self.ws();
        let r = &self.s[self.pos..];
        let n = r
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(r.len());
        self.pos += n;
        &r[..n]
    }
    fn number(&mut self) -> Result<f32, FormatError> {
        self.ws();
        let start = self.pos;
        let r = &self.s[self.pos..];
        let n = r
            .char_indices()
            .find(|(i, c)| {
                !(c.is_ascii_alphanumeric()
                    || *c == '.'
                    || ((*c == '-' || *c == '+') && (*i == 0 || r[..*i].ends_with(['e', 'E']))))
            })
            .map(|(i, _)| i)
            .unwrap_or(r.len());
        let text = &r[..n];
        self.pos += n;
        let lower = text.to_ascii_lowercase();
        let v = match lower.trim_start_matches(['+', '-']) {
            "inf" | "infinity" => Some(f64::INFINITY),
            "nan" => Some(f64::NAN),
            _ => text.parse::<f64>().ok(),
        };
        match v {
            Some(v) => Ok(if lower.starts_with('-') && v.is_infinite() {
                -v
            } else {
                v
            } as f32),
            None => {
                self.pos = start;
                self.err(format!("`{text}` is not a number"))
            }
        }
    }
    /// `tensor(<number>[, key=value]...)`, the opening `tensor` already read.
    fn tensor_literal(&mut self) -> Result<f32, FormatError> {
        if !self.eat('(') {
            return self.err("expected `(` after `tensor`");
        }
        let v = self.number()?;
        while self.eat(',') {
            let key = self.ident();
            if key.is_empty() || !self.eat('=') {
                return self.err("expected `key=value` inside `tensor(...)`");
            }
            // Skip a simple value: a quoted string or a bare token such as torch.float32 / True.
            self.ws();
            let r = &self.s[self.pos..];
            let len = if let Some(q) = r.chars().next().filter(|c| *c == '\'' || *c == '"') {
                match r[1..].find(q) {
                    Some(end) => end + 2,
                    None => return self.err("unterminated string inside `tensor(...)`"),
                }
            } else {
                r.find([',', ')']).unwrap_or(r.len())
            };
            self.pos += len;
        }
        if !self.eat(')') {
            return self.err("expected `)` closing `tensor(...)`");
        }
        Ok(v)
    }
    fn expr(&mut self, depth: usize) -> Result<Expr, FormatError> {
        if depth > MAX_DEPTH {
            return self.err(format!("expression nests deeper than {MAX_DEPTH}"));
        }
        match self.peek() {
            None => return self.err("unexpected end of expression"),
            Some(c) if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => {
                return Ok(Expr::Const(self.number()?));
            }
            _ => {}
        }
        let start = self.pos;
        let name = self.ident();
        if name.is_empty() {
            let c = self.peek().unwrap_or(' ');
            return self.err(format!("unexpected `{c}`"));
        }
        match name {
            "x" | "ARG0" => return Ok(Expr::X),
            "y" | "ARG1" => return Ok(Expr::Y),
            "tensor" => return Ok(Expr::Const(self.tensor_literal()?)),
            "inf" | "nan" => {
                self.pos = start;
                return Ok(Expr::Const(self.number()?));
            }
            _ => {}
        }
        if let Some((_, v, _)) = TERMINALS.iter().find(|t| t.0 == name) {
            return Ok(Expr::Const(*v));
        }
        let Some(&(pname, arity, _)) = PRIMITIVES.iter().find(|p| p.0 == name) else {
            self.pos = start;
            return self.err(format!("unknown primitive or terminal `{name}`"));
        };
        if !self.eat('(') {
            return self.err(format!("`{name}` takes {arity} argument(s): expected `(`"));
        }
        let mut args = vec![self.expr(depth + 1)?];
        while self.eat(',') {
            args.push(self.expr(depth + 1)?);
        }
        if !self.eat(')') {
            return self.err("expected `,` or `)`");
        }
        if args.len() != arity {
            self.pos = start;
            return self.err(format!(
                "`{name}` takes {arity} argument(s), got {}",
                args.len()
            ));
        }
        Ok(Expr::Call(pname, args))
    }
}

/// Deepest nesting accepted (DAML's own height limit is 90).
pub const MAX_DEPTH: usize = 512;

/// Parse a DAML expression string.
pub fn parse_expr(s: &str) -> Result<Expr, FormatError> {
    let mut p = P { s, pos: 0 };
    let e = p.expr(0)?;
    if p.peek().is_some() {
        return p.err("unexpected text after the expression");
    }
    Ok(e)
}

/// Extract the expression from a gene file: `{"expression": ...}`, that object JSON-encoded a
/// second time (as DAML writes it), or a bare expression.
pub fn expression_of(text: &str) -> Result<String, FormatError> {
    let t = text.trim();
    if !(t.starts_with('{') || t.starts_with('"')) {
        return Ok(t.to_string());
    }
    let mut v: serde_json::Value = super::parse_json(t)?;
    if let serde_json::Value::String(inner) = &v {
        if inner.trim_start().starts_with('{') {
            v = super::parse_json(inner)?;
        } else {
            return Ok(inner.clone());
        }
    }
    match v.get("expression") {
        Some(serde_json::Value::String(e)) => Ok(e.clone()),
        Some(_) => Err(FormatError::Daml {
            col: 1,
            msg: "`expression` must be a string".into(),
        }),
        None => Err(FormatError::Daml {
            col: 1,
            msg: "the gene object has no `expression` field".into(),
        }),
    }
}

/// Lower an expression tree to a loss function.
pub fn lower(e: &Expr, name: &str, dims: DimModel) -> Result<Function, FormatError> {
    let ity = dims.input_type();
    let (mut f, b) = Function::new(name, &[ity.clone(), ity], vec![Type::f32()]);
    let x = f.blocks[b].params[0];
    let y = f.blocks[b].params[1];
    let mut l = Lower { f: &mut f, b, x, y };
    let out = l.expr(e)?;
    let loss = super::reduce_to_loss(l.f, b, out).map_err(FormatError::Ir)?;
    f.set_term(b, Terminator::Return(vec![loss]));
    Ok(f)
}

struct Lower<'a> {
    f: &'a mut Function,
    b: ncp_ir::Block,
    x: Value,
    y: Value,
}

impl Lower<'_> {
    fn ins(&mut self, op: Opcode, args: &[Value]) -> Result<Value, FormatError> {
        self.f
            .ins(self.b, op, Imm::None, args)
            .map_err(FormatError::Ir)
    }
    fn c(&mut self, v: f32) -> Result<Value, FormatError> {
        self.f
            .ins(self.b, Opcode::Const, Imm::Const(ConstVal::F32(v)), &[])
            .map_err(FormatError::Ir)
    }
    fn all(&mut self, op: Opcode, x: Value) -> Result<Value, FormatError> {
        self.f
            .ins(self.b, op, Imm::Axis(ncp_ir::Axis::All), &[x])
            .map_err(FormatError::Ir)
    }
    fn expr(&mut self, e: &Expr) -> Result<Value, FormatError> {
        Ok(match e {
            Expr::X => self.x,
            Expr::Y => self.y,
            Expr::Const(v) => self.c(*v)?,
            Expr::Call(name, args) => {
                let a: Vec<Value> = args
                    .iter()
                    .map(|a| self.expr(a))
                    .collect::<Result<_, _>>()?;
                self.call(name, &a)?
            }
        })
    }
    fn call(&mut self, name: &str, a: &[Value]) -> Result<Value, FormatError> {
        use Opcode as O;
        Ok(match name {
            "safe_add" => self.ins(O::Add, a)?,
            "safe_sub" => self.ins(O::Sub, a)?,
            "safe_mul" => self.ins(O::Mul, a)?,
            "safe_div" => {
                let eps = self.c(1e-8)?;
                let d = self.ins(O::Add, &[a[1], eps])?;
                self.ins(O::Div, &[a[0], d])?
            }
            "safe_log" => {
                let ab = self.ins(O::Abs, a)?;
                let eps = self.c(1e-8)?;
                let s = self.ins(O::Add, &[ab, eps])?;
                self.ins(O::Log, &[s])?
            }
            "safe_sqrt" => {
                let ab = self.ins(O::Abs, a)?;
                self.ins(O::Sqrt, &[ab])?
            }
            "safe_exp" => {
                let lo = self.c(-100.0)?;
                let hi = self.c(100.0)?;
                let t = self.ins(O::ClampMin, &[a[0], lo])?;
                let t = self.ins(O::ClampMax, &[t, hi])?;
                self.ins(O::Exp, &[t])?
            }
            "mean" => self.all(O::Mean, a[0])?,
            "std" => self.all(O::Std, a[0])?,
            "leaky_relu" => {
                let zero = self.c(0.0)?;
                let slope = self.c(0.01)?;
                let pos = self.ins(O::Gt, &[a[0], zero])?;
                let neg = self.ins(O::Mul, &[a[0], slope])?;
                self.ins(O::Select, &[pos, a[0], neg])?
            }
            "square" | "cube" => {
                let k = self.c(if name == "square" { 2.0 } else { 3.0 })?;
                self.ins(O::Pow, &[a[0], k])?
            }
            // The primitives that are one IR op, by the op table's DAML column.
            _ => match Opcode::from_daml(name) {
                Some(op) => self.ins(op, a)?,
                None => {
                    return Err(FormatError::Daml {
                        col: 1,
                        msg: format!("unknown primitive `{name}`"),
                    });
                }
            },
        })
    }
}

/// Whether every name in `e` is in the miner primitive set.
pub fn uses_only_miner_set(e: &Expr) -> bool {
    match e {
        Expr::Call(n, args) => {
            PRIMITIVES.iter().any(|p| p.0 == *n && p.2 == PSet::Miner)
                && args.iter().all(uses_only_miner_set)
        }
        _ => true,
    }
}

/// Print an expression tree in DAML's syntax. Constants equal to a named terminal print as
/// its name; others as plain numbers (the shortest text that reads back to the same f32).
pub fn print_expr(e: &Expr) -> String {
    match e {
        Expr::X => "x".into(),
        Expr::Y => "y".into(),
        Expr::Const(v) => match TERMINALS.iter().find(|t| t.1.to_bits() == v.to_bits()) {
            Some(t) => t.0.into(),
            None if v.is_nan() => "nan".into(),
            None => format!("{v:?}"),
        },
        Expr::Call(n, args) => {
            let a: Vec<String> = args.iter().map(print_expr).collect();
            format!("{n}({})", a.join(", "))
        }
    }
}

/// The f32 type DAML computes in (every DAML value is an f32 tensor).
pub const DTYPE: DType = DType::F32;

/// A random expression in DEAP's half-and-half style: `full` trees (every branch reaches
/// `max_depth`) or `grow` trees (terminals may stop a branch early), from the given set.
/// Ephemeral constants are uniform in [-1, 1) rounded to 4 decimals, as DAML prints them.
pub fn random_expr(
    rng: &mut impl rand::Rng,
    min_depth: usize,
    max_depth: usize,
    pset: PSet,
) -> Expr {
    random_tree(rng, min_depth, max_depth, None, pset)
}

/// A tree of a height drawn in `min_depth..=max_depth`, `full` or `grow` as `full` says
/// (drawn after the height when `None`).
fn random_tree(
    rng: &mut impl rand::Rng,
    min_depth: usize,
    max_depth: usize,
    full: Option<bool>,
    pset: PSet,
) -> Expr {
    let depth = rng.random_range(min_depth..=max_depth);
    let full = full.unwrap_or_else(|| rng.random_bool(0.5));
    grow(rng, 0, depth, full, pset)
}

/// A `full` tree as DEAP's `genFull` makes one: every branch reaches a height drawn in
/// `min_depth..=max_depth` (DAML's subtree mutation draws its subtrees this way, 0..=2).
pub fn random_full(
    rng: &mut impl rand::Rng,
    min_depth: usize,
    max_depth: usize,
    pset: PSet,
) -> Expr {
    random_tree(rng, min_depth, max_depth, Some(true), pset)
}

fn grow(rng: &mut impl rand::Rng, d: usize, max: usize, full: bool, pset: PSet) -> Expr {
    let prims: Vec<&(&str, usize, PSet)> = PRIMITIVES
        .iter()
        .filter(|p| pset == PSet::Validator || p.2 == PSet::Miner)
        .collect();
    let terms: Vec<&(&str, f32, PSet)> = TERMINALS
        .iter()
        .filter(|t| pset == PSet::Validator || t.2 == PSet::Miner)
        .collect();
    let n_terms = terms.len() + 3;
    let stop = d >= max || (!full && d > 0 && rng.random_range(0..prims.len() + n_terms) < n_terms);
    if stop {
        return match rng.random_range(0..n_terms) {
            0 => Expr::X,
            1 => Expr::Y,
            2 => Expr::Const((rng.random_range(-1.0f32..1.0) * 1e4).round() / 1e4),
            k => Expr::Const(terms[k - 3].1),
        };
    }
    let (name, arity, _) = *prims[rng.random_range(0..prims.len())];
    Expr::Call(
        name,
        (0..arity)
            .map(|_| grow(rng, d + 1, max, full, pset))
            .collect(),
    )
}
