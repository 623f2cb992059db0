//! The evaluator: training with a candidate loss is deterministic, the JIT and the
//! interpreter train bit-identically, failures are scored as failures, and `ncpc eval`
//! reports what scripts rely on.

mod common;

use ncpc::formats::CompileOptions;
use ncpc::loss::Backend;
use ncpc::train::data::synthetic::blobs;
use ncpc::train::protocol::{Protocol, ProtocolName};
use ncpc::train::run::{Engine, EvalOptions, Genome, Report, evaluate};
use ncpc::train::task::TaskData;
use std::process::Command;

fn genome(name: &str, text: &str) -> Genome {
    Genome {
        name: name.into(),
        text: text.into(),
        opts: CompileOptions::default(),
    }
}

fn corpus(name: &str) -> Genome {
    let path = common::root().join(format!("tests/corpus/amm/{name}.json"));
    genome(name, &std::fs::read_to_string(path).unwrap())
}

/// A small synthetic task (16 features, 4 classes) for fast runs.
fn synthetic() -> TaskData {
    TaskData::from_dataset(&blobs(5, 600, 16, 4), 400, 0.5, 0.25)
}

/// The standard protocol, shortened.
fn short_standard() -> Protocol {
    let mut p = Protocol::preset(ProtocolName::Standard);
    p.steps = Some(40);
    p.curve_every = 10;
    p.hurdles[0].step = 20;
    p
}

fn run(g: &Genome, p: &Protocol, data: &TaskData, backend: Backend) -> Report {
    let opts = EvalOptions {
        backend,
        ..EvalOptions::default()
    };
    let mut r = evaluate(g, p, data, opts, Vec::new(), &|| {}).expect("evaluate");
    r.seconds = 0.0;
    r
}

/// Bit-exact comparison that treats NaN as equal to itself (JSON writes it as "NaN"; f32
/// and f64 values are written with their shortest round-trip text).
fn json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).unwrap()
}

fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

#[test]
fn scores_are_bit_identical_across_runs_and_thread_counts() {
    let data = synthetic();
    let p = short_standard();
    for name in ["mse", "baikal"] {
        let g = corpus(name);
        let one = in_pool(1, || run(&g, &p, &data, Backend::Jit));
        let two = in_pool(2, || run(&g, &p, &data, Backend::Jit));
        let again = in_pool(2, || run(&g, &p, &data, Backend::Jit));
        assert_eq!(json(&one), json(&two), "{name}: 1 vs 2 threads");
        assert_eq!(json(&two), json(&again), "{name}: two runs");
        assert!(one.score.is_finite(), "{name}: {:?}", one.candidate.failure);
    }
}

#[test]
fn jit_and_interpreter_train_bit_identically() {
    let data = synthetic();
    let mut p = short_standard();
    p.seeds = 1;
    p.baselines = false;
    for name in ["mse", "cross_entropy", "baikal", "bce", "mae"] {
        let g = corpus(name);
        let jit = run(&g, &p, &data, Backend::Jit);
        let interp = run(&g, &p, &data, Backend::Interp);
        assert_eq!(
            jit.candidate.engine,
            Engine::Jit,
            "{name} did not use the JIT"
        );
        assert_eq!(interp.candidate.engine, Engine::Interp);
        assert_eq!(
            json(&jit.candidate.runs),
            json(&interp.candidate.runs),
            "{name}"
        );
    }
}

#[test]
fn cross_entropy_learns_the_synthetic_task_and_beats_chance_by_far() {
    let data = synthetic();
    let r = run(
        &corpus("cross_entropy"),
        &short_standard(),
        &data,
        Backend::Jit,
    );
    assert!(r.accuracy > 0.9, "accuracy {}", r.accuracy);
    let ce = &r.baselines[0];
    assert_eq!(ce.name, "cross-entropy");
    // The candidate is cross-entropy itself: the same seeds and batches give the same runs.
    assert_eq!(json(&ce.runs), json(&r.candidate.runs));
    let curve = &r.candidate.curve;
    assert_eq!(
        curve.iter().map(|c| c.step).collect::<Vec<_>>(),
        [10, 20, 30, 40]
    );
}

#[test]
fn a_loss_without_gradient_or_with_nan_fails_instead_of_scoring() {
    let data = synthetic();
    let p = short_standard();
    // The loss is the mean of y_true: it does not depend on the prediction.
    let constant = genome("constant", "[[100, 1, 0], [201, 1, -1, 2], [453, 2]]");
    let r = run(&constant, &p, &data, Backend::Jit);
    assert_eq!(r.score, f64::NEG_INFINITY);
    let why = r.candidate.failure.as_deref().unwrap();
    assert!(why.contains("does not depend on y_pred"), "{why}");
    // (-|y_pred|) ** 0.5: NaN on the first step.
    let nan = genome(
        "nan",
        "[[100, 1, 1], [101, 2, 0.5], [11, 1, 3], [9, 3, 4], [11, 4, 5], [5, 5, 2, 6], [201, 6, -1, 7], [453, 7]]",
    );
    let r = run(&nan, &p, &data, Backend::Jit);
    let why = r.candidate.failure.as_deref().unwrap();
    assert!(why.starts_with("step 1: the loss was NaN"), "{why}");
    assert_eq!(r.score, f64::NEG_INFINITY, "{:?}", r.candidate);
}

#[test]
fn a_loss_that_cannot_learn_is_stopped_by_the_hurdle() {
    let data = synthetic();
    let mut p = short_standard();
    p.hurdles[0].min_accuracy = 0.99;
    let r = run(&corpus("mse"), &p, &data, Backend::Jit);
    assert_eq!(r.score, f64::NEG_INFINITY);
    let why = r.candidate.failure.as_deref().unwrap();
    assert!(why.starts_with("step 20: hurdle"), "{why}");
    assert_eq!(r.candidate.runs[0].steps, 20, "trained past the hurdle");
}

#[test]
fn amm_protocol_uses_the_first_2000_images_split_1800_200_and_its_early_stop() {
    let p = Protocol::preset(ProtocolName::Amm);
    let mut notes = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    let data = TaskData::for_protocol(&p, dir.path(), &mut notes).unwrap();
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!(
        (data.train_y.len(), data.val_y.len(), data.dim),
        (1800, 200, 784)
    );
    // sqrt(clamp(-|y_pred|, 0)): always 0, so never improving; AMM fails it after 3 steps
    // without improvement (step 1 sets the best, steps 2-4 do not beat it).
    let up = genome(
        "flat",
        "[[100, 1, 1], [11, 1, 2], [9, 2, 3], [11, 3, 4], [6, 4, 5], [201, 5, -1, 6], [453, 6]]",
    );
    let r = run(&up, &p, &data, Backend::Jit);
    let why = r.candidate.failure.as_deref().unwrap();
    assert!(why.starts_with("step 4: early stop"), "{why}");
    assert_eq!(r.candidate.runs[0].losses, [0.0; 4]);
}

fn ncpc(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ncpc"))
        .args(args)
        .env(
            "NCPC_DATA",
            std::env::temp_dir().join("ncpc-eval-test-no-data"),
        )
        .output()
        .unwrap()
}

#[test]
fn eval_cli_json_has_the_fields_scripts_rely_on() {
    let mse = common::root().join("tests/corpus/amm/mse.json");
    let out = ncpc(&["eval", mse.to_str().unwrap(), "--protocol", "amm", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for k in ["score", "accuracy", "baselines", "seconds"] {
        assert!(v.get(k).is_some(), "missing {k}: {v}");
    }
    assert!(
        v["score"]
            .as_f64()
            .is_some_and(|s| (0.0..=1.0).contains(&s))
    );
    let names: Vec<&str> = v["baselines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cross-entropy", "mse"]);
}

#[test]
fn eval_cli_refuses_bad_input_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "[[100, 1, 0], [7, 1").unwrap();
    let out = ncpc(&["eval", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("JSON"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mse = common::root().join("tests/corpus/amm/mse.json");
    // The CNN trains on burn backends only; the trainer's own path says so.
    let out = ncpc(&["eval", mse.to_str().unwrap(), "--model", "cnn"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("trains on the burn backends only"), "{err}");
    #[cfg(not(feature = "wgpu"))]
    {
        let out = ncpc(&["eval", mse.to_str().unwrap(), "--backend", "wgpu"]);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("needs ncpc built with `--features wgpu`"),
            "{err}"
        );
    }
    let out = ncpc(&["eval", mse.to_str().unwrap(), "--dataset", "fashion-mnist"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("fashion-mnist is not in"), "{err}");
}
