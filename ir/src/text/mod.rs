//! The canonical text form: a printer and a parser that round-trip exactly.
//!
//! ```text
//! function mse(f32[B,C], f32[B,C]) -> f32 {
//! block0(v0: f32[B,C], v1: f32[B,C]):
//!     v2 = sub v1, v0 : f32[B,C]
//!     v3 = pow v2, v4 : f32[B,C]
//!     ...
//!     return v6
//! }
//! ```
//!
//! Values and blocks are renumbered in order of definition when printed, so printing a parsed
//! function gives the same text whatever numbers the input used. `;` starts a comment.

mod parser;
mod printer;

pub use parser::parse_function;
pub use printer::{format_imm, print_function};
