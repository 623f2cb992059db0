//! Property tests: the text form round-trips; optimization never changes a loss (bit-equal)
//! and keeps gradients within 1e-5; gradients match central finite differences.

mod common;

use ncp_ir::passes::{OptOptions, optimize};
use ncp_ir::tensor::Tensor;
use ncp_ir::text::{parse_function, print_function};
use ncp_ir::{DimModel, Function};
use ncpc::formats::daml::{self, PSet};
use ncpc::formats::{Mode, amm};
use ncpc::loss::evaluate_function;
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn amm_fn(seed: u64, len: usize, wild: bool) -> Option<Function> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let p = amm::random::random_program(&mut rng, len, wild);
    amm::lower(&p, "g", Mode::Compat, DimModel::Symbolic)
        .ok()
        .map(|x| x.0)
}

fn daml_fn(seed: u64, pset: PSet) -> Function {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let e = daml::random_expr(&mut rng, 1, 5, pset);
    daml::lower(&e, "g", DimModel::Symbolic).expect("random DAML trees compile")
}

fn inputs(seed: u64, scale: f32) -> (Tensor, Tensor) {
    use rand::Rng;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (b, c) = (4, 3);
    let yp: Vec<Vec<f32>> = (0..b)
        .map(|_| {
            (0..c)
                .map(|_| rng.random_range(-1.0f32..1.0) * scale)
                .collect()
        })
        .collect();
    let yt: Vec<Vec<f32>> = (0..b)
        .map(|_| {
            let k = rng.random_range(0..c);
            (0..c).map(|j| if j == k { 1.0 } else { 0.0 }).collect()
        })
        .collect();
    (
        Tensor::from_rows(&yp).unwrap(),
        Tensor::from_rows(&yt).unwrap(),
    )
}

fn same_bits(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

fn check_opt_preserves(f: &Function, seed: u64) -> Result<(), TestCaseError> {
    let mut g = f.clone();
    optimize(
        &mut g,
        OptOptions {
            verify_each: true,
            ..Default::default()
        },
    )
    .map_err(|e| TestCaseError::fail(e.to_string()))?;
    for (k, scale) in [1.0f32, 5.0, 50.0].into_iter().enumerate() {
        let (yp, yt) = inputs(seed.wrapping_add(k as u64), scale);
        let a = evaluate_function(f, &yp, &yt, false)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let b = evaluate_function(&g, &yp, &yt, true)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(
            same_bits(a.loss, b.loss),
            "loss {} vs {} after optimizing\n{}",
            a.loss,
            b.loss,
            print_function(f)
        );
        prop_assert_eq!(a.fault, b.fault);
        prop_assert_eq!(a.grad.is_some(), b.grad.is_some());
        if let (Some(ga), Some(gb)) = (&a.grad, &b.grad) {
            for (x, y) in ga.iter().flatten().zip(gb.iter().flatten()) {
                prop_assert!(
                    common::close(*y, *x, 1e-5, 1e-6),
                    "gradient {} vs {} after optimizing\n{}",
                    x,
                    y,
                    print_function(f)
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    #[test]
    fn text_round_trips(seed in any::<u64>(), len in 1usize..20, wild in any::<bool>(), daml_pick in any::<bool>()) {
        let f = if daml_pick { Some(daml_fn(seed, PSet::Validator)) } else { amm_fn(seed, len, wild) };
        if let Some(mut f) = f {
            for _ in 0..2 {
                let t = print_function(&f);
                let g = parse_function(&t).map_err(|e| TestCaseError::fail(format!("{e}\n{t}")))?;
                ncp_ir::verify::verify(&g).map_err(|e| TestCaseError::fail(format!("{e}\n{t}")))?;
                prop_assert_eq!(print_function(&g), t);
                optimize(&mut f, OptOptions::default()).unwrap();
            }
        }
    }

    #[test]
    fn optimizing_amm_keeps_results(seed in any::<u64>(), len in 1usize..24, wild in any::<bool>()) {
        if let Some(f) = amm_fn(seed, len, wild) {
            check_opt_preserves(&f, seed)?;
        }
    }

    #[test]
    fn optimizing_daml_keeps_results(seed in any::<u64>(), validator in any::<bool>()) {
        let f = daml_fn(seed, if validator { PSet::Validator } else { PSet::Miner });
        check_opt_preserves(&f, seed)?;
    }
}

/// Smooth DAML primitives only, so central differences are meaningful.
fn smooth_expr(rng: &mut ChaCha8Rng, depth: usize) -> daml::Expr {
    use daml::Expr;
    use rand::Rng;
    if depth == 0 || rng.random_bool(0.25) {
        return match rng.random_range(0..3) {
            0 => Expr::X,
            1 => Expr::Y,
            _ => Expr::Const(rng.random_range(-1.0f32..1.0)),
        };
    }
    const UNARY: &[&str] = &["sin", "cos", "tanh", "sigmoid", "mean"];
    const BINARY: &[&str] = &["safe_add", "safe_sub", "safe_mul"];
    if rng.random_bool(0.5) {
        let n = UNARY[rng.random_range(0..UNARY.len())];
        Expr::Call(n, vec![smooth_expr(rng, depth - 1)])
    } else {
        let n = BINARY[rng.random_range(0..BINARY.len())];
        Expr::Call(
            n,
            vec![smooth_expr(rng, depth - 1), smooth_expr(rng, depth - 1)],
        )
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 150, .. ProptestConfig::default() })]

    #[test]
    fn gradients_match_central_differences(seed in any::<u64>()) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let e = smooth_expr(&mut rng, 4);
        let f = daml::lower(&e, "g", DimModel::Symbolic).unwrap();
        let (yp, yt) = inputs(seed, 1.0);
        let v = evaluate_function(&f, &yp, &yt, true).unwrap();
        let Some(grad) = v.grad else { return Ok(()) };
        let h = 1e-2f32;
        let flat: Vec<f32> = grad.iter().flatten().copied().collect();
        let scale = flat.iter().fold(1e-3f32, |m, g| m.max(g.abs()));
        for (i, &g) in flat.iter().enumerate() {
            let mut plus = yp.clone();
            let mut minus = yp.clone();
            plus.data[i] = (yp.data[i] as f32 + h) as f64;
            minus.data[i] = (yp.data[i] as f32 - h) as f64;
            let lp = evaluate_function(&f, &plus, &yt, false).unwrap().loss;
            let lm = evaluate_function(&f, &minus, &yt, false).unwrap().loss;
            let fd = (lp - lm) / (2.0 * h);
            prop_assert!((fd - g).abs() <= 2e-2 * scale, "d/dy_pred[{}]: gradient {} vs central difference {} in {}", i, g, fd, daml::print_expr(&e));
        }
    }
}
