//! A pool serving AMM's three component types (`ncpc pool serve --component-types
//! loss,activation,optimizer`): tasks take the types in turn, each from its own population;
//! a submission is checked as its task's type; and ncpc's miner scores activation and
//! optimizer evaluate tasks as AMM's client does.

use ncpc::component::ComponentKind;
use ncpc::identity::Identity;
use ncpc::pool::client::{ClientError, PoolClient};
use ncpc::pool::protocol::*;
use ncpc::pool::server::{DbLocation, RunningPool, ServerConfig, spawn_local};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

fn pool() -> RunningPool {
    spawn_local(ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        max_skew_seconds: 3600,
        rate_burst: 1000,
        rate_per_second: 1000.0,
        ip_rate_burst: 100_000,
        ip_rate_per_second: 100_000.0,
        audit_share: 0.0,
        // The test resets tasks on purpose.
        expired_lease_strikes: 1000,
        component_types: ComponentKind::ALL.to_vec(),
        ..ServerConfig::local(DbLocation::Memory)
    })
    .expect("pool starts")
}

fn client(p: &RunningPool, name: &str) -> PoolClient {
    let c = PoolClient::new(
        p.url(),
        Identity::from_secret(&format!("//{name}"), "test").unwrap(),
    )
    .unwrap();
    c.register().unwrap();
    c
}

fn metadata(parent: &Value) -> EvolutionMetadata {
    EvolutionMetadata {
        fitness: LenientF64(0.5),
        generations: 1,
        population_size: 2,
        parent_id: parent.clone(),
        genetic_code_length: 4,
        total_evaluations: 2,
        generation_stats: json!([]),
        extra: Default::default(),
    }
}

/// Request an evolve task of the next type and submit `program` for it.
fn evolve(c: &PoolClient, program: &str) -> (String, Result<Value, ClientError>) {
    let batch = c.request_task(TaskType::Evolve).unwrap();
    let parent = batch.functions[0].id.clone();
    let answer = c.submit_evolution(
        batch.batch_id.as_str().unwrap(),
        program.into(),
        vec![ParentRef { id: parent.clone() }],
        metadata(&parent),
    );
    (batch.component_type, answer)
}

#[test]
fn tasks_take_the_component_types_in_turn_and_submissions_are_checked_as_their_type() {
    let p = pool();
    let c = client(&p, "Alice");
    let mut seen = Vec::new();
    for _ in 0..3 {
        let batch = c.request_task(TaskType::Evaluate).unwrap();
        seen.push(batch.component_type.clone());
        assert!(!batch.functions.is_empty());
        c.reset_active().unwrap();
    }
    seen.sort();
    assert_eq!(seen, ["activation", "loss", "optimizer"]);

    // Round the types until each has had an evolve task; submit what fits its type.
    let tanh_renamed = "[[100,3,0],[100,2,1],[252,3,9],[453,9]]";
    let log_act = "[[100,1,0],[100,2,1],[9,1,9],[453,9]]";
    let mse = "[[100,1,0],[100,2,1],[2,1,2,3],[10,3,4],[201,4,-1,9],[453,9]]";
    for _ in 0..3 {
        let batch = c.request_task(TaskType::Evolve).unwrap();
        let parent = batch.functions[0].id.clone();
        let submit = |program: &str| {
            c.submit_evolution(
                batch.batch_id.as_str().unwrap(),
                program.into(),
                vec![ParentRef { id: parent.clone() }],
                metadata(&parent),
            )
        };
        match batch.component_type.as_str() {
            "activation" => {
                // A loss is not an activation: its result is a scalar.
                let err = submit(mse).unwrap_err();
                assert!(
                    matches!(&err, ClientError::Status { status: 422, .. }),
                    "{err}"
                );
                assert!(err.to_string().contains("activation"), "{err}");
                assert_eq!(submit(log_act).unwrap()["duplicate"], false);
            }
            "optimizer" => {
                assert_eq!(
                    submit("[[100,1,0],[100,2,1],[453,1]]").unwrap()["status"],
                    "accepted"
                );
            }
            "loss" => {
                let answer = submit(mse).unwrap();
                assert_eq!(answer["duplicate"], true, "MSE is a seed: {answer}");
            }
            other => panic!("component type {other}"),
        }
    }
    // The tanh seed with renamed registers is the tanh seed.
    let mut dup = None;
    for _ in 0..3 {
        let (kind, answer) = evolve(&c, tanh_renamed);
        if kind == "activation" {
            dup = Some(answer.unwrap());
        }
        c.reset_active().unwrap();
    }
    let dup = dup.expect("an activation task");
    assert_eq!(dup["duplicate"], true, "{dup}");
}

fn ncpc(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ncpc"));
    c.env("HOME", home).env("NCPC_DATA", home.join("data"));
    c
}

/// ncpc's miner takes the pool's evaluate tasks of every type (scoring as AMM does) and
/// gives back the activation and optimizer evolve tasks it does not take yet.
#[test]
fn the_miner_takes_evaluate_tasks_of_every_type() {
    let p = pool();
    let home = tempfile::tempdir().unwrap();
    let key = home.path().join("miner.key");
    std::fs::write(&key, "//Miner").unwrap();
    let out = ncpc(home.path())
        .args([
            "mine",
            "--pool-url",
            p.url(),
            "--cycles",
            "3",
            "--delay",
            "0",
        ])
        .args(["--task-type", "evaluate"])
        .args(["--seed-file", key.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let submitted = stdout.matches(": submitted ").count();
    assert_eq!(submitted, 3, "{stdout}");
    // The optimizer task's scores are AMM's: 0.0 for each function.
    assert!(stdout.contains("[0.0000]"), "{stdout}");
}
