//! The optimized gradient IR of row-separable losses (`jit::plan::row_separable`) as C: one
//! row function per candidate, and one kernel that evaluates the loss share and dL/dy_pred of
//! K candidates over every row of one batch (candidates x rows as the launch grid). The same
//! source is CUDA C (`Dialect::Cuda`, compiled at run time by NVRTC) and host C
//! (`Dialect::HostC`: the grid becomes two loops; compiled by the system's C compiler, which
//! is how CI tests the code without a GPU).
//!
//! Values are classified as in `row_separable`: *free* values depend on no data (constants,
//! dims, counts and arithmetic on them; one scalar each, whatever their shape), *row* values
//! have one element per row ([B]: a scalar in the row function) or one per element ([B, C]: a
//! local array of `NCP_C` floats, C being compiled in). Bools are floats 0 and 1. Row sums and
//! means accumulate in double, as the interpreter does; exp, log and the other
//! transcendentals are computed in double and rounded once (the device's libm, so results
//! agree with the interpreter to a tolerance, not bit for bit). The loss is written per row
//! as a double share; the host adds the shares in row order and divides a mean by the count.

use crate::jit::plan::row_separable;
use ncp_ir::{Axis, ConstVal, DType, Dim, Function, Imm, Opcode, Terminator, Value};
use std::collections::HashMap;
use std::fmt::Write;

/// Which compiler the source is for.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// CUDA C for NVRTC: `extern "C" __global__`, the grid from block and thread indices.
    Cuda,
    /// C99 for the host compiler: the grid as two loops.
    HostC,
}

/// Why a loss has no population kernel.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EmitError {
    /// The loss is not row-separable, returns no gradient, or uses an op this backend does not
    /// lower (named).
    #[error("the C backend does not lower this loss: {0}")]
    Unsupported(String),
}

fn unsupported<T>(what: impl Into<String>) -> Result<T, EmitError> {
    Err(EmitError::Unsupported(what.into()))
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

/// The kernel of `funcs` (optimized gradient IR, `(y_pred, y_true) -> (loss, grad)`) for
/// inputs of `c` classes.
pub fn population(funcs: &[Function], c: usize, dialect: Dialect) -> Result<Population, EmitError> {
    if c == 0 || c > 4096 {
        return unsupported(format!("{c} classes (1 to 4096 are compiled)"));
    }
    let mut out = String::new();
    out += &prelude(dialect, c);
    let mut finish = Vec::new();
    for (k, f) in funcs.iter().enumerate() {
        let r = row_fn(f)?;
        let _ = write!(
            out,
            "NCP_FN void ncp_row_{k}(const float* yp, const float* yt, float* g, double* share, long long B) {{\n{}}}\n\n",
            r.body
        );
        finish.push(r.finish);
    }
    let _ = write!(
        out,
        "NCP_KERNEL void ncp_population(const float* yp, const float* yt, float* grads, double* shares, long long B) {{\n    NCP_GRID(k, r, {n})\n    const float* p = yp + r * NCP_C;\n    const float* t = yt + r * NCP_C;\n    float* g = grads + ((long long)k * B + r) * NCP_C;\n    double* s = shares + (long long)k * B + r;\n    switch (k) {{\n",
        n = funcs.len()
    );
    for k in 0..funcs.len() {
        let _ = writeln!(out, "    case {k}: ncp_row_{k}(p, t, g, s, B); break;");
    }
    out += "    default: break;\n    }\n    NCP_GRID_END\n}\n";
    Ok(Population {
        source: out,
        finish,
        c,
    })
}

fn prelude(dialect: Dialect, c: usize) -> String {
    let head = match dialect {
        Dialect::Cuda => {
            "#define NCP_FN __device__ static inline\n\
             #define NCP_KERNEL extern \"C\" __global__\n\
             #define NCP_GRID(k, r, n) long long k = blockIdx.y; long long r = (long long)blockIdx.x * blockDim.x + threadIdx.x; if (r >= B || k >= n) return; {\n\
             #define NCP_GRID_END }\n\
             #define NCP_INF __int_as_float(0x7f800000)\n"
        }
        Dialect::HostC => {
            "#include <math.h>\n\
             #define NCP_FN static inline\n\
             #define NCP_KERNEL\n\
             #define NCP_GRID(k, r, n) for (long long k = 0; k < n; k++) for (long long r = 0; r < B; r++) {\n\
             #define NCP_GRID_END }\n\
             #define NCP_INF INFINITY\n"
        }
    };
    format!(
        "// Generated by ncpc (src/gpu/emit.rs): K candidate losses, loss shares and dL/dy_pred per row.\n{head}#define NCP_C {c}\n{HELPERS}\n"
    )
}

/// The scalar semantics of the IR's ops that need more than one C operator (NaN and signed
/// zero as the interpreter treats them).
const HELPERS: &str = r#"
NCP_FN float ncp_max(float a, float b) { if (a != a || b != b) return a + b; return a < b ? b : a; }
NCP_FN float ncp_min(float a, float b) { if (a != a || b != b) return a + b; return b < a ? b : a; }
NCP_FN float ncp_relu(float a) { return (a > 0.0f || a != a) ? a : 0.0f; }
NCP_FN float ncp_sign(float a) { return a > 0.0f ? 1.0f : (a < 0.0f ? -1.0f : a * 0.0f); }
NCP_FN float ncp_exp(float a) { return (float)exp((double)a); }
NCP_FN float ncp_log(float a) { return (float)log((double)a); }
NCP_FN float ncp_sigmoid(float a) { return (float)(1.0 / (1.0 + exp(-(double)a))); }
NCP_FN float ncp_pow(float a, float b) { return (float)pow((double)a, (double)b); }
NCP_FN float ncp_rem(float a, float b) { double m = fmod((double)a, (double)b); if (m != 0.0 && ((b < 0.0f) != (m < 0.0))) m += (double)b; return (float)m; }
NCP_FN float ncp_b(int c) { return c ? 1.0f : 0.0f; }
NCP_FN double ncp_row_sum(const float* x) { double acc = 0.0; for (int c = 0; c < NCP_C; c++) acc += (double)x[c]; return acc; }
NCP_FN int ncp_row_arg(const float* x, int want_max) { float best = x[0]; int at = 0; for (int c = 0; c < NCP_C; c++) { if (best != best) break; if (x[c] != x[c] || (want_max ? x[c] > best : x[c] < best)) { best = x[c]; at = c; } } return at; }
NCP_FN double ncp_ovf(double x) { return (x >= 3.4028235677973366e38 || x <= -3.4028235677973366e38) ? (x > 0 ? (double)NCP_INF : -(double)NCP_INF) : x; }
"#;

/// A C float literal for `x`: Rust's shortest representation that reads back as the same
/// f32, or an expression for the non-finite values.
fn flit(x: f32) -> String {
    if x.is_nan() {
        "(0.0f/0.0f)".into()
    } else if x.is_infinite() {
        if x > 0.0 { "NCP_INF" } else { "(-NCP_INF)" }.into()
    } else {
        format!("{x:e}f")
    }
}

fn row_fn(f: &Function) -> Result<RowFn, EmitError> {
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
            let _ = if kind[&a] == Kind::Row2 {
                writeln!(body, "    *share = ncp_row_sum({});", name(a))
            } else {
                writeln!(body, "    *share = (double){};", name(a))
            };
            finish = Some(LossFinish { mean, per_row });
            continue;
        }
        if !reads_data && !matches!(d.op, Opcode::Softmax) {
            // Free: one scalar.
            let e = free_expr(f, &d, &name)?;
            let cty = if rty.dtype == DType::I64 {
                "long long"
            } else {
                "float"
            };
            let _ = writeln!(body, "    {cty} {} = {e};", name(r));
            kind.insert(r, Kind::Free);
            continue;
        }
        let rank = rty.rank();
        let k = if rank == 2 { Kind::Row2 } else { Kind::Row1 };
        kind.insert(r, k);
        row_inst(f, &d, &ak, &name, &mut body)?;
    }
    let Some(finish) = finish else {
        return unsupported("no loss reduction");
    };
    if kind.get(&grad) != Some(&Kind::Row2) {
        return unsupported("a gradient that is not per element");
    }
    let _ = writeln!(
        body,
        "    for (int c = 0; c < NCP_C; c++) g[c] = {}[c];",
        name(grad)
    );
    Ok(RowFn { body, finish })
}

/// A C expression for a data-free instruction (its every element).
fn free_expr(
    f: &Function,
    d: &ncp_ir::InstData,
    name: &dyn Fn(Value) -> String,
) -> Result<String, EmitError> {
    let a: Vec<String> = d.args.iter().map(|v| name(*v)).collect();
    let count = |v: Value, axis: &Imm| -> Result<String, EmitError> {
        let sh = &f.ty(v).shape;
        let dim = |x: &Dim| match x {
            Dim::B => "(double)B".to_string(),
            Dim::C => "(double)NCP_C".to_string(),
            Dim::Fixed(n) => format!("{n}.0"),
        };
        Ok(match axis {
            Imm::Axis(Axis::All) => {
                let parts: Vec<String> = sh.iter().map(dim).collect();
                if parts.is_empty() {
                    "1.0".into()
                } else {
                    parts.join(" * ")
                }
            }
            Imm::Axis(Axis::Index(k)) => dim(&sh[*k as usize]),
            _ => return unsupported("a reduction without an axis"),
        })
    };
    Ok(match d.op {
        Opcode::Const => match d.imm {
            Imm::Const(ConstVal::F32(x)) => flit(x),
            Imm::Const(ConstVal::I64(x)) => format!("{x}LL"),
            Imm::Const(ConstVal::Bool(x)) => if x { "1.0f" } else { "0.0f" }.into(),
            _ => return unsupported("a constant without a value"),
        },
        Opcode::Dim => match d.imm {
            Imm::Dim(Dim::B) => "B".into(),
            Imm::Dim(Dim::C) => "(long long)NCP_C".into(),
            Imm::Dim(Dim::Fixed(n)) => format!("{n}LL"),
            _ => return unsupported("a dim without a dim"),
        },
        Opcode::Count => format!("(float)({})", count(d.args[0], &d.imm)?),
        // Reductions of a free tensor (every element the same value).
        Opcode::Sum => format!(
            "(float)ncp_ovf((double){} * ({}))",
            a[0],
            count(d.args[0], &d.imm)?
        ),
        Opcode::Mean | Opcode::RMax | Opcode::RMin => a[0].clone(),
        _ => {
            let dts: Vec<DType> = d.args.iter().map(|v| f.ty(*v).dtype).collect();
            elem_expr(d.op, &d.imm, &a, &dts)?
        }
    })
}

/// One row instruction.
fn row_inst(
    f: &Function,
    d: &ncp_ir::InstData,
    ak: &[Kind],
    name: &dyn Fn(Value) -> String,
    body: &mut String,
) -> Result<(), EmitError> {
    let r = name(d.result);
    let at = |k: usize| -> String {
        match ak[k] {
            Kind::Row2 => format!("{}[c]", name(d.args[k])),
            _ => name(d.args[k]),
        }
    };
    let rank2 = f.ty(d.result).rank() == 2;
    match d.op {
        Opcode::Std => {
            if !matches!(d.imm, Imm::Axis(Axis::Index(1))) || ak[0] != Kind::Row2 {
                return unsupported("`std` across rows");
            }
            let x = name(d.args[0]);
            let _ = writeln!(
                body,
                "    float {r}; {{ double m = ncp_row_sum({x}) / NCP_C; double ss = 0.0; for (int c = 0; c < NCP_C; c++) ss += ((double){x}[c] - m) * ((double){x}[c] - m); {r} = (float)sqrt(ss / (NCP_C - 1.0)); }}"
            );
        }
        Opcode::Sum | Opcode::Mean | Opcode::RMax | Opcode::RMin => {
            if !matches!(d.imm, Imm::Axis(Axis::Index(1))) || ak[0] != Kind::Row2 {
                return unsupported(format!("`{}` across rows", d.op.name()));
            }
            let x = name(d.args[0]);
            let _ = match d.op {
                Opcode::Sum => writeln!(body, "    float {r} = (float)ncp_ovf(ncp_row_sum({x}));"),
                Opcode::Mean => writeln!(
                    body,
                    "    float {r} = (float)(ncp_ovf(ncp_row_sum({x})) / NCP_C);"
                ),
                _ => {
                    let want_max = (d.op == Opcode::RMax) as u8;
                    writeln!(body, "    float {r} = {x}[ncp_row_arg({x}, {want_max})];")
                }
            };
        }
        Opcode::Softmax => {
            if ak[0] != Kind::Row2 {
                return unsupported("softmax of a row scalar");
            }
            let x = name(d.args[0]);
            let _ = writeln!(
                body,
                "    float {r}[NCP_C]; {{ float m = -NCP_INF; for (int c = 0; c < NCP_C; c++) {{ float v = {x}[c]; m = (v != v || m != m) ? (0.0f/0.0f) : (v > m ? v : m); }} double e[NCP_C]; double s = 0.0; for (int c = 0; c < NCP_C; c++) {{ e[c] = exp((double){x}[c] - (double)m); s += e[c]; }} for (int c = 0; c < NCP_C; c++) {r}[c] = (float)(e[c] / s); }}"
            );
        }
        Opcode::MaxMask | Opcode::MinMask => {
            if !matches!(d.imm, Imm::Axis(Axis::Index(1))) || ak[0] != Kind::Row2 {
                return unsupported("a max/min mask across rows");
            }
            let x = name(d.args[0]);
            let want_max = (d.op == Opcode::MaxMask) as u8;
            let _ = writeln!(
                body,
                "    float {r}[NCP_C]; {{ int at = ncp_row_arg({x}, {want_max}); for (int c = 0; c < NCP_C; c++) {r}[c] = c == at ? 1.0f : 0.0f; }}"
            );
        }
        Opcode::Expand | Opcode::BroadcastLike if rank2 => {
            let src = at(0);
            let _ = writeln!(
                body,
                "    float {r}[NCP_C]; for (int c = 0; c < NCP_C; c++) {r}[c] = {src};"
            );
        }
        op if op.is_elementwise() => {
            let args: Vec<String> = (0..d.args.len()).map(at).collect();
            let dts: Vec<DType> = d.args.iter().map(|v| f.ty(*v).dtype).collect();
            let e = elem_expr(op, &d.imm, &args, &dts)?;
            let _ = if rank2 {
                writeln!(
                    body,
                    "    float {r}[NCP_C]; for (int c = 0; c < NCP_C; c++) {r}[c] = {e};"
                )
            } else {
                writeln!(body, "    float {r} = {e};")
            };
        }
        op => return unsupported(format!("op `{}` on rows", op.name())),
    }
    Ok(())
}

/// A C expression for an elementwise op on operand expressions (floats; bools as 0/1; i64 as
/// long long).
fn elem_expr(op: Opcode, imm: &Imm, a: &[String], dt: &[DType]) -> Result<String, EmitError> {
    use Opcode as O;
    let boolish = dt.first() == Some(&DType::Bool);
    let int = dt.first() == Some(&DType::I64);
    let f1 = |fname: &str| format!("(float){fname}((double){})", a[0]);
    Ok(match op {
        O::Neg => format!("(-{})", a[0]),
        O::Abs if int => format!("({0} < 0 ? -{0} : {0})", a[0]),
        O::Abs => format!("fabsf({})", a[0]),
        O::Sqrt => format!("sqrtf({})", a[0]),
        O::Exp => format!("ncp_exp({})", a[0]),
        O::Log => format!("ncp_log({})", a[0]),
        O::Sin => f1("sin"),
        O::Cos => f1("cos"),
        O::Tan => f1("tan"),
        O::Asin => f1("asin"),
        O::Acos => f1("acos"),
        O::Atan => f1("atan"),
        O::Tanh => f1("tanh"),
        O::Sigmoid => format!("ncp_sigmoid({})", a[0]),
        O::Relu => format!("ncp_relu({})", a[0]),
        O::Floor => format!("floorf({})", a[0]),
        O::Ceil => format!("ceilf({})", a[0]),
        O::Round => format!("rintf({})", a[0]),
        O::Sign => format!("ncp_sign({})", a[0]),
        O::Recip => format!("(1.0f / {})", a[0]),
        O::Add if boolish => format!("ncp_b({} != 0.0f || {} != 0.0f)", a[0], a[1]),
        O::Mul if boolish => format!("ncp_b({} != 0.0f && {} != 0.0f)", a[0], a[1]),
        O::Add => format!("({} + {})", a[0], a[1]),
        O::Sub => format!("({} - {})", a[0], a[1]),
        O::Mul => format!("({} * {})", a[0], a[1]),
        O::Div if int => return unsupported("integer division"),
        O::Div => format!("({} / {})", a[0], a[1]),
        O::Pow if int => return unsupported("integer pow"),
        O::Pow => format!("ncp_pow({}, {})", a[0], a[1]),
        O::Max if int => format!("({0} < {1} ? {1} : {0})", a[0], a[1]),
        O::Min if int => format!("({1} < {0} ? {1} : {0})", a[0], a[1]),
        O::Max => format!("ncp_max({}, {})", a[0], a[1]),
        O::Min => format!("ncp_min({}, {})", a[0], a[1]),
        O::Rem => format!("ncp_rem({}, {})", a[0], a[1]),
        O::Hypot => format!("(float)hypot((double){}, (double){})", a[0], a[1]),
        O::ClampMin => format!("({0} < {1} ? {1} : {0})", a[0], a[1]),
        O::ClampMax => format!("({0} > {1} ? {1} : {0})", a[0], a[1]),
        O::Gt => format!("ncp_b({} > {})", a[0], a[1]),
        O::Ge => format!("ncp_b({} >= {})", a[0], a[1]),
        O::Eq => format!("ncp_b({} == {})", a[0], a[1]),
        O::Select => format!("({} != 0.0f ? {} : {})", a[0], a[1], a[2]),
        O::Cast => {
            let Imm::DType(to) = imm else {
                return unsupported("a cast without a dtype");
            };
            match (dt[0], *to) {
                (x, y) if x == y => a[0].clone(),
                (_, DType::Bool) => format!("ncp_b({} != 0)", a[0]),
                (DType::I64, DType::F32) | (DType::Bool, DType::F32) => {
                    format!("(float)({})", a[0])
                }
                (DType::F32, DType::I64) | (DType::Bool, DType::I64) => {
                    format!("(long long)({})", a[0])
                }
                (x, y) => return unsupported(format!("a cast from {x} to {y}")),
            }
        }
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
