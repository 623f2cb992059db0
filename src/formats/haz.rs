//! HAZ gene arrays (placeholder until the front end lands).

use super::{FormatError, Mode};
use ncp_ir::{DimModel, Function};

/// A parsed HAZ gene.
#[derive(Clone, Debug)]
pub struct Gene;

/// Parse a HAZ gene file.
pub fn parse_gene(_text: &str) -> Result<Gene, FormatError> {
    Err(FormatError::Haz {
        place: "file".into(),
        msg: "not implemented yet".into(),
    })
}

/// Compile a HAZ gene.
pub fn lower(
    _g: &Gene,
    _name: &str,
    _mode: Mode,
    _dims: DimModel,
) -> Result<(Function, Vec<String>), FormatError> {
    Err(FormatError::Haz {
        place: "file".into(),
        msg: "not implemented yet".into(),
    })
}
