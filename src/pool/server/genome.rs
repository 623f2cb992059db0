//! Checking a genome before it is stored: the AMM front end must compile it as the AMM
//! interpreter would run it (compat mode: AMM's own mutation operators produce programs that
//! read registers before writing them, or give NN ops two parameters, which the Python miners
//! submit and the pool must take), and it must be a loss: it must not fault whatever the
//! inputs, and it must depend on y_pred. The optimized
//! IR's canonical hash identifies it, so programs that differ only in register numbering or
//! dead code are one function.

use super::fingerprint::{Fingerprint, Probed, fingerprint};
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
    /// Its functional identity (the normalized gradient on fixed probes), when its gradient
    /// can be taken there.
    pub fingerprint: Option<Fingerprint>,
}

/// The most instructions a stored program may have by default (AMM's own programs stay
/// under 20; `ncpc pool serve --max-instructions`).
pub const MAX_INSTRUCTIONS: usize = 256;

/// Jumps (JUMP, JUMP_IF) a submitted program may hold. The AMM front end lowers the code
/// after a jump once per register-type state that can reach it, so k jumps that each change a
/// register's shape multiply the work by up to 2^k (10 such jumps in a 256-instruction
/// program: over a second of compiling); 6 keep the worst case near 20 ms. AMM's own
/// programs rarely hold any.
pub const MAX_JUMPS: usize = 6;

/// Interpreter instructions the fingerprint may run (loss and gradient each).
pub const FINGERPRINT_FUEL: u64 = 200_000;

/// Compile `text` (an AMM program: a JSON list, or that list as a JSON string) as the AMM
/// interpreter runs it; the error says what is wrong with it.
pub fn check(text: &str) -> Result<CheckedGenome, String> {
    check_with(text, Mode::Compat)
}

/// [`check`] with the front end in `mode`: [`Mode::Strict`] also refuses what AMM's
/// interpreter papers over (a register read before it is written, an NN op short of
/// parameters, ...), naming the instruction, for pools that do not serve AMM's Python miners
/// (their own mutations make such programs).
pub fn check_with(text: &str, mode: Mode) -> Result<CheckedGenome, String> {
    check_limited(text, mode, MAX_INSTRUCTIONS)
}

/// The AMM program in `text`, refused when it is empty or holds more than `max_instructions`
/// instructions or more than [`MAX_JUMPS`] jumps (checked before any compiling).
pub fn parse_within_limits(
    text: &str,
    max_instructions: usize,
) -> Result<crate::formats::amm::Program, String> {
    let prog = crate::formats::amm::parse_program(text).map_err(|e| e.to_string())?;
    if prog.instrs.is_empty() {
        return Err("the program has no instructions".into());
    }
    if prog.instrs.len() > max_instructions {
        return Err(format!(
            "the program has {} instructions; the pool takes at most {max_instructions}",
            prog.instrs.len()
        ));
    }
    let jumps = prog
        .instrs
        .iter()
        .filter(|i| {
            let code = i.get(0).and_then(serde_json::Value::as_f64);
            code.is_some_and(|c| {
                c == crate::formats::amm::opcodes::JUMP as f64
                    || c == crate::formats::amm::opcodes::JUMP_IF as f64
            })
        })
        .count();
    if jumps > MAX_JUMPS {
        return Err(format!(
            "the program has {jumps} jumps; the pool takes at most {MAX_JUMPS}"
        ));
    }
    Ok(prog)
}

/// [`check_with`] taking at most `max_instructions` instructions (and [`MAX_JUMPS`] jumps),
/// so that the work one submission can make the server do is bounded before any compiling.
pub fn check_limited(
    text: &str,
    mode: Mode,
    max_instructions: usize,
) -> Result<CheckedGenome, String> {
    let prog = parse_within_limits(text, max_instructions)?;
    let program = serde_json::Value::Array(prog.instrs).to_string();
    let opts = CompileOptions {
        format: Some(Format::Amm),
        mode,
        ..CompileOptions::default()
    };
    let mut compiled = compile(&program, &opts).map_err(|e| e.to_string())?;
    optimize(&mut compiled.func, OptOptions::default()).map_err(|e| e.to_string())?;
    let f = &compiled.func;
    if let ncp_ir::Terminator::Trap(code) = &f.blocks[f.entry()].term
        && f.is_straight_line()
    {
        return Err(format!(
            "the program faults on every input ({code:?}): AMM would score it as failed"
        ));
    }
    if f.is_straight_line() && ncp_ir::passes::gradient(f).is_ok_and(|g| !g.has_grad) {
        return Err(
            "the loss does not depend on y_pred, so it cannot train anything (AMM scores it as failed)"
                .into(),
        );
    }
    let fingerprint = match fingerprint(f, FINGERPRINT_FUEL) {
        Probed::Keys(k) => Some(k),
        Probed::Unknown => None,
        Probed::Flat => {
            return Err(
                "the loss's gradient is zero on every probe input at the batch size the pool's \
                 scores train with (32 rows), so it trains nothing there"
                    .into(),
            );
        }
    };
    Ok(CheckedGenome {
        hash: canonical_hash(f),
        fingerprint,
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
        assert!(check("[[999, 1, 2]]").is_err(), "no RETURN: always faults");
        assert!(check("not json").is_err());
        assert!(check("[]").is_err());
    }

    #[test]
    fn the_strict_check_refuses_what_compat_papers_over_and_takes_the_seeds() {
        for (_, p) in SEEDS {
            assert_eq!(check_with(p, Mode::Strict).unwrap(), check(p).unwrap());
        }
        let err = check_with(
            "[[100,1,0],[100,2,1],[2,2,6,3],[10,3,4],[201,4,-1,9],[453,9]]",
            Mode::Strict,
        )
        .unwrap_err();
        assert!(
            err.contains("instruction 2") && err.contains("read before"),
            "{err}"
        );
    }

    #[test]
    fn what_amm_miners_submit_is_taken() {
        // A register read before it is written (reads 0.0) and an NN op with two parameters
        // (writes register 9): both run in AMM's interpreter, and its mutations make them.
        check("[[100,1,0],[100,2,1],[2,2,6,3],[10,3,4],[201,4,-1,9],[453,9]]").unwrap();
        check("[[100,1,0],[100,2,1],[2,1,2,3],[250,3,4],[201,9,-1,9],[453,9]]").unwrap();
    }
}
