//! `ncpc eval --backend cpu|wgpu` end to end: the burn path scores like the trainer's own
//! path on the AMM protocol (the same seeds, data and batch order; float rounding apart), and
//! says which engine ran. `NCPC_TEST_WGPU=1` runs the wgpu device (lavapipe in CI).
#![cfg(feature = "burn-cpu")]

mod common;

use std::process::Command;

fn eval(genome: &str, backend: &str, step: &str) -> serde_json::Value {
    let path = common::root().join(format!("tests/corpus/amm/{genome}.json"));
    let out = Command::new(env!("CARGO_BIN_EXE_ncpc"))
        .args([
            "eval",
            path.to_str().unwrap(),
            "--protocol",
            "amm",
            "--seeds",
            "6",
        ])
        .args(["--backend", backend, "--loss-step", step, "--json"])
        .env(
            "NCPC_DATA",
            std::env::temp_dir().join("ncpc-eval-burn-no-data"),
        )
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{backend}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn burn_backend_scores_like_the_native_trainer_on_the_amm_protocol() {
    let device = if std::env::var("NCPC_TEST_WGPU").is_ok_and(|v| v == "1") {
        "wgpu"
    } else {
        "cpu"
    };
    // On wgpu, the losses' step on the population kernel and as burn graphs.
    let steps: &[&str] = if device == "wgpu" {
        &["kernel", "graph"]
    } else {
        &["kernel"]
    };
    for (genome, step) in ["cross_entropy", "mse"]
        .iter()
        .flat_map(|g| steps.iter().map(move |s| (*g, *s)))
    {
        let native = eval(genome, "jit", "kernel");
        let burn = eval(genome, device, step);
        assert_eq!(burn["candidate"]["engine"], format!("burn-{device}"));
        for (a, b) in native["candidate"]["runs"]
            .as_array()
            .unwrap()
            .iter()
            .zip(burn["candidate"]["runs"].as_array().unwrap())
        {
            assert_eq!(a["seed"], b["seed"]);
            assert_eq!(a["failure"].is_null(), b["failure"].is_null(), "{a} / {b}");
            let (x, y) = (a["accuracy"].as_f64(), b["accuracy"].as_f64());
            if let (Some(x), Some(y)) = (x, y) {
                // 200 validation images: one image is 0.005.
                assert!(
                    (x - y).abs() <= 0.0151,
                    "{genome} ({step}) seed {}: {x} vs {y}",
                    a["seed"]
                );
            }
        }
        for (b_native, b_burn) in native["baselines"]
            .as_array()
            .unwrap()
            .iter()
            .zip(burn["baselines"].as_array().unwrap())
        {
            let (x, y) = (b_native["accuracy"].as_f64(), b_burn["accuracy"].as_f64());
            assert!(
                (x.unwrap() - y.unwrap()).abs() <= 0.0151,
                "{b_native} / {b_burn}"
            );
        }
    }
}
