//! Genetic operators on the typed IR, whatever the genome's format: a genome is compiled to
//! its optimized IR, changed there with type-correct edits, verified, and written back to its
//! format by the emitters (`formats::amm::emit`, `formats::daml_emit`). Constants are leaves
//! the operators create and perturb, so structures found this way carry constants for the
//! CMA-ES stage (`evolve::tune`) to tune.
//!
//! The edits on a straight-line function (one block):
//! - **perturb a constant** (scaled by `e^N(0, 0.5)` or shifted by `N(0, 0.5)`, sometimes
//!   negated);
//! - **swap an op** for another of its kind (unary for unary, binary for binary) when the
//!   result type stays the same;
//! - **insert** a unary op, or a binary op with a new constant or an earlier value, on one
//!   operand of an instruction (the new value has the operand's type);
//! - **bypass** an instruction: its uses read one of its operands of the same type instead;
//! - **crossover**: a value of the other parent, with every instruction it depends on,
//!   replaces a value of the same type in this one.
//!
//! Each returns `None` when it finds nothing to do or its result does not verify; the engine
//! then uses the format's own operator.

use super::amm_ops;
use super::genome::Genome;
use crate::formats::{CompileOptions, amm, compile, daml_emit};
use ncp_ir::passes::{OptOptions, dce::dce, optimize};
use ncp_ir::{ConstVal, DType, Function, Imm, Inst, Opcode, Type, Value};
use rand::Rng;
use std::collections::{HashMap, HashSet};

/// Unary ops the operators insert and swap among (elementwise, f32 to f32).
const UNARY: &[Opcode] = &[
    Opcode::Neg,
    Opcode::Abs,
    Opcode::Sqrt,
    Opcode::Exp,
    Opcode::Log,
    Opcode::Tanh,
    Opcode::Sigmoid,
    Opcode::Relu,
    Opcode::Recip,
    Opcode::Softmax,
];

/// Binary ops the operators insert and swap among.
const BINARY: &[Opcode] = &[
    Opcode::Add,
    Opcode::Sub,
    Opcode::Mul,
    Opcode::Div,
    Opcode::Max,
    Opcode::Min,
    Opcode::Pow,
];

/// Constants a new leaf starts from (besides a draw from N(0, 1)).
const LEAVES: &[f32] = &[1.0, 2.0, 0.5, 0.1, 1e-7, -1.0, 0.9];

/// The genome's optimized straight-line IR, when it compiles to one.
pub fn to_ir(g: &Genome) -> Option<Function> {
    if matches!(g, Genome::Haz(_)) {
        return None;
    }
    let mut f = compile(&g.to_text(), &CompileOptions::default()).ok()?.func;
    optimize(&mut f, OptOptions::default()).ok()?;
    (f.is_straight_line() && f.blocks[f.entry()].params.len() == 2).then_some(f)
}

/// `f` written back in `like`'s format (AMM and DAML; HAZ has no emitter).
pub fn from_ir(f: &Function, like: &Genome) -> Option<Genome> {
    match like {
        Genome::Amm(_) => Some(Genome::Amm(amm_ops::from_emitted(amm::emit(f).ok()?)?)),
        Genome::Daml(_) => {
            let text = serde_json::json!({ "expression": daml_emit::emit(f).ok()? }).to_string();
            Genome::from_text(super::genome::GenomeFormat::Daml, &text).ok()
        }
        Genome::Haz(_) => None,
    }
}

/// A mutant of `g` made on its IR (one edit), within `size_limit`.
pub fn mutant(g: &Genome, size_limit: usize, rng: &mut impl Rng) -> Option<Genome> {
    let f = to_ir(g)?;
    let m = mutate(&f, rng)?;
    let child = from_ir(&m, g)?;
    (child.size() <= size_limit && &child != g).then_some(child)
}

/// A child of `a` and `b` made on their IR, within `size_limit`.
pub fn child(a: &Genome, b: &Genome, size_limit: usize, rng: &mut impl Rng) -> Option<Genome> {
    let (fa, fb) = (to_ir(a)?, to_ir(b)?);
    let m = crossover(&fa, &fb, rng)?;
    let child = from_ir(&m, a)?;
    (child.size() <= size_limit).then_some(child)
}

/// One random edit of a straight-line function (see the module doc).
pub fn mutate(f: &Function, rng: &mut impl Rng) -> Option<Function> {
    for _ in 0..8 {
        let mut g = f.clone();
        let done = match rng.random_range(0..4) {
            0 => perturb_const(&mut g, rng),
            1 => swap_op(&mut g, rng),
            2 => insert(&mut g, rng),
            _ => bypass(&mut g, rng),
        };
        if done && let Some(g) = finish(g) {
            return Some(g);
        }
    }
    None
}

/// DCE and the verifier.
fn finish(mut g: Function) -> Option<Function> {
    dce(&mut g);
    ncp_ir::verify::verify(&g).ok()?;
    Some(g)
}

fn body(f: &Function) -> Vec<Inst> {
    f.blocks[f.entry()].insts.clone()
}

/// A draw from N(0, 1) (Box-Muller).
fn normal(rng: &mut impl Rng) -> f64 {
    let u: f64 = 1.0 - rng.random::<f64>();
    let v: f64 = rng.random();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

fn pick<T: Copy>(xs: &[T], rng: &mut impl Rng) -> Option<T> {
    (!xs.is_empty()).then(|| xs[rng.random_range(0..xs.len())])
}

fn perturb_const(f: &mut Function, rng: &mut impl Rng) -> bool {
    let consts: Vec<Inst> = body(f)
        .into_iter()
        .filter(|i| matches!(f.insts[*i].imm, Imm::Const(ConstVal::F32(_))))
        .collect();
    let Some(i) = pick(&consts, rng) else {
        return false;
    };
    let Imm::Const(ConstVal::F32(c)) = f.insts[i].imm else {
        return false;
    };
    let mut v = if rng.random_bool(0.5) {
        c * (0.5 * normal(rng) as f32).exp()
    } else {
        c + 0.5 * normal(rng) as f32
    };
    if rng.random_bool(0.1) {
        v = -v;
    }
    if !v.is_finite() || v == c {
        return false;
    }
    f.insts[i].imm = Imm::Const(ConstVal::F32(v));
    true
}

fn swap_op(f: &mut Function, rng: &mut impl Rng) -> bool {
    let cands: Vec<Inst> = body(f)
        .into_iter()
        .filter(|i| {
            let op = f.insts[*i].op;
            UNARY.contains(&op) || BINARY.contains(&op)
        })
        .collect();
    let Some(i) = pick(&cands, rng) else {
        return false;
    };
    let d = f.insts[i].clone();
    let pool = if UNARY.contains(&d.op) { UNARY } else { BINARY };
    let Some(op) = pick(pool, rng) else {
        return false;
    };
    if op == d.op {
        return false;
    }
    let tys: Vec<&Type> = d.args.iter().map(|a| f.ty(*a)).collect();
    match ncp_ir::op::infer_type(op, &Imm::None, &tys) {
        Ok(t) if &t == f.ty(d.result) => {
            f.insts[i].op = op;
            f.insts[i].imm = Imm::None;
            true
        }
        _ => false,
    }
}

/// Move the instruction defining `v` (the block's last) to position `at`.
fn place_before(f: &mut Function, v: Value, at: usize) {
    let entry = f.entry();
    let insts = &mut f.blocks[entry].insts;
    let Some(last) = insts.pop() else { return };
    debug_assert_eq!(f.values[v].def, ncp_ir::ValueDef::Inst(last));
    insts.insert(at.min(insts.len()), last);
}

fn is_f32(f: &Function, v: Value) -> bool {
    f.ty(v).dtype == DType::F32
}

fn insert(f: &mut Function, rng: &mut impl Rng) -> bool {
    let order = body(f);
    let mut sites: Vec<(usize, usize)> = Vec::new();
    for (p, i) in order.iter().enumerate() {
        for (k, a) in f.insts[*i].args.iter().enumerate() {
            if is_f32(f, *a) {
                sites.push((p, k));
            }
        }
    }
    let Some((p, k)) = pick(&sites, rng) else {
        return false;
    };
    let entry = f.entry();
    let i = order[p];
    let a = f.insts[i].args[k];
    let ty = f.ty(a).clone();
    let new = if rng.random_bool(0.4) {
        let Some(op) = pick(UNARY, rng) else {
            return false;
        };
        match f.ins(entry, op, Imm::None, &[a]) {
            Ok(v) => {
                place_before(f, v, p);
                v
            }
            Err(_) => return false,
        }
    } else {
        let Some(op) = pick(BINARY, rng) else {
            return false;
        };
        // The other operand: a new constant, or an f32 value defined earlier.
        let earlier: Vec<Value> = f.blocks[entry].params.to_vec();
        let earlier: Vec<Value> = earlier
            .into_iter()
            .chain(order[..p].iter().map(|j| f.insts[*j].result))
            .filter(|v| is_f32(f, *v) && (f.ty(*v) == &ty || f.ty(*v).is_scalar()))
            .collect();
        let mut at = p;
        let other = if earlier.is_empty() || rng.random_bool(0.6) {
            let c = if rng.random_bool(0.5) {
                pick(LEAVES, rng).unwrap_or(1.0)
            } else {
                normal(rng) as f32
            };
            let Ok(cv) = f.ins(entry, Opcode::Const, Imm::Const(ConstVal::F32(c)), &[]) else {
                return false;
            };
            place_before(f, cv, at);
            at += 1;
            cv
        } else {
            pick(&earlier, rng).unwrap_or(a)
        };
        let args = if rng.random_bool(0.5) {
            [a, other]
        } else {
            [other, a]
        };
        match f.ins(entry, op, Imm::None, &args) {
            Ok(v) => {
                place_before(f, v, at);
                v
            }
            Err(_) => return false,
        }
    };
    if f.ty(new) != &ty {
        return false;
    }
    f.insts[i].args[k] = new;
    true
}

fn bypass(f: &mut Function, rng: &mut impl Rng) -> bool {
    let cands: Vec<(Value, Value)> = body(f)
        .into_iter()
        .flat_map(|i| {
            let d = &f.insts[i];
            d.args
                .iter()
                .filter(|a| f.ty(**a) == f.ty(d.result) && **a != d.result)
                .map(|a| (d.result, *a))
                .collect::<Vec<_>>()
        })
        .collect();
    let Some((r, a)) = pick(&cands, rng) else {
        return false;
    };
    let map = HashMap::from([(r, a)]);
    f.substitute(&map);
    true
}

/// A value of `b` (with everything it depends on) in place of a value of the same type in
/// `a`.
pub fn crossover(a: &Function, b: &Function, rng: &mut impl Rng) -> Option<Function> {
    let (ea, eb) = (a.entry(), b.entry());
    let pa = &a.blocks[ea].params;
    let pb = &b.blocks[eb].params;
    if pa.len() != pb.len() || pa.iter().zip(pb).any(|(x, y)| a.ty(*x) != b.ty(*y)) {
        return None;
    }
    for _ in 0..8 {
        let donors: Vec<Inst> = body(b)
            .into_iter()
            .filter(|i| b.insts[*i].op != Opcode::Const && is_f32(b, b.insts[*i].result))
            .collect();
        let vb = b.insts[pick(&donors, rng)?].result;
        let targets: Vec<Value> = body(a)
            .into_iter()
            .map(|i| a.insts[i].result)
            .filter(|v| a.ty(*v) == b.ty(vb))
            .collect();
        let Some(va) = pick(&targets, rng) else {
            continue;
        };
        let mut g = a.clone();
        let copy = copy_cone(&mut g, b, vb);
        let map = HashMap::from([(va, copy)]);
        g.substitute(&map);
        if let Some(g) = finish(g) {
            return Some(g);
        }
    }
    None
}

/// Copy `v` of `b` and the instructions it depends on to the start of `g`'s entry block
/// (entry parameters map by position). Returns the copy of `v`.
fn copy_cone(g: &mut Function, b: &Function, v: Value) -> Value {
    let mut need: HashSet<Inst> = HashSet::new();
    let mut stack = vec![v];
    while let Some(x) = stack.pop() {
        if let ncp_ir::ValueDef::Inst(i) = b.values[x].def
            && need.insert(i)
        {
            stack.extend(b.insts[i].args.iter().copied());
        }
    }
    let mut map: HashMap<Value, Value> = b.blocks[b.entry()]
        .params
        .iter()
        .copied()
        .zip(g.blocks[g.entry()].params.iter().copied())
        .collect();
    let entry = g.entry();
    let mut at = 0;
    for i in body(b) {
        if !need.contains(&i) {
            continue;
        }
        let d = b.insts[i].clone();
        let args: Vec<Value> = d.args.iter().map(|x| map[x]).collect();
        let nv = g.push_inst(entry, d.op, d.imm.clone(), args, b.ty(d.result).clone());
        place_before(g, nv, at);
        at += 1;
        map.insert(d.result, nv);
    }
    map[&v]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evolve::genome::GenomeFormat;
    use rand::SeedableRng;

    /// The genome written back computes what the IR computes: compiled again, it has the
    /// same canonical hash (for the known losses and for mutants of them).
    #[test]
    fn written_back_genomes_compute_their_ir() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let hash = |f: &Function| ncp_ir::passes::canonical_hash(f);
        let mut checked = 0;
        for format in [GenomeFormat::Amm, GenomeFormat::Daml] {
            for name in Genome::known_names(format) {
                let g = Genome::known(format, name).unwrap();
                let f = to_ir(&g).unwrap();
                let back = from_ir(&f, &g).unwrap();
                assert_eq!(hash(&to_ir(&back).unwrap()), hash(&f), "{format:?} {name}");
                for _ in 0..10 {
                    if let Some(m) = mutate(&f, &mut rng)
                        && let Some(mg) = from_ir(&m, &g)
                    {
                        let mut m = m;
                        optimize(&mut m, OptOptions::default()).unwrap();
                        assert_eq!(
                            hash(&to_ir(&mg).unwrap()),
                            hash(&m),
                            "{format:?} {name}: {}",
                            mg.to_text()
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 40, "{checked} mutants checked");
    }

    #[test]
    fn mutants_are_valid_and_differ() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for format in [GenomeFormat::Amm, GenomeFormat::Daml] {
            let seeds: Vec<Genome> = Genome::known_names(format)
                .iter()
                .filter_map(|n| Genome::known(format, n))
                .collect();
            let (mut made, mut tried) = (0, 0);
            for g in &seeds {
                for _ in 0..20 {
                    tried += 1;
                    if let Some(m) = mutant(g, 10_000, &mut rng) {
                        made += 1;
                        assert_ne!(&m, g);
                        // It reads back and compiles.
                        let back = Genome::from_text(format, &m.to_text()).unwrap();
                        compile(&back.to_text(), &CompileOptions::default()).unwrap();
                    }
                }
            }
            assert!(made * 2 > tried, "{format:?}: {made} of {tried} mutants");
        }
    }

    #[test]
    fn inserted_constants_are_leaves_to_tune() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mse = to_ir(&Genome::seed_mse(GenomeFormat::Amm)).unwrap();
        let count = |f: &Function| {
            body(f)
                .iter()
                .filter(|i| matches!(f.insts[**i].imm, Imm::Const(ConstVal::F32(_))))
                .count()
        };
        let mut more = 0;
        for _ in 0..50 {
            let mut g = mse.clone();
            if insert(&mut g, &mut rng)
                && let Some(g) = finish(g)
                && count(&g) > count(&mse)
            {
                more += 1;
            }
        }
        assert!(more > 5, "{more} of 50 insertions added a constant");
    }

    #[test]
    fn crossover_brings_in_the_other_parent() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mse = to_ir(&Genome::seed_mse(GenomeFormat::Amm)).unwrap();
        let ce = to_ir(&Genome::known(GenomeFormat::Amm, "cross-entropy").unwrap()).unwrap();
        let mut with_softmax = 0;
        for _ in 0..30 {
            if let Some(c) = crossover(&mse, &ce, &mut rng)
                && body(&c).iter().any(|i| c.insts[*i].op == Opcode::Softmax)
            {
                with_softmax += 1;
            }
        }
        assert!(with_softmax > 0);
    }
}
