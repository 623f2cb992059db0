//! IR -> AMM program (placeholder until the emitter lands).

use super::Program;
use crate::formats::{Format, FormatError};
use ncp_ir::Function;

/// Write `f` as an AMM program where its ops allow.
pub fn emit(_f: &Function) -> Result<Program, FormatError> {
    Err(FormatError::Emit {
        format: Format::Amm,
        msg: "not implemented yet".into(),
    })
}
