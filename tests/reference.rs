//! ncpc against PyTorch: the loss and gradient of every genome in tests/reference/{amm,daml}
//! (made by running the public Python code; see tests/reference/README.md) must agree within
//! 1e-5 relative on the loss and 1e-4 on the gradient, faults included.

mod common;

use common::{check_against_reference, json_files, matrix, num, root, stem};
use ncpc::formats::{CompileOptions, Mode};
use ncpc::loss::evaluate_genome;
use serde_json::Value as Json;

/// Genomes ncpc deliberately does not compile, with the reason (documented in
/// docs/formats/amm.md). Every other reference genome must match.
const UNSUPPORTED: &[(&str, &str)] = &[
    (
        "amm/edge_list_const",
        "LOAD_CONST of a list builds a tensor literal of fixed size",
    ),
    (
        "amm/edge_int_times_list",
        "an i64 register times a list is Python list repetition",
    ),
];

fn check_dir(fmt: &str) -> (usize, Vec<String>) {
    let mut failures = Vec::new();
    let mut cases = 0;
    for path in json_files(&format!("tests/reference/{fmt}")) {
        let name = format!("{fmt}/{}", stem(&path));
        let r: Json = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let genome = std::fs::read_to_string(root().join(r["genome"].as_str().unwrap())).unwrap();
        let opts = CompileOptions {
            mode: Mode::Compat,
            name: stem(&path),
            ..Default::default()
        };
        let unsupported = UNSUPPORTED.iter().any(|(n, _)| *n == name);
        for (k, case) in r["cases"].as_array().unwrap().iter().enumerate() {
            cases += 1;
            let yp = matrix(&case["y_pred"]);
            let yt = matrix(&case["y_true"]);
            let got = match evaluate_genome(&genome, &opts, &yp, &yt, true) {
                Ok(v) => v,
                Err(e) if unsupported => {
                    let _ = e;
                    continue;
                }
                Err(e) => {
                    failures.push(format!("{name} case {k}: error {e}"));
                    continue;
                }
            };
            if unsupported {
                failures.push(format!("{name}: listed as unsupported but compiled"));
            }
            let want_loss = num(&case["loss"]);
            let want_fault = !case["fault"].is_null()
                || case
                    .get("decode_fallback")
                    .is_some_and(|d| d.as_bool() == Some(true));
            if want_fault
                && case["grad_pred"].is_null()
                && want_loss == 1.0
                && got.fault.is_none()
                && got.loss != 1.0
            {
                failures.push(format!(
                    "{name} case {k}: PyTorch faults ({}), ncpc gives {}",
                    case["fault"], got.loss
                ));
                continue;
            }
            check_against_reference(&format!("{name} case {k}"), &got, case, &mut failures);
        }
    }
    (cases, failures)
}

#[test]
fn amm_matches_pytorch() {
    let (n, f) = check_dir("amm");
    assert!(n > 200, "only {n} reference cases found");
    assert!(
        f.is_empty(),
        "{} of {n} AMM cases differ:\n{}",
        f.len(),
        f.join("\n")
    );
}

#[test]
fn daml_matches_pytorch() {
    let (n, f) = check_dir("daml");
    assert!(n > 90, "only {n} reference cases found");
    assert!(
        f.is_empty(),
        "{} of {n} DAML cases differ:\n{}",
        f.len(),
        f.join("\n")
    );
}
