//! Attacks on the pool, each reproduced against the served binary (`ncpc pool serve`) over
//! loopback, with the refusal and the ledger after it asserted. docs/pool.md's threat model
//! lists them with the rule that stops each. `NCPC_ATTACK_BIN` runs them against another
//! build (an older `ncpc`, to see the attacks succeed there).

use ncpc::identity::{Identity, encode_ss58};
use ncpc::pool::headers::SignedHeaders;
use ncpc::pool::protocol::{API_PREFIX, Auth};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const MAE: &str = "[[100,1,0],[100,2,1],[2,1,2,3],[9,3,4],[201,4,-1,9],[453,9]]";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Auth timestamps strictly increasing across the test binary, inside the servers' window.
fn clock() -> i64 {
    static LAST: AtomicI64 = AtomicI64::new(0);
    let t = now() - 600;
    let mut prev = LAST.load(Ordering::SeqCst);
    loop {
        let next = t.max(prev + 1);
        match LAST.compare_exchange(prev, next, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => return next,
            Err(p) => prev = p,
        }
    }
}

fn id(name: &str) -> Identity {
    Identity::from_secret(&format!("//{name}"), "test").unwrap()
}

/// A served `ncpc pool serve`, killed when dropped.
struct Pool {
    child: Child,
    addr: String,
}

impl Drop for Pool {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// Serve on `addr` with `db` and `extra` flags (on top of a wide skew window and a generous
/// per-key limit), and wait until it answers.
fn serve_on(addr: &str, db: &str, extra: &[&str]) -> Pool {
    let bin =
        std::env::var("NCPC_ATTACK_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_ncpc").into());
    let child = Command::new(bin)
        .args(["pool", "serve", "--listen", addr, "--db", db])
        .args(["--max-skew-seconds", "3600"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ncpc starts");
    let pool = Pool {
        child,
        addr: addr.to_string(),
    };
    let start = Instant::now();
    while TcpStream::connect(addr).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "ncpc pool serve did not listen on {addr}"
        );
        std::thread::sleep(Duration::from_millis(30));
    }
    pool
}

fn serve(extra: &[&str]) -> Pool {
    serve_on(&free_addr(), "sqlite::memory:", extra)
}

impl Pool {
    fn url(&self, path: &str) -> String {
        format!("http://{}{API_PREFIX}{path}", self.addr)
    }

    /// POST `body` as AMM does (auth in the body only): (status, answer).
    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_with(path, body, &[])
    }

    fn post_with(&self, path: &str, body: &Value, headers: &[(&str, String)]) -> (u16, Value) {
        let mut req = reqwest::blocking::Client::new()
            .post(self.url(path))
            .header("content-type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let resp = req.body(body.to_string()).send().unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    fn get(&self, path: &str) -> (u16, Value) {
        let resp = reqwest::blocking::get(self.url(path)).unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    fn balance(&self, address: &str) -> f64 {
        let (status, b) = self.get(&format!("/miners/{address}/balance"));
        assert_eq!(status, 200, "{b}");
        b["balance"].as_f64().unwrap()
    }

    fn register(&self, who: &Identity) {
        let (status, body) = self.post("/miners/register", &signed(who, json!({})));
        assert_eq!(status, 200, "{body}");
    }

    /// Request a task of `kind`: (status, batch).
    fn request(&self, who: &Identity, kind: &str) -> (u16, Value) {
        self.post(
            &format!("/tasks/{}/request", who.ss58()),
            &signed(who, json!({ "task_type": kind })),
        )
    }

    /// Request an evolve task and submit `program`: (status, answer).
    fn evolve(&self, who: &Identity, program: &str) -> (u16, Value) {
        let (status, batch) = self.request(who, "evolve");
        assert_eq!(status, 200, "{batch}");
        self.submit_evolution(who, &batch, program, json!({}))
    }

    fn submit_evolution(
        &self,
        who: &Identity,
        batch: &Value,
        program: &str,
        extra_metadata: Value,
    ) -> (u16, Value) {
        let parent = batch["functions"][0]["id"].clone();
        let mut metadata = json!({
            "fitness": 0.5, "generations": 1, "population_size": 4, "parent_id": parent,
            "genetic_code_length": 6, "total_evaluations": 4, "generation_stats": []
        });
        if let (Value::Object(m), Value::Object(e)) = (&mut metadata, extra_metadata) {
            m.extend(e);
        }
        self.post(
            &format!(
                "/tasks/{}/{}/submit_evolution",
                who.ss58(),
                batch["batch_id"].as_str().unwrap()
            ),
            &signed(
                who,
                json!({
                    "evolved_function": program,
                    "parent_functions": [{ "id": parent }],
                    "metadata": metadata,
                }),
            ),
        )
    }

    /// Submit `scores` (function id -> score) for `batch`: (status, answer).
    fn submit_evaluation(
        &self,
        who: &Identity,
        batch: &Value,
        score: &dyn Fn(&Value) -> f64,
    ) -> (u16, Value) {
        let evaluations: Vec<Value> = batch["functions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                let s = score(&f["id"]);
                json!({ "function_id": f["id"], "score": s,
                        "criteria": { "accuracy": s, "stability": 1.0, "efficiency": 1.0 } })
            })
            .collect();
        let b = batch["batch_id"].as_str().unwrap();
        self.post(
            &format!("/tasks/{}/{b}/submit_evaluation", who.ss58()),
            &signed(who, json!({ "batch_id": b, "evaluations": evaluations })),
        )
    }
}

/// `extra` with fresh AMM auth fields of `who`.
fn signed(who: &Identity, extra: Value) -> Value {
    signed_at(who, clock(), extra)
}

fn signed_at(who: &Identity, t: i64, extra: Value) -> Value {
    let mut body = serde_json::to_value(Auth::sign(who, t)).unwrap();
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    body
}

/// `who`'s AMM auth fields with the address written under SS58 network `prefix`.
fn signed_with_prefix(who: &Identity, prefix: u16, extra: Value) -> (String, Value) {
    let key: [u8; 32] = ncpc::identity::decode_ss58(&who.ss58()).unwrap().0;
    let alias = encode_ss58(&key, prefix);
    let mut body = signed(who, extra);
    body["public_address"] = json!(alias);
    (alias, body)
}

#[test]
fn one_key_under_other_ss58_prefixes_is_never_a_second_miner() {
    let pool = serve(&[]);
    let alice = id("Alice");
    pool.register(&alice);
    for prefix in [0u16, 2, 5] {
        let (alias, body) = signed_with_prefix(&alice, prefix, json!({}));
        assert_ne!(alias, alice.ss58());
        let (status, answer) = pool.post("/miners/register", &body);
        assert_eq!(status, 400, "prefix {prefix}: {answer}");
        let detail = answer["detail"].as_str().unwrap();
        assert!(
            detail.contains(&format!("prefix {prefix}")) && detail.contains(&alice.ss58()),
            "{detail}"
        );
        // Nor can it act as that miner, on any endpoint.
        let (_, body) = signed_with_prefix(&alice, prefix, json!({ "task_type": "evaluate" }));
        let (status, _) = pool.post(&format!("/tasks/{alias}/request"), &body);
        assert_eq!(status, 400);
        assert_eq!(pool.get(&format!("/miners/{alias}")).0, 400);
    }
    let (_, board) = pool.get("/leaderboard");
    assert!(board["miners"].as_array().unwrap().is_empty());
}

#[test]
fn near_duplicates_of_a_function_are_never_paid() {
    let pool = serve(&["--rate-burst", "200"]);
    let mallory = id("Mallory");
    pool.register(&mallory);
    let mut copies: Vec<String> = (1..=12)
        .map(|i| {
            let k = 1.0 + f64::from(i) * 1e-6;
            // MSE * k + i.5
            format!(
                "[[100,1,0],[100,2,1],[2,1,2,3],[10,3,4],[201,4,-1,9],[21,9,{k:?},9],[20,9,{i}.5,9],[453,9]]"
            )
        })
        .collect();
    // (batch - 16) * MSE * k: zero on a 16-row probe, MSE times a constant in training.
    copies.extend((1..=4).map(|i| {
        let k = 1.0 + f64::from(i) * 1e-6;
        format!(
            "[[100,1,0],[100,2,1],[2,1,2,3],[10,3,4],[201,4,-1,9],[20,102,-16,5],[3,9,5,8],[21,8,{k:?},8],[453,8]]"
        )
    }));
    for program in &copies {
        let (status, answer) = pool.evolve(&mallory, program);
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["duplicate"], true, "{program} is MSE: {answer}");
        assert_eq!(answer["credited"], 0.0);
    }
    // A loss that vanishes at the training batch size trains nothing: refused.
    let (_, batch) = pool.request(&mallory, "evolve");
    let flat =
        "[[100,1,0],[100,2,1],[2,1,2,3],[10,3,4],[201,4,-1,9],[20,102,-32,5],[3,9,5,8],[453,8]]";
    let (status, answer) = pool.submit_evolution(&mallory, &batch, flat, json!({}));
    assert_eq!(status, 422, "{answer}");
    // A new function is stored, but nothing is paid before its consensus forms.
    let (status, answer) = pool.submit_evolution(&mallory, &batch, MAE, json!({}));
    assert_eq!(
        (status, answer["duplicate"].clone()),
        (200, json!(false)),
        "{answer}"
    );
    let mae = answer["function_id"].clone();
    assert_eq!(pool.balance(&mallory.ss58()), 0.0);
    // Three honest evaluators score everything: had a copy been stored, it would reach
    // consensus beside MSE and pay; only MAE does.
    for name in ["Alice", "Bob", "Carol"] {
        let who = id(name);
        pool.register(&who);
        let (status, batch) = pool.request(&who, "evaluate");
        assert_eq!(status, 200, "{batch}");
        assert_eq!(batch["functions"].as_array().unwrap().len(), 3, "{batch}");
        let (status, _) =
            pool.submit_evaluation(&who, &batch, &|f| if *f == mae { 0.8 } else { 0.7 });
        assert_eq!(status, 200);
    }
    // Confirmed (1), at least the median (5), the new best (10): MAE's rewards, no copy's.
    assert_eq!(pool.balance(&mallory.ss58()), 16.0);
    let (_, info) = pool.get(&format!("/miners/{}", mallory.ss58()));
    assert_eq!(info["functions_evolved"], 1);
}

#[test]
fn one_key_cannot_set_a_consensus() {
    let pool = serve(&[]);
    let mallory = id("Mallory");
    pool.register(&mallory);
    let (_, evolved) = pool.evolve(&mallory, MAE);
    let own = evolved["function_id"].clone();
    // Mallory is never handed her own function, so she cannot score it at all.
    let (status, batch) = pool.request(&mallory, "evaluate");
    assert_eq!(status, 200, "{batch}");
    assert!(
        batch["functions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["id"] != own)
    );
    // A score outside the protocol's range is refused and nothing is stored; the refused
    // request's auth is spent all the same (someone who saw it cannot reuse it).
    let b = batch["batch_id"].as_str().unwrap();
    let refused = signed(
        &mallory,
        json!({ "batch_id": b, "evaluations": [{
        "function_id": batch["functions"][0]["id"], "score": 1.7e308,
        "criteria": { "accuracy": 1.0, "stability": 1.0, "efficiency": 1.0 } }] }),
    );
    let path = format!("/tasks/{}/{b}/submit_evaluation", mallory.ss58());
    let (status, answer) = pool.post(&path, &refused);
    assert_eq!(status, 422, "{answer}");
    assert!(answer["detail"].as_str().unwrap().contains("not a score"));
    let mut reused = refused.clone();
    reused["evaluations"][0]["score"] = json!(0.5);
    assert_eq!(
        pool.post(&path, &reused).0,
        409,
        "a refused request's auth is spent"
    );
    let (status, _) = pool.submit_evaluation(&mallory, &batch, &|_| -5.0);
    assert_eq!(status, 422);
    // Her honest-looking submission is one evaluation of three: no consensus, nothing paid.
    let (status, answer) = pool.submit_evaluation(&mallory, &batch, &|_| 0.99);
    assert_eq!(status, 200, "{answer}");
    assert!(answer["consensus"].as_array().unwrap().is_empty());
    let (_, board) = pool.get("/leaderboard");
    assert!(board["functions"].as_array().unwrap().is_empty(), "{board}");
    assert_eq!(pool.balance(&mallory.ss58()), 0.0);
}

#[test]
fn a_captured_auth_is_spent_on_every_endpoint() {
    let pool = serve(&[]);
    let (alice, eve) = (id("Alice"), id("Eve"));
    pool.register(&alice);
    pool.register(&eve);
    pool.evolve(&eve, MAE);
    // Alice requests an evaluate task; a third party captures the body.
    let captured = signed(&alice, json!({ "task_type": "evaluate" }));
    let (status, batch) = pool.post(&format!("/tasks/{}/request", alice.ss58()), &captured);
    assert_eq!(status, 200, "{batch}");
    // The batch id is not public.
    let (_, info) = pool.get(&format!("/miners/{}", alice.ss58()));
    assert!(info["active_task"].is_object(), "{info}");
    assert!(info["active_task"].get("batch_id").is_none(), "{info}");
    // ... but shown to Alice herself (signed headers on the GET).
    let path = format!("{API_PREFIX}/miners/{}", alice.ss58());
    let h = SignedHeaders::sign(&alice, "GET", &path, b"", now());
    let mut req =
        reqwest::blocking::Client::new().get(pool.url(&format!("/miners/{}", alice.ss58())));
    for (k, v) in h.pairs() {
        req = req.header(k, v);
    }
    let mine: Value = serde_json::from_str(&req.send().unwrap().text().unwrap()).unwrap();
    assert_eq!(mine["active_task"]["batch_id"], batch["batch_id"]);
    // Replaying the captured auth to submit forged evaluations for Alice: 409.
    let b = batch["batch_id"].as_str().unwrap();
    let mut forged = captured.clone();
    forged["batch_id"] = json!(b);
    forged["evaluations"] = json!([{ "function_id": batch["functions"][0]["id"], "score": 0.0,
        "criteria": { "accuracy": 0.0, "stability": 1.0, "efficiency": 1.0 } }]);
    let (status, answer) = pool.post(
        &format!("/tasks/{}/{b}/submit_evaluation", alice.ss58()),
        &forged,
    );
    assert_eq!(status, 409, "{answer}");
    // ... and on reset_active (out of AMM's order) and request again.
    let (status, _) = pool.post(&format!("/tasks/{}/reset_active", alice.ss58()), &captured);
    assert_eq!(status, 409);
    let (status, _) = pool.post(&format!("/tasks/{}/request", alice.ss58()), &captured);
    assert_eq!(status, 409);
    // Alice's own submission, freshly signed, goes through.
    let (status, answer) = pool.submit_evaluation(&alice, &batch, &|_| 0.5);
    assert_eq!(status, 200, "{answer}");
}

#[test]
fn timestamps_that_overflow_are_refused_and_the_server_lives_on() {
    let pool = serve(&[]);
    let alice = id("Alice");
    for t in [i64::MIN, i64::MAX, i64::MIN + now(), i64::MAX - 5] {
        let body = signed_at(&alice, t, json!({}));
        let (status, answer) = pool.post("/miners/register", &body);
        assert_eq!(status, 401, "auth:{t}: {answer}");
    }
    // No panic poisoned anything: the same key registers and gets a task.
    pool.register(&alice);
    assert_eq!(pool.request(&alice, "evolve").0, 200);
}

#[test]
fn a_replay_after_a_restart_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pool.sqlite");
    let db = db.to_str().unwrap();
    let addr = free_addr();
    let alice = id("Alice");
    let captured = signed(&alice, json!({}));
    let mut pool = serve_on(&addr, db, &[]);
    assert_eq!(pool.post("/miners/register", &captured).0, 200);
    let reset = signed(&alice, json!({}));
    assert_eq!(
        pool.post(&format!("/tasks/{}/reset_active", alice.ss58()), &reset)
            .0,
        200
    );
    let _ = pool.child.kill();
    let _ = pool.child.wait();
    drop(pool);
    let pool = serve_on(&addr, db, &[]);
    let (status, answer) = pool.post(&format!("/tasks/{}/reset_active", alice.ss58()), &reset);
    assert_eq!(status, 409, "the guard is in the database: {answer}");
}

#[test]
fn an_unregistered_key_or_a_dead_task_costs_no_compiling() {
    let pool = serve(&[]);
    let (alice, stranger) = (id("Alice"), id("Stranger"));
    pool.register(&alice);
    // A long program full of jumps, the kind whose optimization is expensive.
    let mut program: Vec<Value> = vec![json!([100, 1, 0]), json!([100, 2, 1])];
    for i in 0..996 {
        program.push(json!([451, 1, 2 + (i % 3)]));
    }
    program.extend([json!([2, 1, 2, 3]), json!([453, 3])]);
    let program = serde_json::to_string(&program).unwrap();
    let fake =
        json!({ "batch_id": "00000000-0000-4000-8000-000000000000", "functions": [{ "id": 1 }] });
    // Unregistered, with a made-up batch: refused before the genome is looked at.
    let (status, answer) = pool.submit_evolution(&stranger, &fake, &program, json!({}));
    assert_eq!(status, 404, "{answer}");
    // Registered but with no such task: the same.
    let (status, _) = pool.submit_evolution(&alice, &fake, &program, json!({}));
    assert_eq!(status, 404);
    // With a live task the program is checked, and refused for its size before compiling.
    let (_, batch) = pool.request(&alice, "evolve");
    let (status, answer) = pool.submit_evolution(&alice, &batch, &program, json!({}));
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["detail"].as_str().unwrap().contains("at most"),
        "{answer}"
    );
    // Within the instruction cap but with too many jumps: refused too.
    let mut jumpy: Vec<Value> = vec![json!([100, 1, 0]), json!([100, 2, 1])];
    for _ in 0..40 {
        jumpy.push(json!([451, 1, 1]));
    }
    jumpy.extend([json!([2, 1, 2, 3]), json!([453, 3])]);
    let (status, answer) = pool.submit_evolution(
        &alice,
        &batch,
        &serde_json::to_string(&jumpy).unwrap(),
        json!({}),
    );
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["detail"].as_str().unwrap().contains("jumps"),
        "{answer}"
    );
}

#[test]
fn metadata_is_capped_and_duplicates_keep_none() {
    let pool = serve(&["--max-metadata-bytes", "2048"]);
    let alice = id("Alice");
    pool.register(&alice);
    let (_, batch) = pool.request(&alice, "evolve");
    let padding = json!({ "notes": "x".repeat(4096) });
    let (status, answer) = pool.submit_evolution(&alice, &batch, MAE, padding);
    assert_eq!(status, 413, "{answer}");
    // The task is still open: a submission with sane metadata is taken.
    let (status, _) = pool.submit_evolution(&alice, &batch, MAE, json!({}));
    assert_eq!(status, 200);
}

#[test]
fn a_key_that_lets_leases_expire_is_slowed_down() {
    let pool = serve(&[
        "--evaluate-lease-seconds",
        "1",
        "--expired-lease-strikes",
        "2",
    ]);
    let (holder, eve) = (id("Holder"), id("Eve"));
    pool.register(&holder);
    pool.register(&eve);
    pool.evolve(&eve, MAE);
    for _ in 0..2 {
        let (status, batch) = pool.request(&holder, "evaluate");
        assert_eq!(status, 200, "{batch}");
        std::thread::sleep(Duration::from_millis(1100));
    }
    let (status, answer) = pool.request(&holder, "evaluate");
    assert_eq!(status, 429, "{answer}");
    assert!(
        answer["detail"].as_str().unwrap().contains("expired"),
        "{answer}"
    );
    // The functions it held went back: another evaluator gets them.
    let other = id("Other");
    pool.register(&other);
    let (status, batch) = pool.request(&other, "evaluate");
    assert_eq!(status, 200, "{batch}");
    assert_eq!(batch["functions"].as_array().unwrap().len(), 3);
    // Resetting tasks unsubmitted before their leases end counts the same.
    let resetter = id("Resetter");
    pool.register(&resetter);
    for _ in 0..2 {
        let (status, batch) = pool.request(&resetter, "evaluate");
        assert_eq!(status, 200, "{batch}");
        let reset = signed(&resetter, json!({}));
        let path = format!("/tasks/{}/reset_active", resetter.ss58());
        assert_eq!(pool.post(&path, &reset).0, 200);
    }
    let (status, answer) = pool.request(&resetter, "evaluate");
    assert_eq!(status, 429, "{answer}");
}

/// Read from `s` until it closes or `limit` passes; whether it closed.
fn closes_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 1024];
    let start = Instant::now();
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return start.elapsed() < limit,
        }
    }
}

#[test]
fn slow_and_idle_connections_are_dropped() {
    let pool = serve(&["--header-read-timeout", "1"]);
    // Headers sent a little at a time and never finished.
    let mut slow = TcpStream::connect(&pool.addr).unwrap();
    slow.write_all(b"GET /api/v1/leaderboard HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    assert!(
        closes_within(&mut slow, Duration::from_secs(5)),
        "a slow client keeps its connection"
    );
    // A kept-alive connection left idle after one request.
    let mut idle = TcpStream::connect(&pool.addr).unwrap();
    idle.write_all(b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(
        closes_within(&mut idle, Duration::from_secs(5)),
        "an idle connection stays open"
    );
}

#[test]
fn connections_over_the_cap_are_answered_503() {
    let pool = serve(&[
        "--max-connections-per-ip",
        "4",
        "--header-read-timeout",
        "30",
    ]);
    // The start-up probe's connection gives its slot back once the server sees it closed.
    std::thread::sleep(Duration::from_millis(500));
    // Four kept-alive connections, each served once (so each surely holds its slot).
    let held: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut c = TcpStream::connect(&pool.addr).unwrap();
            c.write_all(b"GET /api/v1/functions?limit=1 HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 16];
            c.read_exact(&mut buf).unwrap();
            assert!(
                buf.starts_with(b"HTTP/1.1 200"),
                "{:?}",
                String::from_utf8_lossy(&buf)
            );
            c
        })
        .collect();
    let mut fifth = TcpStream::connect(&pool.addr).unwrap();
    fifth
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = String::new();
    let _ = fifth.read_to_string(&mut answer);
    let open: Vec<bool> = held
        .iter()
        .map(|c| {
            c.set_nonblocking(true).unwrap();
            let mut b = [0u8; 4096];
            let mut r = c;
            // Drain what is buffered; 0 bytes read means the server closed it.
            loop {
                match r.read(&mut b) {
                    Ok(0) => return false,
                    Ok(_) => continue,
                    Err(_) => return true,
                }
            }
        })
        .collect();
    assert!(
        answer.starts_with("HTTP/1.1 503"),
        "{answer:?}; held connections open: {open:?}"
    );
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        pool.get("/openapi.json").0,
        200,
        "slots come back when connections close"
    );
}

#[test]
fn unsigned_requests_and_failed_signatures_are_limited_per_ip() {
    let pool = serve(&["--ip-rate", "1"]);
    let statuses: Vec<u16> = (0..12).map(|_| pool.get("/leaderboard").0).collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    let pool = serve(&["--ip-rate", "1"]);
    let alice = id("Alice");
    let mut bad = signed(&alice, json!({}));
    bad["signature"] = json!("00".repeat(64));
    let statuses: Vec<u16> = (0..12)
        .map(|_| pool.post("/miners/register", &bad).0)
        .collect();
    assert_eq!(statuses[0], 401);
    assert!(statuses.contains(&429), "{statuses:?}");
}

#[test]
fn a_rate_limited_request_spends_no_auth() {
    let pool = serve(&["--rate-burst", "1", "--rate-per-second", "0.5"]);
    let alice = id("Alice");
    pool.register(&alice);
    let body = signed(&alice, json!({}));
    let path = format!("/tasks/{}/reset_active", alice.ss58());
    assert_eq!(pool.post(&path, &body).0, 429, "the bucket is empty");
    std::thread::sleep(Duration::from_millis(2200));
    assert_eq!(
        pool.post(&path, &body).0,
        200,
        "the same auth, now admitted once"
    );
    std::thread::sleep(Duration::from_millis(2200));
    assert_eq!(pool.post(&path, &body).0, 409);
}
