//! Genetic operators on AMM programs, with the AMM client's semantics: the same instruction
//! registry and categories, the five mutation kinds applied per body instruction with the
//! mutation rate, the three crossovers, and the repair that keeps the LOAD prologue
//! (`R1 <- y_true`, `R2 <- y_pred`), the `RETURN R9` epilogue, registers in 0..=19 and each
//! instruction's parameter count. Every child is a valid AMM program.

use rand::Rng;
use rand::seq::IndexedRandom;
use serde_json::{Value as Json, json};

use crate::formats::amm::opcodes as op;
use crate::formats::amm::registry::{self, DRAWN_CATEGORIES, Evolvable, Param};
use Param::{Axis, Const, Reg, Special};

/// Most instructions a mutation grows a program to (AMM's limit).
pub const MAX_LEN: usize = 20;

/// An AMM program as the operators see it: one list of JSON numbers per instruction.
pub type Code = Vec<Vec<Json>>;

/// The parameters AMM's client registers for `op` (none for opcodes outside its registry).
fn spec(op: i64) -> Option<&'static [Param]> {
    registry::lookup(op)
        .filter(|x| x.evolvable != Evolvable::No)
        .map(|x| x.params)
}

/// The opcodes a mutation may turn `op` into: its category's drawn ones (none when `op` is
/// not drawn itself).
fn category_of(op: i64) -> Option<Vec<i64>> {
    registry::lookup(op)
        .filter(|x| x.evolvable == Evolvable::Yes)
        .map(|x| registry::drawn_codes(x.category))
}

fn opcode(ins: &[Json]) -> Option<i64> {
    ins.first()
        .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
}

fn draw(p: Param, rng: &mut impl Rng) -> Json {
    match p {
        Reg => json!(rng.random_range(1..=9)),
        Special => json!(rng.random_range(0..=6)),
        Axis => json!(*[-1, 0].choose(rng).unwrap_or(&-1)),
        Const => json!(rng.random_range(-1.0f64..1.0)),
    }
}

/// Clamp a parameter into its role's range (drawing a fresh one when it is not a number).
fn adapt(v: &Json, p: Param, rng: &mut impl Rng) -> Json {
    let Some(x) = v.as_f64() else {
        return draw(p, rng);
    };
    match p {
        Reg => json!((x as i64).clamp(0, 19)),
        Special => json!((x as i64).clamp(0, 6)),
        Axis => json!(if x < 0.0 { -1 } else { 0 }),
        Const => json!(x.clamp(-100.0, 100.0)),
    }
}

/// Give an instruction exactly its opcode's parameters, keeping (adapted) the ones it has.
fn fix_params(ins: &mut Vec<Json>, rng: &mut impl Rng) {
    let Some(params) = opcode(ins).and_then(spec) else {
        return;
    };
    let mut out = vec![ins[0].clone()];
    for (k, p) in params.iter().enumerate() {
        out.push(match ins.get(k + 1) {
            Some(v) => adapt(v, *p, rng),
            None => draw(*p, rng),
        });
    }
    *ins = out;
}

/// A random instruction of a random (non-control) category.
fn random_instruction(rng: &mut impl Rng) -> Vec<Json> {
    let cat = *DRAWN_CATEGORIES
        .choose(rng)
        .unwrap_or(&registry::Category::Arithmetic);
    let op = *registry::drawn_codes(cat).choose(rng).unwrap_or(&1);
    let mut ins = vec![json!(op)];
    for p in spec(op).unwrap_or(&[]) {
        ins.push(draw(*p, rng));
    }
    ins
}

/// A random program of `len` body instructions between the LOAD prologue and `RETURN R9`,
/// the last of them writing R9 (so the program returns something it computed).
pub fn random_code(len: usize, rng: &mut impl Rng) -> Code {
    let mut code = vec![
        vec![json!(100), json!(1), json!(0)],
        vec![json!(100), json!(2), json!(1)],
    ];
    for k in 0..len.max(1) {
        let mut ins = random_instruction(rng);
        if k + 1 == len.max(1) {
            let op = opcode(&ins).unwrap_or(1);
            let dest = if op == 100 || op == 101 {
                1
            } else {
                ins.len() - 1
            };
            ins[dest] = json!(9);
        }
        code.push(ins);
    }
    code.push(vec![json!(453), json!(9)]);
    code
}

/// AMM's repair: drop non-list instructions, clamp register parameters to 0..=19, force the
/// LOAD prologue and the `RETURN R9` epilogue.
pub fn repair(code: &mut Code) {
    code.retain(|ins| !ins.is_empty());
    for ins in code.iter_mut() {
        let params = opcode(ins).and_then(spec);
        for (k, v) in ins.iter_mut().enumerate().skip(1) {
            let is_reg = params.is_none_or(|ps| ps.get(k - 1).is_none_or(|p| *p == Reg));
            if is_reg {
                let r = v.as_f64().map_or(9, |x| (x as i64).clamp(0, 19));
                *v = json!(r);
            }
        }
    }
    if code.is_empty() {
        *code = seed_mse();
        return;
    }
    if opcode(&code[0]) != Some(100) {
        code[0] = vec![json!(100), json!(1), json!(0)];
    }
    if code.len() >= 2 && opcode(&code[1]) != Some(100) {
        code[1] = vec![json!(100), json!(2), json!(1)];
    }
    let ret = vec![json!(453), json!(9)];
    match code.last_mut() {
        Some(last) if opcode(last) == Some(453) => *last = ret,
        _ => code.push(ret),
    }
}

/// MSE in the form AMM seeds evolution with (`R9 <- mean((y_true - y_pred)^2)`).
pub fn seed_mse() -> Code {
    serde_json::from_str("[[100,1,0],[100,2,1],[2,1,2,3],[10,3,4],[201,4,-1,9],[453,9]]")
        .unwrap_or_default()
}

/// Mutate: each body instruction (between the two LOADs and the RETURN), with probability
/// `rate`, gets one of: a new opcode from its category, a new parameter, an inserted random
/// instruction before it (while under [`MAX_LEN`]), its deletion (while over 4), or a swap
/// with another body instruction. Then parameters and registers are repaired.
pub fn mutate(code: &Code, rate: f64, rng: &mut impl Rng) -> Code {
    let mut m = code.clone();
    let mut i = 2;
    while i + 1 < m.len() {
        if rng.random_bool(rate.clamp(0.0, 1.0)) {
            match rng.random_range(0..5) {
                0 => {
                    if let Some(op) = opcode(&m[i])
                        && let Some(cat) = category_of(op)
                    {
                        m[i][0] = json!(*cat.choose(rng).unwrap_or(&op));
                        fix_params(&mut m[i], rng);
                    }
                }
                1 => {
                    if let Some(params) = opcode(&m[i]).and_then(spec)
                        && !params.is_empty()
                    {
                        let k = rng.random_range(0..params.len());
                        fix_params(&mut m[i], rng);
                        m[i][k + 1] = draw(params[k], rng);
                    }
                }
                2 if m.len() < MAX_LEN => m.insert(i, random_instruction(rng)),
                3 if m.len() > 4 => {
                    m.remove(i);
                    continue;
                }
                4 if m.len() > 3 => {
                    let others: Vec<usize> = (2..m.len() - 1).filter(|j| *j != i).collect();
                    if let Some(j) = others.choose(rng) {
                        m.swap(i, *j);
                    }
                }
                _ => {}
            }
        }
        i += 1;
    }
    for ins in m.iter_mut() {
        fix_params(ins, rng);
    }
    repair(&mut m);
    m
}

/// Crossover of two programs, keeping the prologue and epilogue: single-point, two-point or
/// uniform, chosen at random.
pub fn crossover(a: &Code, b: &Code, rng: &mut impl Rng) -> Code {
    // A cut point needs a body instruction between the two LOADs and the RETURN.
    if a.len() < 4 || b.len() < 4 {
        return if a.len() >= b.len() {
            a.clone()
        } else {
            b.clone()
        };
    }
    let single = |rng: &mut dyn rand::RngCore| {
        let pa = rng.random_range(2..=a.len() - 2);
        let pb = rng.random_range(2..=b.len() - 2);
        let mut c = a[..pa].to_vec();
        c.extend_from_slice(&b[pb..]);
        c
    };
    let mut child = match rng.random_range(0..3) {
        0 => single(rng),
        1 if a.len() >= 5 && b.len() >= 5 => {
            let two = |n: usize, rng: &mut dyn rand::RngCore| {
                let mut p = rand::seq::index::sample(rng, n - 3, 2).into_vec();
                p.sort_unstable();
                (p[0] + 2, p[1] + 2)
            };
            let (a0, a1) = two(a.len(), rng);
            let (b0, b1) = two(b.len(), rng);
            let mut c = a[..a0].to_vec();
            c.extend_from_slice(&b[b0..b1]);
            c.extend_from_slice(&a[a1..]);
            c
        }
        1 => single(rng),
        _ => {
            let mut c = vec![a[0].clone(), a[1].clone()];
            for i in 2..a.len().min(b.len()) - 1 {
                c.push(if rng.random_bool(0.5) {
                    a[i].clone()
                } else {
                    b[i].clone()
                });
            }
            c.push(vec![json!(453), json!(9)]);
            c
        }
    };
    repair(&mut child);
    child
}

/// A parsed AMM program as [`Code`]: instructions that are not lists are dropped (as AMM's
/// repair drops them), and the result is repaired.
pub fn from_program(prog: crate::formats::amm::Program) -> Code {
    let mut code: Code = prog
        .instrs
        .into_iter()
        .filter_map(|i| match i {
            Json::Array(v) => Some(v),
            _ => None,
        })
        .collect();
    repair(&mut code);
    code
}

/// The positions of `ins`'s register operands: what AMM's registry lists as registers, and
/// any operand beyond its list (the destination of the neural-network ops, `[op, x, y, z]`),
/// as [`repair`] treats them.
fn register_slots(ins: &[Json]) -> Vec<usize> {
    let params = opcode(ins).and_then(registry::lookup).map(|x| x.params);
    (1..ins.len())
        .filter(|k| params.is_none_or(|ps| ps.get(k - 1).is_none_or(|p| *p == Reg)))
        .collect()
}

fn reg_at(ins: &[Json], k: usize) -> Option<i64> {
    ins.get(k).and_then(|v| v.as_i64())
}

/// Rename the registers `code` names, each through `to`.
fn rename_registers(code: &mut [Vec<Json>], to: impl Fn(i64) -> i64) {
    for ins in code {
        for k in register_slots(ins) {
            if let Some(r) = reg_at(ins, k) {
                ins[k] = json!(to(r));
            }
        }
    }
}

/// A program written by the AMM emitter (`formats::amm::emit`) in the form evolution keeps
/// programs in: the LOADs of y_pred and y_true first and the result in R9, so that
/// [`repair`] leaves it as it is. Registers are renamed where needed (a register's value
/// after a LOAD is renamed to a fresh register when the LOAD moves to the front; the result
/// register and R9 are swapped). `None` for a program this cannot put in that form (more
/// than 20 registers, an instruction that is not a list).
pub fn from_emitted(prog: crate::formats::amm::Program) -> Option<Code> {
    let mut code: Code = prog
        .instrs
        .into_iter()
        .map(|i| match i {
            Json::Array(v) => Some(v),
            _ => None,
        })
        .collect::<Option<_>>()?;
    let mut used = std::collections::BTreeSet::new();
    for ins in &code {
        for k in register_slots(ins) {
            let r = reg_at(ins, k)?;
            if !(0..20).contains(&r) {
                return None;
            }
            used.insert(r);
        }
    }
    let fresh = |used: &mut std::collections::BTreeSet<i64>| {
        let q = (0..20).find(|r| !used.contains(r))?;
        used.insert(q);
        Some(q)
    };
    for input in [0i64, 1] {
        let at = input as usize;
        let found = (at..code.len()).find(|&p| {
            opcode(&code[p]) == Some(op::LOAD)
                && code[p].get(2).and_then(|v| v.as_i64()) == Some(input)
        });
        let p = match found {
            Some(p) => p,
            None => {
                let q = fresh(&mut used)?;
                code.insert(at, vec![json!(op::LOAD), json!(q), json!(input)]);
                continue;
            }
        };
        let r = reg_at(&code[p], 1)?;
        let seen_before = code[..p].iter().any(|ins| {
            register_slots(ins)
                .iter()
                .any(|k| reg_at(ins, *k) == Some(r))
        });
        if seen_before {
            let q = fresh(&mut used)?;
            rename_registers(&mut code[p..], |x| if x == r { q } else { x });
        }
        let load = code.remove(p);
        code.insert(at, load);
    }
    let last = code.last()?;
    if opcode(last) != Some(op::RETURN) {
        return None;
    }
    let r = reg_at(last, 1)?;
    rename_registers(&mut code, |x| match x {
        _ if x == r => 9,
        9 => r,
        _ => x,
    });
    let mut repaired = code.clone();
    repair(&mut repaired);
    (repaired == code).then_some(code)
}

/// Parse AMM program text into repaired [`Code`] (see [`from_program`]).
pub fn from_text(text: &str) -> Result<Code, crate::formats::FormatError> {
    Ok(from_program(crate::formats::amm::parse_program(text)?))
}

/// The program as compact JSON text.
pub fn to_text(code: &Code) -> String {
    serde_json::to_string(code).unwrap_or_else(|_| "[]".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::{CompileOptions, compile};
    use rand::SeedableRng;

    #[test]
    fn mutants_and_children_keep_the_frame_and_compile() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut pool = vec![seed_mse()];
        for step in 0..2000 {
            let a = pool[rng.random_range(0..pool.len())].clone();
            let b = pool[rng.random_range(0..pool.len())].clone();
            let child = if step % 2 == 0 {
                mutate(&a, 0.5, &mut rng)
            } else {
                crossover(&a, &b, &mut rng)
            };
            assert_eq!(child[0][..2], [json!(100), json!(1)], "{child:?}");
            assert_eq!(child[1][..2], [json!(100), json!(2)], "{child:?}");
            assert_eq!(child.last().unwrap(), &vec![json!(453), json!(9)]);
            assert!(child.len() <= MAX_LEN + 2, "{}", child.len());
            // AMM runs any such program (strict mode would refuse reads of registers not
            // yet written, which AMM reads as 0.0).
            compile(&to_text(&child), &CompileOptions::default()).expect("compat compile");
            pool.push(child);
        }
        let distinct: std::collections::HashSet<String> = pool.iter().map(to_text).collect();
        assert!(
            distinct.len() > 500,
            "only {} distinct programs",
            distinct.len()
        );
    }

    #[test]
    fn mutation_is_deterministic_for_a_seed_and_rate_zero_is_identity() {
        let seed = seed_mse();
        let run = |s| {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(s);
            (0..20)
                .map(|_| mutate(&seed, 0.6, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        assert_eq!(mutate(&seed, 0.0, &mut rng), seed);
    }

    #[test]
    fn repair_forces_the_prologue_epilogue_and_register_range() {
        let mut c: Code = serde_json::from_str("[[1, 50, -3, 2], [2, 1, 2, 3]]").unwrap();
        repair(&mut c);
        assert_eq!(to_text(&c), "[[100,1,0],[100,2,1],[453,9]]");
        let mut c: Code =
            serde_json::from_str("[[100,1,0],[100,2,1],[1,50,-3,2],[453,4]]").unwrap();
        repair(&mut c);
        assert_eq!(to_text(&c), "[[100,1,0],[100,2,1],[1,19,0,2],[453,9]]");
    }
}
