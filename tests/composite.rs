//! `ncpc eval --protocol daml`: DAML's composite over every run the data root allows, each
//! run a full evaluation, the score recomputed here from the run accuracies.

mod common;

use std::path::Path;
use std::process::Command;

/// A learnable stand-in for Fashion-MNIST: 28x28 images whose bright row is the label.
fn fake_fashion(root: &Path, train: usize, test: usize) {
    let dir = root.join("fashion-mnist");
    std::fs::create_dir_all(&dir).unwrap();
    for (prefix, n) in [("train", train), ("t10k", test)] {
        let labels: Vec<u8> = (0..n).map(|i| (i * 7 % 10) as u8).collect();
        let mut pixels = vec![0u8; n * 784];
        for (i, l) in labels.iter().enumerate() {
            for c in 0..28 {
                pixels[i * 784 + (*l as usize * 2 + 3) * 28 + c] = 200 + (c as u8 % 50);
            }
        }
        common::write_idx(
            &dir.join(format!("{prefix}-images-idx3-ubyte.gz")),
            &[n as u32, 28, 28],
            &pixels,
        );
        common::write_idx(
            &dir.join(format!("{prefix}-labels-idx1-ubyte.gz")),
            &[n as u32],
            &labels,
        );
    }
}

fn ncpc(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ncpc"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_daml_composite_combines_every_run_present() {
    let root = tempfile::tempdir().unwrap();
    fake_fashion(root.path(), 400, 200);
    let mse = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/amm/mse.json");
    let out = ncpc(&[
        "eval",
        mse,
        "--protocol",
        "daml",
        "--steps",
        "40",
        "--data-dir",
        root.path().to_str().unwrap(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for k in [
        "score",
        "accuracy",
        "baselines",
        "seconds",
        "runs",
        "candidate",
    ] {
        assert!(r.get(k).is_some(), "no `{k}` in {r}");
    }
    // CIFAR-10 is absent: Fashion-MNIST (the stand-in above) and MNIST (embedded) run.
    let runs = r["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{r}");
    assert!(runs[0]["data"].as_str().unwrap().contains("fashion"), "{r}");
    assert!(runs[1]["data"].as_str().unwrap().contains("mnist"), "{r}");
    let notes = r["notes"].to_string();
    assert!(
        notes.contains("cifar-10") && notes.contains("left out"),
        "{notes}"
    );
    // The score is DAML's formula over the runs' accuracies (unbiased std).
    let accs: Vec<f64> = runs
        .iter()
        .map(|run| run["candidate"]["accuracy"].as_f64().unwrap())
        .collect();
    let mean = (accs[0] + accs[1]) / 2.0;
    let std = ((accs[0] - mean).powi(2) + (accs[1] - mean).powi(2)).sqrt();
    let want = 0.7 * mean + 0.3 * (1.0 - std / mean);
    let score = r["score"].as_f64().unwrap();
    assert!((score - want).abs() < 1e-12, "{score} vs {want}");
    assert!(accs[0] > 0.5, "the stand-in task is easy: {accs:?}");
    let names: Vec<&str> = r["baselines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cross-entropy", "mse"]);
    assert_eq!(
        r["baselines"][1]["score"], r["score"],
        "MSE as the candidate scores as the MSE baseline"
    );

    // The table names the runs and the composite.
    let out = ncpc(&[
        "eval",
        mse,
        "--protocol",
        "daml",
        "--steps",
        "20",
        "--dataset",
        "mnist",
        "--data-dir",
        root.path().to_str().unwrap(),
    ]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}");
    assert!(
        table.contains("run 1") && !table.contains("run 2"),
        "{table}"
    );
    assert!(table.contains("0.7 mean(accuracy)"), "{table}");
}

#[test]
fn the_composite_refuses_your_own_data() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("d.csv");
    std::fs::write(&csv, "a,label\n1,0\n2,1\n").unwrap();
    let mse = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/amm/mse.json");
    let out = ncpc(&[
        "eval",
        mse,
        "--protocol",
        "daml",
        "--csv",
        csv.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not --idx-dir or --csv"), "{err}");
}

#[test]
fn only_eval_runs_the_composite() {
    let out = ncpc(&["evolve", "--protocol", "daml", "--generations", "1"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("only `ncpc eval` runs it"), "{err}");
}
