//! AMM's `RegisterValidator.validate_and_fix_genetic_code`
//! (automl_client/genetic/strategies.py), which AMM's activation component runs on every
//! program before using it (its loss component does not). It rewrites the program:
//!
//! - instructions that are not lists, or are empty, are dropped;
//! - every operand that looks like a register (by opcode and position, AMM's
//!   `_is_likely_register_param`) becomes `max(0, min(19, int(v)))`, or 9 when `int` fails,
//!   so the constants of ADD_CONST/MUL_CONST (20/21) become whole numbers in 0..19;
//! - the first instruction is forced to be `LOAD R1, S0`, the second `LOAD R2, S1`, and the
//!   last `RETURN R9` (appended when the last instruction is not a RETURN);
//! - a program with no instruction left becomes `mean((S0 - S1)^2)` into R9.
//!
//! So AMM's own activation library (relu, sigmoid, identity) computes the constant zero once
//! validated (R9 is never written): docs/evaluation.md.

use super::pyval::{PyInt, py_int, py_num};
use serde_json::{Value as Json, json};

/// Why AMM's validator raises (the client then scores the function 0.0).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("AMM's register validator raises at instruction {index}: {reason}")]
pub struct ValidatorError {
    /// The instruction (after dropping non-list ones).
    pub index: usize,
    /// What Python raises.
    pub reason: String,
}

/// Whether operand `i` (1-based) of opcode `op` is a register, as AMM decides it.
fn is_register_operand(op: f64, i: usize) -> bool {
    if (350.0..=352.0).contains(&op) {
        return i <= 3;
    }
    if (1.0..=12.0).contains(&op) || op == 453.0 {
        return true;
    }
    if (100.0..200.0).contains(&op) {
        if i == 1 {
            return true;
        }
        if (op == 100.0 || op == 101.0) && i == 2 {
            return false;
        }
    }
    if (200.0..250.0).contains(&op) {
        return i == 1 || i == 3;
    }
    true
}

/// The program as AMM's validator leaves it, or why the validator raises.
pub fn validate_and_fix(instrs: &[Json]) -> Result<Vec<Json>, ValidatorError> {
    if instrs.is_empty() {
        return Ok(Vec::new());
    }
    let mut code: Vec<Vec<Json>> = instrs
        .iter()
        .filter_map(|ins| match ins {
            Json::Array(a) if !a.is_empty() => Some(a.clone()),
            _ => None,
        })
        .collect();
    for (index, ins) in code.iter_mut().enumerate() {
        if ins.len() < 2 {
            continue;
        }
        // The comparisons raise TypeError for an opcode that is not a number.
        let Some(op) = py_num(&ins[0]) else {
            return Err(ValidatorError {
                index,
                reason: format!(
                    "TypeError: the opcode {} does not compare with numbers",
                    ins[0]
                ),
            });
        };
        for (i, v) in ins.iter_mut().enumerate().skip(1) {
            if !is_register_operand(op, i) {
                continue;
            }
            *v = match py_int(v) {
                PyInt::Ok(n) => json!(n.clamp(0, 19)),
                PyInt::Invalid => json!(9),
                PyInt::Overflow => {
                    return Err(ValidatorError {
                        index,
                        reason: "OverflowError: cannot convert float infinity to integer".into(),
                    });
                }
            };
        }
    }
    if code.is_empty() {
        return Ok(vec![
            json!([100, 1, 0]),
            json!([100, 2, 1]),
            json!([350, 1, 2, 9]),
            json!([453, 9]),
        ]);
    }
    let opcode_is = |ins: &[Json], want: f64| py_num(&ins[0]) == Some(want);
    if !opcode_is(&code[0], 100.0) {
        code[0] = vec![json!(100), json!(1), json!(0)];
    }
    if code.len() >= 2 && !opcode_is(&code[1], 100.0) {
        code[1] = vec![json!(100), json!(2), json!(1)];
    }
    let last = code.len() - 1;
    if opcode_is(&code[last], 453.0) {
        code[last] = vec![json!(453), json!(9)];
    } else {
        code.push(vec![json!(453), json!(9)]);
    }
    Ok(code.into_iter().map(Json::Array).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fix(v: Json) -> Json {
        Json::Array(validate_and_fix(v.as_array().unwrap()).unwrap())
    }

    #[test]
    fn the_library_seeds_return_the_unwritten_r9() {
        let relu = json!([[100, 1, 0], [101, 2, 0.0], [300, 1, 2, 3], [453, 3]]);
        assert_eq!(
            fix(relu),
            json!([[100, 1, 0], [100, 2, 1], [300, 1, 2, 3], [453, 9]])
        );
        assert_eq!(
            fix(json!([[100, 1, 0], [453, 1]])),
            json!([[100, 1, 0], [100, 2, 1], [453, 9]])
        );
    }

    #[test]
    fn register_operands_are_clamped_and_constants_truncated() {
        assert_eq!(
            fix(json!([
                [100, 1, 0],
                [100, 2, 1],
                [21, 1, 0.01, 3],
                [1, 25, -3.5, "x"]
            ])),
            json!([
                [100, 1, 0],
                [100, 2, 1],
                [21, 1, 0, 3],
                [1, 19, 0, 9],
                [453, 9]
            ])
        );
        // LOAD's special index and reduction axes are kept.
        assert_eq!(
            fix(json!([
                [100, 1, 105],
                [100, 2, 1],
                [201, 1, -1, 3],
                [453, 3]
            ])),
            json!([[100, 1, 105], [100, 2, 1], [201, 1, -1, 3], [453, 9]])
        );
    }

    #[test]
    fn what_raises() {
        assert!(validate_and_fix(&[json!(["250", 1, 9])]).is_err());
        // An instruction in second place that is not a LOAD is replaced, not moved.
        assert_eq!(
            fix(json!([[100, 1, 0], [1, 1, null, 3]])),
            json!([[100, 1, 0], [100, 2, 1], [453, 9]])
        );
        assert_eq!(fix(json!([[], 5, [7]])), json!([[100, 1, 0], [453, 9]]));
        assert_eq!(
            fix(json!([[], 5])),
            json!([[100, 1, 0], [100, 2, 1], [350, 1, 2, 9], [453, 9]])
        );
    }
}
