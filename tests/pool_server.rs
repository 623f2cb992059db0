//! The pool server over real loopback sockets: ncpc's own PoolClient (what miners use) and raw
//! HTTP for the refusals, against `spawn_local` servers and the `ncpc pool serve` binary.
//!
//! The tests that exercise the database run twice: `sqlite::NAME` always, `postgres::NAME`
//! on a fresh Postgres database when `NCPC_TEST_POSTGRES` holds an admin URL (e.g.
//! `postgres://postgres:ncpc@127.0.0.1/postgres`), skipped with a message otherwise.

mod pg_support;

use pg_support::on_postgres;

use ncpc::identity::Identity;
use ncpc::pool::client::{ClientError, PoolClient};
use ncpc::pool::protocol::*;
use ncpc::pool::server::store::{Counts, Store};
use ncpc::pool::server::{DbLocation, RunningPool, ServerConfig, spawn_local};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Mean absolute error: a valid program the seeds do not contain.
const MAE: &str = "[[100,1,0],[100,2,1],[2,1,2,3],[9,3,4],[201,4,-1,9],[453,9]]";
/// The MSE seed with other register numbers: the same function.
const MSE_RENAMED: &str = "[[100,5,0],[100,6,1],[2,5,6,7],[10,7,8],[201,8,-1,9],[453,9]]";

/// Auth timestamps for tests: strictly increasing across the whole test binary (so two calls
/// to one endpoint never sign the same message), starting well inside the wide skew window the
/// test servers allow.
fn clock() -> i64 {
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        - 3000;
    let mut prev = LAST.load(Ordering::SeqCst);
    loop {
        let next = now.max(prev + 1);
        match LAST.compare_exchange(prev, next, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => return next,
            Err(p) => prev = p,
        }
    }
}

fn config(db: &DbLocation) -> ServerConfig {
    ServerConfig {
        max_skew_seconds: 3600,
        rate_burst: 1000,
        rate_per_second: 1000.0,
        // Every test client is on 127.0.0.1; tests/pool_attacks.rs covers the per-IP limits.
        ip_rate_burst: 100_000,
        ip_rate_per_second: 100_000.0,
        // Evaluate tasks are first evaluations unless nothing needs one (random audits are
        // tested in tests/pool_attacks.rs).
        audit_share: 0.0,
        ..ServerConfig::local(db.clone())
    }
}

fn pool(db: &DbLocation) -> RunningPool {
    spawn_local(config(db)).expect("pool starts")
}

fn id(name: &str) -> Identity {
    Identity::from_secret(&format!("//{name}"), "test").unwrap()
}

fn client(p: &RunningPool, name: &str) -> PoolClient {
    PoolClient::new(p.url(), id(name))
        .unwrap()
        .with_clock(clock)
}

fn registered(p: &RunningPool, name: &str) -> PoolClient {
    let c = client(p, name);
    c.register().expect("register");
    c
}

fn counts(db: &DbLocation) -> Counts {
    Store::open(db).unwrap().counts().unwrap()
}

fn balance(c: &PoolClient) -> f64 {
    c.balance().unwrap()["balance"].as_f64().unwrap()
}

fn metadata(parent: &Value) -> EvolutionMetadata {
    EvolutionMetadata {
        fitness: LenientF64(0.5),
        generations: 3,
        population_size: 8,
        parent_id: parent.clone(),
        genetic_code_length: 6,
        total_evaluations: 24,
        generation_stats: json!([]),
        extra: Default::default(),
    }
}

/// Request an evolve task and submit `program` for it.
fn evolve(c: &PoolClient, program: &str) -> Result<Value, ClientError> {
    let batch = c.request_task(TaskType::Evolve)?;
    let parent = batch.functions[0].id.clone();
    c.submit_evolution(
        batch.batch_id.as_str().unwrap(),
        program.into(),
        vec![ParentRef { id: parent.clone() }],
        metadata(&parent),
    )
}

fn evaluation(function_id: &Value, score: f64) -> Evaluation {
    Evaluation {
        function_id: function_id.clone(),
        score,
        criteria: Criteria {
            accuracy: score,
            stability: 1.0,
            efficiency: 1.0,
        },
    }
}

/// POST `body` to `path` (under /api/v1) as AMM does (auth fields in the body only), without
/// the client's checks: (status, JSON answer).
fn post(p: &RunningPool, path: &str, body: &Value) -> (u16, Value) {
    post_raw(p, path, &serde_json::to_vec(body).unwrap(), &[])
}

/// POST `body` bytes with extra `headers`.
fn post_raw(p: &RunningPool, path: &str, body: &[u8], headers: &[(&str, String)]) -> (u16, Value) {
    let mut req = reqwest::blocking::Client::new()
        .post(format!("{}{API_PREFIX}{path}", p.url()))
        .header("content-type", "application/json");
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    let resp = req.body(body.to_vec()).send().unwrap();
    let status = resp.status().as_u16();
    (status, serde_json::from_str(&resp.text().unwrap()).unwrap())
}

fn get(p: &RunningPool, path: &str) -> (u16, Value) {
    let resp = reqwest::blocking::get(format!("{}{API_PREFIX}{path}", p.url())).unwrap();
    let status = resp.status().as_u16();
    (status, serde_json::from_str(&resp.text().unwrap()).unwrap())
}

fn status_of(e: ClientError) -> u16 {
    match e {
        ClientError::Status { status, .. } => status,
        ClientError::ActiveTask { .. } => 400,
        other => panic!("expected a status, got {other}"),
    }
}

fn register_info_and_balance(db: &DbLocation) {
    let p = pool(db);
    let c = client(&p, "Alice");
    let first = c.register().unwrap();
    assert_eq!(first["already_registered"], false);
    assert_eq!(first["public_address"], c.address());
    assert_eq!(c.register().unwrap()["already_registered"], true);
    let info = c.miner_info().unwrap();
    assert_eq!(info["public_address"], c.address());
    assert_eq!(info["balance"], 0.0);
    assert_eq!(info["active_task"], Value::Null);
    assert_eq!(balance(&c), 0.0);
    let stranger = client(&p, "Bob");
    assert_eq!(status_of(stranger.miner_info().unwrap_err()), 404);
    assert_eq!(status_of(stranger.balance().unwrap_err()), 404);
    assert_eq!(
        status_of(stranger.request_task(TaskType::Evolve).unwrap_err()),
        403,
        "an unregistered miner gets no task"
    );
}

fn evolve_cycle_credits_new_functions_and_not_duplicates(db: &DbLocation) {
    let p = pool(db);
    let c = registered(&p, "Alice");
    let batch = c.request_task(TaskType::Evolve).unwrap();
    assert_eq!(batch.component_type, "loss");
    assert_eq!(batch.functions.len(), 2, "the two seeds are the parents");
    for f in &batch.functions {
        f.program().expect("parents are AMM programs");
    }
    let parent = batch.functions[0].id.clone();
    let batch_id = batch.batch_id.as_str().unwrap().to_string();
    let answer = c
        .submit_evolution(
            &batch_id,
            MAE.into(),
            vec![ParentRef { id: parent.clone() }],
            metadata(&parent),
        )
        .unwrap();
    assert_eq!(answer["status"], "accepted");
    assert_eq!(answer["duplicate"], false);
    assert_eq!(answer["credited"], 0.0, "nothing is paid before consensus");
    assert_eq!(balance(&c), 0.0);
    // The same batch cannot be submitted twice.
    let again = c
        .submit_evolution(
            &batch_id,
            MAE.into(),
            vec![ParentRef { id: parent.clone() }],
            metadata(&parent),
        )
        .unwrap_err();
    assert_eq!(status_of(again), 409);
    // MSE with renamed registers is the MSE seed: accepted, not credited, and said so.
    let dup = evolve(&c, MSE_RENAMED).unwrap();
    assert_eq!(dup["duplicate"], true);
    assert_eq!(dup["credited"], 0.0);
    assert!(dup["message"].as_str().unwrap().contains("duplicate"));
    assert_eq!(balance(&c), 0.0);
    assert_eq!(c.miner_info().unwrap()["functions_evolved"], 1);
}

fn evaluate_cycle_outvotes_a_liar(db: &DbLocation) {
    let p = pool(db);
    let evolver = registered(&p, "Eve");
    let new = evolve(&evolver, MAE).unwrap();
    let new_id = new["function_id"].clone();
    assert_eq!(balance(&evolver), 0.0, "nothing is paid before consensus");
    // Honest evaluators agree within 10%; the liar reports 0 for everything.
    let honest = |f: &Value, jitter: f64| -> f64 {
        let base = if *f == new_id { 0.80 } else { 0.70 };
        base + jitter
    };
    let mut consensus = Vec::new();
    for (name, jitter, liar) in [
        ("Alice", 0.0, false),
        ("Bob", 0.01, false),
        ("Mallory", 0.0, true),
    ] {
        let c = registered(&p, name);
        let batch = c.request_task(TaskType::Evaluate).unwrap();
        assert_eq!(batch.functions.len(), 3, "two seeds and Eve's function");
        let evals: Vec<Evaluation> = batch
            .functions
            .iter()
            .map(|f| evaluation(&f.id, if liar { 0.0 } else { honest(&f.id, jitter) }))
            .collect();
        let answer = c
            .submit_evaluation(batch.batch_id.as_str().unwrap(), evals)
            .unwrap();
        assert_eq!(answer["status"], "accepted");
        assert_eq!(answer["evaluations_stored"], 3);
        consensus = answer["consensus"].as_array().unwrap().clone();
    }
    assert_eq!(consensus.len(), 3, "the third evaluation forms consensus");
    let score_of_new = consensus
        .iter()
        .find(|c| c["function_id"] == new_id)
        .unwrap()["score"]
        .as_f64()
        .unwrap();
    assert!(
        (score_of_new - 0.80).abs() < 1e-9,
        "median, not the liar: {score_of_new}"
    );
    let alice = client(&p, "Alice");
    let bob = client(&p, "Bob");
    let mallory = client(&p, "Mallory");
    assert_eq!(balance(&alice), 3.0);
    assert_eq!(balance(&bob), 3.0);
    assert_eq!(balance(&mallory), 0.0, "the liar earns nothing");
    // Eve: 1 for a confirmed function (in the top 10), 5 for scoring at least the median,
    // 10 for the new best.
    assert_eq!(balance(&evolver), 16.0);
    let (status, board) = get(&p, "/leaderboard");
    assert_eq!(status, 200);
    assert_eq!(board["functions"][0]["function_id"], new_id);
    // The whole population, a page at a time.
    let (status, page) = get(&p, "/functions?limit=2");
    assert_eq!(status, 200);
    assert_eq!(page["functions"].as_array().unwrap().len(), 2);
    let next = page["next_after"].as_i64().unwrap();
    let (_, rest) = get(&p, &format!("/functions?after={next}"));
    assert_eq!(rest["functions"][0]["function_id"], new_id);
    assert_eq!(rest["functions"][0]["evolver"], evolver.address());
    assert!((rest["functions"][0]["consensus_score"].as_f64().unwrap() - 0.80).abs() < 1e-9);
    assert_eq!(rest["next_after"], Value::Null);
    assert_eq!(board["miners"][0]["public_address"], evolver.address());
    // Nothing needs a first evaluation any more: a late evaluator audits, best consensus
    // first; audits are recorded, not paid, and the consensus stays as formed.
    let late = registered(&p, "Dave");
    let batch = late.request_task(TaskType::Evaluate).unwrap();
    assert_eq!(batch.functions.len(), 3);
    assert_eq!(
        batch.functions[0].id, new_id,
        "the best function is audited first"
    );
    let evals: Vec<Evaluation> = batch
        .functions
        .iter()
        .map(|f| evaluation(&f.id, if f.id == new_id { 0.2 } else { 0.71 }))
        .collect();
    let answer = late
        .submit_evaluation(batch.batch_id.as_str().unwrap(), evals)
        .unwrap();
    assert_eq!(answer["consensus"].as_array().unwrap().len(), 0);
    assert_eq!(balance(&late), 0.0, "audits are not paid");
    let (_, board) = get(&p, "/leaderboard");
    assert_eq!(board["functions"][0]["function_id"], new_id);
    assert!((board["functions"][0]["score"].as_f64().unwrap() - 0.80).abs() < 1e-9);
    // Dave has evaluated everything: nothing is left for him.
    assert_eq!(
        status_of(late.request_task(TaskType::Evaluate).unwrap_err()),
        404
    );
    // The evolver audits only the functions it did not evolve.
    let batch = evolver.request_task(TaskType::Evaluate).unwrap();
    assert_eq!(batch.functions.len(), 2);
    assert!(batch.functions.iter().all(|f| f.id != new_id));
}

fn evaluations_outside_the_batch_are_refused_and_nothing_is_stored(db: &DbLocation) {
    let p = pool(db);
    let c = registered(&p, "Alice");
    let batch = c.request_task(TaskType::Evaluate).unwrap();
    let batch_id = batch.batch_id.as_str().unwrap();
    let stranger = vec![
        evaluation(&batch.functions[0].id, 0.5),
        evaluation(&json!(999), 0.5),
    ];
    assert_eq!(
        status_of(c.submit_evaluation(batch_id, stranger).unwrap_err()),
        422
    );
    let twice = vec![
        evaluation(&batch.functions[0].id, 0.5),
        evaluation(&batch.functions[0].id, 0.6),
    ];
    assert_eq!(
        status_of(c.submit_evaluation(batch_id, twice).unwrap_err()),
        422
    );
    assert_eq!(counts(db).evaluations, 0);
    // The task is still live: a correct submission is accepted.
    let ok = vec![evaluation(&batch.functions[0].id, 0.5)];
    c.submit_evaluation(batch_id, ok).unwrap();
    assert_eq!(counts(db).evaluations, 1);
}

fn an_active_task_answers_400_until_reset(db: &DbLocation) {
    let p = pool(db);
    let c = registered(&p, "Alice");
    let first = c.request_task(TaskType::Evolve).unwrap();
    let err = c.request_task(TaskType::Evaluate).unwrap_err();
    assert!(matches!(err, ClientError::ActiveTask { .. }), "{err}");
    // What AMM reads: a 400 whose detail contains "already has active task".
    let (status, body) = post(
        &p,
        &format!("/tasks/{}/request", c.address()),
        &signed(&id("Alice"), json!({ "task_type": "evolve" })),
    );
    assert_eq!(status, 400);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("already has active task")
    );
    let info = c.miner_info().unwrap();
    assert_eq!(info["active_task"]["batch_id"], first.batch_id);
    assert_eq!(c.reset_active().unwrap()["reset"], 1);
    c.request_task(TaskType::Evolve)
        .expect("a task after the reset");
    // The reset task can no longer be submitted.
    let parent = first.functions[0].id.clone();
    let late = c
        .submit_evolution(
            first.batch_id.as_str().unwrap(),
            MAE.into(),
            vec![ParentRef { id: parent.clone() }],
            metadata(&parent),
        )
        .unwrap_err();
    assert_eq!(status_of(late), 409);
}

/// `extra` (an object) with fresh auth fields of `who` added.
fn signed(who: &Identity, extra: Value) -> Value {
    let mut body = serde_json::to_value(Auth::sign(who, clock())).unwrap();
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    body
}

fn an_expired_lease_is_reissued(db: &DbLocation) {
    let p = spawn_local(ServerConfig {
        // Long enough that the four requests below fit in it on a loaded machine.
        evaluate_lease: Duration::from_secs(2),
        ..config(db)
    })
    .unwrap();
    let miners: Vec<PoolClient> = ["Alice", "Bob", "Charlie", "Dave"]
        .iter()
        .map(|n| registered(&p, n))
        .collect();
    // Three evaluators hold both seeds; a fourth finds nothing to evaluate.
    let held: Vec<TaskBatch> = miners[..3]
        .iter()
        .map(|c| c.request_task(TaskType::Evaluate).unwrap())
        .collect();
    assert_eq!(
        status_of(miners[3].request_task(TaskType::Evaluate).unwrap_err()),
        404
    );
    std::thread::sleep(Duration::from_millis(2300));
    // The leases ended: the functions go to the fourth miner.
    let reissued = miners[3].request_task(TaskType::Evaluate).unwrap();
    let ids = |b: &TaskBatch| b.functions.iter().map(|f| f.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&reissued), ids(&held[0]));
    // A submission after the lease ended is refused; the late miner may request again at once.
    let late = vec![evaluation(&held[0].functions[0].id, 0.5)];
    let err = miners[0]
        .submit_evaluation(held[0].batch_id.as_str().unwrap(), late)
        .unwrap_err();
    assert_eq!(status_of(err), 409);
    miners[0]
        .request_task(TaskType::Evolve)
        .expect("no active task after expiry");
}

fn refusals_answer_the_right_status_and_store_nothing(db: &DbLocation) {
    let p = pool(db);
    let alice = id("Alice");
    let bob = id("Bob");
    let c = registered(&p, "Alice");
    let before = counts(db);
    let request = format!("/tasks/{}/request", alice.ss58());

    // Forged signature: Alice's address, signed by Bob.
    let mut forged = Auth::sign(&bob, clock());
    forged.public_address = alice.ss58();
    let mut body = serde_json::to_value(&forged).unwrap();
    body["task_type"] = json!("evolve");
    let (status, answer) = post(&p, &request, &body);
    assert_eq!(status, 401, "{answer}");
    assert!(answer["detail"].as_str().unwrap().contains("signature"));
    // A timestamp outside the skew window.
    let stale = serde_json::to_value(Auth::sign(&alice, clock() - 7200)).unwrap();
    assert_eq!(post(&p, "/miners/register", &stale).0, 401);
    // Wrong key: Bob signs a request for Alice's path.
    let (status, _) = post(
        &p,
        &request,
        &signed(&bob, json!({ "task_type": "evolve" })),
    );
    assert_eq!(status, 403);
    assert_eq!(counts(db), before, "nothing stored after the refusals");

    // Replay: the same signed body twice; the second is refused, not served.
    let body = signed(&alice, json!({ "task_type": "evolve" }));
    let (status, batch) = post(&p, &request, &body);
    assert_eq!(status, 200);
    let (status, answer) = post(&p, &request, &body);
    assert_eq!(status, 409, "{answer}");
    assert_eq!(counts(db).tasks, before.tasks + 1);

    // A malformed genome: 422, nothing stored, and the task stays open.
    let batch_id = batch["batch_id"].as_str().unwrap();
    let parent = batch["functions"][0]["id"].clone();
    let submit = |program: &str| {
        c.submit_evolution(
            batch_id,
            program.into(),
            vec![ParentRef { id: parent.clone() }],
            metadata(&parent),
        )
    };
    for bad in ["[[999, 1, 2]]", "not json", "[]", "[[100,1,0],[453,7]]"] {
        assert_eq!(status_of(submit(bad).unwrap_err()), 422, "{bad}");
    }
    let after = counts(db);
    assert_eq!((after.functions, after.evolutions), (before.functions, 0));
    assert_eq!(after.ledger_entries, 0);
    submit(MAE).expect("the task is still open");
    assert_eq!(counts(db).functions, before.functions + 1);

    // An oversized body: 413.
    let (status, _) = post(
        &p,
        "/miners/register",
        &signed(&bob, json!({ "padding": "x".repeat(2 << 20) })),
    );
    assert_eq!(status, 413);
    assert_eq!(counts(db).miners, before.miners, "Bob was not registered");
}

#[test]
fn a_key_over_its_rate_limit_gets_429() {
    let p = spawn_local(ServerConfig {
        rate_burst: 3,
        rate_per_second: 0.01,
        ..config(&DbLocation::Memory)
    })
    .unwrap();
    let c = client(&p, "Alice");
    c.register().unwrap();
    c.reset_active().unwrap();
    c.request_task(TaskType::Evolve).unwrap();
    assert_eq!(status_of(c.reset_active().unwrap_err()), 429);
    // Another key has its own budget.
    registered(&p, "Bob");
}

fn a_restart_on_the_same_database_keeps_submissions_and_balances(db: &DbLocation) {
    let p = pool(db);
    let c = registered(&p, "Alice");
    let answer = evolve(&c, MAE).unwrap();
    let open = c.request_task(TaskType::Evolve).unwrap();
    let before = counts(db);
    drop(p);

    let p = pool(db);
    let c = client(&p, "Alice");
    assert_eq!(counts(db), before, "the seeds are not added twice");
    assert_eq!(balance(&c), 0.0, "nothing is paid before consensus");
    let info = c.miner_info().unwrap();
    assert_eq!(info["functions_evolved"], 1);
    assert_eq!(
        info["active_task"]["batch_id"], open.batch_id,
        "leases survive too"
    );
    c.reset_active().unwrap();
    let dup = evolve(&c, MAE).unwrap();
    assert_eq!(dup["duplicate"], true);
    assert_eq!(dup["function_id"], answer["function_id"]);
}

#[test]
fn the_openapi_document_lists_every_endpoint() {
    let p = pool(&DbLocation::Memory);
    let (status, doc) = get(&p, "/openapi.json");
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/miners/register",
        "/miners/{ss58}",
        "/miners/{ss58}/balance",
        "/tasks/{ss58}/request",
        "/tasks/{ss58}/reset_active",
        "/tasks/{ss58}/{batch_id}/submit_evolution",
        "/tasks/{ss58}/{batch_id}/submit_evaluation",
        "/leaderboard",
        "/functions",
        "/functions/{id}",
        "/stats",
        "/miners",
        "/openapi.json",
    ] {
        assert!(
            doc["paths"][format!("{API_PREFIX}{path}")].is_object(),
            "{path}"
        );
    }
    let (status, body) = get(&p, "/no/such/thing");
    assert_eq!((status, body["detail"].as_str()), (404, Some("Not Found")));
}

/// A `ncpc pool serve` process, SIGKILLed when dropped.
struct Served(std::process::Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `db` as `--db` takes it.
fn db_flag(db: &DbLocation) -> String {
    match db {
        DbLocation::Memory => "sqlite::memory:".into(),
        DbLocation::Sqlite(p) => p.display().to_string(),
        DbLocation::Postgres(url) => url.clone(),
    }
}

/// Start the binary on `addr` with database `db`, and wait until it answers.
fn serve_binary(addr: &str, db: &DbLocation) -> Served {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_ncpc"))
        .args([
            "pool",
            "serve",
            "--listen",
            addr,
            "--max-skew-seconds",
            "3600",
            "--db",
        ])
        .arg(db_flag(db))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("ncpc starts");
    let served = Served(child);
    let url = format!("http://{addr}{API_PREFIX}/leaderboard");
    for _ in 0..200 {
        if reqwest::blocking::get(&url).is_ok_and(|r| r.status().is_success()) {
            return served;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("ncpc pool serve did not answer on {addr} within 10 s");
}

fn the_served_binary_loses_no_accepted_submission_to_sigkill(db: &DbLocation) {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let url = format!("http://{addr}");
    let miner = |name: &str| PoolClient::new(&url, id(name)).unwrap().with_clock(clock);
    let mut server = serve_binary(&addr, db);
    let (alice, bob) = (miner("Alice"), miner("Bob"));
    alice.register().unwrap();
    bob.register().unwrap();
    let evolved = evolve(&alice, MAE).unwrap();
    let batch = bob.request_task(TaskType::Evaluate).unwrap();
    let evals: Vec<Evaluation> = batch
        .functions
        .iter()
        .map(|f| evaluation(&f.id, 0.5))
        .collect();
    let n = evals.len();
    bob.submit_evaluation(batch.batch_id.as_str().unwrap(), evals)
        .unwrap();
    // SIGKILL straight after the answers: no graceful shutdown, no chance to flush.
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    drop(server);

    let _server = serve_binary(&addr, db);
    assert_eq!(balance(&alice), 0.0, "nothing is paid before consensus");
    assert_eq!(alice.miner_info().unwrap()["functions_evolved"], 1);
    assert_eq!(bob.miner_info().unwrap()["evaluations_submitted"], n as u64);
    let again = evolve(&alice, MAE).unwrap();
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["function_id"], evolved["function_id"]);
}

fn amm_body_only_auth_completes_a_cycle(db: &DbLocation) {
    let p = pool(db);
    let alice = id("Alice");
    let a = alice.ss58();
    let (status, _) = post(&p, "/miners/register", &signed(&alice, json!({})));
    assert_eq!(status, 200);
    // AMM signs reset_active and request in the same second: both pass.
    let now = clock();
    let amm = |extra: Value| {
        let mut body = serde_json::to_value(Auth::sign(&alice, now)).unwrap();
        if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
            b.extend(e);
        }
        body
    };
    assert_eq!(
        post(&p, &format!("/tasks/{a}/reset_active"), &amm(json!({}))).0,
        200
    );
    let (status, batch) = post(
        &p,
        &format!("/tasks/{a}/request"),
        &amm(json!({ "task_type": "evolve" })),
    );
    assert_eq!(status, 200, "{batch}");
    let parent = batch["functions"][0].clone();
    let submission = |auth: Value| {
        let mut body = json!({
            "evolved_function": serde_json::to_string(&serde_json::from_str::<Value>(MAE).unwrap()).unwrap(),
            "parent_functions": [parent],
            "metadata": {
                "fitness": "NaN", "generations": 1, "population_size": 4,
                "parent_id": parent["id"], "genetic_code_length": 6,
                "total_evaluations": 4, "generation_stats": [{"best": "-Infinity"}]
            }
        });
        if let (Value::Object(b), Value::Object(e)) = (&mut body, auth) {
            b.extend(e);
        }
        body
    };
    let path = format!(
        "/tasks/{a}/{}/submit_evolution",
        batch["batch_id"].as_str().unwrap()
    );
    // A submission never shares its message with another call (it could be a replay of the
    // request's auth by someone else): 409, and AMM's client runs the cycle again.
    let (status, _) = post(&p, &path, &submission(amm(json!({}))));
    assert_eq!(status, 409);
    let fresh = serde_json::to_value(Auth::sign(&alice, clock())).unwrap();
    let (status, answer) = post(&p, &path, &submission(fresh));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["duplicate"], false);
    let (status, info) = get(&p, &format!("/miners/{a}/balance"));
    assert_eq!((status, info["balance"].as_f64()), (200, Some(0.0)));
}

/// A moment fixed for the whole test binary (inside the test servers' skew window).
fn frozen() -> i64 {
    static T: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *T.get_or_init(clock)
}

#[test]
fn signed_headers_bind_the_body_and_refuse_replays() {
    let p = pool(&DbLocation::Memory);
    let alice = id("Alice");
    let a = alice.ss58();
    // ncpc's client signs headers with a fresh nonce: the same call twice in the same second
    // (here: with a frozen clock) is not a replay.
    let c = PoolClient::new(p.url(), alice.clone())
        .unwrap()
        .with_clock(frozen);
    c.register().unwrap();
    c.reset_active().unwrap();
    c.reset_active().unwrap();

    let path = format!("{API_PREFIX}/tasks/{a}/request");
    let body = serde_json::to_vec(&signed(&alice, json!({ "task_type": "evolve" }))).unwrap();
    let headers = |h: &ncpc::pool::headers::SignedHeaders| {
        h.pairs().into_iter().collect::<Vec<(&str, String)>>()
    };
    // A body other than the one signed: 401, nothing issued.
    let h = ncpc::pool::headers::SignedHeaders::sign(&alice, "POST", &path, &body, clock());
    let other = serde_json::to_vec(&signed(&alice, json!({ "task_type": "evaluate" }))).unwrap();
    let (status, answer) = post_raw(&p, &format!("/tasks/{a}/request"), &other, &headers(&h));
    assert_eq!(status, 401, "{answer}");
    // Signed for another path: 401.
    let elsewhere =
        ncpc::pool::headers::SignedHeaders::sign(&alice, "POST", "/api/v1/x", &body, clock());
    assert_eq!(
        post_raw(
            &p,
            &format!("/tasks/{a}/request"),
            &body,
            &headers(&elsewhere)
        )
        .0,
        401
    );
    // Signed by Bob for Alice's path: 403.
    let bob = ncpc::pool::headers::SignedHeaders::sign(&id("Bob"), "POST", &path, &body, clock());
    assert_eq!(
        post_raw(&p, &format!("/tasks/{a}/request"), &body, &headers(&bob)).0,
        403
    );
    // The right body: 200; the same headers again: 409; the body alone (AMM scheme): 409, its
    // auth fields were spent by the signed request.
    let (status, answer) = post_raw(&p, &format!("/tasks/{a}/request"), &body, &headers(&h));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        post_raw(&p, &format!("/tasks/{a}/request"), &body, &headers(&h)).0,
        409
    );
    assert_eq!(
        post_raw(&p, &format!("/tasks/{a}/request"), &body, &[]).0,
        409
    );
}

#[test]
fn a_pool_may_require_signed_headers() {
    let p = spawn_local(ServerConfig {
        require_signed_headers: true,
        ..config(&DbLocation::Memory)
    })
    .unwrap();
    let (status, answer) = post(&p, "/miners/register", &signed(&id("Alice"), json!({})));
    assert_eq!(status, 401);
    assert!(
        answer["detail"]
            .as_str()
            .unwrap()
            .contains("signed headers")
    );
    registered(&p, "Alice");
}

#[test]
fn a_body_sent_too_slowly_times_out_with_408() {
    use std::io::{Read, Write};
    let p = spawn_local(ServerConfig {
        request_timeout: Duration::from_millis(300),
        ..config(&DbLocation::Memory)
    })
    .unwrap();
    let mut s = std::net::TcpStream::connect(p.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "POST {API_PREFIX}/miners/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"public"
    );
    s.write_all(head.as_bytes()).unwrap();
    let mut buf = [0u8; 512];
    let n = s
        .read(&mut buf)
        .expect("an answer before the client's own timeout");
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

fn a_miner_evaluates_each_function_once_and_never_its_own(db: &DbLocation) {
    let p = pool(db);
    let eve = registered(&p, "Eve");
    let evolved = evolve(&eve, MAE).unwrap()["function_id"].clone();
    let ids = |b: &TaskBatch| b.functions.iter().map(|f| f.id.clone()).collect::<Vec<_>>();
    // The seeds only: an evolver never evaluates its own function.
    let first = eve.request_task(TaskType::Evaluate).unwrap();
    assert_eq!(ids(&first), vec![json!(1), json!(2)]);
    let evals = first
        .functions
        .iter()
        .map(|f| evaluation(&f.id, 0.5))
        .collect();
    eve.submit_evaluation(first.batch_id.as_str().unwrap(), evals)
        .unwrap();
    // Never her own function, never the seeds again: nothing is left for her.
    let _ = evolved;
    assert_eq!(
        status_of(eve.request_task(TaskType::Evaluate).unwrap_err()),
        404
    );
    // Another miner still gets all three.
    let bob = registered(&p, "Bob");
    assert_eq!(
        bob.request_task(TaskType::Evaluate)
            .unwrap()
            .functions
            .len(),
        3
    );
}

/// Each name is a test body taking the database: run it as `sqlite::NAME` (in memory, or in a
/// fresh file for `file`) and as `postgres::NAME` (on a fresh Postgres database).
macro_rules! on_both_backends {
    (memory: [$($m:ident),* $(,)?], file: [$($f:ident),* $(,)?] $(,)?) => {
        mod sqlite {
            use super::DbLocation;
            $(#[test] fn $m() { super::$m(&DbLocation::Memory) })*
            $(#[test] fn $f() {
                let dir = tempfile::tempdir().unwrap();
                super::$f(&DbLocation::Sqlite(dir.path().join("pool.sqlite")))
            })*
        }
        mod postgres {
            $(#[test]
              #[cfg_attr(not(ncpc_postgres), ignore = "needs NCPC_TEST_POSTGRES at build time")]
              fn $m() { super::on_postgres(super::$m) })*
            $(#[test]
              #[cfg_attr(not(ncpc_postgres), ignore = "needs NCPC_TEST_POSTGRES at build time")]
              fn $f() { super::on_postgres(super::$f) })*
        }
    };
}

on_both_backends! {
    memory: [
        register_info_and_balance,
        evolve_cycle_credits_new_functions_and_not_duplicates,
        evaluate_cycle_outvotes_a_liar,
        an_active_task_answers_400_until_reset,
        an_expired_lease_is_reissued,
        amm_body_only_auth_completes_a_cycle,
        a_miner_evaluates_each_function_once_and_never_its_own,
    ],
    file: [
        evaluations_outside_the_batch_are_refused_and_nothing_is_stored,
        refusals_answer_the_right_status_and_store_nothing,
        a_restart_on_the_same_database_keeps_submissions_and_balances,
        the_served_binary_loses_no_accepted_submission_to_sigkill,
    ],
}

#[test]
fn an_unreachable_postgres_is_a_clear_error_naming_the_host() {
    // Nothing listens on port 1 of the loopback: the connection is refused at once.
    let url = "postgres://pool:secret@127.0.0.1:1/ncpc";
    let err = match spawn_local(config(&url.parse().unwrap())) {
        Ok(_) => panic!("a pool started without its database"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("cannot connect to the Postgres database at 127.0.0.1:1/ncpc"),
        "{err}"
    );
    assert!(!err.contains("secret"), "the password is not shown: {err}");
    // The binary says the same and exits 1, without a panic.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ncpc"))
        .args(["pool", "serve", "--listen", "127.0.0.1:0", "--db", url])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("127.0.0.1:1/ncpc"), "{stderr}");
    assert!(
        !stderr.contains("secret") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

#[test]
fn a_db_flag_that_names_no_database_is_refused() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ncpc"))
        .args(["pool", "serve", "--db", "mysql://root@localhost/pool"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("unsupported database URL scheme `mysql`"),
        "{stderr}"
    );
}

/// The synchronous Postgres client runs its own runtime: opening and dropping the store, and
/// starting and stopping a pool, from inside a tokio runtime (current-thread and multi-thread)
/// must not panic with "Cannot start a runtime from within a runtime"; using it from
/// `spawn_blocking`, as the server's handlers do, works.
fn the_postgres_store_works_inside_a_tokio_runtime(db: &DbLocation) {
    let runtimes = [
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap(),
    ];
    for (i, rt) in runtimes.iter().enumerate() {
        let p = rt.block_on(async {
            let mut store = Store::open(db).expect("opens inside a runtime");
            let (store, counts) = tokio::task::spawn_blocking(move || {
                let c = store.counts();
                (store, c)
            })
            .await
            .unwrap();
            assert_eq!(counts.unwrap().miners, i as i64);
            drop(store);
            spawn_local(config(db)).expect("a pool starts inside a runtime")
        });
        let c = registered(&p, &format!("Runtime{i}"));
        assert_eq!(balance(&c), 0.0);
        // Stopping the pool drops its store on the server's own runtime.
        rt.block_on(async move { p.shutdown() });
    }
    assert_eq!(counts(db).miners, 2);
}

#[test]
#[cfg_attr(not(ncpc_postgres), ignore = "needs NCPC_TEST_POSTGRES at build time")]
fn postgres_inside_a_tokio_runtime() {
    on_postgres(the_postgres_store_works_inside_a_tokio_runtime);
}

/// `genome_check: Strict` refuses a program that reads a register before writing it (422,
/// naming the instruction, nothing stored); the default compat check takes it, as AMM runs it.
#[test]
fn a_strict_pool_refuses_what_amm_papers_over() {
    let read_before_write = "[[100,1,0],[100,2,1],[2,2,6,3],[10,3,4],[201,4,-1,9],[453,9]]";
    let strict = spawn_local(ServerConfig {
        genome_check: ncpc::formats::Mode::Strict,
        ..config(&DbLocation::Memory)
    })
    .unwrap();
    let c = registered(&strict, "Stella");
    let err = evolve(&c, read_before_write).unwrap_err();
    let text = err.to_string();
    assert_eq!(status_of(err), 422);
    assert!(text.contains("read before it is written"), "{text}");
    assert_eq!(balance(&c), 0.0);
    // The strict pool still takes a clean program.
    c.reset_active().unwrap();
    assert_eq!(evolve(&c, MAE).unwrap()["duplicate"], false);

    let compat = pool(&DbLocation::Memory);
    let c = registered(&compat, "Carl");
    assert_eq!(evolve(&c, read_before_write).unwrap()["duplicate"], false);
}

/// Two servers on one database (replicas behind a load balancer): races for one miner's task,
/// for one batch's submission, and many miners cycling on both at once. Leases are never
/// issued twice, each submission is recorded once, and the ledger sums to the balances.
fn two_replicas_share_one_database(db: &DbLocation) {
    let (a, b) = (pool(db), pool(db));
    let race = |f: &(dyn Fn(&RunningPool) -> u16 + Sync)| -> Vec<u16> {
        let mut s = std::thread::scope(|sc| {
            let ha = sc.spawn(|| f(&a));
            let hb = sc.spawn(|| f(&b));
            vec![ha.join().unwrap(), hb.join().unwrap()]
        });
        s.sort_unstable();
        s
    };
    registered(&a, "Eve");
    evolve(&client(&b, "Eve"), MAE).unwrap();
    for name in ["Alice", "Bob", "Carol", "Dave"] {
        registered(&a, name);
    }
    // One miner asks both replicas for a task at once: exactly one gets it.
    let got = race(
        &|p| match client(p, "Alice").request_task(TaskType::Evaluate) {
            Ok(_) => 200,
            Err(e) => status_of(e),
        },
    );
    assert_eq!(
        got,
        vec![200, 400],
        "one lease, one 'already has active task'"
    );
    let batch = client(&a, "Alice").miner_info().unwrap()["active_task"]["batch_id"].clone();
    assert!(batch.is_string(), "the owner sees its batch id");
    client(&a, "Alice").reset_active().unwrap();
    // One batch submitted to both replicas at once: recorded once.
    let task = client(&a, "Bob").request_task(TaskType::Evaluate).unwrap();
    let evals: Vec<Evaluation> = task
        .functions
        .iter()
        .map(|f| evaluation(&f.id, 0.8))
        .collect();
    let id = task.batch_id.as_str().unwrap().to_string();
    let got = race(
        &|p| match client(p, "Bob").submit_evaluation(&id, evals.clone()) {
            Ok(_) => 200,
            Err(e) => status_of(e),
        },
    );
    assert_eq!(got, vec![200, 409]);
    assert_eq!(counts(db).evaluations, task.functions.len() as i64);
    // Many cycles on both replicas at once.
    std::thread::scope(|sc| {
        for (i, name) in ["Alice", "Carol", "Dave"].into_iter().enumerate() {
            let p = if i % 2 == 0 { &a } else { &b };
            sc.spawn(move || {
                let c = client(p, name);
                if let Ok(t) = c.request_task(TaskType::Evaluate) {
                    let evals = t.functions.iter().map(|f| evaluation(&f.id, 0.8)).collect();
                    c.submit_evaluation(t.batch_id.as_str().unwrap(), evals)
                        .unwrap();
                }
            });
        }
    });
    let mut st = Store::open(db).unwrap();
    let evaluated: i64 = st
        .function_summaries()
        .unwrap()
        .iter()
        .filter(|f| f.consensus.is_some())
        .count() as i64;
    assert_eq!(
        evaluated, 3,
        "both seeds and Eve's function reached consensus once each"
    );
    let ledger: f64 = st.ledger_entries().unwrap().iter().map(|e| e.amount).sum();
    let balances: f64 = ["Eve", "Alice", "Bob", "Carol", "Dave"]
        .iter()
        .map(|n| balance(&client(&a, n)))
        .sum();
    assert!(
        (ledger - balances).abs() < 1e-9 && ledger > 0.0,
        "{ledger} vs {balances}"
    );
}

#[test]
#[cfg_attr(not(ncpc_postgres), ignore = "needs NCPC_TEST_POSTGRES at build time")]
fn postgres_two_replicas_share_one_database() {
    on_postgres(two_replicas_share_one_database);
}

#[test]
fn sqlite_two_replicas_share_one_database() {
    let dir = tempfile::tempdir().unwrap();
    two_replicas_share_one_database(&DbLocation::Sqlite(dir.path().join("pool.sqlite")));
}

#[test]
fn metrics_count_requests_by_route_tasks_and_the_ledger() {
    let p = pool(&DbLocation::Memory);
    let c = registered(&p, "Alice");
    evolve(&c, MAE).unwrap();
    let _ = get(&p, "/leaderboard");
    let _ = get(&p, &format!("/miners/{}", c.address()));
    let resp = reqwest::blocking::get(format!("{}/metrics", p.url())).unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = resp.text().unwrap();
    for line in [
        r#"ncpc_pool_requests_total{endpoint="/api/v1/miners/register",status="200"} 1"#,
        r#"ncpc_pool_requests_total{endpoint="/api/v1/leaderboard",status="200"} 1"#,
        // One series per route, not per miner.
        r#"ncpc_pool_requests_total{endpoint="/api/v1/miners/{ss58}",status="200"} 1"#,
        r#"ncpc_pool_tasks_issued_total{task_type="evolve"} 1"#,
        r#"ncpc_pool_evolutions_total{outcome="new"} 1"#,
        "ncpc_pool_ledger_alpha 0",
        "# TYPE ncpc_pool_request_seconds histogram",
    ] {
        assert!(text.contains(line), "{line} not in:\n{text}");
    }
    assert!(
        !text.contains(&c.address()),
        "no miner address in the metrics"
    );
}
