//! `ncpc discover` end to end on a small budget: the search, the constant tuning and the
//! held-out check run, the evidence is written (candidates with per-seed held-out accuracy,
//! cross-entropy and MSE under the same seeds) and the winner is the best held-out candidate,
//! with its program, formula and PyTorch module beside it.

use serde_json::Value;
use std::process::Command;

#[test]
fn discover_searches_tunes_and_checks_transfer() {
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("found");
    let run = Command::new(env!("CARGO_BIN_EXE_ncpc"))
        .env("HOME", home.path())
        .env("NCPC_DATA", home.path().join("data"))
        .args([
            "discover",
            "--time",
            "6s",
            "--protocol",
            "amm",
            "--population",
            "8",
        ])
        .args(["--top", "2", "--tune-evaluations", "6", "--from-mse"])
        .args([
            "--transfer",
            "amm",
            "--transfer-seeds",
            "3",
            "--transfer-steps",
            "30",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("ncpc: search:"), "{stderr}");
    let d: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("discover.json")).unwrap()).unwrap();
    assert_eq!(d["proxy"], "amm");
    assert!(d["evaluations"].as_u64().unwrap() > 0, "{d}");
    let candidates = d["candidates"].as_array().unwrap();
    assert!(!candidates.is_empty() && candidates.len() <= 2, "{d}");
    let names: Vec<&str> = d["baselines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cross-entropy", "mse"], "{d}");
    for b in d["baselines"].as_array().unwrap() {
        assert_eq!(b["accuracy"].as_array().unwrap().len(), 3, "{b}");
    }
    for c in candidates {
        assert_eq!(c["transfer_accuracy"].as_array().unwrap().len(), 3, "{c}");
        // The second fidelity re-scored every candidate that went on.
        // (-inf, written as a string, when the longer training failed.)
        let f = &c["fidelity_fitness"];
        assert!(f.is_number() || f == "-Infinity", "{c}");
    }
    assert!(
        d["fidelity"].as_str().is_some_and(|f| f.contains("steps")),
        "{d}"
    );
    // Best held-out mean first; the winner's files are written.
    let means: Vec<f64> = candidates
        .iter()
        .map(|c| c["transfer_mean"].as_f64().unwrap_or(f64::NEG_INFINITY))
        .collect();
    assert!(means.windows(2).all(|w| w[0] >= w[1]), "{means:?}");
    if d["winner"].is_number() {
        let w = std::fs::read_to_string(out.join("winner.json")).unwrap();
        assert_eq!(w.trim(), candidates[0]["genome"].as_str().unwrap());
        assert!(
            std::fs::read_to_string(out.join("winner.py"))
                .unwrap()
                .contains("torch")
        );
        assert!(stdout.contains("winner"), "{stdout}");
    }
    assert!(stdout.contains("beats cross-entropy by more than the larger standard deviation"));
}

/// Bad settings are refused before anything runs, naming the flags.
#[test]
fn discover_refuses_bad_settings() {
    let home = tempfile::tempdir().unwrap();
    for bad in [
        &["--fidelity", "0.5"][..],
        &["--search-share", "1.5"],
        &["--population", "1"],
        &["--time", "soon"],
    ] {
        let run = Command::new(env!("CARGO_BIN_EXE_ncpc"))
            .env("HOME", home.path())
            .env("NCPC_DATA", home.path().join("data"))
            .args(["discover", "--protocol", "amm", "--out"])
            .arg(home.path().join("x"))
            .args(bad)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{bad:?}: {stderr}");
        let flag = bad[0].trim_start_matches('-');
        assert!(stderr.contains(flag), "{bad:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// `ncpc evolve --transfer`: the best programs re-scored on a held-out protocol, in
/// result.json and the summary beside the search's own figures.
#[test]
fn evolve_checks_its_best_on_a_held_out_protocol() {
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("run");
    let run = Command::new(env!("CARGO_BIN_EXE_ncpc"))
        .env("HOME", home.path())
        .env("NCPC_DATA", home.path().join("data"))
        .args([
            "evolve",
            "--protocol",
            "amm",
            "--population",
            "6",
            "--generations",
            "2",
        ])
        .args([
            "--transfer",
            "amm",
            "--transfer-seeds",
            "2",
            "--transfer-steps",
            "20",
        ])
        .args(["--transfer-top", "2"])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("held-out check (amm protocol"), "{stdout}");
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap();
    let t = &r["transfer"];
    assert_eq!(t["protocol"], "amm", "{t}");
    assert_eq!(t["baselines"].as_array().unwrap().len(), 2, "{t}");
    let cands = t["candidates"].as_array().unwrap();
    assert!(!cands.is_empty() && cands.len() <= 2, "{t}");
    for c in cands {
        assert_eq!(c["transfer_accuracy"].as_array().unwrap().len(), 2, "{c}");
        assert!(c["proxy_fitness"].is_number(), "{c}");
    }
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        report.contains("Held-out check"),
        "the report shows the check"
    );
    // The best genome's accuracy during training beside cross-entropy's and MSE's.
    assert!(report.contains("Accuracy during training"), "{report}");
    assert!(
        report.contains("cross-entropy") && report.contains("mse"),
        "{report}"
    );
}

/// The pipeline on CIFAR-10 when the user supplies it (generated bytes here: the set is not
/// reachable from this machine): search, second fidelity, tuning and held-out check all read
/// the 3072-feature images.
#[test]
fn discover_runs_on_cifar10_binary_batches() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let dir = data.join("cifar-10");
    std::fs::create_dir_all(&dir).unwrap();
    // Learnable classes: each label brightens one channel band; the rest is noise.
    let mut seed = 1u32;
    let mut batch = |n: usize| -> Vec<u8> {
        let mut out = Vec::with_capacity(n * 3073);
        for i in 0..n {
            let label = (i % 10) as u8;
            out.push(label);
            for p in 0..3072usize {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                let noise = (seed >> 24) as u8 / 2;
                let band = p * 10 / 3072 == label as usize;
                out.push(noise.saturating_add(if band { 120 } else { 0 }));
            }
        }
        out
    };
    for k in 1..=5 {
        std::fs::write(dir.join(format!("data_batch_{k}.bin")), batch(500)).unwrap();
    }
    std::fs::write(dir.join("test_batch.bin"), batch(1000)).unwrap();
    let out = home.path().join("found");
    let run = Command::new(env!("CARGO_BIN_EXE_ncpc"))
        .env("HOME", home.path())
        .env("NCPC_DATA", &data)
        .args(["discover", "--time", "8s", "--protocol", "standard"])
        .args(["--dataset", "cifar10", "--steps", "20", "--seeds", "2"])
        .args(["--population", "6", "--top", "2", "--rescore", "3"])
        .args(["--fidelity", "2", "--tune-evaluations", "4", "--from-mse"])
        .args(["--transfer", "haz", "--transfer-dataset", "cifar10"])
        .args(["--transfer-seeds", "2", "--transfer-steps", "20"])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let d: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("discover.json")).unwrap()).unwrap();
    assert_eq!(d["transfer"], "haz", "{d}");
    for b in d["baselines"].as_array().unwrap() {
        let acc = b["accuracy"].as_array().unwrap();
        assert_eq!(acc.len(), 2, "{b}");
        // Above chance on the learnable generated classes.
        assert!(acc.iter().all(|a| a.as_f64().unwrap() > 0.15), "{b}");
    }
    assert!(!d["candidates"].as_array().unwrap().is_empty(), "{d}");
}
