//! Functions with control flow whose path cannot depend on the inputs: when every branch
//! condition is computed from constants alone (not from the inputs, their shapes or the
//! dims), one run of the interpreter finds the path every input takes, and the straight-line
//! function of that path (`passes::trace::specialize`, which is also what the interpreter
//! differentiates) is what the JIT compiles. The budget counter of AMM loops is such a
//! value, so bounded loops with constant trip counts compile too. The interpreter runs the
//! same instructions in the same order, so the kernel stays bit-equal to it.
//!
//! Branches on the data get [`guarded_path`]: the path one input takes, compiled with its
//! branch conditions kept as guards (`passes::trace::specialize_guarded`). Its kernel's loss
//! is NaN on any input that would take another path; the caller then asks the interpreter
//! (and may trace the new path). On the inputs of its path it computes exactly what the
//! interpreter computes, since the interpreter differentiates that same path.

use ncp_ir::interp::{DEFAULT_FUEL, Outcome, Step, run_traced};
use ncp_ir::passes::depends_on;
use ncp_ir::passes::trace::{specialize, specialize_guarded};
use ncp_ir::tensor::Tensor;
use ncp_ir::{DType, Function, Opcode, Terminator};
use std::borrow::Cow;

/// The longest path (in instructions) compiled.
pub const MAX_PATH_INSTS: usize = 2000;

/// Whether every `brif` condition of `f` depends on constants only.
pub fn static_branches(f: &Function) -> bool {
    // Values that depend on the inputs (their data or shapes) or on the dims.
    let dynamic = depends_on(f, f.blocks[f.entry()].params.iter().copied(), |d| {
        d.op == Opcode::Dim
    });
    f.layout.iter().all(|b| match &f.blocks[*b].term {
        Terminator::Brif(cond, _, _) => !dynamic.contains(cond),
        _ => true,
    })
}

/// The straight-line function of the one path `f` takes for every input, when its branches
/// are static and that path returns (a path that faults is left to the interpreter).
pub fn static_path(f: &Function) -> Option<Cow<'_, Function>> {
    if f.is_straight_line() {
        return Some(Cow::Borrowed(f));
    }
    if !static_branches(f) {
        return None;
    }
    let entry = f.entry();
    let inputs: Vec<Tensor> = f.blocks[entry]
        .params
        .iter()
        .map(|p| {
            let ty = f.ty(*p);
            // Any dims do (the path does not depend on them); B and C must differ.
            let shape: Vec<usize> = ty
                .shape
                .iter()
                .map(|d| match d {
                    ncp_ir::Dim::B => 4,
                    ncp_ir::Dim::C => 3,
                    ncp_ir::Dim::Fixed(n) => *n as usize,
                })
                .collect();
            let n = shape.iter().product::<usize>();
            Tensor::new(DType::F32, shape, vec![0.5; n])
        })
        .collect();
    let path = returning_path(f, &inputs)?;
    bounded(specialize(f, &path)).map(Cow::Owned)
}

/// The path `inputs` take through `f`, when that run returns (a path that faults or runs
/// out of fuel is left to the interpreter).
fn returning_path(f: &Function, inputs: &[Tensor]) -> Option<Vec<Step>> {
    match run_traced(f, inputs, DEFAULT_FUEL).ok()? {
        (Outcome::Return(_), path) => Some(path),
        _ => None,
    }
}

/// A path's straight-line function, when it is at most [`MAX_PATH_INSTS`] long: a loop
/// unrolled into thousands of instructions costs more to compile than to interpret.
fn bounded(g: Result<Function, ncp_ir::IrError>) -> Option<Function> {
    let g = g.ok()?;
    (g.inst_count() <= MAX_PATH_INSTS).then_some(g)
}

/// Whether `f` has branches whose way depends on the inputs (so [`static_path`] refuses it
/// and [`guarded_path`] applies).
pub fn dynamic_branches(f: &Function) -> bool {
    !f.is_straight_line() && !static_branches(f)
}

/// The guarded straight-line function of the path `(y_pred, y_true)` take through `f` (see
/// the module doc), when `f` branches on the data, that path returns, and it is at most
/// [`MAX_PATH_INSTS`] long. `None` otherwise (including when `f` has no data-dependent
/// branch: use [`static_path`]).
pub fn guarded_path(f: &Function, y_pred: &Tensor, y_true: &Tensor) -> Option<Function> {
    if !dynamic_branches(f) {
        return None;
    }
    let path = returning_path(f, &[y_pred.clone(), y_true.clone()])?;
    guarded_path_of(f, &path)
}

/// [`guarded_path`] for a path already traced (by a run that returned): what training
/// uses after the interpreter's own run, so the path is not run a second time.
pub fn guarded_path_of(f: &Function, path: &[Step]) -> Option<Function> {
    bounded(specialize_guarded(f, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Function {
        ncp_ir::text::parse_function(s).unwrap()
    }

    #[test]
    fn a_constant_condition_is_static_and_a_data_condition_is_not() {
        let fixed = parse(
            "function g(f32[B,C], f32[B,C]) -> f32 {\nblock0(v0: f32[B,C], v1: f32[B,C]):\n    v2 = const<true> : bool\n    brif v2, block1(v0), block1(v1)\nblock1(v3: f32[B,C]):\n    v4 = mean<all> v3 : f32\n    return v4\n}",
        );
        assert!(static_branches(&fixed));
        let p = static_path(&fixed).unwrap();
        assert!(p.is_straight_line());
        let data = parse(
            "function g(f32[B,C], f32[B,C]) -> f32 {\nblock0(v0: f32[B,C], v1: f32[B,C]):\n    v2 = mean<all> v0 : f32\n    v5 = const<0.0> : f32\n    v6 = gt v2, v5 : bool\n    brif v6, block1(v0), block1(v1)\nblock1(v3: f32[B,C]):\n    v4 = mean<all> v3 : f32\n    return v4\n}",
        );
        assert!(!static_branches(&data));
        assert!(static_path(&data).is_none());
    }
}
