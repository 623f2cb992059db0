//! THE op table. Every op is declared once, in [`table`](self) (`op/table.rs`), by one
//! [`define_ops!`] entry: its text-form name (printing and parsing), arity, immediate, operand
//! dtypes, class (which picks its type rule, see `typing.rs`), commutativity, elementwise
//! kernel (interpretation and constant folding), and the names other layers spell it with
//! (the JIT's exact-math symbol, PyTorch, DAML). From that one list the macro generates the
//! [`Opcode`] enum and the [`OPS`] table.
//!
//! The derivative of each op lives with the gradient pass (`passes/grad/rules.rs`), in a match
//! the compiler checks for exhaustiveness; the backends lower what they can and report the rest
//! as unsupported. docs/ir.md walks through adding an op.

mod scalar;
mod table;
mod typing;

use crate::types::{DType, Dim, Shape};
pub use table::{OPS, Opcode};
pub use typing::infer_type;

/// Which axis a reduction runs over.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Axis {
    /// Every element: the result is a scalar.
    All,
    /// One axis, counted from 0 (front ends resolve negative and out-of-range axes).
    Index(u32),
}

/// A constant's value; its dtype is the constant's type.
#[derive(Copy, Clone, Debug)]
pub enum ConstVal {
    /// A 32-bit float.
    F32(f32),
    /// A 64-bit integer.
    I64(i64),
    /// A boolean.
    Bool(bool),
}

impl ConstVal {
    /// The element type.
    pub fn dtype(self) -> DType {
        match self {
            ConstVal::F32(_) => DType::F32,
            ConstVal::I64(_) => DType::I64,
            ConstVal::Bool(_) => DType::Bool,
        }
    }
    /// The value as the interpreter stores it.
    pub fn as_f64(self) -> f64 {
        match self {
            ConstVal::F32(x) => x as f64,
            ConstVal::I64(x) => x as f64,
            ConstVal::Bool(b) => b as u8 as f64,
        }
    }
    /// A constant of `dtype` holding `v` (rounded to the dtype).
    pub fn from_f64(dtype: DType, v: f64) -> ConstVal {
        match dtype {
            DType::F32 if v.is_nan() => ConstVal::F32(f32::NAN),
            DType::F32 => ConstVal::F32(v as f32),
            DType::I64 => ConstVal::I64(v as i64),
            DType::Bool => ConstVal::Bool(v != 0.0),
        }
    }
}

/// The bits that identify an f32 constant: every NaN is one NaN (the text form cannot tell
/// NaN payloads apart, so neither may CSE, canonical order or the hash).
fn f32_key(x: f32) -> u32 {
    if x.is_nan() {
        f32::NAN.to_bits()
    } else {
        x.to_bits()
    }
}

impl PartialEq for ConstVal {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (ConstVal::F32(a), ConstVal::F32(b)) => f32_key(*a) == f32_key(*b),
            (ConstVal::I64(a), ConstVal::I64(b)) => a == b,
            (ConstVal::Bool(a), ConstVal::Bool(b)) => a == b,
            _ => false,
        }
    }
}
impl Eq for ConstVal {}
impl std::hash::Hash for ConstVal {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        match self {
            ConstVal::F32(a) => (0u8, f32_key(*a) as u64).hash(h),
            ConstVal::I64(a) => (1u8, *a as u64).hash(h),
            ConstVal::Bool(a) => (2u8, *a as u64).hash(h),
        }
    }
}

/// An instruction's immediate operand.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Imm {
    /// No immediate.
    None,
    /// A constant value (`const`).
    Const(ConstVal),
    /// A reduction axis.
    Axis(Axis),
    /// A target dtype (`cast`).
    DType(DType),
    /// A symbolic dim (`dim`).
    Dim(Dim),
    /// A target shape (`reshape`).
    Shape(Shape),
}

/// The kind of immediate an op takes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ImmKind {
    /// None.
    None,
    /// [`Imm::Const`].
    Const,
    /// [`Imm::Axis`].
    Axis,
    /// [`Imm::DType`].
    DType,
    /// [`Imm::Dim`].
    Dim,
    /// [`Imm::Shape`].
    Shape,
}

/// How an op computes, which decides its type rule and how the interpreter runs it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Class {
    /// `const`, `dim`: no operands.
    Leaf,
    /// Elementwise, one operand, result of the operand's type.
    Unary,
    /// Elementwise, two operands of one dtype, broadcast.
    Binary,
    /// Elementwise comparison, broadcast, bool result.
    Compare,
    /// `select c, a, b`.
    Select,
    /// `cast<dtype> x`.
    Cast,
    /// `ones_like x` / `zeros_like x`: f32 of x's shape.
    Like,
    /// Reduction over an axis or all elements.
    Reduce,
    /// Everything with its own rule.
    Special,
}

/// One row of the op table.
pub struct OpInfo {
    /// The op.
    pub op: Opcode,
    /// Text-form name.
    pub name: &'static str,
    /// Number of value operands.
    pub arity: usize,
    /// Immediate kind.
    pub imm: ImmKind,
    /// Computation class.
    pub class: Class,
    /// Operand dtypes accepted (of the first operand; binary ops need equal dtypes).
    pub dtypes: &'static [DType],
    /// Whether operand order does not matter (bit-exactly, gradient included).
    pub commutative: bool,
    /// Elementwise kernel over the interpreter's `f64` storage; the interpreter rounds the
    /// result to the result dtype. `None` for non-elementwise ops.
    pub kernel: Option<fn(&[f64]) -> f64>,
    /// The exact-math routine (f32 in, f32 out, computed in f64 and rounded once) that the JIT
    /// calls for the op, when the op is not inline arithmetic.
    pub libm: Option<&'static str>,
    /// PyTorch's function for the op, when PyTorch spells it as a call.
    pub torch: Option<&'static str>,
    /// DAML's primitive for the op, when it is exactly one DAML primitive.
    pub daml: Option<&'static str>,
}

/// Declares the op set: one entry per op, in table order. Generates [`Opcode`] and [`OPS`]
/// (whose rows are then indexed by `Opcode as usize` by construction).
macro_rules! define_ops {
    ($(
        $op:ident = $name:literal {
            arity: $arity:literal, imm: $imm:ident, class: $class:ident, dtypes: $dt:ident,
            commutative: $comm:literal,
            kernel: $kernel:expr,
            libm: $libm:expr, torch: $torch:expr, daml: $daml:expr $(,)?
        }
    )*) => {
        /// Every op of the IR, in table order.
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Opcode {
            $(
                #[doc = concat!("`", $name, "`.")]
                $op,
            )*
        }

        /// The op table, indexed by `Opcode as usize`.
        pub static OPS: &[OpInfo] = &[
            $(
                OpInfo {
                    op: Opcode::$op,
                    name: $name,
                    arity: $arity,
                    imm: ImmKind::$imm,
                    class: Class::$class,
                    dtypes: $dt,
                    commutative: $comm,
                    kernel: $kernel,
                    libm: $libm,
                    torch: $torch,
                    daml: $daml,
                },
            )*
        ];
    };
}
use define_ops;

impl Opcode {
    /// This op's row of the table.
    pub fn info(self) -> &'static OpInfo {
        &OPS[self as usize]
    }
    /// Text-form name.
    pub fn name(self) -> &'static str {
        self.info().name
    }
    /// Look an op up by its text-form name.
    pub fn from_name(name: &str) -> Option<Opcode> {
        OPS.iter().find(|o| o.name == name).map(|o| o.op)
    }
    /// The op DAML spells `name`, when it is exactly one IR op.
    pub fn from_daml(name: &str) -> Option<Opcode> {
        OPS.iter().find(|o| o.daml == Some(name)).map(|o| o.op)
    }
    /// Whether this op's operands may be reordered.
    pub fn is_commutative(self) -> bool {
        self.info().commutative
    }
    /// Whether the op computes element by element (its result element `i` depends only on
    /// the operands' elements at `i`, after broadcasting).
    pub fn is_elementwise(self) -> bool {
        matches!(
            self.info().class,
            Class::Unary
                | Class::Binary
                | Class::Compare
                | Class::Select
                | Class::Cast
                | Class::Like
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_indexed_by_opcode() {
        for (i, row) in OPS.iter().enumerate() {
            assert_eq!(row.op as usize, i, "row {} is out of place", row.name);
            assert_eq!(Opcode::from_name(row.name), Some(row.op));
        }
    }

    #[test]
    fn elementwise_ops_have_kernels() {
        for row in OPS {
            assert_eq!(
                row.op.is_elementwise(),
                row.kernel.is_some(),
                "{}",
                row.name
            );
        }
    }

    #[test]
    fn spellings_are_unique() {
        for (i, a) in OPS.iter().enumerate() {
            for b in &OPS[i + 1..] {
                assert_ne!(a.name, b.name);
                for (x, y) in [(a.daml, b.daml), (a.torch, b.torch), (a.libm, b.libm)] {
                    assert!(
                        x.is_none() || x != y,
                        "{} and {} share {x:?}",
                        a.name,
                        b.name
                    );
                }
            }
        }
    }
}
