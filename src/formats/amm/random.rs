//! Seeded random AMM programs, for tests, fuzzing and evolution.

use super::Program;
use rand::Rng;
use serde_json::{Value as Json, json};

/// Every opcode but control flow, from the registry, in opcode order.
fn ops() -> Vec<i64> {
    super::registry::INSTRUCTIONS
        .iter()
        .filter(|x| x.category != super::registry::Category::Control)
        .map(|x| x.code)
        .collect()
}

fn reg(rng: &mut impl Rng) -> Json {
    if rng.random_bool(0.1) {
        json!(rng.random_range(100..107))
    } else {
        json!(rng.random_range(0..10))
    }
}

/// A random program of `len` body instructions: a LOAD prologue (y_true, y_pred into
/// registers 0 and 1), random instructions, and a RETURN of a written register. With
/// `wild`, also odd encodings the interpreter tolerates (missing parameters, float opcodes,
/// unknown codes, jumps).
pub fn random_program(rng: &mut impl Rng, len: usize, wild: bool) -> Program {
    let mut instrs = vec![json!([100, 0, 0]), json!([100, 1, 1])];
    let mut written = vec![0i64, 1];
    let ops = ops();
    for _ in 0..len {
        let o = ops[rng.random_range(0..ops.len())];
        let z = rng.random_range(2..10);
        let ins = match o {
            100 => json!([100, z, rng.random_range(0..7)]),
            101 => json!([
                101,
                z,
                (rng.random_range(-2.0f64..2.0) * 100.0).round() / 100.0
            ]),
            20 | 21 => json!([
                o,
                reg(rng),
                (rng.random_range(-2.0f64..2.0) * 100.0).round() / 100.0,
                z
            ]),
            6..=12 | 103 | 110 => json!([o, reg(rng), z]),
            200..=205 => json!([o, reg(rng), rng.random_range(-2..2), z]),
            250..=253 | 300 => json!([o, reg(rng), reg(rng), z]),
            409 => json!([o, reg(rng), reg(rng), z, reg(rng)]),
            _ => json!([o, reg(rng), reg(rng), z]),
        };
        instrs.push(ins);
        written.push(z);
    }
    if wild {
        for _ in 0..rng.random_range(0..3) {
            let at = rng.random_range(2..instrs.len() + 1);
            let w = match rng.random_range(0..6) {
                0 => json!([rng.random_range(1..13)]),
                1 => json!([1.0, 0, 1, rng.random_range(2..10)]),
                2 => json!([rng.random_range(204..250), 1, 1, 5]),
                3 => json!([
                    451,
                    rng.random_range(0..10),
                    rng.random_range(0..instrs.len() + 2)
                ]),
                4 => json!([450, rng.random_range(0..instrs.len() + 2)]),
                _ => json!([rng.random_range(260..349), 1, 2, 3]),
            };
            instrs.insert(at, w);
        }
    }
    let r = written[rng.random_range(0..written.len())];
    instrs.push(json!([453, r]));
    Program { instrs }
}
