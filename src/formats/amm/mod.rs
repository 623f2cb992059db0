//! AMM register programs (Hivetensor/AutoML-Miner, `automl_client/genetic/interpreter.py`).
//!
//! A program is a JSON list of instructions `[op, p1, p2, ...]`. [`lower`] compiles it by
//! abstract interpretation over (program counter, register types): every register's type is
//! static, so which instructions fail, fall back or broadcast is decided at compile time, and
//! only `JUMP_IF` conditions are left to run time. Control flow becomes blocks with block
//! parameters (one per live register); programs that can loop carry an explicit instruction
//! counter checked against AMM's budget `max(1000, 10 * len)`.
//!
//! `compat` reproduces the Python interpreter's forgiving behaviour exactly; `strict` rejects
//! each thing compat papers over with an error naming the instruction. The full semantics,
//! with what PyTorch does for integer and bool registers, are in docs/formats/amm.md.

mod emit;
mod lower;
mod pyval;
pub mod random;
pub mod registry;
pub mod validator;

pub use emit::emit;
pub use lower::{ACTIVATION_NOT_FLOAT, ACTIVATION_SHAPE, Component, lower, lower_as};

use super::{FormatError, parse_json};
use serde_json::Value as Json;

/// A parsed AMM program: its instructions as the JSON values they are (the interpreter
/// tolerates instructions that are not lists, opcodes that are floats, and so on).
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    /// One JSON value per instruction.
    pub instrs: Vec<Json>,
}

/// Opcodes of the AMM instruction set, for emitters and generators.
pub mod opcodes {
    #![allow(missing_docs)]
    pub const ADD: i64 = 1;
    pub const SUB: i64 = 2;
    pub const MUL: i64 = 3;
    pub const DIV: i64 = 4;
    pub const POW: i64 = 5;
    pub const SQRT: i64 = 6;
    pub const LOG: i64 = 7;
    pub const EXP: i64 = 8;
    pub const ABS: i64 = 9;
    pub const SQUARE: i64 = 10;
    pub const NEGATE: i64 = 11;
    pub const RECIPROCAL: i64 = 12;
    pub const ADD_CONST: i64 = 20;
    pub const MUL_CONST: i64 = 21;
    pub const LOAD: i64 = 100;
    pub const LOAD_CONST: i64 = 101;
    pub const MATMUL: i64 = 102;
    pub const TRANSPOSE: i64 = 103;
    pub const CLONE: i64 = 110;
    pub const SUM: i64 = 200;
    pub const MEAN: i64 = 201;
    pub const MAX: i64 = 202;
    pub const MIN: i64 = 203;
    pub const STD: i64 = 205;
    pub const RELU: i64 = 250;
    pub const SIGMOID: i64 = 251;
    pub const TANH: i64 = 252;
    pub const SOFTMAX: i64 = 253;
    pub const MAXIMUM: i64 = 300;
    pub const MSE: i64 = 350;
    pub const MAE: i64 = 351;
    pub const BCE: i64 = 352;
    pub const GT: i64 = 400;
    pub const GE: i64 = 401;
    pub const WHERE: i64 = 409;
    pub const JUMP: i64 = 450;
    pub const JUMP_IF: i64 = 451;
    pub const RETURN: i64 = 453;
    pub const END: i64 = 454;
}

/// Largest program accepted (instructions); AMM's own generator stays far below it.
pub const MAX_INSTRUCTIONS: usize = 10_000;

/// Read a program from text: a JSON list of instructions, that list JSON-encoded as a string
/// (as pool payloads sometimes carry it), or an object holding it under `program`, `function`
/// or `genetic_code`.
pub fn parse_program(text: &str) -> Result<Program, FormatError> {
    let mut v = parse_json(text)?;
    for _ in 0..3 {
        v = match v {
            Json::String(s) => parse_json(&s)?,
            Json::Object(mut o) => {
                let key = ["program", "function", "genetic_code"]
                    .into_iter()
                    .find(|k| o.contains_key(*k));
                match key.and_then(|k| o.remove(k)) {
                    Some(inner) => inner,
                    None => {
                        return Err(FormatError::AmmProgram(
                            "an object without `program`, `function` or `genetic_code`".into(),
                        ));
                    }
                }
            }
            Json::Array(instrs) => {
                if instrs.len() > MAX_INSTRUCTIONS {
                    return Err(FormatError::AmmProgram(format!(
                        "{} instructions; at most {MAX_INSTRUCTIONS} are accepted",
                        instrs.len()
                    )));
                }
                return Ok(Program { instrs });
            }
            other => {
                return Err(FormatError::AmmProgram(format!(
                    "expected a list of instructions, found {}",
                    kind(&other)
                )));
            }
        };
    }
    Err(FormatError::AmmProgram("nested too deeply".into()))
}

fn kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "an object",
    }
}

/// The program as compact JSON (one instruction per list entry).
pub fn to_json(p: &Program) -> String {
    serde_json::to_string(&p.instrs).unwrap_or_else(|_| "[]".into())
}
