//! Checking a genome before it is stored: the strict AMM front end must compile it, and the
//! optimized IR's canonical hash identifies it, so programs that differ only in register
//! numbering or dead code are one function.

use crate::formats::{CompileOptions, Format, Mode, compile};
use ncp_ir::passes::{OptOptions, canonical_hash, optimize};

/// The built-in losses the population starts from, as (name, AMM program).
pub const SEEDS: &[(&str, &str)] = &[
    (
        "mse",
        "[[100,1,0],[100,2,1],[2,1,2,3],[10,3,4],[201,4,-1,9],[453,9]]",
    ),
    (
        "cross_entropy",
        "[[100,1,1],[100,2,0],[253,1,0,3],[7,3,4],[3,2,4,5],[200,5,-1,6],[11,6,7],[201,7,0,8],[453,8]]",
    ),
];

/// A genome that passed the checks.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckedGenome {
    /// The program as compact JSON (a list of instructions).
    pub program: String,
    /// The canonical hash of its optimized IR.
    pub hash: String,
}

/// Compile `text` (an AMM program: a JSON list, or that list as a JSON string) with the strict
/// front end; the error says what is wrong with it.
pub fn check(text: &str) -> Result<CheckedGenome, String> {
    let prog = crate::formats::amm::parse_program(text).map_err(|e| e.to_string())?;
    let program = serde_json::Value::Array(prog.instrs).to_string();
    let opts = CompileOptions {
        format: Some(Format::Amm),
        mode: Mode::Strict,
        ..CompileOptions::default()
    };
    let mut compiled = compile(&program, &opts).map_err(|e| e.to_string())?;
    optimize(&mut compiled.func, OptOptions::default()).map_err(|e| e.to_string())?;
    Ok(CheckedGenome {
        hash: canonical_hash(&compiled.func),
        program,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_pass_and_differ() {
        let hashes: Vec<String> = SEEDS.iter().map(|(_, p)| check(p).unwrap().hash).collect();
        assert_ne!(hashes[0], hashes[1]);
    }

    #[test]
    fn a_string_encoded_program_is_the_same_function() {
        let list = check(SEEDS[0].1).unwrap();
        let string = check(&serde_json::to_string(SEEDS[0].1).unwrap()).unwrap();
        assert_eq!(list, string);
    }

    #[test]
    fn garbage_is_refused() {
        assert!(check("[[999, 1, 2]]").is_err());
        assert!(check("not json").is_err());
        assert!(check("[]").is_err());
    }
}
