//! Readable forms of a loss: its formula in plain infix math or LaTeX (`ncpc explain`), and
//! a self-contained PyTorch module computing it (`ncpc export --to pytorch`).
//!
//! The printer walks the optimized IR from the returned value. A value used more than once
//! is named (`t1 = ...`) rather than repeated. Functions with control flow (AMM jumps) have
//! no single formula; the printers refuse them and say so.

use ncp_ir::{Axis, ConstVal, Dim, Function, Imm, InstData, Opcode, Terminator, Value, ValueDef};
use std::collections::HashMap;
use std::fmt::Write;

/// How to write the formula.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Style {
    /// Plain text: `mean(sum_c(y_true * log(softmax(y_pred))))`.
    Plain,
    /// LaTeX.
    Latex,
    /// PyTorch expressions over tensors `y_pred` and `y_true`.
    Torch,
}

/// Why a function cannot be written in a style.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ExplainError(pub String);

/// Binding strength, for parentheses.
#[derive(Copy, Clone, PartialEq, PartialOrd)]
enum Prec {
    Sum = 1,
    Product = 2,
    Unary = 3,
    Power = 4,
    Atom = 5,
}

struct Printer<'f> {
    f: &'f Function,
    style: Style,
    uses: HashMap<Value, usize>,
    names: HashMap<Value, String>,
    lets: Vec<(String, String)>,
}

fn number(c: ConstVal, style: Style) -> String {
    match (c, style) {
        (ConstVal::F32(x), Style::Torch) if x.is_nan() => "float('nan')".into(),
        (ConstVal::F32(x), Style::Torch) if x.is_infinite() => {
            if x > 0.0 {
                "float('inf')".into()
            } else {
                "float('-inf')".into()
            }
        }
        (ConstVal::F32(x), Style::Latex) if x.is_infinite() => {
            if x > 0.0 {
                "\\infty".into()
            } else {
                "-\\infty".into()
            }
        }
        (ConstVal::F32(x), Style::Torch) => format!("{x:?}"),
        (ConstVal::F32(x), _) => {
            let s = format!("{x:?}");
            s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
        }
        (ConstVal::I64(i), _) => i.to_string(),
        (ConstVal::Bool(b), Style::Torch) => if b { "True" } else { "False" }.into(),
        (ConstVal::Bool(b), _) => b.to_string(),
    }
}

fn dim_name(d: Dim) -> String {
    match d {
        Dim::B => "B".into(),
        Dim::C => "C".into(),
        Dim::Fixed(n) => n.to_string(),
    }
}

impl<'f> Printer<'f> {
    fn new(f: &'f Function, style: Style) -> Printer<'f> {
        let mut uses = HashMap::new();
        for b in f.blocks.keys() {
            for i in &f.blocks[b].insts {
                for a in &f.insts[*i].args {
                    *uses.entry(*a).or_insert(0) += 1;
                }
            }
        }
        Printer {
            f,
            style,
            uses,
            names: HashMap::new(),
            lets: Vec::new(),
        }
    }

    fn inst_of(&self, v: Value) -> Option<&'f InstData> {
        match self.f.values[v].def {
            ValueDef::Inst(i) => Some(&self.f.insts[i]),
            ValueDef::Param(..) => None,
        }
    }

    /// The expression of `v` with its precedence; shared non-trivial values become names.
    fn expr(&mut self, v: Value) -> Result<(String, Prec), ExplainError> {
        if let Some(n) = self.names.get(&v) {
            return Ok((n.clone(), Prec::Atom));
        }
        let (text, prec) = self.build(v)?;
        let shared = self.uses.get(&v).copied().unwrap_or(0) > 1;
        let leaf = match self.inst_of(v) {
            None => true,
            Some(i) => matches!(i.op, Opcode::Const | Opcode::Dim),
        };
        if shared && !leaf {
            let name = format!("t{}", self.lets.len() + 1);
            self.lets.push((name.clone(), text));
            self.names.insert(v, name.clone());
            return Ok((name, Prec::Atom));
        }
        Ok((text, prec))
    }

    fn wrap(&mut self, v: Value, min: Prec) -> Result<String, ExplainError> {
        let (t, p) = self.expr(v)?;
        Ok(if p < min { self.paren(&t) } else { t })
    }

    fn paren(&self, t: &str) -> String {
        if self.style == Style::Latex {
            format!("\\left({t}\\right)")
        } else {
            format!("({t})")
        }
    }

    fn call(&mut self, name: &str, args: &[Value]) -> Result<(String, Prec), ExplainError> {
        let parts = args
            .iter()
            .map(|a| self.expr(a.to_owned()).map(|e| e.0))
            .collect::<Result<Vec<_>, _>>()?;
        let joined = parts.join(", ");
        Ok(match self.style {
            Style::Latex => (
                format!(
                    "\\operatorname{{{}}}\\left({joined}\\right)",
                    name.replace('_', "\\_")
                ),
                Prec::Atom,
            ),
            _ => (format!("{name}({joined})"), Prec::Atom),
        })
    }

    fn build(&mut self, v: Value) -> Result<(String, Prec), ExplainError> {
        let style = self.style;
        let Some(inst) = self.inst_of(v) else {
            let ValueDef::Param(_, n) = self.f.values[v].def else {
                unreachable!()
            };
            let name = match (n, style) {
                (0, Style::Latex) => "\\hat{y}",
                (0, _) => "y_pred",
                (_, Style::Latex) => "y",
                _ => "y_true",
            };
            return Ok((name.into(), Prec::Atom));
        };
        let a = inst.args.clone();
        // Ops written as a call: PyTorch's name from the op table, else the text-form name.
        let call_name = |op: Opcode| -> String {
            match (style, op.info().torch) {
                (Style::Torch, Some(t)) => t.to_string(),
                _ => op.name().to_string(),
            }
        };
        use Opcode::*;
        Ok(match inst.op {
            Const => match inst.imm {
                Imm::Const(c) => {
                    let t = number(c, style);
                    let p = if t.starts_with('-') {
                        Prec::Unary
                    } else {
                        Prec::Atom
                    };
                    match (style, c) {
                        (Style::Torch, ConstVal::F32(_)) => {
                            (format!("torch.tensor({t})"), Prec::Atom)
                        }
                        _ => (t, p),
                    }
                }
                _ => return Err(ExplainError("a constant without a value".into())),
            },
            Dim => match inst.imm {
                Imm::Dim(d) => (dim_name(d), Prec::Atom),
                _ => return Err(ExplainError("a dim without a size".into())),
            },
            Neg => (format!("-{}", self.wrap(a[0], Prec::Unary)?), Prec::Unary),
            Abs => match style {
                Style::Plain => (format!("|{}|", self.expr(a[0])?.0), Prec::Atom),
                Style::Latex => (format!("\\left|{}\\right|", self.expr(a[0])?.0), Prec::Atom),
                Style::Torch => self.call("torch.abs", &a)?,
            },
            Sqrt if style == Style::Latex => {
                (format!("\\sqrt{{{}}}", self.expr(a[0])?.0), Prec::Atom)
            }
            Recip => match style {
                Style::Latex => (format!("\\frac{{1}}{{{}}}", self.expr(a[0])?.0), Prec::Atom),
                Style::Torch => self.call("torch.reciprocal", &a)?,
                Style::Plain => (
                    format!("1 / {}", self.wrap(a[0], Prec::Power)?),
                    Prec::Product,
                ),
            },
            Sqrt | Exp | Log | Sin | Cos | Tan | Asin | Acos | Atan | Tanh | Sigmoid | Relu
            | Floor | Ceil | Round | Sign => self.call(&call_name(inst.op), &a)?,
            Add | Sub => {
                let l = self.wrap(a[0], Prec::Sum)?;
                let r = self.wrap(a[1], Prec::Product)?;
                let op = if inst.op == Add { "+" } else { "-" };
                (format!("{l} {op} {r}"), Prec::Sum)
            }
            Mul => {
                let l = self.wrap(a[0], Prec::Product)?;
                let r = self.wrap(a[1], Prec::Unary)?;
                let op = if style == Style::Latex {
                    " \\cdot "
                } else {
                    " * "
                };
                (format!("{l}{op}{r}"), Prec::Product)
            }
            Div => match style {
                Style::Latex => (
                    format!("\\frac{{{}}}{{{}}}", self.expr(a[0])?.0, self.expr(a[1])?.0),
                    Prec::Atom,
                ),
                _ => {
                    let l = self.wrap(a[0], Prec::Product)?;
                    let r = self.wrap(a[1], Prec::Unary)?;
                    (format!("{l} / {r}"), Prec::Product)
                }
            },
            Pow => match style {
                Style::Torch => self.call("torch.pow", &a)?,
                _ => {
                    let l = self.wrap(a[0], Prec::Atom)?;
                    let r = self.expr(a[1])?.0;
                    if style == Style::Latex {
                        (format!("{l}^{{{r}}}"), Prec::Power)
                    } else {
                        let r = self.wrap(a[1], Prec::Power)?;
                        (format!("{l}^{r}"), Prec::Power)
                    }
                }
            },
            Max | Min | Rem | Hypot => self.call(&call_name(inst.op), &a)?,
            ClampMin | ClampMax => match style {
                Style::Torch => {
                    let x = self.expr(a[0])?.0;
                    let b = self.expr(a[1])?.0;
                    let kw = if inst.op == ClampMin { "min" } else { "max" };
                    (format!("torch.clamp({x}, {kw}={b})"), Prec::Atom)
                }
                _ => self.call(
                    if inst.op == ClampMin {
                        "clamp_min"
                    } else {
                        "clamp_max"
                    },
                    &a,
                )?,
            },
            Gt | Ge | Eq => {
                let op = match (inst.op, style) {
                    (Gt, _) => ">",
                    (Ge, Style::Latex) => "\\geq",
                    (Ge, _) => ">=",
                    _ => "==",
                };
                let l = self.wrap(a[0], Prec::Sum)?;
                let r = self.wrap(a[1], Prec::Sum)?;
                (self.paren(&format!("{l} {op} {r}")), Prec::Atom)
            }
            Select => self.call(
                if style == Style::Torch {
                    "torch.where"
                } else {
                    "where"
                },
                &a,
            )?,
            Cast => match (style, &inst.imm) {
                (Style::Torch, &Imm::DType(d)) => {
                    let t = match d {
                        ncp_ir::DType::F32 => "torch.float32",
                        ncp_ir::DType::I64 => "torch.int64",
                        ncp_ir::DType::Bool => "torch.bool",
                    };
                    (
                        format!("{}.to({t})", self.wrap(a[0], Prec::Atom)?),
                        Prec::Atom,
                    )
                }
                _ => self.expr(a[0])?,
            },
            OnesLike | ZerosLike => match style {
                Style::Torch => {
                    let n = if inst.op == OnesLike {
                        "torch.ones_like"
                    } else {
                        "torch.zeros_like"
                    };
                    let x = self.expr(a[0])?.0;
                    (format!("{n}({x}, dtype=torch.float32)"), Prec::Atom)
                }
                _ => (
                    (if inst.op == OnesLike { "1" } else { "0" }).into(),
                    Prec::Atom,
                ),
            },
            Sum | Mean | RMax | RMin | Std => {
                let axis = match inst.imm {
                    Imm::Axis(ax) => ax,
                    _ => Axis::All,
                };
                let x = self.expr(a[0])?.0;
                match style {
                    Style::Torch => {
                        let m = match inst.op {
                            Sum => "sum",
                            Mean => "mean",
                            RMax => "amax",
                            RMin => "amin",
                            _ => "std",
                        };
                        let xx = self.wrap(a[0], Prec::Atom)?;
                        let _ = x;
                        match axis {
                            Axis::All => (format!("{xx}.{m}()"), Prec::Atom),
                            Axis::Index(k) => (format!("{xx}.{m}(dim={k})"), Prec::Atom),
                        }
                    }
                    _ => {
                        let base = match inst.op {
                            Sum => "sum",
                            Mean => "mean",
                            RMax => "max",
                            RMin => "min",
                            _ => "std",
                        };
                        let sub = match axis {
                            Axis::All => String::new(),
                            Axis::Index(0) => "_b".into(),
                            Axis::Index(1) => "_c".into(),
                            Axis::Index(k) => format!("_{k}"),
                        };
                        if style == Style::Latex {
                            let sub = sub.trim_start_matches('_');
                            let (op, s) = match inst.op {
                                Sum => ("\\sum".to_string(), sub.to_string()),
                                _ => (format!("\\operatorname{{{base}}}"), sub.to_string()),
                            };
                            let s = if s.is_empty() {
                                String::new()
                            } else {
                                format!("_{{{s}}}")
                            };
                            (format!("{op}{s}\\left({x}\\right)"), Prec::Atom)
                        } else {
                            (format!("{base}{sub}({x})"), Prec::Atom)
                        }
                    }
                }
            }
            Softmax => match style {
                Style::Torch => (
                    format!("torch.softmax({}, dim=-1)", self.expr(a[0])?.0),
                    Prec::Atom,
                ),
                _ => self.call("softmax", &a[..1])?,
            },
            Matmul => match style {
                Style::Torch => self.call("torch.matmul", &a)?,
                _ => {
                    let l = self.wrap(a[0], Prec::Product)?;
                    let r = self.wrap(a[1], Prec::Unary)?;
                    let op = if style == Style::Latex { " " } else { " @ " };
                    (format!("{l}{op}{r}"), Prec::Product)
                }
            },
            Transpose => match style {
                Style::Torch => (format!("{}.T", self.wrap(a[0], Prec::Atom)?), Prec::Atom),
                Style::Latex => (
                    format!("{}^{{\\top}}", self.wrap(a[0], Prec::Atom)?),
                    Prec::Power,
                ),
                Style::Plain => (format!("{}^T", self.wrap(a[0], Prec::Atom)?), Prec::Power),
            },
            // Shape plumbing: the values are the same elements, broadcast.
            Expand | BroadcastLike => match style {
                Style::Torch => {
                    let x = self.expr(a[0])?.0;
                    let like = self.expr(a[1])?.0;
                    let x = match (inst.op, &inst.imm) {
                        (Expand, &Imm::Axis(Axis::Index(k))) => format!("({x}).unsqueeze({k})"),
                        _ => x,
                    };
                    (
                        format!("torch.broadcast_to({x}, ({like}).shape)"),
                        Prec::Atom,
                    )
                }
                _ => self.expr(a[0])?,
            },
            Reshape => match (style, &inst.imm) {
                (Style::Torch, Imm::Shape(s)) => {
                    let dims: Vec<String> = s.iter().map(|d| dim_name(*d)).collect();
                    let x = self.wrap(a[0], Prec::Atom)?;
                    (format!("{x}.reshape(({},))", dims.join(", ")), Prec::Atom)
                }
                _ => self.expr(a[0])?,
            },
            op => {
                return Err(ExplainError(format!(
                    "`{}` has no formula form (it only appears in gradient IR)",
                    op.name()
                )));
            }
        })
    }
}

/// The formula of a straight-line loss function: shared subexpressions first (`t1 = ...`),
/// then the loss.
pub fn formula(f: &Function, style: Style) -> Result<String, ExplainError> {
    if !f.is_straight_line() {
        return Err(ExplainError(
            "the function has control flow (jumps), so it has no single formula; see `ncpc compile --emit ir-opt`".into(),
        ));
    }
    let Terminator::Return(rets) = &f.blocks[f.entry()].term else {
        return Err(ExplainError(
            "the function always faults (no formula)".into(),
        ));
    };
    let Some(ret) = rets.first() else {
        return Err(ExplainError("the function returns nothing".into()));
    };
    let mut p = Printer::new(f, style);
    let (body, _) = p.expr(*ret)?;
    let mut out = String::new();
    for (name, text) in &p.lets {
        match style {
            Style::Latex => writeln!(out, "{name} &= {text} \\\\").ok(),
            _ => writeln!(out, "{name} = {text}").ok(),
        };
    }
    match style {
        Style::Latex => writeln!(out, "L &= {body}").ok(),
        Style::Plain => writeln!(out, "loss = {body}").ok(),
        Style::Torch => writeln!(out, "return {body}").ok(),
    };
    Ok(out)
}

/// A self-contained Python source file with a `torch.nn.Module` computing the loss.
pub fn pytorch_module(f: &Function, class_name: &str) -> Result<String, ExplainError> {
    let body = formula(f, Style::Torch)?;
    let uses_dims = body.contains('B') || body.contains('C');
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\"\"\"Loss exported by ncpc from `{}` (canonical IR hash {}).\n\nForward: `loss = {class_name}()(y_pred, y_true)`, with y_pred and y_true float tensors of\nshape [B, C]. Gradients come from autograd; ncpc's IR follows PyTorch's conventions, but\nties of max/min and clamp bounds can differ in the gradient at exact ties.\n\"\"\"\nimport torch\n\n\nclass {class_name}(torch.nn.Module):\n    def forward(self, y_pred: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:",
        f.name,
        ncp_ir::passes::canonical_hash(f)
    );
    if uses_dims {
        let _ = writeln!(out, "        B, C = y_pred.shape");
    }
    for line in body.lines() {
        let _ = writeln!(out, "        {line}");
    }
    Ok(out)
}
