//! `ncpc mine` as a process against real pools on loopback: solo mining with no flags, two
//! miners sharing an `ncpc` pool through evolve and evaluate cycles, and a miner killed in
//! the middle of a task whose lease then lets another miner have it.

use ncpc::identity::Identity;
use ncpc::pool::client::PoolClient;
use ncpc::pool::protocol::{Criteria, Evaluation, TaskBatch, TaskType};
use ncpc::pool::server::{RunningPool, ServerConfig, spawn_local};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Small evolutions so cycles are quick in debug builds.
const QUICK: &[&str] = &["--population", "16", "--generations", "2", "--delay", "0"];

fn ncpc(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ncpc"));
    c.env("HOME", home).env("NCPC_DATA", home.join("data"));
    c
}

fn pool(lease: Duration) -> RunningPool {
    spawn_local(ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        lease,
        evaluate_lease: lease,
        rate_burst: 1000,
        rate_per_second: 1000.0,
        ip_rate_burst: 100_000,
        ip_rate_per_second: 100_000.0,
        audit_share: 0.0,
        ..ServerConfig::default()
    })
    .unwrap()
}

fn key_file(dir: &Path, name: &str) -> String {
    let path = dir.join(format!("{name}.key"));
    std::fs::write(&path, format!("//{name}")).unwrap();
    path.to_str().unwrap().to_string()
}

fn client(p: &RunningPool, name: &str) -> PoolClient {
    PoolClient::new(
        p.url(),
        Identity::from_secret(&format!("//{name}"), "test").unwrap(),
    )
    .unwrap()
}

#[test]
fn solo_mining_needs_no_flags_and_makes_a_key() {
    let home = tempfile::tempdir().unwrap();
    let out = ncpc(home.path())
        .args(["mine", "--cycles", "2"])
        .args(QUICK)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("cycle 1: evolve batch") && stdout.contains("cycle 2: evolve batch"),
        "{stdout}"
    );
    assert!(stderr.contains("in-process pool"), "{stderr}");
    // The solo pool confirms each new function itself: a cycle whose function is new shows
    // its consensus, and the balance at the end is what those consensus events paid.
    let confirmed = stdout.matches("; consensus ").count();
    let balance: f64 = stderr
        .split("; balance ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|b| b.parse().ok())
        .unwrap_or_else(|| panic!("no final balance: {stderr}"));
    assert_eq!(confirmed > 0, balance > 0.0, "{stdout}\n{stderr}");
    let key = home.path().join(".ncpc/miner-key");
    assert!(key.exists(), "no key written");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // The mnemonic never reaches the terminal.
    let mnemonic = std::fs::read_to_string(&key).unwrap();
    assert!(!stderr.contains(mnemonic.trim()) && !stdout.contains(mnemonic.trim()));
}

#[test]
fn two_miners_complete_evolve_and_evaluate_cycles_on_one_pool() {
    let p = pool(Duration::from_secs(600));
    let home = tempfile::tempdir().unwrap();
    let miners: Vec<_> = ["Alice", "Bob"]
        .iter()
        .map(|name| {
            ncpc(home.path())
                .args([
                    "mine",
                    "--pool-url",
                    p.url(),
                    "--alternate",
                    "--cycles",
                    "4",
                ])
                .args(["--seed-file", &key_file(home.path(), name)])
                .args(QUICK)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (name, m) in ["Alice", "Bob"].iter().zip(miners) {
        let out = m.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(stdout.matches("cycle ").count(), 4, "{name}: {stdout}");
        assert!(stdout.contains(": evolve batch"), "{name}: {stdout}");
        assert!(stdout.contains(": evaluate batch"), "{name}: {stdout}");
        let info = client(&p, name).miner_info().unwrap();
        assert!(
            info["functions_evolved"].as_u64().unwrap()
                + info["evaluations_submitted"].as_u64().unwrap()
                > 0,
            "{info}"
        );
    }
}

#[test]
fn a_killed_miners_task_goes_to_another_after_its_lease() {
    let p = pool(Duration::from_secs(2));
    let home = tempfile::tempdir().unwrap();
    // Alice and Bob evaluate both seed functions; Charlie, a real miner process, takes the
    // third and last evaluation with a protocol slow enough to be killed mid-task.
    let (alice, bob, dave) = (client(&p, "Alice"), client(&p, "Bob"), client(&p, "Dave"));
    for c in [&alice, &bob, &dave] {
        c.register().unwrap();
    }
    let held: Vec<TaskBatch> = [&alice, &bob]
        .iter()
        .map(|c| {
            let batch = c.request_task(TaskType::Evaluate).unwrap();
            let evals = batch
                .functions
                .iter()
                .map(|f| Evaluation {
                    function_id: f.id.clone(),
                    score: 0.5,
                    criteria: Criteria {
                        accuracy: 0.5,
                        stability: 1.0,
                        efficiency: 1.0,
                    },
                })
                .collect();
            c.submit_evaluation(batch.batch_id.as_str().unwrap(), evals)
                .unwrap();
            batch
        })
        .collect();
    let mut charlie = ncpc(home.path())
        .args([
            "mine",
            "--pool-url",
            p.url(),
            "--task-type",
            "evaluate",
            "--cycles",
            "1",
        ])
        // ncpc's own scoring under a protocol that takes ages: Charlie holds the task until
        // he is killed (AMM-exact scoring would finish it in a blink).
        .args([
            "--scoring",
            "ncpc",
            "--protocol",
            "standard",
            "--steps",
            "1000000",
            "--seeds",
            "1",
        ])
        .args(["--seed-file", &key_file(home.path(), "Charlie")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let charlie_client = client(&p, "Charlie");
    let start = Instant::now();
    loop {
        let active = charlie_client
            .miner_info()
            .ok()
            .and_then(|i| (!i["active_task"].is_null()).then_some(()));
        if active.is_some() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "Charlie never took a task"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    charlie.kill().unwrap();
    charlie.wait().unwrap();
    // While Charlie's lease runs, the last evaluation is his.
    assert!(dave.request_task(TaskType::Evaluate).is_err());
    dave.reset_active().ok();
    std::thread::sleep(Duration::from_millis(2300));
    let reissued = dave
        .request_task(TaskType::Evaluate)
        .expect("the lease ended");
    let ids = |b: &TaskBatch| b.functions.iter().map(|f| f.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&reissued), ids(&held[0]));
}

/// A pool that answers every call with `{}` except task requests, which get `batch`.
fn fake_pool(batch: &'static str) -> String {
    fake_pool_logged(batch).0
}

/// Requests a fake pool received: (request line, body).
type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

/// [`fake_pool`], also keeping every request it received.
fn fake_pool_logged(batch: &'static str) -> (String, Received) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let log = Received::default();
    let seen = log.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let (mut first, mut len) = (String::new(), 0usize);
            let _ = reader.read_line(&mut first);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = Vec::new();
            let _ = reader.by_ref().take(len as u64).read_to_end(&mut body);
            seen.lock().unwrap().push((
                first.trim().to_string(),
                String::from_utf8_lossy(&body).into(),
            ));
            let body = if first.contains("/request") {
                batch
            } else {
                "{}"
            };
            let _ = write!(
                reader.get_mut(),
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, log)
}

#[test]
fn a_task_with_a_malformed_parent_is_refused_with_its_batch_named() {
    let url =
        fake_pool(r#"{"batch_id": "b-17", "functions": [{"id": 3, "function": "[[100, 1"}]}"#);
    let home = tempfile::tempdir().unwrap();
    let out = ncpc(home.path())
        .args(["mine", "--pool-url", &url, "--cycles", "1"])
        .args(["--seed-file", &key_file(home.path(), "Alice")])
        .args(QUICK)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("batch b-17: parent 3:"), "{err}");
}

/// The miner reports each cycle's progress as it goes: every generation of an evolve task
/// (up to the task's count) and every function of an evaluate task.
#[test]
fn a_miner_reports_progress_within_each_cycle() {
    use ncpc::evolve::engine::EvolveConfig;
    use ncpc::mine::{CycleProgress, Miner, MinerConfig};
    use ncpc::train::protocol::{Protocol, ProtocolName};
    use ncpc::train::run::{EvalOptions, Prepared};
    use std::sync::Mutex;
    use std::sync::atomic::AtomicBool;

    let p = pool(Duration::from_secs(60));
    let data = tempfile::tempdir().unwrap();
    let prepared = Prepared::load(
        Protocol::preset(ProtocolName::Amm),
        data.path(),
        false,
        EvalOptions::default(),
    )
    .unwrap();
    let c = client(&p, "Progress");
    let seen = Mutex::new(Vec::new());
    let record = |e: CycleProgress| seen.lock().unwrap().push(e);
    let miner = Miner {
        amm_exact: None,
        control: None,
        client: &c,
        prepared: &prepared,
        config: MinerConfig {
            task_type: TaskType::Evolve,
            alternate: true,
            cycles: 2,
            delay: Duration::ZERO,
            retries: 3,
            evolve: EvolveConfig {
                population: 8,
                generations: 3,
                ..EvolveConfig::default()
            },
        },
        progress: &record,
    };
    miner.register().unwrap();
    let done = miner
        .run(
            &AtomicBool::new(false),
            &mut |_, _| {},
            &mut |_, _, _| {},
            &mut |_| {},
        )
        .unwrap();
    assert_eq!(done, 2);
    let seen = seen.into_inner().unwrap();
    let generations: Vec<usize> = seen
        .iter()
        .filter_map(|e| match e {
            CycleProgress::Evolving {
                generation,
                generations: 3,
                ..
            } => Some(*generation),
            _ => None,
        })
        .collect();
    assert_eq!(generations, [1, 2, 3], "{seen:?}");
    let scored: Vec<(usize, usize)> = seen
        .iter()
        .filter_map(|e| match e {
            CycleProgress::Evaluating { done, total } => Some((*done, *total)),
            _ => None,
        })
        .collect();
    let total = scored.first().map(|s| s.1).unwrap_or(0);
    assert!(total >= 1, "{seen:?}");
    assert_eq!(scored, (0..=total).map(|d| (d, total)).collect::<Vec<_>>());
    assert!(seen.iter().all(|e| !e.describe().is_empty()));
}

/// As AMM's client does, a miner scores the task's parents and submits only a function that
/// beats the best of them: never a failed one. The cycle's line says why nothing was sent,
/// and the task is given back.
#[test]
fn an_evolve_task_with_nothing_better_than_its_parents_submits_nothing() {
    // The parent ignores y_pred: it cannot train, and neither can its few mutants.
    let url = fake_pool(
        r#"{"batch_id": "b-5", "functions": [{"id": 1, "function": [[100,1,0],[201,1,-1,9],[453,9]]}]}"#,
    );
    let home = tempfile::tempdir().unwrap();
    let out = ncpc(home.path())
        .args(["mine", "--pool-url", &url, "--cycles", "1", "--delay", "0"])
        .args(["--population", "2", "--generations", "1"])
        .args(["--seed-file", &key_file(home.path(), "Alice")])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("cycle 1: evolve batch b-5: nothing submitted: every candidate failed"),
        "{stdout}"
    );
}

/// A task of a component type the miner does not take is given back with a message; mining
/// goes on.
#[test]
fn a_task_of_another_component_type_is_released_not_failed() {
    for (batch, line) in [
        (
            r#"{"batch_id": "b-9", "component_type": "optimizer", "functions": [{"id": 1, "function": [[100,1,0],[453,1]]}]}"#,
            "batch b-9 released: optimizer evolve tasks are not taken",
        ),
        (
            r#"{"batch_id": "b-10", "component_type": "optimizer_function", "functions": [{"id": 1, "function": [[100,1,0],[453,1]]}]}"#,
            "batch b-10 released: unknown component type \"optimizer_function\"",
        ),
    ] {
        let url = fake_pool(batch);
        let home = tempfile::tempdir().unwrap();
        let out = ncpc(home.path())
            .args(["mine", "--pool-url", &url, "--cycles", "2", "--delay", "0"])
            .args(["--task-type", "evolve"])
            .args(["--seed-file", &key_file(home.path(), "Alice")])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(stdout.matches(line).count(), 2, "{stdout}");
    }
}

/// Activation and optimizer evaluate tasks are scored as AMM's client scores them: AMM's own
/// activation library (relu, sigmoid, identity) computes zero once AMM's validator has
/// rewritten it and scores 0.115 in a fresh task (tests/reference/amm_activation); every
/// optimizer function scores 0.0 with all criteria 0 (AMM's strategy raises).
#[test]
fn activation_and_optimizer_evaluate_tasks_are_scored_as_amm_scores_them() {
    for (batch, want) in [
        (
            r#"{"batch_id": "a-1", "component_type": "activation", "functions": [
                {"id": 1, "function": [[100,1,0],[101,2,0.0],[300,1,2,3],[453,3]]},
                {"id": 2, "function": [[100,1,0],[11,1,2],[8,2,3],[101,4,1.0],[1,4,3,5],[4,4,5,6],[453,6]]},
                {"id": 3, "function": [[100,1,0],[453,1]]}]}"#,
            [(0.115, 1.0), (0.115, 1.0), (0.115, 1.0)],
        ),
        (
            r#"{"batch_id": "o-1", "component_type": "optimizer", "functions": [
                {"id": 1, "function": [[100,1,0],[100,2,1],[100,3,2],[4,4,3,2],[2,5,1,4],[453,5]]},
                {"id": 2, "function": [[100,1,0],[453,1]]},
                {"id": 3, "function": [["x"]]}]}"#,
            [(0.0, 0.0), (0.0, 0.0), (0.0, 0.0)],
        ),
    ] {
        let (url, log) = fake_pool_logged(batch);
        let home = tempfile::tempdir().unwrap();
        let out = ncpc(home.path())
            .args(["mine", "--pool-url", &url, "--cycles", "1", "--delay", "0"])
            .args(["--task-type", "evaluate"])
            .args(["--seed-file", &key_file(home.path(), "Alice")])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let log = log.lock().unwrap();
        let (_, body) = log
            .iter()
            .find(|(line, _)| line.contains("/submit"))
            .unwrap_or_else(|| panic!("nothing submitted: {log:?}"));
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        let got: Vec<(f64, f64)> = body["evaluations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["score"].as_f64().unwrap(),
                    e["criteria"]["stability"].as_f64().unwrap(),
                )
            })
            .collect();
        assert_eq!(got, want, "{body}");
    }
}

/// An activation evolve task: the parents and every candidate are scored as AMM scores an
/// activation in a fresh task; the best is submitted only if it beats the best parent.
#[test]
fn an_activation_evolve_task_is_searched_and_judged_against_its_parents() {
    let (url, log) = fake_pool_logged(
        r#"{"batch_id": "e-1", "component_type": "activation_function", "functions": [
            {"id": 1, "function": [[100,1,0],[101,2,0.0],[300,1,2,3],[453,3]]},
            {"id": 2, "function": [[100,1,0],[100,2,1],[252,1,9],[453,9]]}]}"#,
    );
    let home = tempfile::tempdir().unwrap();
    let out = ncpc(home.path())
        .args(["mine", "--pool-url", &url, "--cycles", "1", "--delay", "0"])
        .args([
            "--task-type",
            "evolve",
            "--population",
            "4",
            "--generations",
            "2",
        ])
        .args(["--seed-file", &key_file(home.path(), "Alice")])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("cycle 1: evolve batch e-1"))
        .unwrap_or_else(|| panic!("{stdout}"));
    let submitted = log
        .lock()
        .unwrap()
        .iter()
        .find(|(l, _)| l.contains("/submit_evolution"))
        .map(|(_, b)| serde_json::from_str::<serde_json::Value>(b).unwrap());
    match submitted {
        // tanh scores 0.81 as the first function of a fresh task (tests/reference/amm_activation):
        // a submission must beat it.
        Some(body) => {
            let fitness = body["metadata"]["fitness"].as_f64().unwrap();
            assert!(fitness > 0.81, "{body}");
            assert!(line.contains("submitted fitness"), "{line}");
        }
        None => assert!(
            line.contains("does not beat the best parent (0.8100)"),
            "{line}"
        ),
    }
}
