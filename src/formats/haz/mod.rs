//! HAZ gene arrays (mekaneeky/Hierarchical-AutoML-Zero loss genes).
//!
//! A gene is a straight-line program over a slot memory: instruction `i` applies op
//! `gene[i]` to the slots named by `input_gene[i]` and `input_gene_2[i]` and stores the result
//! in slot `output_gene[i]`. The loss is slot 0 (averaged when it has more than one element).
//! See docs/formats/haz.md for the semantics and for how ncpc compiles them.
//!
//! [`parse_gene`] reads the JSON export and applies the import checks (the validator's size
//! limits and what `import_gene_from_json` itself needs); what can only fail when the gene
//! runs (bad addresses, unknown op ids, integer constants, ...) is kept in the [`Gene`] and
//! decided by [`lower`], which compiles the gene for one [`DimModel`].

mod detach;
mod lower;
mod ops;
pub mod random;
mod table;

pub use lower::{lower, requires_concrete_dims};
pub use table::{OpInfo, op_info};

use super::FormatError;
use serde_json::Value as Json;

/// Largest genome file accepted (the validator skips larger downloads).
pub const MAX_FILE_BYTES: usize = 1024 * 1024;
/// `config.max_gene_length`: limit on `length` and on the address and constant arrays.
pub const MAX_GENE_LENGTH: i64 = 500;
/// `config.max_num_scalars`.
pub const MAX_NUM_SCALARS: i64 = 1000;
/// `config.max_num_vectors`.
pub const MAX_NUM_VECTORS: i64 = 100;
/// `config.max_num_tensors`.
pub const MAX_NUM_TENSORS: i64 = 50;
/// `config.max_vector_size`: limit on the element count of a vector slot.
pub const MAX_VECTOR_SIZE: i64 = 1000;
/// `config.max_tensor_size`: limit on the element count of a tensor slot.
pub const MAX_TENSOR_SIZE: i64 = 10000;

/// An op id as written in `gene`.
#[derive(Clone, Debug, PartialEq)]
pub enum OpRef {
    /// A key of the decoding map (0..=102).
    Id(u8),
    /// Anything else: looking it up raises when the instruction runs.
    Unknown(String),
}

/// A memory address as written in `input_gene`, `input_gene_2` or `output_gene`.
#[derive(Clone, Debug, PartialEq)]
pub enum AddrRef {
    /// An integer (JSON `true`/`false` count as 1/0, as in Python).
    Index(i64),
    /// Anything else: using it raises when the instruction runs.
    Invalid(String),
}

/// A constant as written in `constants_gene` or `constants_gene_2`.
#[derive(Clone, Debug, PartialEq)]
pub enum ConstRef {
    /// A JSON float, rounded to f32 as `torch.tensor` does.
    F32(f32),
    /// A value `torch.tensor(v, requires_grad=True)` rejects (an integer, a boolean, null, a
    /// string, an object): every instruction that reaches it raises.
    Fault(String),
    /// A value torch accepts but ncpc does not model (a list: a constant tensor).
    Unsupported(String),
}

/// The memory layout: how many slots of each kind and the shape of their zero value.
#[derive(Clone, Debug, PartialEq)]
pub struct Memory {
    /// Number of scalar slots (negative counts in the file mean none).
    pub num_scalars: usize,
    /// Number of vector slots (at least 1).
    pub num_vectors: usize,
    /// Number of tensor slots (at least 1).
    pub num_tensors: usize,
    /// Shape of a zero scalar slot (`scalar_size`, `[1]` as exported).
    pub scalar_shape: Vec<u32>,
    /// Shape of a zero vector slot (`vector_size`).
    pub vector_shape: Vec<u32>,
    /// Shape of a zero tensor slot (`tensor_size`).
    pub tensor_shape: Vec<u32>,
}

impl Memory {
    /// Total number of slots (the address space).
    pub fn len(&self) -> usize {
        self.num_scalars + self.num_vectors + self.num_tensors
    }
    /// Whether there are no slots (never true for a parsed gene).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The zero shape of slot `index` (`index < len()`).
    pub fn shape_of(&self, index: usize) -> &[u32] {
        if index < self.num_scalars {
            &self.scalar_shape
        } else if index < self.num_scalars + self.num_vectors {
            &self.vector_shape
        } else {
            &self.tensor_shape
        }
    }
    /// Resolve an address the way `CentralMemory.__getitem__`/`__setitem__` do: Python-style
    /// wrap of negative addresses, and a second negative index into the scalar list. `Err`
    /// says why the access raises.
    pub fn resolve(&self, a: &AddrRef) -> Result<usize, String> {
        let a = match a {
            AddrRef::Index(a) => *a,
            AddrRef::Invalid(why) => return Err(format!("the address {why}")),
        };
        let n = self.len() as i64;
        let s = self.num_scalars as i64;
        let mut i = a;
        if i < 0 {
            i += n;
        }
        if i >= n {
            return Err(format!("address {a} is out of range ({n} slots)"));
        }
        if i >= 0 {
            Ok(i as usize)
        } else if i >= -s {
            Ok((i + s) as usize)
        } else {
            Err(format!("address {a} is out of range ({n} slots)"))
        }
    }
}

/// A parsed HAZ gene: the arrays as the interpreter will read them, and the memory layout.
#[derive(Clone, Debug, PartialEq)]
pub struct Gene {
    /// `length` (used only by the import's random draw).
    pub length: i64,
    /// `meta_level`.
    pub meta_level: i64,
    /// `gene`: one op id per instruction, executed in order.
    pub ops: Vec<OpRef>,
    /// `input_gene`.
    pub in1: Vec<AddrRef>,
    /// `input_gene_2`.
    pub in2: Vec<AddrRef>,
    /// `output_gene`.
    pub out: Vec<AddrRef>,
    /// `constants_gene`.
    pub k1: Vec<ConstRef>,
    /// `constants_gene_2`.
    pub k2: Vec<ConstRef>,
    /// The memory layout.
    pub memory: Memory,
}

fn err(place: &str, msg: impl Into<String>) -> FormatError {
    FormatError::Haz {
        place: place.into(),
        msg: msg.into(),
    }
}

/// Python's view of a JSON value as an `int` (booleans are ints).
fn py_int(v: &Json) -> Option<i64> {
    match v {
        Json::Bool(b) => Some(*b as i64),
        Json::Number(n) if !n.is_f64() => n.as_i64().or_else(|| n.as_u64().map(|_| i64::MAX)),
        _ => None,
    }
}

/// A short description of a JSON value for messages.
fn describe(v: &Json) -> String {
    let s = v.to_string();
    if s.chars().count() > 40 {
        format!("{}...", s.chars().take(40).collect::<String>())
    } else {
        s
    }
}

const NAN_TOKEN: &str = "\u{1}haz:NaN";
const INF_TOKEN: &str = "\u{1}haz:Infinity";
const NEG_INF_TOKEN: &str = "\u{1}haz:-Infinity";

/// Python's `json.dump` writes non-finite floats as the bare words `NaN`, `Infinity` and
/// `-Infinity`; turn them (outside strings) into marker strings so that strict JSON parses.
fn quote_nonfinite(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut in_str = false;
    let mut escaped = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_str {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
        } else if c == '"' {
            in_str = true;
        } else {
            let words = [
                ("-Infinity", NEG_INF_TOKEN),
                ("Infinity", INF_TOKEN),
                ("NaN", NAN_TOKEN),
            ];
            if let Some((w, tok)) = words.iter().find(|(w, _)| rest.starts_with(w)) {
                out.push('"');
                out.push_str(&tok.replace('\u{1}', "\\u0001"));
                out.push('"');
                rest = &rest[w.len()..];
                continue;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Parse JSON as Python's `json.load` would (non-finite words included).
fn parse_pyjson(text: &str) -> Result<Json, FormatError> {
    match super::parse_json(text) {
        Ok(v) => Ok(v),
        Err(e) => serde_json::from_str(&quote_nonfinite(text)).map_err(|_| e),
    }
}

fn nonfinite_marker(s: &str) -> Option<f32> {
    match s {
        NAN_TOKEN => Some(f32::NAN),
        INF_TOKEN => Some(f32::INFINITY),
        NEG_INF_TOKEN => Some(f32::NEG_INFINITY),
        _ => None,
    }
}

/// Parse a HAZ gene file: the JSON object `export_gene_to_json` writes, or that object
/// JSON-encoded a second time as a string. Applies the validator's limits and the checks
/// the import itself makes; every violation is a [`FormatError::Haz`] naming the field.
pub fn parse_gene(text: &str) -> Result<Gene, FormatError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(err(
            "file",
            format!(
                "{} bytes is larger than the validator's limit of {MAX_FILE_BYTES} bytes",
                text.len()
            ),
        ));
    }
    let mut v = parse_pyjson(text.trim())?;
    if let Json::String(inner) = &v {
        v = parse_pyjson(inner.trim())?;
    }
    let Json::Object(obj) = &v else {
        return Err(err("file", "the gene must be a JSON object"));
    };
    let field = |k: &str| {
        obj.get(k)
            .ok_or_else(|| err(k, "required field is missing"))
    };
    let Json::Object(mem) = field("memory")? else {
        return Err(err("memory", "must be an object"));
    };
    let mfield = |k: &str| {
        mem.get(k)
            .ok_or_else(|| err(&format!("memory.{k}"), "required field is missing"))
    };
    // Everything the importer reads with `data[key]`.
    for k in [
        "length",
        "meta_level",
        "gene",
        "input_gene",
        "input_gene_2",
        "output_gene",
        "constants_gene",
        "constants_gene_2",
        "row_fixed",
        "column_fixed",
        "version",
    ] {
        field(k)?;
    }
    let count = |k: &str, limit: i64| -> Result<i64, FormatError> {
        let place = format!("memory.{k}");
        let n = py_int(mfield(k)?).ok_or_else(|| err(&place, "must be an integer"))?;
        if n > limit {
            return Err(err(
                &place,
                format!("{n} exceeds the validator's limit of {limit}"),
            ));
        }
        Ok(n)
    };
    let num_scalars = count("num_scalars", MAX_NUM_SCALARS)?;
    let num_vectors = count("num_vectors", MAX_NUM_VECTORS)?;
    let num_tensors = count("num_tensors", MAX_NUM_TENSORS)?;
    let vector_shape = size_list(
        mfield("vector_size")?,
        "memory.vector_size",
        MAX_VECTOR_SIZE,
    )?;
    let tensor_shape = size_list(
        mfield("tensor_size")?,
        "memory.tensor_size",
        MAX_TENSOR_SIZE,
    )?;
    let length = py_int(field("length")?).ok_or_else(|| err("length", "must be an integer"))?;
    if length > MAX_GENE_LENGTH {
        return Err(err(
            "length",
            format!("{length} exceeds the validator's limit of {MAX_GENE_LENGTH}"),
        ));
    }
    let list = |k: &str| -> Result<&Vec<Json>, FormatError> {
        match field(k)? {
            Json::Array(a) => Ok(a),
            _ => Err(err(k, "must be a list")),
        }
    };
    for k in [
        "input_gene",
        "input_gene_2",
        "output_gene",
        "constants_gene",
        "constants_gene_2",
    ] {
        let n = list(k)?.len();
        if n as i64 > MAX_GENE_LENGTH {
            return Err(err(
                k,
                format!("{n} entries exceed the validator's limit of {MAX_GENE_LENGTH}"),
            ));
        }
    }
    // What building the memory and the import's random genome need.
    let scalar_shape = match mfield("scalar_size")? {
        Json::Array(_) => size_list(mfield("scalar_size")?, "memory.scalar_size", i64::MAX)?,
        v => match py_int(v) {
            Some(n) if n >= 0 => vec![dim_u32(n, "memory.scalar_size")?],
            Some(n) => return Err(err("memory.scalar_size", format!("{n} is negative"))),
            None => return Err(err("memory.scalar_size", "must be an integer or a list")),
        },
    };
    if num_vectors < 1 {
        return Err(err(
            "memory.num_vectors",
            "must be at least 1 (the import reads vector slot 0)",
        ));
    }
    if num_tensors < 1 {
        return Err(err(
            "memory.num_tensors",
            "must be at least 1 (the import reads tensor slot 0)",
        ));
    }
    if vector_shape.first().is_none_or(|d| *d < 1) {
        return Err(err(
            "memory.vector_size",
            "the first size must be at least 1 (the import draws row_fixed below it)",
        ));
    }
    if tensor_shape.get(1).is_none_or(|d| *d < 1) {
        return Err(err(
            "memory.tensor_size",
            "needs a second size of at least 1 (the import draws column_fixed below it)",
        ));
    }
    let meta_level =
        py_int(field("meta_level")?).ok_or_else(|| err("meta_level", "must be an integer"))?;
    if meta_level > 0 && length >= 1 {
        return Err(err(
            "meta_level",
            "a level above 0 makes the import fail (it draws ops from an empty lower-level population)",
        ));
    }
    if num_scalars < 1 && length >= 1 {
        return Err(err(
            "memory.num_scalars",
            "with no scalar slots the import fails or not depending on Python's global random state (its random genome may draw a scalar address); ncpc cannot tell which",
        ));
    }
    let ops = list("gene")?.iter().map(op_ref).collect();
    let addrs = |k: &str| -> Result<Vec<AddrRef>, FormatError> {
        Ok(list(k)?.iter().map(addr_ref).collect())
    };
    let consts = |k: &str| -> Result<Vec<ConstRef>, FormatError> {
        Ok(list(k)?.iter().map(const_ref).collect())
    };
    Ok(Gene {
        length,
        meta_level,
        ops,
        in1: addrs("input_gene")?,
        in2: addrs("input_gene_2")?,
        out: addrs("output_gene")?,
        k1: consts("constants_gene")?,
        k2: consts("constants_gene_2")?,
        memory: Memory {
            num_scalars: num_scalars.max(0) as usize,
            num_vectors: num_vectors as usize,
            num_tensors: num_tensors as usize,
            scalar_shape,
            vector_shape,
            tensor_shape,
        },
    })
}

fn dim_u32(n: i64, place: &str) -> Result<u32, FormatError> {
    u32::try_from(n).map_err(|_| err(place, format!("size {n} is out of range")))
}

/// A list of sizes (`tuple(size)` then `torch.zeros`), with the validator's element limit.
fn size_list(v: &Json, place: &str, limit: i64) -> Result<Vec<u32>, FormatError> {
    let Json::Array(a) = v else {
        return Err(err(place, "must be a list of sizes"));
    };
    let mut dims = Vec::with_capacity(a.len());
    let mut total: i64 = 1;
    for (k, d) in a.iter().enumerate() {
        let n = py_int(d).ok_or_else(|| err(place, format!("entry {k} is not an integer")))?;
        total = total.saturating_mul(n);
        dims.push(n);
    }
    if total > limit {
        return Err(err(
            place,
            format!("{total} elements exceed the validator's limit of {limit}"),
        ));
    }
    dims.iter()
        .map(|&n| {
            if n < 0 {
                Err(err(place, format!("size {n} is negative")))
            } else {
                dim_u32(n, place)
            }
        })
        .collect()
}

fn op_ref(v: &Json) -> OpRef {
    let id = match v {
        Json::Bool(b) => Some(*b as i64 as f64),
        Json::Number(n) => n.as_f64(),
        _ => None,
    };
    match id {
        Some(x) if x.fract() == 0.0 && (0.0..=102.0).contains(&x) => OpRef::Id(x as u8),
        _ => OpRef::Unknown(describe(v)),
    }
}

fn addr_ref(v: &Json) -> AddrRef {
    match py_int(v) {
        Some(a) => AddrRef::Index(a),
        None => AddrRef::Invalid(format!("{} is not an integer", describe(v))),
    }
}

fn const_ref(v: &Json) -> ConstRef {
    match v {
        Json::Number(n) if n.is_f64() => ConstRef::F32(n.as_f64().unwrap_or(f64::NAN) as f32),
        Json::String(s) => match nonfinite_marker(s) {
            Some(x) => ConstRef::F32(x),
            None => ConstRef::Fault(format!("the string {}", describe(v))),
        },
        Json::Array(_) => ConstRef::Unsupported(describe(v)),
        Json::Number(_) => ConstRef::Fault(format!(
            "the integer {v} (only floating-point tensors can require grad)"
        )),
        Json::Bool(_) => ConstRef::Fault(format!(
            "the boolean {v} (only floating-point tensors can require grad)"
        )),
        Json::Null => ConstRef::Fault("null".into()),
        Json::Object(_) => ConstRef::Fault(format!("the object {}", describe(v))),
    }
}
