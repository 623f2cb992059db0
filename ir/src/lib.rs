//! `ncp-ir`: the typed SSA IR at the heart of ncpc.
//!
//! Genome front ends build a [`Function`]; [`passes`] optimize it and derive its gradient;
//! [`interp`] runs it as the reference oracle every backend is tested against; [`text`] prints
//! and parses the canonical text form. The op set lives in one table, [`op::OPS`].

#![warn(missing_docs)]

pub mod entities;
pub mod function;
pub mod interp;
pub mod kernels;
pub mod math;
pub mod op;
pub mod passes;
pub mod tensor;
pub mod text;
pub mod types;
pub mod verify;
pub mod vmath;

pub use entities::{Block, EntityRef, Inst, Value};
pub use function::{BlockCall, Function, InstData, Terminator, TrapCode, ValueDef};
pub use op::{Axis, ConstVal, Imm, Opcode};
pub use types::{DType, Dim, DimModel, Shape, Type};

/// Errors of the IR layer.
#[derive(Debug, thiserror::Error)]
pub enum IrError {
    /// An op applied to operands its type rule rejects.
    #[error("type error: {0}")]
    Type(String),
    /// The text form did not parse.
    #[error("{line}:{col}: {msg}")]
    Parse {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
        /// What is wrong.
        msg: String,
    },
    /// The verifier found problems; each names its location.
    #[error("the IR does not verify:\n{}", .0.join("\n"))]
    Verify(Vec<String>),
    /// Inputs do not fit the function, or the interpreter ran out of fuel.
    #[error("{0}")]
    Eval(String),
    /// The gradient pass cannot handle this function.
    #[error("gradient: {0}")]
    Grad(String),
}
