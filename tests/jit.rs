//! Differential tests: the Cranelift JIT against the reference interpreter, on the whole
//! corpus and on random genomes, with ordinary, huge, tiny and non-finite inputs. The bound
//! is bit equality (0 ULP) for losses and gradients: the JIT evaluates every op with the
//! interpreter's arithmetic (transcendentals in f64 rounded once, sums in f64 in the same
//! order with f32 overflow). A looser 1e-5 check is reported first to make failures legible.

mod common;

use ncp_ir::passes::{OptOptions, optimize};
use ncp_ir::tensor::Tensor;
use ncp_ir::{DimModel, Function};
use ncpc::formats::daml::{self, PSet};
use ncpc::formats::{CompileOptions, Mode, amm, compile};
use ncpc::jit::Jit;
use ncpc::loss::{evaluate_function, evaluate_function_jit};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn inputs(rng: &mut ChaCha8Rng, b: usize, c: usize, kind: usize) -> (Tensor, Tensor) {
    let yp: Vec<Vec<f32>> = (0..b)
        .map(|_| {
            (0..c)
                .map(|_| match kind {
                    0 => rng.random_range(-3.0f32..3.0),
                    1 => rng.random_range(-1e4f32..1e4),
                    2 => rng.random_range(-1e-6f32..1e-6),
                    _ => [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0, 1.0]
                        [rng.random_range(0..6)],
                })
                .collect()
        })
        .collect();
    let yt: Vec<Vec<f32>> = (0..b)
        .map(|_| {
            let k = rng.random_range(0..c);
            (0..c).map(|j| (j == k) as u8 as f32).collect()
        })
        .collect();
    (
        Tensor::from_rows(&yp).unwrap(),
        Tensor::from_rows(&yt).unwrap(),
    )
}

#[derive(Default)]
struct Tally {
    compared: usize,
    jitted: usize,
    bit_equal: usize,
    failures: Vec<String>,
}

fn compare(jit: &mut Jit, f: &Function, yp: &Tensor, yt: &Tensor, what: &str, t: &mut Tally) {
    let want = match evaluate_function(f, yp, yt, true) {
        Ok(v) => v,
        Err(_) => return,
    };
    t.compared += 1;
    let got = match evaluate_function_jit(jit, f, yp, yt) {
        Ok(Some(v)) => v,
        Ok(None) => return,
        Err(e) => {
            t.failures.push(format!("{what}: JIT error {e}"));
            return;
        }
    };
    t.jitted += 1;
    if want.fault.is_some() {
        t.failures
            .push(format!("{what}: the interpreter faults but the JIT ran"));
        return;
    }
    let mut equal =
        got.loss.to_bits() == want.loss.to_bits() || (got.loss.is_nan() && want.loss.is_nan());
    if !common::close(got.loss, want.loss, 1e-5, 1e-6) {
        t.failures.push(format!(
            "{what}: loss {} (jit) vs {} (interp)\n{}",
            got.loss,
            want.loss,
            ncp_ir::text::print_function(f)
        ));
        return;
    }
    match (&got.grad, &want.grad) {
        (None, None) => {}
        (Some(a), Some(b)) => {
            for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
                equal &= x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan());
                if !common::close(*x, *y, 1e-5, 1e-6) {
                    t.failures.push(format!(
                        "{what}: gradient {x} (jit) vs {y} (interp)\n{}",
                        ncp_ir::text::print_function(f)
                    ));
                    return;
                }
            }
        }
        _ => {
            t.failures
                .push(format!("{what}: gradient presence differs"));
            return;
        }
    }
    if equal {
        t.bit_equal += 1;
    }
}

fn optimized(mut f: Function) -> Function {
    optimize(&mut f, OptOptions::default()).unwrap();
    f
}

#[test]
fn jit_matches_interpreter_on_the_corpus() {
    let mut jit = Jit::new().unwrap();
    let mut t = Tally::default();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for dir in ["tests/corpus/amm", "tests/corpus/daml", "tests/corpus/haz"] {
        for path in common::json_files(dir) {
            let text = std::fs::read_to_string(&path).unwrap();
            for (b, c) in [(4usize, 3usize), (32, 10), (7, 2)] {
                let opts = CompileOptions {
                    dims: DimModel::for_inputs(b, c),
                    ..Default::default()
                };
                let Ok(cf) = compile(&text, &opts) else {
                    continue;
                };
                let f = optimized(cf.func);
                for kind in 0..4 {
                    let (yp, yt) = inputs(&mut rng, b, c, kind);
                    compare(
                        &mut jit,
                        &f,
                        &yp,
                        &yt,
                        &format!("{} {b}x{c} kind {kind}", path.display()),
                        &mut t,
                    );
                }
            }
        }
    }
    eprintln!(
        "corpus: {} comparisons, {} through the JIT, {} bit-equal, {} kernels compiled",
        t.compared, t.jitted, t.bit_equal, jit.compiled
    );
    assert!(
        t.failures.is_empty(),
        "{} failures:\n{}",
        t.failures.len(),
        t.failures
            .iter()
            .take(4)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(
        t.bit_equal, t.jitted,
        "the scalar JIT computes exactly what the interpreter computes"
    );
    assert!(
        t.jitted * 10 > t.compared * 7,
        "the JIT should take most of the corpus"
    );
}

#[test]
fn jit_matches_interpreter_on_random_genomes() {
    let mut jit = Jit::new().unwrap();
    let mut t = Tally::default();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for i in 0..600 {
        let f = if i % 2 == 0 {
            let len = rng.random_range(1..25);
            let p = amm::random::random_program(&mut rng, len, i % 4 == 0);
            match amm::lower(&p, "g", Mode::Compat, DimModel::Symbolic) {
                Ok((f, _)) => f,
                Err(_) => continue,
            }
        } else {
            let e = daml::random_expr(
                &mut rng,
                1,
                6,
                if i % 4 == 1 {
                    PSet::Miner
                } else {
                    PSet::Validator
                },
            );
            daml::lower(&e, "g", DimModel::Symbolic).unwrap()
        };
        let f = optimized(f);
        let (b, c) = [(4, 3), (32, 10), (5, 7)][i % 3];
        let (yp, yt) = inputs(&mut rng, b, c, i % 4);
        compare(&mut jit, &f, &yp, &yt, &format!("random #{i}"), &mut t);
    }
    eprintln!(
        "random: {} comparisons, {} through the JIT, {} bit-equal, {} kernels compiled",
        t.compared, t.jitted, t.bit_equal, jit.compiled
    );
    assert!(
        t.failures.is_empty(),
        "{} failures, first:\n{}",
        t.failures.len(),
        t.failures[0]
    );
    assert_eq!(
        t.bit_equal, t.jitted,
        "the scalar JIT computes exactly what the interpreter computes"
    );
}

#[test]
fn genomes_differing_only_in_constants_share_a_kernel() {
    let mut jit = Jit::new().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (yp, yt) = inputs(&mut rng, 4, 3, 0);
    for k in [0.25f32, 0.5, 2.0, 3.0] {
        let text = format!("safe_mul(safe_sub(x, y), tensor({k}))");
        let f = optimized(compile(&text, &CompileOptions::default()).unwrap().func);
        let want = evaluate_function(&f, &yp, &yt, true).unwrap();
        let got = evaluate_function_jit(&mut jit, &f, &yp, &yt)
            .unwrap()
            .unwrap();
        assert!(
            common::close(got.loss, want.loss, 1e-6, 0.0),
            "{k}: {} vs {}",
            got.loss,
            want.loss
        );
    }
    assert_eq!(jit.compiled, 1, "one kernel for four constants");
}

/// Regression (found by the jit_vs_interp fuzz target): max/min of a bool tensor is a bool
/// scalar, which must be a CLIF bool before it feeds a `select`; and kernels that share a cache
/// key must number their constants the same way.
#[test]
fn regressions_found_by_fuzzing() {
    let src = "\
function r(f32[B,C], f32[B,C]) -> f32 {
block0(v0: f32[B,C], v1: f32[B,C]):
    v2 = gt v0, v1 : bool[B,C]
    v3 = reduce_max<all> v2 : bool
    v4 = const<2.5> : f32
    v5 = mean<all> v0 : f32
    v6 = select v3, v5, v4 : f32
    return v6
}
";
    let f = ncp_ir::text::parse_function(src).unwrap();
    let mut jit = Jit::new().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for kind in 0..4 {
        let (yp, yt) = inputs(&mut rng, 4, 3, kind);
        let want = evaluate_function(&f, &yp, &yt, true).unwrap();
        let got = evaluate_function_jit(&mut jit, &f, &yp, &yt)
            .unwrap()
            .unwrap();
        assert!(
            got.loss.to_bits() == want.loss.to_bits() || (got.loss.is_nan() && want.loss.is_nan())
        );
    }
    // Same structure, constants written in another order: one kernel, right constants.
    let a = optimized(
        compile(
            "safe_add(safe_mul(x, tensor(0.25)), safe_mul(y, tensor(4.0)))",
            &CompileOptions::default(),
        )
        .unwrap()
        .func,
    );
    let b = optimized(
        compile(
            "safe_add(safe_mul(y, tensor(3.0)), safe_mul(x, tensor(0.5)))",
            &CompileOptions::default(),
        )
        .unwrap()
        .func,
    );
    let (yp, yt) = inputs(&mut rng, 4, 3, 0);
    for f in [&a, &b, &a] {
        let want = evaluate_function(f, &yp, &yt, true).unwrap();
        let got = evaluate_function_jit(&mut jit, f, &yp, &yt)
            .unwrap()
            .unwrap();
        assert_eq!(got.loss.to_bits(), want.loss.to_bits());
    }
}
