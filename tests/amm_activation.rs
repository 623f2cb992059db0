//! AMM-exact scoring of activation components against AMM's own code: the scores AMM's
//! Python client submitted for evaluate tasks of activation programs
//! (tests/reference/amm_activation/tasks.json, from tests/reference/gen_amm_activation.py,
//! each task in a fresh AMM process), compared with `ActivationExact` on the same tasks.
//! The optimizer fixtures (tests/reference/amm_optimizer/tasks.json) pin what AMM does with
//! optimizer tasks: every function scores 0.0 (its strategy raises before running).

use ncpc::loss::Backend;
use ncpc::train::amm_exact::activation::ActivationExact;
use ncpc::train::amm_exact::{AmmData, Outcome, amm_optimizer_outcome};
use serde_json::Value;
use std::sync::Arc;

fn fixture(dir: &str) -> Value {
    let path = format!(
        "{}/tests/reference/{dir}/tasks.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The functions of a task as the pool sends them.
fn texts(task: &Value) -> Vec<(i64, Value)> {
    task["task_data"]["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["id"].as_i64().unwrap(), f["function"].clone()))
        .collect()
}

/// (function id, score) pairs AMM submitted.
fn submitted(task: &Value) -> Vec<(i64, f64)> {
    task["evaluations"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    (
                        e["function_id"].as_i64().unwrap(),
                        e["score"].as_f64().unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn scored(ids: &[(i64, Value)], outcomes: &[Outcome]) -> Vec<(i64, f64)> {
    ids.iter()
        .zip(outcomes)
        .filter_map(|((id, _), o)| o.wire_score().map(|s| (*id, s)))
        .collect()
}

#[test]
fn activation_tasks_score_as_amm_scores_them() {
    let f = fixture("amm_activation");
    let data = Arc::new(AmmData::load().unwrap());
    let (mut total, mut within, mut exact) = (0, 0, 0);
    let mut report = Vec::new();
    for (k, task) in f["tasks"].as_array().unwrap().iter().enumerate() {
        let fns = texts(task);
        let only: Vec<Value> = fns.iter().map(|(_, t)| t.clone()).collect();
        // A fresh AMM process per task: a fresh evaluator.
        let mut ev = ActivationExact::new(data.clone(), Backend::Jit);
        let got = scored(&fns, &ev.evaluate_values(&only));
        let want = submitted(task);
        assert_eq!(
            got.iter().map(|g| g.0).collect::<Vec<_>>(),
            want.iter().map(|w| w.0).collect::<Vec<_>>(),
            "task {k}: the functions with a record"
        );
        for ((id, g), (_, w)) in got.iter().zip(&want) {
            total += 1;
            exact += (g == w) as usize;
            if (g - w).abs() <= 0.005 + 1e-9 {
                within += 1;
            } else {
                report.push(format!("task {k} function {id}: ncpc {g}, AMM {w}"));
            }
        }
    }
    eprintln!(
        "activation: {total} scores, {exact} equal, {within} within one validation image\n{}",
        report.join("\n")
    );
    // Target: >= 95% within one validation image (0.005).
    assert!(
        within * 100 >= total * 95,
        "{within} of {total} within 0.005:\n{}",
        report.join("\n")
    );
}

#[test]
fn the_interpreter_and_the_jit_give_the_same_activation_scores() {
    let f = fixture("amm_activation");
    let data = Arc::new(AmmData::load().unwrap());
    for task in f["tasks"].as_array().unwrap().iter().take(4) {
        let fns = texts(task);
        let only: Vec<Value> = fns.iter().map(|(_, t)| t.clone()).collect();
        let a = ActivationExact::new(data.clone(), Backend::Jit).evaluate_values(&only);
        let b = ActivationExact::new(data.clone(), Backend::Interp).evaluate_values(&only);
        assert_eq!(a, b);
    }
}

#[test]
fn optimizer_tasks_score_as_amm_scores_them() {
    let f = fixture("amm_optimizer");
    for task in f["tasks"].as_array().unwrap() {
        if task["evaluations"].is_null() {
            continue; // an unregistered component type: nothing submitted (tests/mine.rs)
        }
        let fns = texts(task);
        let got: Vec<(i64, f64)> = fns
            .iter()
            .filter_map(|(id, t)| amm_optimizer_outcome(t).wire_score().map(|s| (*id, s)))
            .collect();
        assert_eq!(got, submitted(task));
    }
}
