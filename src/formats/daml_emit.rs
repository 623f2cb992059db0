//! IR -> DAML expression (placeholder until the emitter lands).

use super::{Format, FormatError};
use ncp_ir::Function;

/// Write `f` as a DAML expression where its ops allow.
pub fn emit(_f: &Function) -> Result<String, FormatError> {
    Err(FormatError::Emit {
        format: Format::Daml,
        msg: "not implemented yet".into(),
    })
}
