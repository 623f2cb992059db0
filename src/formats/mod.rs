//! Genome front ends: AMM register programs, DAML expression trees, HAZ gene arrays, and the
//! IR's own text form, each compiled to an [`ncp_ir::Function`]; and back ends that write IR
//! back out as AMM or DAML where its ops allow.

pub mod amm;
pub mod daml;
pub mod daml_emit;
pub mod haz;

use ncp_ir::{Axis, DType, DimModel, Function, Imm, IrError, Opcode, Type, Value};
use std::fmt;

/// A genome format.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// AMM register program (the pool's wire format).
    Amm,
    /// DAML expression tree.
    Daml,
    /// HAZ gene arrays.
    Haz,
    /// ncpc's text IR.
    Ir,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Amm => "amm",
            Format::Daml => "daml",
            Format::Haz => "haz",
            Format::Ir => "ir",
        })
    }
}

/// How faithfully a front end reproduces the public system's forgiving behaviour.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Do exactly what the public interpreter does, faults and fallbacks included.
    #[default]
    Compat,
    /// Reject what compat papers over, naming the instruction and the reason.
    Strict,
}

/// Errors of the front ends. Each says what is wrong and where.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The file is not valid JSON.
    #[error("invalid JSON at line {line}, column {col}: {msg}")]
    Json {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
        /// The parser's message.
        msg: String,
    },
    /// An AMM program problem.
    #[error("AMM instruction {index}: {msg}")]
    Amm {
        /// 0-based instruction index (the program counter).
        index: usize,
        /// What is wrong.
        msg: String,
    },
    /// An AMM program problem not tied to one instruction.
    #[error("AMM program: {0}")]
    AmmProgram(String),
    /// A DAML expression problem.
    #[error("DAML expression, column {col}: {msg}")]
    Daml {
        /// 1-based column in the expression.
        col: usize,
        /// What is wrong.
        msg: String,
    },
    /// A HAZ gene problem.
    #[error("HAZ gene, {place}: {msg}")]
    Haz {
        /// The field or instruction.
        place: String,
        /// What is wrong.
        msg: String,
    },
    /// The format could not be recognized.
    #[error("cannot tell the genome format: {0}; pass --format amm|daml|haz|ir")]
    Detect(String),
    /// A genome in a format evolution does not search.
    #[error("evolution works on AMM, DAML and HAZ genomes, not on {0}")]
    NotSearchable(Format),
    /// IR text or an IR-level problem.
    #[error(transparent)]
    Ir(#[from] IrError),
    /// The IR cannot be written in the requested format.
    #[error("cannot write this function as {format}: {msg}")]
    Emit {
        /// Target format.
        format: Format,
        /// Which op or construct has no equivalent.
        msg: String,
    },
}

/// Parse JSON, reporting line and column on failure.
pub fn parse_json(text: &str) -> Result<serde_json::Value, FormatError> {
    serde_json::from_str(text).map_err(|e| FormatError::Json {
        line: e.line(),
        col: e.column(),
        msg: e.to_string(),
    })
}

/// Guess the format of a genome file's text.
pub fn detect(text: &str) -> Result<Format, FormatError> {
    let t = text.trim_start();
    if t.starts_with("function") || t.starts_with(';') {
        return Ok(Format::Ir);
    }
    if t.starts_with('[') {
        return Ok(Format::Amm);
    }
    if t.starts_with('{') || t.starts_with('"') {
        let mut v = match parse_json(t) {
            Ok(v) => v,
            // HAZ exports may hold Python's bare NaN/Infinity, which strict JSON refuses.
            Err(_) if t.contains("\"input_gene\"") || t.contains("\\\"input_gene\\\"") => {
                return Ok(Format::Haz);
            }
            Err(e) => return Err(e),
        };
        if let serde_json::Value::String(inner) = &v {
            let it = inner.trim_start();
            if it.starts_with('[') {
                return Ok(Format::Amm);
            }
            if !it.starts_with('{') {
                return Ok(Format::Daml);
            }
            v = parse_json(inner)?;
        }
        if v.get("expression").is_some() {
            return Ok(Format::Daml);
        }
        if v.get("gene").is_some() && v.get("input_gene").is_some() {
            return Ok(Format::Haz);
        }
        if v.get("program").is_some() || v.get("function").is_some() {
            return Ok(Format::Amm);
        }
        return Err(FormatError::Detect(
            "a JSON object with neither `expression` (DAML) nor `gene` (HAZ)".into(),
        ));
    }
    if t.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) {
        return Ok(Format::Daml);
    }
    Err(FormatError::Detect(
        "the text is neither JSON, an expression nor IR".into(),
    ))
}

/// Options for compiling a genome.
#[derive(Clone, Debug)]
pub struct CompileOptions {
    /// The format, or `None` to detect it.
    pub format: Option<Format>,
    /// compat or strict.
    pub mode: Mode,
    /// Symbolic or concrete dims.
    pub dims: DimModel,
    /// Function name.
    pub name: String,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            format: None,
            mode: Mode::Compat,
            dims: DimModel::Symbolic,
            name: "loss".into(),
        }
    }
}

/// A compiled genome.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The loss function `(y_pred, y_true) -> f32`.
    pub func: Function,
    /// The format it was read as.
    pub format: Format,
    /// What compat mode papered over, one line each (empty in strict mode).
    pub notes: Vec<String>,
}

/// Compile genome text to IR.
pub fn compile(text: &str, opts: &CompileOptions) -> Result<Compiled, FormatError> {
    let format = match opts.format {
        Some(f) => f,
        None => detect(text)?,
    };
    let name = sanitize_name(&opts.name);
    let (func, notes) = match format {
        Format::Ir => {
            let f = ncp_ir::text::parse_function(text)?;
            ncp_ir::verify::verify(&f)?;
            (f, Vec::new())
        }
        Format::Amm => {
            let prog = amm::parse_program(text)?;
            amm::lower(&prog, &name, opts.mode, opts.dims)?
        }
        Format::Daml => {
            let expr = daml::parse_expr(&daml::expression_of(text)?)?;
            (daml::lower(&expr, &name, opts.dims)?, Vec::new())
        }
        Format::Haz => {
            let gene = haz::parse_gene(text)?;
            haz::lower(&gene, &name, opts.mode, opts.dims)?
        }
    };
    Ok(Compiled {
        func,
        format,
        notes,
    })
}

/// A function name the text form accepts.
pub fn sanitize_name(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'g');
    }
    out
}

/// Turn a genome's result into the scalar loss the public systems compute: a one-element
/// result as is, anything larger averaged. Integer and bool results are cast to f32 when they
/// hold one element; larger ones cannot be averaged and trap (PyTorch's `mean` refuses them).
pub fn reduce_to_loss(f: &mut Function, b: ncp_ir::Block, v: Value) -> Result<Value, IrError> {
    let ty = f.ty(v).clone();
    let one_element = ty.shape.iter().all(|d| *d == ncp_ir::Dim::Fixed(1));
    let mut v = v;
    if one_element {
        if !ty.is_scalar() {
            v = f.ins(b, Opcode::Reshape, Imm::Shape(Vec::new()), &[v])?;
        }
        if ty.dtype != DType::F32 {
            v = f.ins(b, Opcode::Cast, Imm::DType(DType::F32), &[v])?;
        }
        return Ok(v);
    }
    if ty.dtype != DType::F32 {
        return Err(IrError::Type(format!("a {ty} result cannot be averaged")));
    }
    f.ins(b, Opcode::Mean, Imm::Axis(Axis::All), &[v])
}

/// The type of both loss inputs under `dims`.
pub fn input_type(dims: DimModel) -> Type {
    dims.input_type()
}
