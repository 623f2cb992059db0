//! Genetic operators on HAZ (AutoML-Zero-style) instruction arrays. Each mutation makes one
//! change, as AutoML-Zero's mutator does, of a kind drawn uniformly:
//!
//! - insert a random instruction at a random place, or remove one (never below one
//!   instruction, never above the size limit);
//! - randomize one instruction (op, addresses and constants);
//! - randomize the whole program, keeping its length;
//! - alter one argument (an input or the output address) of one instruction;
//! - perturb a constant: flip its sign (probability 0.1) or else multiply it by a factor in
//!   [0.5, 2] drawn log-uniformly (AutoML-Zero flips or scales log-normally; the range is
//!   ncpc's, so constants move by at most a factor of two per mutation).
//!
//! HAZ's own mutator differs in ways these fix: its "add or remove" replaces an instruction,
//! and its constant mutation changes nothing when it picks the first constant array. The
//! memory layout (slot counts and shapes) never changes, so members grown from one seed
//! share it, and crossover (single-point over the instruction arrays) applies to parents
//! with the same layout. Only deterministic ops are drawn. Every child is a valid HAZ gene.

use crate::formats::haz::random::{random_gene_in, random_op};
use crate::formats::haz::{AddrRef, ConstRef, Gene, Memory, OpRef};
use rand::Rng;

/// Default size limit for HAZ programs (instructions).
pub const MAX_LEN: usize = 32;

/// MSE as the reference corpus writes it: `s2 = y_pred - y_true; s0 = s2 * s2` (slot 0 is
/// the output; the protocol averages it).
pub fn seed_mse() -> Gene {
    Gene {
        length: 2,
        meta_level: 0,
        ops: vec![OpRef::Id(2), OpRef::Id(3)],
        in1: vec![AddrRef::Index(0), AddrRef::Index(2)],
        in2: vec![AddrRef::Index(1), AddrRef::Index(2)],
        out: vec![AddrRef::Index(2), AddrRef::Index(0)],
        k1: vec![ConstRef::F32(0.0); 2],
        k2: vec![ConstRef::F32(0.0); 2],
        memory: Memory {
            num_scalars: 5,
            num_vectors: 5,
            num_tensors: 5,
            scalar_shape: vec![1],
            vector_shape: vec![3],
            tensor_shape: vec![4, 3],
        },
    }
}

/// One instruction: op, input 1, input 2, output, constant 1, constant 2.
type Instr = (OpRef, AddrRef, AddrRef, AddrRef, ConstRef, ConstRef);

/// A random address in the gene's memory.
fn address(rng: &mut impl Rng, m: &Memory) -> AddrRef {
    AddrRef::Index(rng.random_range(0..m.len().max(1)) as i64)
}

/// One random instruction over `m`.
/// Inputs lean towards `y_pred` (slot 0) and `y_true` (slot 1), the output towards slot 0
/// and the scratch scalars, so that random instructions often take part in the loss.
fn instruction(rng: &mut impl Rng, m: &Memory) -> Instr {
    let in1 = if rng.random_bool(0.4) {
        AddrRef::Index(0)
    } else {
        address(rng, m)
    };
    let in2 = if rng.random_bool(0.3) {
        AddrRef::Index(1)
    } else {
        address(rng, m)
    };
    let out = if rng.random_bool(0.4) {
        AddrRef::Index(0)
    } else if m.num_scalars > 2 && rng.random_bool(0.5) {
        AddrRef::Index(rng.random_range(2..m.num_scalars) as i64)
    } else {
        address(rng, m)
    };
    let c = rng.random_range(0.0f32..1.0);
    (
        OpRef::Id(random_op(rng)),
        in1,
        in2,
        out,
        ConstRef::F32(rng.random_range(-1.0f32..1.0)),
        ConstRef::F32(if rng.random_bool(0.1) { -c } else { c }),
    )
}

/// Instruction `i` of `g` (`i` below its length, arrays of one length).
fn instruction_at(g: &Gene, i: usize) -> Instr {
    (
        g.ops[i].clone(),
        g.in1[i].clone(),
        g.in2[i].clone(),
        g.out[i].clone(),
        g.k1[i].clone(),
        g.k2[i].clone(),
    )
}

fn set(g: &mut Gene, i: usize, ins: Instr) {
    g.ops[i] = ins.0;
    g.in1[i] = ins.1;
    g.in2[i] = ins.2;
    g.out[i] = ins.3;
    g.k1[i] = ins.4;
    g.k2[i] = ins.5;
}

fn insert(g: &mut Gene, i: usize, ins: Instr) {
    g.ops.insert(i, ins.0);
    g.in1.insert(i, ins.1);
    g.in2.insert(i, ins.2);
    g.out.insert(i, ins.3);
    g.k1.insert(i, ins.4);
    g.k2.insert(i, ins.5);
}

/// Run `$e` with `$v` bound to each of a gene's six per-instruction arrays in turn.
macro_rules! each_array {
    ($g:expr, $v:ident => $e:expr) => {{
        {
            let $v = &mut $g.ops;
            $e;
        }
        {
            let $v = &mut $g.in1;
            $e;
        }
        {
            let $v = &mut $g.in2;
            $e;
        }
        {
            let $v = &mut $g.out;
            $e;
        }
        {
            let $v = &mut $g.k1;
            $e;
        }
        {
            let $v = &mut $g.k2;
            $e;
        }
    }};
}

fn remove(g: &mut Gene, i: usize) {
    each_array!(g, v => v.remove(i));
}

/// Truncate every array to the shortest (a parsed gene may have ragged arrays: the
/// interpreter stops at the shortest too) and set `length`.
fn normalize(g: &mut Gene) {
    let n = [
        g.ops.len(),
        g.in1.len(),
        g.in2.len(),
        g.out.len(),
        g.k1.len(),
        g.k2.len(),
    ]
    .into_iter()
    .min()
    .unwrap_or(0);
    each_array!(g, v => v.truncate(n));
    g.length = n as i64;
}

/// A gene read from a file, made ready for the operators (arrays of one length).
pub fn from_gene(mut g: Gene) -> Gene {
    normalize(&mut g);
    g
}

/// Random genes of 2 to 8 instructions over one memory layout drawn for them all: slot
/// counts as [`random_memory`](crate::formats::haz::random::random_memory) draws them, zero
/// slots of shapes `[1]` and `[1, 1]`, which broadcast with inputs of any size, so that
/// reading an unwritten slot never faults.
pub fn random_population(n: usize, rng: &mut impl Rng) -> Vec<Gene> {
    let mut memory = crate::formats::haz::random::random_memory(rng);
    memory.scalar_shape = vec![1];
    memory.vector_shape = vec![1];
    memory.tensor_shape = vec![1, 1];
    (0..n)
        .map(|_| {
            let len = rng.random_range(2..=8);
            random_gene_in(rng, len, memory.clone())
        })
        .collect()
}

/// One mutation (see the module's documentation), within `max_len` instructions.
pub fn mutate(g: &Gene, max_len: usize, rng: &mut impl Rng) -> Gene {
    let mut m = g.clone();
    normalize(&mut m);
    let n = m.ops.len();
    if n == 0 {
        let ins = instruction(rng, &m.memory);
        insert(&mut m, 0, ins);
        normalize(&mut m);
        return m;
    }
    match rng.random_range(0..5) {
        0 => {
            let grow = n < max_len.max(1) && (n == 1 || rng.random_bool(0.5));
            if grow {
                let ins = instruction(rng, &m.memory);
                insert(&mut m, rng.random_range(0..=n), ins);
            } else if n > 1 {
                remove(&mut m, rng.random_range(0..n));
            }
        }
        1 => {
            let ins = instruction(rng, &m.memory);
            set(&mut m, rng.random_range(0..n), ins);
        }
        2 => {
            for i in 0..n {
                let ins = instruction(rng, &m.memory);
                set(&mut m, i, ins);
            }
        }
        3 => {
            let i = rng.random_range(0..n);
            let a = address(rng, &m.memory);
            match rng.random_range(0..3) {
                0 => m.in1[i] = a,
                1 => m.in2[i] = a,
                _ => m.out[i] = a,
            }
        }
        _ => {
            let i = rng.random_range(0..n);
            let k = if rng.random_bool(0.5) {
                &mut m.k1[i]
            } else {
                &mut m.k2[i]
            };
            *k = match k {
                // A sign flip, or a factor in [0.5, 2] drawn log-uniformly (halving and
                // doubling equally likely, so repeated mutations do not drift in size).
                ConstRef::F32(v) if rng.random_bool(0.1) => ConstRef::F32(-*v),
                ConstRef::F32(v) => {
                    let ln2 = std::f32::consts::LN_2;
                    ConstRef::F32(*v * rng.random_range(-ln2..=ln2).exp())
                }
                // A constant torch would refuse: replace it with a fresh one.
                _ => ConstRef::F32(rng.random_range(-1.0f32..1.0)),
            };
        }
    }
    normalize(&mut m);
    m
}

/// Single-point crossover: `a`'s instructions before a cut, then `b`'s after another, for
/// parents with the same memory layout; otherwise `a` unchanged.
pub fn crossover(a: &Gene, b: &Gene, rng: &mut impl Rng) -> Gene {
    let (mut a, mut b) = (a.clone(), b.clone());
    normalize(&mut a);
    normalize(&mut b);
    if a.memory != b.memory || a.ops.is_empty() || b.ops.is_empty() {
        return a;
    }
    let pa = rng.random_range(0..=a.ops.len());
    let pb = rng.random_range(0..=b.ops.len());
    let mut c = a.clone();
    each_array!(c, v => v.truncate(pa));
    for (k, i) in (pb..b.ops.len()).enumerate() {
        insert(&mut c, pa + k, instruction_at(&b, i));
    }
    if c.ops.is_empty() {
        return a;
    }
    normalize(&mut c);
    c
}

/// Trim random instructions until at most `max_len` remain (at least one stays).
pub fn trim(mut g: Gene, max_len: usize, rng: &mut impl Rng) -> Gene {
    normalize(&mut g);
    while g.ops.len() > max_len.max(1) {
        let i = rng.random_range(0..g.ops.len());
        remove(&mut g, i);
    }
    normalize(&mut g);
    g
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::haz::parse_gene;
    use crate::formats::haz::random::to_json;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn children_read_back_as_themselves_and_keep_the_layout() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut pop = random_population(10, &mut rng);
        let layout = pop[0].memory.clone();
        for round in 0..300 {
            let i = rng.random_range(0..pop.len());
            let j = rng.random_range(0..pop.len());
            let child = if round % 3 == 0 {
                trim(crossover(&pop[i], &pop[j], &mut rng), 12, &mut rng)
            } else {
                mutate(&pop[i], 12, &mut rng)
            };
            assert!((1..=12).contains(&child.ops.len()));
            assert_eq!(child.length as usize, child.ops.len());
            assert_eq!(child.memory, layout);
            let back = parse_gene(&to_json(&child)).unwrap();
            assert_eq!(back, child);
            pop[i] = child;
        }
    }

    #[test]
    fn constant_perturbation_scales_within_bounds() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let mut g = seed_mse();
        g.k1 = vec![ConstRef::F32(1.0); 2];
        g.k2 = vec![ConstRef::F32(1.0); 2];
        let mut seen_flip = false;
        for _ in 0..400 {
            let c = mutate(&g, 8, &mut rng);
            if c.ops == g.ops && c.in1 == g.in1 && c.in2 == g.in2 && c.out == g.out {
                for k in c.k1.iter().chain(&c.k2) {
                    let ConstRef::F32(v) = k else { panic!() };
                    assert!((0.5..=2.0).contains(&v.abs()), "{v}");
                    seen_flip |= *v < 0.0;
                }
            }
        }
        assert!(seen_flip, "the sign flip never happened in 400 mutations");
    }

    #[test]
    fn the_seed_reads_as_the_corpus_mse() {
        let corpus = parse_gene(include_str!("../../tests/corpus/haz/mse.json")).unwrap();
        let seed = seed_mse();
        assert_eq!(seed.ops, corpus.ops);
        assert_eq!(seed.in1, corpus.in1);
        assert_eq!(seed.in2, corpus.in2);
        assert_eq!(seed.out, corpus.out);
        assert_eq!(seed.memory.num_scalars, corpus.memory.num_scalars);
    }
}
