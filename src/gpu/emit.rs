//! The optimized gradient IR of row-separable losses (`jit::plan::row_separable`) as one
//! kernel: a row function per candidate, and a kernel that evaluates the loss share and
//! dL/dy_pred of K candidates over every row of one batch (candidates x rows as the launch
//! grid). Three dialects (`syntax.rs` spells each): CUDA C (`Dialect::Cuda`, compiled at run
//! time by NVRTC), host C (`Dialect::HostC`: the grid becomes two loops; compiled by the
//! system's C compiler, which is how CI tests the CUDA source without a GPU) and WGSL
//! (`Dialect::Wgsl`, run by wgpu: `gpu::wgpu`, tested on Mesa's lavapipe).
//!
//! Values are classified as in `row_separable`: *free* values depend on no data (constants,
//! dims, counts and arithmetic on them; one scalar each, whatever their shape), *row* values
//! have one element per row ([B]: a scalar in the row function) or one per element ([B, C]: a
//! local array of `NCP_C` elements, C being compiled in). Bools are floats 0 and 1. In C, row
//! sums accumulate in double, as the interpreter does, and exp, log and the other
//! transcendentals are computed in double and rounded once; WGSL has no f64, so it computes
//! in f32 with the device's built-ins. Either way results agree with the interpreter to a
//! tolerance, not bit for bit. The loss is written per row as a share; the host adds the
//! shares in row order (in f64) and divides a mean by the count.

pub use super::syntax::Dialect;
use super::syntax::Syn;
use crate::jit::plan::row_separable;
use ncp_ir::{Axis, ConstVal, DType, Dim, Function, Imm, Opcode, Terminator, Value};
use std::collections::HashMap;
use std::fmt::Write;

/// Why a loss has no population kernel.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EmitError {
    /// The loss is not row-separable, returns no gradient, or uses an op this backend does not
    /// lower (named).
    #[error("the population backend does not lower this loss: {0}")]
    Unsupported(String),
}

fn unsupported<T>(what: impl Into<String>) -> Result<T, EmitError> {
    Err(EmitError::Unsupported(what.into()))
}

fn int_lit(syn: Syn, x: i64) -> Result<String, EmitError> {
    syn.int_lit(x).ok_or_else(|| {
        EmitError::Unsupported(format!("the integer {x} (WGSL's integers are 32-bit)"))
    })
}

/// How the host finishes a candidate's loss from its per-row shares.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct LossFinish {
    /// The loss is a mean (the sum of the shares divided by the count).
    pub mean: bool,
    /// Elements per row in the mean's count (C for a mean over all elements, 1 for a mean
    /// over rows).
    pub per_row: RowCount,
}

impl LossFinish {
    /// A candidate's loss from its per-row shares: their sum in row order (a total beyond
    /// f32's range is ±inf, as the interpreter's), divided by the count for a mean.
    pub fn loss(&self, shares: &[f64], b: usize, c: usize) -> f32 {
        let total = ncp_ir::kernels::overflow_to_inf(shares.iter().fold(0.0, |a, x| a + x));
        if self.mean {
            let n = match self.per_row {
                RowCount::One => b,
                RowCount::C => b * c,
            };
            (total / n as f64) as f32
        } else {
            total as f32
        }
    }
}

/// Elements each row adds to a mean's count.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RowCount {
    /// One.
    One,
    /// C.
    C,
}

/// One candidate's row function.
struct RowFn {
    body: String,
    finish: LossFinish,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Free,
    Row1,
    Row2,
}

/// A population's kernel source.
#[derive(Clone, Debug)]
pub struct Population {
    /// The whole translation unit.
    pub source: String,
    /// How to finish each candidate's loss, in candidate order.
    pub finish: Vec<LossFinish>,
    /// The class count compiled in.
    pub c: usize,
}

/// What the population kernels take for a loss: its optimized gradient IR,
/// `(y_pred, y_true) -> (loss, dL/dy_pred)`, or `None` when the loss has no gradient (it does
/// not depend on y_pred) or the gradient pass or the optimizer refuses it.
pub fn gradient_ir(loss: &Function) -> Option<Function> {
    let g = ncp_ir::passes::gradient(loss).ok()?;
    if !g.has_grad {
        return None;
    }
    let mut gf = g.func;
    ncp_ir::passes::optimize(&mut gf, ncp_ir::passes::OptOptions::default()).ok()?;
    Some(gf)
}

/// The kernel of `funcs` (optimized gradient IR, `(y_pred, y_true) -> (loss, grad)`) for
/// inputs of `c` classes, one candidate per function.
pub fn population(funcs: &[Function], c: usize, dialect: Dialect) -> Result<Population, EmitError> {
    let slots: Vec<usize> = (0..funcs.len()).collect();
    population_of(funcs, &slots, c, dialect)
}

/// The kernel of candidates that may share losses: candidate k runs `funcs[slots[k]]`, and
/// each function is emitted once however many candidates run it (a population trains one
/// loss under several seeds).
pub fn population_of(
    funcs: &[Function],
    slots: &[usize],
    c: usize,
    dialect: Dialect,
) -> Result<Population, EmitError> {
    if c == 0 || c > 4096 {
        return unsupported(format!("{c} classes (1 to 4096 are compiled)"));
    }
    if let Some((k, f)) = slots.iter().enumerate().find(|(_, f)| **f >= funcs.len()) {
        return unsupported(format!(
            "candidate {k} runs loss {f}, and there are {} losses",
            funcs.len()
        ));
    }
    let syn = Syn(dialect);
    let mut bodies = Vec::new();
    let mut finishes = Vec::new();
    for f in funcs {
        let typed = f.blocks[f.entry()]
            .params
            .iter()
            .filter_map(|p| match f.ty(*p).shape.last() {
                Some(Dim::Fixed(n)) if *n as usize != c => Some(*n),
                _ => None,
            })
            .next();
        if let Some(n) = typed {
            return unsupported(format!("a loss typed for {n} classes, compiled for {c}"));
        }
        let r = row_fn(f, syn)?;
        bodies.push(r.body);
        finishes.push(r.finish);
    }
    Ok(Population {
        source: syn.unit(c, &bodies, slots),
        finish: slots.iter().map(|f| finishes[*f]).collect(),
        c,
    })
}

fn row_fn(f: &Function, syn: Syn) -> Result<RowFn, EmitError> {
    if !f.is_straight_line() {
        return unsupported("control flow");
    }
    if !row_separable(f) {
        return unsupported("a loss that mixes rows");
    }
    let b = f.entry();
    let Terminator::Return(rets) = &f.blocks[b].term else {
        return unsupported("a function that does not return");
    };
    if rets.len() != 2 {
        return unsupported("a loss without a gradient");
    }
    let (loss, grad) = (rets[0], rets[1]);
    let params = &f.blocks[b].params;
    let mut kind: HashMap<Value, Kind> = HashMap::new();
    let mut body = String::new();
    for p in params {
        kind.insert(*p, Kind::Row2);
    }
    let name = |v: Value| -> String {
        if v == params[0] {
            "yp".into()
        } else if v == params[1] {
            "yt".into()
        } else {
            format!("v{}", ncp_ir::EntityRef::index(v))
        }
    };
    let mut finish = None;
    for &i in &f.blocks[b].insts {
        let d = f.insts[i].clone();
        let r = d.result;
        let rty = f.ty(r).clone();
        let ak: Vec<Kind> = d
            .args
            .iter()
            .map(|a| kind.get(a).copied().unwrap_or(Kind::Free))
            .collect();
        let reads_data = d
            .args
            .iter()
            .enumerate()
            .any(|(k, _)| crate::jit::plan::reads_value(d.op, k) && ak[k] != Kind::Free);
        // The loss: a sum or mean over everything of a row value.
        if r == loss {
            let a = d.args[0];
            let (mean, per_row) = match (d.op, &d.imm, kind.get(&a)) {
                (Opcode::Sum, Imm::Axis(Axis::All), Some(Kind::Row2)) => (false, RowCount::C),
                (Opcode::Mean, Imm::Axis(Axis::All), Some(Kind::Row2)) => (true, RowCount::C),
                (Opcode::Sum, _, Some(Kind::Row1)) => (false, RowCount::One),
                (Opcode::Mean, _, Some(Kind::Row1)) => (true, RowCount::One),
                _ => return unsupported(format!("a loss computed by `{}`", d.op.name())),
            };
            body += &syn.share(&name(a), kind[&a] == Kind::Row2);
            finish = Some(LossFinish { mean, per_row });
            continue;
        }
        if !reads_data && !matches!(d.op, Opcode::Softmax) {
            // Free: one scalar.
            let e = free_expr(f, &d, &name, syn)?;
            body += &syn.scalar(rty.dtype, &name(r), &e);
            kind.insert(r, Kind::Free);
            continue;
        }
        let k = if rty.rank() == 2 {
            Kind::Row2
        } else {
            Kind::Row1
        };
        kind.insert(r, k);
        row_inst(f, &d, &ak, &name, syn, &mut body)?;
    }
    let Some(finish) = finish else {
        return unsupported("no loss reduction");
    };
    if kind.get(&grad) != Some(&Kind::Row2) {
        return unsupported("a gradient that is not per element");
    }
    body += &syn.store_grad(&name(grad));
    Ok(RowFn { body, finish })
}

/// An expression for a data-free instruction (its every element).
fn free_expr(
    f: &Function,
    d: &ncp_ir::InstData,
    name: &dyn Fn(Value) -> String,
    syn: Syn,
) -> Result<String, EmitError> {
    let a: Vec<String> = d.args.iter().map(|v| name(*v)).collect();
    let count = |v: Value, axis: &Imm| -> Result<String, EmitError> {
        let sh = &f.ty(v).shape;
        Ok(match axis {
            Imm::Axis(Axis::All) => {
                let parts: Vec<String> = sh.iter().map(|x| syn.count_factor(x)).collect();
                if parts.is_empty() {
                    syn.one().into()
                } else {
                    parts.join(" * ")
                }
            }
            Imm::Axis(Axis::Index(k)) => syn.count_factor(&sh[*k as usize]),
            _ => return unsupported("a reduction without an axis"),
        })
    };
    let rdt = f.ty(d.result).dtype;
    Ok(match d.op {
        Opcode::Const => match d.imm {
            Imm::Const(ConstVal::F32(x)) => syn.flit(x),
            Imm::Const(ConstVal::I64(x)) => int_lit(syn, x)?,
            Imm::Const(ConstVal::Bool(x)) => if x { "1.0f" } else { "0.0f" }.into(),
            _ => return unsupported("a constant without a value"),
        },
        Opcode::Dim => match d.imm {
            Imm::Dim(Dim::B) => "B".into(),
            Imm::Dim(Dim::C) => syn.to_int("NCP_C"),
            Imm::Dim(Dim::Fixed(n)) => int_lit(syn, n as i64)?,
            _ => return unsupported("a dim without a dim"),
        },
        Opcode::Count => syn.to_f32(&count(d.args[0], &d.imm)?),
        // Reductions of a free tensor (every element the same value).
        Opcode::Sum if rdt == DType::I64 => {
            format!("({} * {})", a[0], syn.to_int(&count(d.args[0], &d.imm)?))
        }
        Opcode::Sum => format!("ncp_scale({}, {})", a[0], count(d.args[0], &d.imm)?),
        Opcode::Mean | Opcode::RMax | Opcode::RMin => a[0].clone(),
        _ => {
            let dts: Vec<DType> = d.args.iter().map(|v| f.ty(*v).dtype).collect();
            elem_expr(d.op, &d.imm, &a, &dts, rdt, syn)?
        }
    })
}

/// One row instruction.
fn row_inst(
    f: &Function,
    d: &ncp_ir::InstData,
    ak: &[Kind],
    name: &dyn Fn(Value) -> String,
    syn: Syn,
    body: &mut String,
) -> Result<(), EmitError> {
    let r = name(d.result);
    let at = |k: usize| -> String {
        match ak[k] {
            Kind::Row2 => format!("{}[c]", name(d.args[k])),
            _ => name(d.args[k]),
        }
    };
    let rdt = f.ty(d.result).dtype;
    let rank2 = f.ty(d.result).rank() == 2;
    let along_rows = matches!(d.imm, Imm::Axis(Axis::Index(1))) && ak[0] == Kind::Row2;
    let x = syn.arg(&name(d.args[0]));
    match d.op {
        Opcode::Std | Opcode::Sum | Opcode::Mean | Opcode::RMax | Opcode::RMin => {
            if !along_rows {
                return unsupported(format!("`{}` across rows", d.op.name()));
            }
            let e = match d.op {
                Opcode::Std => format!("ncp_row_std({x})"),
                Opcode::Sum => format!("ncp_row_sum_f({x})"),
                Opcode::Mean => format!("ncp_row_mean_f({x})"),
                _ => {
                    let want_max = (d.op == Opcode::RMax) as u8;
                    format!("{}[ncp_row_arg({x}, {want_max})]", name(d.args[0]))
                }
            };
            *body += &syn.scalar(rdt, &r, &e);
        }
        Opcode::Softmax => {
            if ak[0] != Kind::Row2 {
                return unsupported("softmax of a row scalar");
            }
            *body += &syn.array(rdt, &r);
            let _ = writeln!(body, "    ncp_softmax({x}, {});", syn.arg(&r));
        }
        Opcode::MaxMask | Opcode::MinMask => {
            if !along_rows {
                return unsupported("a max/min mask across rows");
            }
            let want_max = (d.op == Opcode::MaxMask) as u8;
            *body += &syn.array(rdt, &r);
            let _ = writeln!(body, "    ncp_mask({x}, {want_max}, {});", syn.arg(&r));
        }
        Opcode::Expand | Opcode::BroadcastLike if rank2 => {
            *body += &syn.array(rdt, &r);
            *body += &syn.each(&format!("{r}[c] = {};", at(0)));
        }
        op if op.is_elementwise() => {
            let args: Vec<String> = (0..d.args.len()).map(at).collect();
            let dts: Vec<DType> = d.args.iter().map(|v| f.ty(*v).dtype).collect();
            let e = elem_expr(op, &d.imm, &args, &dts, rdt, syn)?;
            if rank2 {
                *body += &syn.array(rdt, &r);
                *body += &syn.each(&format!("{r}[c] = {e};"));
            } else {
                *body += &syn.scalar(rdt, &r, &e);
            }
        }
        op => return unsupported(format!("op `{}` on rows", op.name())),
    }
    Ok(())
}

/// An expression for an elementwise op on operand expressions (floats; bools as 0/1; i64 as
/// the dialect's integer), producing a value of `rdt`.
fn elem_expr(
    op: Opcode,
    imm: &Imm,
    a: &[String],
    dt: &[DType],
    rdt: DType,
    syn: Syn,
) -> Result<String, EmitError> {
    use Opcode as O;
    let boolish = dt.first() == Some(&DType::Bool);
    let int = dt.first() == Some(&DType::I64);
    let call = |fname: &str| format!("ncp_{fname}({})", a.join(", "));
    Ok(match op {
        O::Neg => format!("(-{})", a[0]),
        O::Abs if int => call("iabs"),
        O::Abs => call("abs"),
        O::Sqrt => call("sqrt"),
        O::Exp => call("exp"),
        O::Log => call("log"),
        O::Sin => call("sin"),
        O::Cos => call("cos"),
        O::Tan => call("tan"),
        O::Asin => call("asin"),
        O::Acos => call("acos"),
        O::Atan => call("atan"),
        O::Tanh => call("tanh"),
        O::Sigmoid => call("sigmoid"),
        O::Relu => call("relu"),
        O::Floor => call("floor"),
        O::Ceil => call("ceil"),
        O::Round => call("round"),
        O::Sign => call("sign"),
        O::Recip => syn.arith("div", "/", "1.0f", &a[0]),
        O::Add if boolish => format!("ncp_b({} != 0.0f || {} != 0.0f)", a[0], a[1]),
        O::Mul if boolish => format!("ncp_b({} != 0.0f && {} != 0.0f)", a[0], a[1]),
        O::Add if int => format!("({} + {})", a[0], a[1]),
        O::Add => syn.arith("add", "+", &a[0], &a[1]),
        O::Sub if int => format!("({} - {})", a[0], a[1]),
        O::Sub => syn.arith("sub", "-", &a[0], &a[1]),
        O::Mul if int => format!("({} * {})", a[0], a[1]),
        O::Mul => syn.arith("mul", "*", &a[0], &a[1]),
        O::Div if int => return unsupported("integer division"),
        O::Div => syn.arith("div", "/", &a[0], &a[1]),
        O::Pow if int => return unsupported("integer pow"),
        O::Pow => call("pow"),
        O::Max | O::ClampMin if int => call("imax"),
        O::Min | O::ClampMax if int => call("imin"),
        O::Max => call("max"),
        O::Min => call("min"),
        O::Rem if int => return unsupported("integer remainder"),
        O::Rem => call("rem"),
        O::Hypot => call("hypot"),
        O::ClampMin => call("clamp_min"),
        O::ClampMax => call("clamp_max"),
        O::Gt => format!("ncp_b({} > {})", a[0], a[1]),
        O::Ge => format!("ncp_b({} >= {})", a[0], a[1]),
        O::Eq => format!("ncp_b({} == {})", a[0], a[1]),
        O::Select if rdt == DType::I64 => call("isel"),
        O::Select => call("sel"),
        O::Cast => {
            let Imm::DType(to) = imm else {
                return unsupported("a cast without a dtype");
            };
            match (dt[0], *to) {
                (x, y) if x == y => a[0].clone(),
                (_, DType::Bool) => format!("ncp_b({} != 0)", a[0]),
                (DType::I64, DType::F32) | (DType::Bool, DType::F32) => syn.to_f32(&a[0]),
                (DType::F32, DType::I64) | (DType::Bool, DType::I64) => syn.to_int(&a[0]),
                (x, y) => return unsupported(format!("a cast from {x} to {y}")),
            }
        }
        O::OnesLike if rdt == DType::I64 => int_lit(syn, 1)?,
        O::ZerosLike if rdt == DType::I64 => int_lit(syn, 0)?,
        O::OnesLike => "1.0f".into(),
        O::ZerosLike => "0.0f".into(),
        O::Expand | O::BroadcastLike => a[0].clone(),
        O::Const
        | O::Dim
        | O::Sum
        | O::Mean
        | O::RMax
        | O::RMin
        | O::Std
        | O::AnyNonzero
        | O::Matmul
        | O::Transpose
        | O::Softmax
        | O::Reshape
        | O::SumTo
        | O::Count
        | O::MaxMask
        | O::MinMask => return unsupported(format!("op `{}` here", op.name())),
    })
}
