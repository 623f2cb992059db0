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
use ncpc::jit::{Jit, Tier};
use ncpc::loss::{LossValue, evaluate_function, evaluate_function_jit};
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
    let yt = common::one_hot(rng, b, c);
    common::tensors(&yp, &yt)
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

/// The kernels to check: each tier with exp/log/softmax per element (calls in the quick
/// tier, f64x2 lanes in the hot one), and each as it runs on this CPU (calls on whole
/// buffers in wider lanes, where the CPU has them).
fn variants() -> Vec<Jit> {
    let mut out = Vec::new();
    let wide = ncp_ir::vmath::wide();
    for (tier, wide) in [
        (Tier::Quick, false),
        (Tier::Hot, false),
        (Tier::Quick, wide),
        (Tier::Hot, wide),
    ] {
        let mut jit = Jit::new().unwrap();
        jit.tier = tier;
        jit.wide_calls = wide;
        out.push(jit);
    }
    out
}

#[test]
fn jit_matches_interpreter_on_the_corpus() {
    for jit in variants() {
        corpus_in_tier(jit);
    }
}

/// Every kernel variant (scalar with calls; lanes with inlined math; calls on whole
/// buffers) is bit-equal to the interpreter.
fn corpus_in_tier(mut jit: Jit) {
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
        "corpus ({:?}, wide calls {}): {} comparisons, {} through the JIT, {} bit-equal, {} kernels compiled",
        jit.tier, jit.wide_calls, t.compared, t.jitted, t.bit_equal, jit.compiled
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
        "the JIT computes exactly what the interpreter computes"
    );
    assert!(
        t.jitted * 10 > t.compared * 7,
        "the JIT should take most of the corpus"
    );
}

#[test]
fn jit_matches_interpreter_on_random_genomes() {
    for jit in variants() {
        random_in_tier(jit);
    }
}

fn random_in_tier(mut jit: Jit) {
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
        "random ({:?}, wide calls {}): {} comparisons, {} through the JIT, {} bit-equal, {} kernels compiled",
        jit.tier, jit.wide_calls, t.compared, t.jitted, t.bit_equal, jit.compiled
    );
    assert!(
        t.failures.is_empty(),
        "{} failures, first:\n{}",
        t.failures.len(),
        t.failures[0]
    );
    assert_eq!(
        t.bit_equal, t.jitted,
        "the JIT computes exactly what the interpreter computes"
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
    // A sum of negative zeros is +0 in both (Rust's f64 `Sum` starts from -0.0).
    let negzero = ncp_ir::text::parse_function(
        "function z(f32[B,C], f32[B,C]) -> f32 {\nblock0(v0: f32[B,C], v1: f32[B,C]):\n    v2 = zeros_like v0 : f32[B,C]\n    v3 = neg v2 : f32[B,C]\n    v4 = sum<all> v3 : f32\n    return v4\n}\n",
    )
    .unwrap();
    let (yp, yt) = inputs(&mut rng, 4, 3, 0);
    let want = evaluate_function(&negzero, &yp, &yt, true).unwrap();
    let got = evaluate_function_jit(&mut jit, &negzero, &yp, &yt)
        .unwrap()
        .unwrap();
    assert_eq!((want.loss.to_bits(), got.loss.to_bits()), (0, 0));
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

fn ulps(a: f32, b: f32) -> u64 {
    if a.is_nan() && b.is_nan() || a == b {
        return 0;
    }
    if a.is_nan() || b.is_nan() || a.is_infinite() || b.is_infinite() {
        return u64::MAX;
    }
    let key = |x: f32| {
        let i = x.to_bits() as i32;
        if i < 0 {
            i64::from(i32::MIN) - i64::from(i)
        } else {
            i64::from(i)
        }
    };
    key(a).abs_diff(key(b))
}

/// The error of the fast-math exp and log against the correctly rounded results, over a sweep
/// of f32 inputs (every 61st bit pattern of the relevant ranges) and the special values. The
/// bound asserted here is the one docs/jit.md states.
#[test]
fn fast_math_error_in_ulp() {
    use ncp_ir::Opcode;
    use ncpc::jit::MathMode;
    let mut fast = Jit::with_math(MathMode::Fast).unwrap();
    let mut exact = Jit::new().unwrap();
    let sweep = |lo: f32, hi: f32| -> Vec<f32> {
        let (a, b) = (lo.to_bits(), hi.to_bits());
        let mut v: Vec<f32> = Vec::new();
        // Negative and positive halves of the range.
        for bits in (0..=a.max(b)).step_by(61) {
            let x = f32::from_bits(bits);
            if x.is_finite() && x <= hi.abs().max(lo.abs()) {
                if x <= hi && x >= lo {
                    v.push(x);
                }
                if -x >= lo && -x <= hi {
                    v.push(-x);
                }
            }
        }
        v.extend([
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MIN_POSITIVE,
            1e-45,
        ]);
        v
    };
    let mut report = Vec::new();
    for (op, lo, hi, bound) in [
        (Opcode::Exp, -104.0f32, 89.0f32, 2u64),
        (Opcode::Log, 0.0, f32::MAX, 2),
    ] {
        let xs = sweep(lo, hi);
        let got = fast.map_unary(op, &xs).unwrap();
        let want = exact.map_unary(op, &xs).unwrap();
        let (mut worst, mut at) = (0u64, 0f32);
        for ((x, g), w) in xs.iter().zip(&got).zip(&want) {
            // Results that underflow to subnormals are compared in absolute terms.
            let u = if w.abs() < f32::MIN_POSITIVE && g.abs() < f32::MIN_POSITIVE {
                0
            } else {
                ulps(*g, *w)
            };
            if u > worst {
                worst = u;
                at = *x;
            }
        }
        report.push(format!(
            "{op:?}: {} inputs, max error {worst} ulp (at {at:e})",
            xs.len()
        ));
        assert!(
            worst <= bound,
            "{op:?}: {worst} ulp at {at:e} exceeds the documented {bound}"
        );
    }
    eprintln!("{}", report.join("\n"));
}

/// Fast math (polynomial exp/log, f32x4 loops with per-lane partial sums) against the
/// interpreter on the corpus at three shapes (ordinary inputs): within 1e-4 relative, or 1e-5
/// absolute, on losses and gradients.
#[test]
fn fast_math_stays_close_to_the_interpreter() {
    use ncpc::jit::MathMode;
    let mut jit = Jit::with_math(MathMode::Fast).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let (mut n, mut worst) = (0, 0f32);
    let mut failures = Vec::new();
    for dir in ["tests/corpus/amm", "tests/corpus/daml", "tests/corpus/haz"] {
        for path in common::json_files(dir) {
            let text = std::fs::read_to_string(&path).unwrap();
            for (b, c) in [(4usize, 3usize), (32, 10), (6, 9)] {
                let opts = CompileOptions {
                    dims: DimModel::for_inputs(b, c),
                    ..Default::default()
                };
                let Ok(cf) = compile(&text, &opts) else {
                    continue;
                };
                let f = optimized(cf.func);
                let (yp, yt) = inputs(&mut rng, b, c, 0);
                let Ok(want) = evaluate_function(&f, &yp, &yt, true) else {
                    continue;
                };
                let Some(got) = evaluate_function_jit(&mut jit, &f, &yp, &yt).unwrap() else {
                    continue;
                };
                n += 1;
                let mut pairs = vec![(got.loss, want.loss)];
                if let (Some(a), Some(b)) = (&got.grad, &want.grad) {
                    pairs.extend(a.iter().flatten().copied().zip(b.iter().flatten().copied()));
                }
                for (g, w) in pairs {
                    if w.is_finite() && w != 0.0 {
                        worst = worst.max((g - w).abs() / w.abs());
                    }
                    if !common::close(g, w, 1e-4, 1e-5) {
                        failures.push(format!(
                            "{} {b}x{c}: {g} (fast) vs {w} (interp)",
                            path.display()
                        ));
                    }
                }
            }
        }
    }
    eprintln!("fast math: {n} genomes, worst relative difference {worst:e}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Row blocks in parallel: for row-separable losses the gradient is bit-identical to one call
/// and the loss within 1e-6; losses that mix rows (std over everything, a mean subtracted
/// from every element) are not split.
#[test]
fn row_blocks_in_parallel_match_one_call() {
    let mut jit = Jit::new().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let (b, c) = (1000usize, 10usize);
    let (mut separable, mut total) = (0, 0);
    for dir in ["tests/corpus/amm", "tests/corpus/daml"] {
        for path in common::json_files(dir) {
            let text = std::fs::read_to_string(&path).unwrap();
            let Ok(cf) = compile(&text, &CompileOptions::default()) else {
                continue;
            };
            let f = optimized(cf.func);
            let Some(cl) = jit.compile_loss(&f).unwrap() else {
                continue;
            };
            total += 1;
            let (yp, yt) = inputs(&mut rng, b, c, 0);
            let (yp, yt) = (yp.to_f32(), yt.to_f32());
            let n = jit.kernel_of(&cl).grad_len(b, c);
            let (mut g1, mut g2) = (vec![0f32; n], vec![0f32; n]);
            let one = jit.run(&cl, &yp, &yt, b, c, &mut g1).unwrap();
            let blocks = jit.run_blocks(&cl, &yp, &yt, b, c, &mut g2, 64).unwrap();
            if jit.kernel_of(&cl).is_row_separable() {
                separable += 1;
            }
            assert!(
                common::close(blocks, one, 1e-6, 1e-7),
                "{}: loss {blocks} in blocks vs {one}",
                path.display()
            );
            assert!(
                g1.iter()
                    .zip(&g2)
                    .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())),
                "{}: gradients differ",
                path.display()
            );
        }
    }
    eprintln!("{separable} of {total} corpus kernels are row-separable");
    assert!(separable * 2 > total, "most losses should split by rows");
    for text in [
        "std(x)",
        "safe_sub(x, mean(x))",
        "safe_mul(mean(x), mean(y))",
    ] {
        let f = optimized(compile(text, &CompileOptions::default()).unwrap().func);
        let cl = jit.compile_loss(&f).unwrap().unwrap();
        assert!(!jit.kernel_of(&cl).is_row_separable(), "{text} mixes rows");
    }
    // Regression (jit_vs_interp fuzz target): a mean over every row of a value that depends
    // on no data but has the batch's shape, used by the rows. A block would average only its
    // own rows, so the kernel must not split.
    let src = "function g(f32[B,C], f32[B,C]) -> f32 {\nblock0(v0: f32[B,C], v1: f32[B,C]):\n    v2 = ones_like v1 : f32[B,C]\n    v3 = sum<1> v2 : f32[B]\n    v4 = log v3 : f32[B]\n    v5 = mean<all> v4 : f32\n    v6 = mul v0, v5 : f32[B,C]\n    v7 = mean<all> v6 : f32\n    return v7\n}\n";
    let f = optimized(ncp_ir::text::parse_function(src).unwrap());
    let cl = jit.compile_loss(&f).unwrap().unwrap();
    assert!(!jit.kernel_of(&cl).is_row_separable(), "{src}");
    let (yp, yt) = inputs(&mut rng, 6, 3, 0);
    let want = evaluate_function(&f, &yp, &yt, true).unwrap();
    let (yp, yt) = (yp.to_f32(), yt.to_f32());
    let n = jit.kernel_of(&cl).grad_len(6, 3);
    let mut g = vec![0f32; n];
    for got in [
        jit.run_blocks(&cl, &yp, &yt, 6, 3, &mut g, 2).unwrap(),
        jit.run_in_row_blocks(&cl, &yp, &yt, 6, 3, &mut g, 1)
            .unwrap(),
    ] {
        assert_eq!(got.to_bits(), want.loss.to_bits(), "{got} vs {}", want.loss);
    }
}

/// Bit-equal, any NaN equal to any NaN.
fn bits_equal(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

/// Consecutive blocks of rows, each continuing the last one's loss sum, give one call's loss
/// and gradient bit for bit, in every kernel variant; large batches run that way by
/// themselves and stay bit-equal to the interpreter.
#[test]
fn consecutive_row_blocks_carry_the_loss_exactly() {
    let mut rng = ChaCha8Rng::seed_from_u64(33);
    let (b, c) = (150usize, 10usize);
    for mut jit in variants() {
        let (mut carried, mut total) = (0, 0);
        for dir in ["tests/corpus/amm", "tests/corpus/daml", "tests/corpus/haz"] {
            for path in common::json_files(dir) {
                let text = std::fs::read_to_string(&path).unwrap();
                let Ok(cf) = compile(&text, &CompileOptions::default()) else {
                    continue;
                };
                let f = optimized(cf.func);
                let Ok(Some(cl)) = jit.compile_loss(&f) else {
                    continue;
                };
                total += 1;
                if !jit.kernel_of(&cl).carries_loss() {
                    continue;
                }
                carried += 1;
                for kind in [0, 1, 3] {
                    let (yp, yt) = inputs(&mut rng, b, c, kind);
                    let (yp, yt) = (yp.to_f32(), yt.to_f32());
                    let n = jit.kernel_of(&cl).grad_len(b, c);
                    let mut g1 = vec![0f32; n];
                    let one = jit
                        .run_in_row_blocks(&cl, &yp, &yt, b, c, &mut g1, b)
                        .unwrap();
                    for rows in [1, 7, 64] {
                        let mut g2 = vec![0f32; n];
                        let got = jit
                            .run_in_row_blocks(&cl, &yp, &yt, b, c, &mut g2, rows)
                            .unwrap();
                        assert!(
                            bits_equal(&[got], &[one]) && bits_equal(&g1, &g2),
                            "{} ({:?}, inputs {kind}), blocks of {rows} rows: loss {got} vs {one}",
                            path.display(),
                            jit.tier
                        );
                    }
                }
            }
        }
        eprintln!(
            "{:?}: {carried} of {total} corpus kernels carry their loss",
            jit.tier
        );
        assert!(carried * 3 > total, "{carried} of {total} carry their loss");
    }
    // Above the size where `run` goes by blocks: the three losses of the benchmarks against
    // the interpreter, bit for bit.
    let b = ncpc::jit::SEQUENTIAL_BLOCKS_FROM / 10 + 3;
    for name in ["mse", "cross_entropy", "baikal"] {
        let text = std::fs::read_to_string(format!("tests/corpus/amm/{name}.json")).unwrap();
        let f = optimized(compile(&text, &CompileOptions::default()).unwrap().func);
        let (yp, yt) = inputs(&mut rng, b, 10, 0);
        let want = evaluate_function(&f, &yp, &yt, true).unwrap();
        for mut jit in variants() {
            let cl = jit.compile_loss(&f).unwrap().unwrap();
            assert!(jit.kernel_of(&cl).carries_loss(), "{name} carries its loss");
            let got = evaluate_function_jit(&mut jit, &f, &yp, &yt)
                .unwrap()
                .unwrap();
            assert_eq!(got.loss.to_bits(), want.loss.to_bits(), "{name}");
            let (g, w) = (got.grad.unwrap(), want.grad.clone().unwrap());
            assert!(bits_equal(&g.concat(), &w.concat()), "{name}: gradients");
        }
    }
}

/// The JIT's and the interpreter's values for IR text `src` on a 4x3 batch drawn from `seed`;
/// panics when the JIT does not take it.
fn jit_and_interp(src: &str, seed: u64) -> (LossValue, LossValue) {
    let f = ncp_ir::text::parse_function(src).unwrap();
    let mut jit = Jit::new().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (yp, yt) = inputs(&mut rng, 4, 3, 0);
    let want = evaluate_function(&f, &yp, &yt, true).unwrap();
    let got = evaluate_function_jit(&mut jit, &f, &yp, &yt)
        .unwrap()
        .expect("the JIT takes this function");
    (got, want)
}

/// Regression (found by the ir_text fuzz target seeded with corpus IR): a max/min mask of a
/// scalar is a scalar.
#[test]
fn mask_of_a_scalar() {
    let src = "function m(f32[B,C], f32[B,C]) -> f32 {\nblock0(v0: f32[B,C], v1: f32[B,C]):\n    v2 = mean<all> v0 : f32\n    v3 = min_mask<all> v2 : bool\n    v4 = cast<f32> v3 : f32\n    v5 = mul v4, v2 : f32\n    return v5\n}\n";
    let (got, want) = jit_and_interp(src, 2);
    assert_eq!(got.loss.to_bits(), want.loss.to_bits());
}

/// A reshape from a scalar to a one-element tensor and back (HAZ genomes at concrete dims
/// have them) compiles and matches the interpreter, loss and gradient.
#[test]
fn reshape_to_and_from_a_scalar() {
    let src = "function r(f32[B,C], f32[B,C]) -> f32 {\nblock0(v0: f32[B,C], v1: f32[B,C]):\n    v2 = mean<all> v0 : f32\n    v3 = reshape<[1,1]> v2 : f32[1,1]\n    v4 = exp v3 : f32[1,1]\n    v5 = reshape<[]> v4 : f32\n    v6 = mul v5, v2 : f32\n    return v6\n}\n";
    let (got, want) = jit_and_interp(src, 3);
    assert_eq!(got.loss.to_bits(), want.loss.to_bits());
    assert_eq!(got.grad, want.grad);
}

/// Buffers that do not fit the shape are refused, by one call and by row blocks alike.
#[test]
fn mismatched_buffers_are_refused_in_blocks_too() {
    let mut jit = Jit::new().unwrap();
    let text = std::fs::read_to_string("tests/corpus/amm/mse.json").unwrap();
    let f = optimized(compile(&text, &CompileOptions::default()).unwrap().func);
    let cl = jit.compile_loss(&f).unwrap().unwrap();
    let (b, c) = (200usize, 4usize);
    let n = jit.kernel_of(&cl).grad_len(b, c);
    assert!(n > 0 && jit.kernel_of(&cl).is_row_separable());
    let (yp, yt) = (vec![0.5f32; b * c], vec![0f32; b * c]);
    let short = vec![0f32; b * c - 1];
    for block_rows in [0, 16] {
        let mut g = vec![0f32; n];
        let e = jit
            .run_blocks(&cl, &short, &yt, b, c, &mut g, block_rows)
            .unwrap_err();
        assert!(e.to_string().contains("200 x 4"), "{e}");
        let e = jit
            .run_blocks(&cl, &yp, &short, b, c, &mut g, block_rows)
            .unwrap_err();
        assert!(e.to_string().contains("200 x 4"), "{e}");
        let mut g_short = vec![0f32; n - 1];
        let e = jit
            .run_blocks(&cl, &yp, &yt, b, c, &mut g_short, block_rows)
            .unwrap_err();
        assert!(e.to_string().contains("gradient buffer"), "{e}");
        jit.run_blocks(&cl, &yp, &yt, b, c, &mut g, block_rows)
            .unwrap();
        // Consecutive blocks check the same way.
        let e = jit
            .run_in_row_blocks(&cl, &short, &yt, b, c, &mut g, block_rows)
            .unwrap_err();
        assert!(e.to_string().contains("200 x 4"), "{e}");
        let e = jit
            .run_in_row_blocks(&cl, &yp, &short, b, c, &mut g, block_rows)
            .unwrap_err();
        assert!(e.to_string().contains("200 x 4"), "{e}");
        let e = jit
            .run_in_row_blocks(&cl, &yp, &yt, b, c, &mut g_short, block_rows)
            .unwrap_err();
        assert!(e.to_string().contains("gradient buffer"), "{e}");
        jit.run_in_row_blocks(&cl, &yp, &yt, b, c, &mut g, block_rows)
            .unwrap();
    }
}

/// Losses that branch on the data (AMM programs whose jumps test values computed from
/// y_pred): the kernel of the path one input takes, run on other inputs, computes exactly
/// what the interpreter computes when they take the same path, and a NaN loss when they do
/// not, so the caller knows to ask the interpreter. Corpus and random AMM programs, both
/// tiers.
#[test]
fn guarded_paths_match_the_interpreter_or_step_aside() {
    use ncp_ir::interp::{DEFAULT_FUEL, Outcome, run_traced};
    use ncpc::jit::paths::{dynamic_branches, guarded_path};
    let mut rng = ChaCha8Rng::seed_from_u64(23);
    let mut funcs: Vec<(String, Function, usize, usize)> = Vec::new();
    for dir in ["tests/corpus/amm", "tests/corpus/daml", "tests/corpus/haz"] {
        for path in common::json_files(dir) {
            let text = std::fs::read_to_string(&path).unwrap();
            for (b, c) in [(4usize, 3usize), (32, 10)] {
                let opts = CompileOptions {
                    dims: DimModel::for_inputs(b, c),
                    ..Default::default()
                };
                if let Ok(cf) = compile(&text, &opts) {
                    funcs.push((format!("{} {b}x{c}", path.display()), cf.func, b, c));
                }
            }
        }
    }
    for i in 0..3000 {
        let len = rng.random_range(4..25);
        let p = amm::random::random_program(&mut rng, len, true);
        if let Ok((f, _)) = amm::lower(&p, "g", Mode::Compat, DimModel::Symbolic) {
            let (b, c) = [(4, 3), (32, 10), (5, 7)][i % 3];
            funcs.push((format!("random #{i}"), f, b, c));
        }
    }
    let funcs: Vec<_> = funcs
        .into_iter()
        .map(|(n, f, b, c)| (n, optimized(f), b, c))
        .filter(|(_, f, _, _)| dynamic_branches(f))
        .collect();
    let (mut kernels, mut same, mut off, mut failures) = (0, 0, 0, Vec::new());
    for tier in [Tier::Quick, Tier::Hot] {
        let mut jit = Jit::new().unwrap();
        jit.tier = tier;
        for (name, f, b, c) in &funcs {
            let (b, c) = (*b, *c);
            let mut batches: Vec<(Tensor, Tensor)> =
                (0..6).map(|k| inputs(&mut rng, b, c, k % 4)).collect();
            // Inputs that move the branches: the first batch negated, scaled, and with
            // its targets zeroed.
            let (yp0, yt0) = batches[0].clone();
            let map = |t: &Tensor, g: &dyn Fn(f64) -> f64| {
                Tensor::new(
                    t.dtype,
                    t.shape.clone(),
                    t.data.iter().map(|x| g(*x)).collect(),
                )
            };
            batches.push((map(&yp0, &|x| -x), yt0.clone()));
            batches.push((map(&yp0, &|x| x * 1e3), yt0.clone()));
            batches.push((yp0.clone(), map(&yt0, &|_| 0.0)));
            let traced = |x: &(Tensor, Tensor)| {
                run_traced(f, &[x.0.clone(), x.1.clone()], DEFAULT_FUEL)
                    .ok()
                    .and_then(|(o, p)| matches!(o, Outcome::Return(_)).then_some(p))
            };
            let Some(g) = guarded_path(f, &batches[0].0, &batches[0].1) else {
                continue;
            };
            let Some(cl) = jit.compile_loss(&g).unwrap() else {
                continue;
            };
            kernels += 1;
            let first = traced(&batches[0]);
            for (k, (yp, yt)) in batches.iter().enumerate() {
                let what = format!("{name} ({tier:?}) batch {k}");
                let mut grad = vec![0f32; jit.kernel_of(&cl).grad_len(b, c)];
                let loss = jit
                    .run(&cl, &yp.to_f32(), &yt.to_f32(), b, c, &mut grad)
                    .unwrap();
                let on_path = traced(&(yp.clone(), yt.clone())) == first;
                if !on_path {
                    off += 1;
                    if !loss.is_nan() {
                        failures.push(format!("{what}: another path, but the loss is {loss}"));
                    }
                    continue;
                }
                same += 1;
                let want = evaluate_function(f, yp, yt, true).unwrap();
                let eq = |x: f32, y: f32| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan());
                if !eq(loss, want.loss) {
                    failures.push(format!(
                        "{what}: loss {loss} (jit) vs {} (interp)",
                        want.loss
                    ));
                    continue;
                }
                if let (true, Some(w)) = (cl.has_grad, &want.grad) {
                    let bad = grad
                        .iter()
                        .zip(w.iter().flatten())
                        .filter(|(x, y)| !eq(**x, **y))
                        .count();
                    if bad > 0 {
                        failures.push(format!("{what}: {bad} gradient elements differ"));
                    }
                }
            }
        }
    }
    eprintln!(
        "guarded paths: {} functions branch on the data, {kernels} kernels, {same} runs on the traced path, {off} off it",
        funcs.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        kernels > 20 && same > 50 && off > 20,
        "the test must exercise both cases"
    );
}
