//! The canonical structural hash: SHA-256 of the canonical text of a function (its name
//! left out). Genomes that optimize to the same IR hash equal.

use super::canon::canon;
use crate::function::Function;
use crate::text::print_function;
use sha2::{Digest, Sha256};

/// Hex SHA-256 (first 128 bits) of `f`'s canonical form. Run the optimizer first for the
/// hash to identify functionally identical genomes.
pub fn canonical_hash(f: &Function) -> String {
    let mut g = f.clone();
    canon(&mut g);
    g.name = "_".into();
    let text = print_function(&g);
    let digest = Sha256::digest(text.as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}
