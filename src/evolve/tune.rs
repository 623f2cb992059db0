//! Constant tuning (GLO/TaylorGLO's second stage): the real constants of a found AMM program
//! (LOAD_CONST's value, ADD_CONST's and MUL_CONST's operand) optimized with CMA-ES
//! ([`super::cmaes`]) for the protocol's score, the structure unchanged.

use super::amm_ops::{Code, to_text};
use super::cmaes::CmaEs;
use crate::formats::amm::opcodes as op;
use serde_json::Value as Json;

/// Where a program holds real constants: (instruction, operand) of each.
pub fn constant_slots(code: &Code) -> Vec<(usize, usize)> {
    let mut slots = Vec::new();
    for (i, ins) in code.iter().enumerate() {
        let Some(opc) = ins.first().and_then(Json::as_f64) else {
            continue;
        };
        // LOAD_CONST [101, dest, c]; ADD_CONST and MUL_CONST [op, src, c, dest].
        let consts = [op::LOAD_CONST, op::ADD_CONST, op::MUL_CONST];
        if !consts.iter().any(|c| opc == *c as f64) {
            continue;
        }
        let k = 2;
        if ins
            .get(k)
            .and_then(Json::as_f64)
            .is_some_and(f64::is_finite)
        {
            slots.push((i, k));
        }
    }
    slots
}

/// The constants at `slots`.
pub fn constants(code: &Code, slots: &[(usize, usize)]) -> Vec<f64> {
    slots
        .iter()
        .map(|(i, k)| code[*i][*k].as_f64().unwrap_or(0.0))
        .collect()
}

/// `code` with the constants at `slots` set to `values` (as f32, which AMM's tensors hold).
pub fn with_constants(code: &Code, slots: &[(usize, usize)], values: &[f64]) -> Code {
    let mut out = code.clone();
    for ((i, k), v) in slots.iter().zip(values) {
        out[*i][*k] =
            serde_json::Number::from_f64((*v as f32) as f64).map_or(Json::Null, Json::Number);
    }
    out
}

/// The result of tuning one program.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Tuned {
    /// The program before.
    pub before: String,
    /// Its score before.
    pub before_fitness: f64,
    /// The tuned program (the same as before when nothing improved).
    pub genome: String,
    /// Its score.
    pub fitness: f64,
    /// Constants tuned.
    pub constants: usize,
    /// Scores computed.
    pub evaluations: usize,
}

/// Tune `code`'s constants for at most `budget` scores of `fitness` (higher is better).
pub fn tune(
    code: &Code,
    before_fitness: f64,
    budget: usize,
    seed: u64,
    fitness: &mut dyn FnMut(&str) -> f64,
) -> Tuned {
    let slots = constant_slots(code);
    let before = to_text(code);
    let mut result = Tuned {
        before: before.clone(),
        before_fitness,
        genome: before,
        fitness: before_fitness,
        constants: slots.len(),
        evaluations: 0,
    };
    if slots.is_empty() || budget == 0 {
        return result;
    }
    let start = constants(code, &slots);
    // Steps relative to the constants' sizes: a constant of 1e-7 and one of 5 both move.
    let sigma = 0.3;
    let scale: Vec<f64> = start.iter().map(|c| c.abs().max(1e-3)).collect();
    let mut es = CmaEs::new(vec![0.0; slots.len()], sigma, seed);
    let mut best = (result.genome.clone(), before_fitness);
    let (_, _) = es.minimize(budget, &mut |u| {
        let values: Vec<f64> = start
            .iter()
            .zip(&scale)
            .zip(u)
            .map(|((c, s), u)| c + s * u)
            .collect();
        let text = to_text(&with_constants(code, &slots, &values));
        let f = fitness(&text);
        result.evaluations += 1;
        if f > best.1 {
            best = (text, f);
        }
        if f.is_finite() { -f } else { f64::INFINITY }
    });
    result.genome = best.0;
    result.fitness = best.1;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evolve::amm_ops::from_text;

    #[test]
    fn constants_are_found_and_set() {
        // AMM's repair keeps the first two instructions loads.
        let code = from_text(
            "[[100,1,0],[100,2,1],[101,3,0.25],[21,1,3.5,4],[20,4,-1.0,5],[1,4,3,9],[453,9]]",
        )
        .unwrap();
        let slots = constant_slots(&code);
        assert_eq!(slots, [(2, 2), (3, 2), (4, 2)]);
        assert_eq!(constants(&code, &slots), [0.25, 3.5, -1.0]);
        let c = with_constants(&code, &slots, &[1.0, 2.0, 3.0]);
        assert_eq!(constants(&c, &slots), [1.0, 2.0, 3.0]);
        assert_eq!(c[0], code[0]);
    }

    #[test]
    fn tuning_finds_a_better_constant() {
        // A made-up fitness that peaks when the MUL_CONST factor is 2.
        let code = from_text("[[100,1,0],[100,2,1],[21,1,0.5,9],[453,9]]").unwrap();
        let slots = constant_slots(&code);
        let mut fit = |t: &str| {
            let c = constants(&from_text(t).unwrap(), &slots)[0];
            -(c - 2.0).powi(2)
        };
        let before = fit(&to_text(&code));
        let t = tune(&code, before, 200, 1, &mut fit);
        assert!(t.fitness > -1e-3, "{t:?}");
        assert!(t.evaluations <= 200);
    }
}
