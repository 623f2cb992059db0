//! Value types: an element type and a shape over the symbolic dims `B` (batch) and `C` (classes).
//!
//! Shapes are static. A dim is either symbolic (`B`, `C`, bound when the function runs) or a
//! fixed size. Front ends compile under a [`DimModel`]: by default `B` and `C` are distinct and
//! both at least 2, which is what makes broadcasting decidable at compile time; when concrete
//! inputs break that assumption, callers compile again with concrete dims.

use std::fmt;

/// Element type of a tensor value.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    /// 32-bit IEEE float: every loss value and gradient.
    F32,
    /// 64-bit signed integer (torch's `long`): AMM integer constants and the batch size.
    I64,
    /// Boolean: comparison results.
    Bool,
}

impl DType {
    /// The text-form name.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::I64 => "i64",
            DType::Bool => "bool",
        }
    }
    /// Parse a text-form name.
    pub fn from_name(s: &str) -> Option<DType> {
        match s {
            "f32" => Some(DType::F32),
            "i64" => Some(DType::I64),
            "bool" => Some(DType::Bool),
            _ => None,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One dimension of a shape.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dim {
    /// The batch size (rows of `y_pred`).
    B,
    /// The number of classes (columns of `y_pred`).
    C,
    /// A size known at compile time.
    Fixed(u32),
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::B => f.write_str("B"),
            Dim::C => f.write_str("C"),
            Dim::Fixed(n) => write!(f, "{n}"),
        }
    }
}

/// A static shape: a list of dims, empty for a scalar.
pub type Shape = Vec<Dim>;

/// The type of an SSA value.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Type {
    /// Element type.
    pub dtype: DType,
    /// Shape; empty means a scalar (a 0-d tensor).
    pub shape: Shape,
}

impl Type {
    /// A type from its parts.
    pub fn new(dtype: DType, shape: Shape) -> Type {
        Type { dtype, shape }
    }
    /// A scalar of `dtype`.
    pub fn scalar(dtype: DType) -> Type {
        Type {
            dtype,
            shape: Vec::new(),
        }
    }
    /// `f32` scalar.
    pub fn f32() -> Type {
        Type::scalar(DType::F32)
    }
    /// `f32[B,C]`, the type of both loss inputs.
    pub fn f32_bc() -> Type {
        Type {
            dtype: DType::F32,
            shape: vec![Dim::B, Dim::C],
        }
    }
    /// Number of dims.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    /// Whether this is a scalar.
    pub fn is_scalar(&self) -> bool {
        self.shape.is_empty()
    }
    /// Same shape, other element type.
    pub fn with_dtype(&self, dtype: DType) -> Type {
        Type {
            dtype,
            shape: self.shape.clone(),
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.dtype)?;
        if !self.shape.is_empty() {
            f.write_str("[")?;
            for (i, d) in self.shape.iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                write!(f, "{d}")?;
            }
            f.write_str("]")?;
        }
        Ok(())
    }
}

/// Whether `a` and `b` denote the same size under the compile-time dim assumptions
/// (`B` and `C` distinct, each at least 2).
fn dim_eq(a: Dim, b: Dim) -> bool {
    a == b
}

/// Broadcast two shapes with numpy/torch rules. `None` when they do not broadcast.
pub fn broadcast(a: &[Dim], b: &[Dim]) -> Option<Shape> {
    let rank = a.len().max(b.len());
    let mut out = Vec::with_capacity(rank);
    for i in 0..rank {
        let da = if i + a.len() >= rank {
            Some(a[i + a.len() - rank])
        } else {
            None
        };
        let db = if i + b.len() >= rank {
            Some(b[i + b.len() - rank])
        } else {
            None
        };
        let d = match (da, db) {
            (Some(x), None) | (None, Some(x)) => x,
            (Some(x), Some(y)) if dim_eq(x, y) => x,
            (Some(Dim::Fixed(1)), Some(y)) => y,
            (Some(x), Some(Dim::Fixed(1))) => x,
            _ => return None,
        };
        out.push(d);
    }
    Some(out)
}

/// How symbolic dims are treated when a genome is compiled.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum DimModel {
    /// `B` and `C` stay symbolic; assumed distinct and each at least 2.
    #[default]
    Symbolic,
    /// Concrete sizes: every shape is fixed. Used when inputs break the symbolic assumptions.
    Concrete {
        /// Batch size.
        b: u32,
        /// Number of classes.
        c: u32,
    },
}

impl DimModel {
    /// The model to compile under for inputs of `b` rows and `c` columns: symbolic when the
    /// symbolic assumptions hold for them, concrete otherwise.
    pub fn for_inputs(b: usize, c: usize) -> DimModel {
        if b >= 2 && c >= 2 && b != c {
            DimModel::Symbolic
        } else {
            DimModel::Concrete {
                b: b as u32,
                c: c as u32,
            }
        }
    }
    /// The shape of `y_pred` and `y_true` under this model.
    pub fn input_type(self) -> Type {
        match self {
            DimModel::Symbolic => Type::f32_bc(),
            DimModel::Concrete { b, c } => {
                Type::new(DType::F32, vec![Dim::Fixed(b), Dim::Fixed(c)])
            }
        }
    }
}

/// Product of a shape's dims as a multiset of symbolic factors times a constant, used to
/// decide whether two shapes have the same element count.
pub fn numel_signature(shape: &[Dim]) -> (u64, u32, u32) {
    let mut k = 1u64;
    let (mut nb, mut nc) = (0, 0);
    for d in shape {
        match d {
            Dim::B => nb += 1,
            Dim::C => nc += 1,
            Dim::Fixed(n) => k = k.saturating_mul(*n as u64),
        }
    }
    (k, nb, nc)
}
