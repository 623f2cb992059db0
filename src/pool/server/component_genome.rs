//! Genome checks and seeds for the component types other than losses (`ncpc pool serve
//! --component-types`): a function is checked as what its task's component type says it is.
//!
//! - **Activations** are checked as AMM's activation strategy runs them: through AMM's register
//!   validator, then compiled as an activation of the hidden layer (64 rows of 8 units). The
//!   pool refuses one that faults on every input, whose result has neither the input's shape
//!   nor one element (AMM's next layer fails on it), that is not float (AMM fails it in
//!   evaluation), or that does not depend on its input (a constant: AMM's own library is that,
//!   once validated). Identity is the canonical hash of the compiled activation.
//! - **Optimizers** are never run by AMM (its strategy raises before running, so every one
//!   scores 0.0); the pool checks that the program is AMM genetic code within the size limits
//!   and identifies it by its text.

use super::genome::{CheckedGenome, check_limited, parse_within_limits};
use crate::component::ComponentKind;
use crate::formats::Mode;
use crate::formats::amm::validator::validate_and_fix;
use crate::formats::amm::{ACTIVATION_NOT_FLOAT, ACTIVATION_SHAPE, Component, Program, lower_as};
use ncp_ir::DimModel;
use ncp_ir::passes::{OptOptions, canonical_hash, optimize};
use sha2::{Digest, Sha256};

/// Working activations the population starts from (AMM's own library computes zero once its
/// validator has rewritten it: `RETURN R9` with R9 never written; these write R9).
pub const ACTIVATION_SEEDS: &[(&str, &str)] = &[
    ("relu", "[[100,1,0],[100,2,1],[250,1,9],[453,9]]"),
    ("sigmoid", "[[100,1,0],[100,2,1],[251,1,9],[453,9]]"),
    ("tanh", "[[100,1,0],[100,2,1],[252,1,9],[453,9]]"),
];

/// AMM's optimizer library (its one seed).
pub const OPTIMIZER_SEEDS: &[(&str, &str)] = &[(
    "sgd",
    "[[100,1,0],[100,2,1],[100,3,2],[4,4,3,2],[2,5,1,4],[453,5]]",
)];

/// The seeds of a component type.
pub fn seeds(kind: ComponentKind) -> &'static [(&'static str, &'static str)] {
    match kind {
        ComponentKind::Loss => super::genome::SEEDS,
        ComponentKind::Activation => ACTIVATION_SEEDS,
        ComponentKind::Optimizer => OPTIMIZER_SEEDS,
    }
}

/// Check `text` as a function of component type `kind`; the error says what is wrong.
pub fn check_component(
    text: &str,
    kind: ComponentKind,
    mode: Mode,
    max_instructions: usize,
) -> Result<CheckedGenome, String> {
    match kind {
        ComponentKind::Loss => check_limited(text, mode, max_instructions),
        ComponentKind::Activation => {
            let prog = parse_within_limits(text, max_instructions)?;
            check_activation(&prog, mode)
        }
        ComponentKind::Optimizer => {
            let prog = parse_within_limits(text, max_instructions)?;
            let program = serde_json::Value::Array(prog.instrs).to_string();
            let hash: String = Sha256::digest(program.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            Ok(CheckedGenome {
                hash: format!("optimizer:{hash}"),
                fingerprint: None,
                program,
            })
        }
    }
}

/// Rows and units of the hidden layer an activation is checked on (AMM's activation network).
const HIDDEN_SHAPE: (usize, usize) = (64, 8);

fn check_activation(prog: &Program, mode: Mode) -> Result<CheckedGenome, String> {
    let fixed = validate_and_fix(&prog.instrs).map_err(|e| e.to_string())?;
    let validated = Program { instrs: fixed };
    let dims = DimModel::for_inputs(HIDDEN_SHAPE.0, HIDDEN_SHAPE.1);
    let (mut f, notes) = lower_as(
        &validated,
        "activation",
        mode,
        dims,
        Component::ActivationBackward,
    )
    .map_err(|e| e.to_string())?;
    if let Some(n) = notes
        .iter()
        .find(|n| n.ends_with(ACTIVATION_SHAPE) || n.ends_with(ACTIVATION_NOT_FLOAT))
    {
        return Err(format!("{n}: AMM's activation network fails on it"));
    }
    optimize(&mut f, OptOptions::default()).map_err(|e| e.to_string())?;
    if let ncp_ir::Terminator::Trap(code) = &f.blocks[f.entry()].term
        && f.is_straight_line()
    {
        return Err(format!(
            "the activation faults on every input ({code:?}): AMM would score it 0.0"
        ));
    }
    if f.is_straight_line() && ncp_ir::passes::gradient(&f).is_ok_and(|g| !g.has_grad) {
        return Err(
            "the activation does not depend on its input (after AMM's validator rewrites it), so the layer behind it learns nothing"
                .into(),
        );
    }
    Ok(CheckedGenome {
        hash: format!("activation:{}", canonical_hash(&f)),
        fingerprint: None,
        program: serde_json::Value::Array(prog.instrs.clone()).to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn act(text: &str) -> Result<CheckedGenome, String> {
        check_component(text, ComponentKind::Activation, Mode::Compat, 256)
    }

    #[test]
    fn the_seeds_pass_and_differ() {
        for kind in ComponentKind::ALL {
            let hashes: Vec<String> = seeds(kind)
                .iter()
                .map(|(n, p)| {
                    check_component(p, kind, Mode::Compat, 256)
                        .unwrap_or_else(|e| panic!("{kind} seed {n}: {e}"))
                        .hash
                })
                .collect();
            let mut unique = hashes.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), hashes.len(), "{kind}");
        }
    }

    #[test]
    fn activations_are_checked_as_amm_runs_them() {
        // AMM's own relu, as published: validated, it returns the unwritten R9.
        let err = act("[[100,1,0],[101,2,0.0],[300,1,2,3],[453,3]]").unwrap_err();
        assert!(err.contains("does not depend on its input"), "{err}");
        // A reduction: the next layer cannot take it.
        let err = act("[[100,1,0],[100,2,1],[201,1,0,9],[453,9]]").unwrap_err();
        assert!(err.contains("another shape"), "{err}");
        // A comparison: bool, refused by the next layer in evaluation.
        let err = act("[[100,1,0],[100,2,1],[400,1,2,9],[453,9]]").unwrap_err();
        assert!(err.contains("not float") || err.contains("depend"), "{err}");
        // Register renaming is the same activation.
        let a = act("[[100,1,0],[100,2,1],[250,1,9],[453,9]]").unwrap();
        let b = act("[[100,3,0],[100,2,1],[250,3,9],[453,9]]").unwrap();
        assert_eq!(a.hash, b.hash);
        assert!(
            act("[[100,1,0],[100,2,1],[9,1,9],[453,9]]").is_ok(),
            "log(x)"
        );
    }

    #[test]
    fn a_loss_and_an_activation_never_share_an_identity() {
        let text = "[[100,1,0],[100,2,1],[250,1,9],[453,9]]";
        let l = check_component(text, ComponentKind::Loss, Mode::Compat, 256);
        let a = act(text).unwrap();
        assert!(l.map_or(true, |l| l.hash != a.hash));
        let o = check_component(text, ComponentKind::Optimizer, Mode::Compat, 256).unwrap();
        assert_ne!(o.hash, a.hash);
    }
}
