//! The HAZ front end against PyTorch: every genome of tests/reference/haz (made by running the
//! public Hierarchical-AutoML-Zero code, see tests/reference/gen_haz.py) must give the same
//! loss (1e-5 relative) and gradient (1e-4 relative), faults included; plus the import
//! checks, strict mode, random ops and `.item()` detaching.

mod common;

use common::{json_files, matrix, root, stem};
use ncpc::formats::haz::{self, requires_concrete_dims};
use ncpc::formats::{FormatError, Mode};
use ncpc::ir::tensor::Tensor;
use ncpc::ir::{DimModel, Function};
use ncpc::loss::{LossValue, evaluate_function};
use serde_json::{Value as Json, json};

/// Compile for 4x3 inputs: symbolic dims, or concrete ones when slot sizes meet B or C.
fn compile(text: &str, mode: Mode) -> Result<(Function, bool), FormatError> {
    let g = haz::parse_gene(text)?;
    match haz::lower(&g, "loss", mode, DimModel::for_inputs(4, 3)) {
        Ok((f, _)) => Ok((f, false)),
        Err(e) if requires_concrete_dims(&e) => {
            let (f, _) = haz::lower(&g, "loss", mode, DimModel::Concrete { b: 4, c: 3 })?;
            Ok((f, true))
        }
        Err(e) => Err(e),
    }
}

fn run(f: &Function, yp: &[Vec<f32>], yt: &[Vec<f32>]) -> LossValue {
    let yp = Tensor::from_rows(yp).expect("y_pred");
    let yt = Tensor::from_rows(yt).expect("y_true");
    evaluate_function(f, &yp, &yt, true).expect("evaluate")
}

#[test]
fn haz_matches_pytorch() {
    let mut failures = Vec::new();
    let mut cases = 0;
    for path in json_files("tests/reference/haz") {
        let name = stem(&path);
        let r: Json = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let text = std::fs::read_to_string(root().join(r["genome"].as_str().unwrap())).unwrap();
        let compiled = compile(&text, Mode::Compat);
        for (k, case) in r["cases"].as_array().unwrap().iter().enumerate() {
            cases += 1;
            let fault = case["fault"].as_str();
            let (f, _) = match (&compiled, fault) {
                (Err(_), Some(fl)) if fl.starts_with("import") => continue,
                (Err(e), _) => {
                    failures.push(format!("{name} case {k}: compile error {e}"));
                    continue;
                }
                (Ok(_), Some(fl)) if fl.starts_with("import") => {
                    failures.push(format!("{name}: PyTorch rejects the import, ncpc compiles"));
                    continue;
                }
                (Ok(c), _) => c,
            };
            let got = run(f, &matrix(&case["y_pred"]), &matrix(&case["y_true"]));
            if fault.is_some() {
                if got.fault.is_none() {
                    failures.push(format!(
                        "{name} case {k}: PyTorch faults, ncpc gives {}",
                        got.loss
                    ));
                }
                continue;
            }
            if let Some(t) = got.fault {
                failures.push(format!(
                    "{name} case {k}: ncpc faults ({t}), PyTorch does not"
                ));
                continue;
            }
            common::check_against_reference(&format!("{name} case {k}"), &got, case, &mut failures);
        }
    }
    assert!(cases >= 51, "only {cases} reference cases found");
    assert!(
        failures.is_empty(),
        "{} of {cases} HAZ cases differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A 5/5/5 genome with vector [3] and tensor [4, 3] slots.
fn genome(instrs: &[(i64, i64, i64, i64, f64, f64)]) -> Json {
    let col = |k: usize| -> Vec<Json> {
        instrs
            .iter()
            .map(|i| match k {
                0 => json!(i.0),
                1 => json!(i.1),
                2 => json!(i.2),
                3 => json!(i.3),
                4 => json!(i.4),
                _ => json!(i.5),
            })
            .collect()
    };
    json!({
        "length": instrs.len(), "meta_level": 0,
        "gene": col(0), "input_gene": col(1), "input_gene_2": col(2), "output_gene": col(3),
        "constants_gene": col(4), "constants_gene_2": col(5),
        "row_fixed": 0, "column_fixed": 0, "version": 0, "fitness": null,
        "memory": {"num_scalars": 5, "num_vectors": 5, "num_tensors": 5, "scalar_size": 1,
                   "vector_size": [3], "tensor_size": [4, 3]}
    })
}

const YP: [[f32; 3]; 4] = [
    [0.5, -1.0, 2.0],
    [1.5, 0.25, -0.75],
    [-2.0, 3.0, 0.0],
    [0.1, 0.2, 0.3],
];
const YT: [[f32; 3]; 4] = [
    [1.0, 0.0, 0.0],
    [0.0, 1.0, 0.0],
    [0.0, 0.0, 1.0],
    [1.0, 0.0, 0.0],
];

fn inputs() -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    (
        YP.iter().map(|r| r.to_vec()).collect(),
        YT.iter().map(|r| r.to_vec()).collect(),
    )
}

#[test]
fn random_ops_are_rejected() {
    for op in [17, 18, 19, 49, 81, 101] {
        // tensor slot 10 is [4, 3]: every random op's shape checks pass.
        let g = genome(&[(op, 10, 10, 2, 0.0, 0.5), (1, 0, 2, 0, 0.0, 0.0)]);
        for mode in [Mode::Compat, Mode::Strict] {
            match compile(&g.to_string(), mode) {
                Err(FormatError::Haz { place, msg }) => {
                    assert!(
                        place.contains("instruction 0") && msg.contains("RNG"),
                        "{place}: {msg}"
                    )
                }
                other => panic!(
                    "op {op} {mode:?}: expected an error, got {:?}",
                    other.map(|_| ())
                ),
            }
        }
    }
    // A random op whose own checks fail faults deterministically.
    let g = genome(&[(81, 0, 0, 2, 0.9, 0.1)]);
    let (f, _) = compile(&g.to_string(), Mode::Compat).unwrap();
    let (yp, yt) = inputs();
    assert!(run(&f, &yp, &yt).fault.is_some());
}

#[test]
fn strict_rejects_what_compat_traps() {
    let faulting = [
        genome(&[(2, 0, 1, 2, 0.0, 0.0), (0, 2, 3, 0, 0.0, 0.0)]), // None in slot 0
        genome(&[(16, 2, 2, 0, 0.5, 0.5)]),                        // backward fails
        genome(&[(62, 0, 0, 2, 2.0, 0.5)]),                        // norm always raises
        genome(&[(99, 0, 1, 0, 0.0, 0.0)]),                        // [4,3] @ [4,3]
        genome(&[(100, 0, 0, 2, 0.0, 0.0), (103, 0, 0, 0, 0.0, 0.0)]), // unknown op id
        genome(&[(1, 0, 99, 0, 0.0, 0.0)]),                        // address out of range
    ];
    let (yp, yt) = inputs();
    for g in &faulting {
        let (f, _) = compile(&g.to_string(), Mode::Compat).unwrap();
        assert!(run(&f, &yp, &yt).fault.is_some(), "{g}");
        assert!(compile(&g.to_string(), Mode::Strict).is_err(), "{g}");
    }
    // An integer constant faults (torch cannot make it require grad).
    let mut g = genome(&[(1, 0, 1, 0, 0.0, 0.0)]);
    g["constants_gene"] = json!([1]);
    let (f, _) = compile(&g.to_string(), Mode::Compat).unwrap();
    assert!(run(&f, &yp, &yt).fault.is_some());
}

#[test]
fn item_cuts_the_gradient() {
    // s2 = mean(p); v0 = full([4], s2.item()); s0 = v0 * y  -> loss depends on p only
    // through .item(): no gradient (y_true requires grad, so backward itself succeeds).
    let g = genome(&[
        (79, 0, 0, 2, 0.0, 0.0),
        (95, 2, 0, 5, 0.0, 0.0),
        (100, 1, 0, 3, 0.0, 0.0),
        (65, 5, 3, 0, 0.0, 0.0),
    ]);
    let (f, _) = compile(&g.to_string(), Mode::Compat).unwrap();
    let (yp, yt) = inputs();
    let got = run(&f, &yp, &yt);
    let mean: f32 = YP.iter().flatten().sum::<f32>() / 12.0;
    assert_eq!(got.fault, None);
    assert!(got.grad.is_none(), "{:?}", got.grad);
    assert!(
        (got.loss - mean * 4.0 / 12.0).abs() < 1e-6,
        "{} vs {}",
        got.loss,
        mean / 3.0
    );
    // The rebuilt value is exact, non-finite values, -0 and subnormals included:
    // s2 = max(p) = x; v0 = full([3], x); v0 = 1 / v0 (or v0 * 1e30); s0 = v0 + y.
    let check = |g: &Json, xs: &[f32], map: &dyn Fn(f32) -> f32| {
        let (f, _) = compile(&g.to_string(), Mode::Compat).unwrap();
        for &x in xs {
            let got = run(&f, &vec![vec![x; 3]; 4], &inputs().1);
            let want = map(x) + 4.0 / 12.0;
            let ok = if want.is_nan() {
                got.loss.is_nan()
            } else {
                got.loss == want || (got.loss - want).abs() <= 1e-6 * want.abs()
            };
            assert!(ok, "x = {x:e}: {} vs {want}", got.loss);
            assert!(got.grad.is_none());
        }
    };
    let recip = genome(&[
        (85, 0, 0, 2, 0.0, 0.0),
        (95, 2, 5, 5, 0.0, 0.0),
        (36, 5, 0, 5, 0.0, 0.0),
        (31, 5, 1, 0, 0.0, 0.0),
    ]);
    let xs = [
        0.1f32,
        1.7e38,
        -0.0,
        0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        123456.79,
        -1e-30,
    ];
    check(&recip, &xs, &|x| 1.0 / x);
    let scaled = genome(&[
        (85, 0, 0, 2, 0.0, 0.0),
        (95, 2, 5, 5, 0.0, 0.0),
        (16, 0, 0, 3, 1e30, 0.0),
        (33, 5, 3, 5, 0.0, 0.0),
        (31, 5, 1, 0, 0.0, 0.0),
    ]);
    check(&scaled, &[-3.5e-42, 7e-39, -1.4e-45, 2.5e-38], &|x| {
        x * 1e30
    });
}

#[test]
fn import_checks_name_the_field() {
    let base = genome(&[(1, 0, 1, 0, 0.0, 0.0)]);
    type Edit = Box<dyn Fn(&mut Json)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "memory.num_scalars",
            Box::new(|g| g["memory"]["num_scalars"] = json!(1001)),
        ),
        (
            "memory.num_vectors",
            Box::new(|g| g["memory"]["num_vectors"] = json!(101)),
        ),
        (
            "memory.num_tensors",
            Box::new(|g| g["memory"]["num_tensors"] = json!(51)),
        ),
        (
            "memory.vector_size",
            Box::new(|g| g["memory"]["vector_size"] = json!([1001])),
        ),
        (
            "memory.tensor_size",
            Box::new(|g| g["memory"]["tensor_size"] = json!([128, 128])),
        ),
        ("length", Box::new(|g| g["length"] = json!(501))),
        (
            "input_gene",
            Box::new(|g| g["input_gene"] = json!(vec![0; 501])),
        ),
        (
            "constants_gene_2",
            Box::new(|g| g["constants_gene_2"] = json!(vec![0.5; 501])),
        ),
        (
            "version",
            Box::new(|g| {
                g.as_object_mut().unwrap().remove("version");
            }),
        ),
        (
            "memory.tensor_size",
            Box::new(|g| g["memory"]["tensor_size"] = json!([12])),
        ),
        ("meta_level", Box::new(|g| g["meta_level"] = json!(1))),
    ];
    for (field, edit) in cases {
        let mut g = base.clone();
        edit(&mut g);
        match haz::parse_gene(&g.to_string()) {
            Err(FormatError::Haz { place, .. }) => assert_eq!(place, field),
            other => panic!("{field}: {:?}", other.map(|_| ())),
        }
    }
    let big = format!("{}{}", " ".repeat(1024 * 1024), base);
    assert!(matches!(
        haz::parse_gene(&big),
        Err(FormatError::Haz { .. })
    ));
    // The object JSON-encoded a second time, and Python's NaN literal, are accepted.
    let twice = serde_json::to_string(&base.to_string()).unwrap();
    assert!(haz::parse_gene(&twice).is_ok());
    let nan = base
        .to_string()
        .replace("\"constants_gene\":[0.0]", "\"constants_gene\":[NaN]");
    assert!(nan.contains("NaN"));
    assert!(haz::parse_gene(&nan).is_ok());
    for junk in [
        "",
        "[]",
        "\"x\"",
        "{\"gene\": [1]}",
        "{",
        "\"\\\"{\\\"\"",
        "NaN",
    ] {
        assert!(haz::parse_gene(junk).is_err(), "{junk}");
    }
}

#[test]
fn every_deterministic_op_compiles_and_runs() {
    let (yp, yt) = inputs();
    for op in (0..=102).filter(|o| ![17, 18, 19, 49, 81, 101].contains(o)) {
        for (a, b) in [(0, 1), (0, 10), (5, 0), (2, 0), (0, 5)] {
            let g = genome(&[(op, a, b, 3, 0.25, 0.5), (1, 0, 3, 0, 0.0, 0.0)]);
            let (f, _) = compile(&g.to_string(), Mode::Compat)
                .unwrap_or_else(|e| panic!("op {op} ({a}, {b}): {e}"));
            let _ = run(&f, &yp, &yt);
        }
    }
}

#[test]
fn random_genomes_compile_or_fail_cleanly() {
    let mut seed: u64 = 0x5eed;
    let mut next = |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let layouts = [
        (json!([3]), json!([4, 3])),
        (json!([4]), json!([3, 4])),
        (json!([1]), json!([1, 3])),
        (json!([2]), json!([2, 4, 3])),
        (json!([128]), json!([100, 100])),
    ];
    let (yp, yt) = inputs();
    let mut compiled = 0;
    for _ in 0..3000 {
        let n = 1 + next(8) as usize;
        let instrs: Vec<(i64, i64, i64, i64, f64, f64)> = (0..n)
            .map(|k| {
                let op = next(103) as i64;
                let a = if next(4) == 0 {
                    next(15) as i64
                } else {
                    next(4) as i64
                };
                let b = next(15) as i64;
                let out = if k == n - 1 { 0 } else { next(15) as i64 };
                (
                    op,
                    a,
                    b,
                    out,
                    next(200) as f64 / 100.0 - 1.0,
                    next(100) as f64 / 100.0,
                )
            })
            .collect();
        let mut g = genome(&instrs);
        let (v, t) = &layouts[next(layouts.len() as u64) as usize];
        g["memory"]["vector_size"] = v.clone();
        g["memory"]["tensor_size"] = t.clone();
        if let Err(e @ (FormatError::Ir(_) | FormatError::Json { .. })) =
            compile(&g.to_string(), Mode::Strict)
        {
            panic!("{g}: strict: {e}");
        }
        match compile(&g.to_string(), Mode::Compat) {
            Ok((f, _)) => {
                compiled += 1;
                let yp = Tensor::from_rows(&yp).unwrap();
                let yt = Tensor::from_rows(&yt).unwrap();
                if let Err(e) = evaluate_function(&f, &yp, &yt, true) {
                    panic!("{g}: evaluation failed: {e}");
                }
            }
            Err(FormatError::Haz { .. }) => {}
            Err(e) => panic!("{g}: {e}"),
        }
    }
    assert!(compiled > 1000, "only {compiled} compiled");
}
