//! The web pages' server side: the pool's JSON for its pages (one function with formula, IR,
//! PyTorch export, lineage and evaluations; the pool's history; the miners), the pages and
//! their 404s, the embedded files; and the miner's page (`ncpc mine --ui`): its state, its
//! token-guarded controls (a wrong token is refused; pause stops new cycles) and its metrics.
//! The pages in a real browser: tests/browser (`NCPC_TEST_BROWSER=1`, see tests/browser.rs).

use ncpc::identity::Identity;
use ncpc::pool::client::PoolClient;
use ncpc::pool::protocol::*;
use ncpc::pool::server::{DbLocation, RunningPool, ServerConfig, spawn_local};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn pool() -> RunningPool {
    spawn_local(ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        max_skew_seconds: 3600,
        rate_burst: 1000,
        rate_per_second: 1000.0,
        ip_rate_burst: 100_000,
        ip_rate_per_second: 100_000.0,
        audit_share: 0.0,
        min_evaluators: 1,
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

fn get(url: &str) -> (u16, String, String) {
    let r = reqwest::blocking::get(url).unwrap();
    let status = r.status().as_u16();
    let ty = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ty, r.text().unwrap())
}

fn get_json(url: &str) -> (u16, Value) {
    let (s, _, body) = get(url);
    (s, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// Evolve MAE from a seed and have it evaluated: a child, evaluations and a consensus.
fn one_cycle(p: &RunningPool) -> (Value, i64) {
    let alice = client(p, "Alice");
    let batch = alice.request_task(TaskType::Evolve).unwrap();
    let parent = batch.functions[0].id.clone();
    let mae = "[[100,1,0],[100,2,1],[2,1,2,3],[9,3,4],[201,4,-1,9],[453,9]]";
    let answer = alice
        .submit_evolution(
            batch.batch_id.as_str().unwrap(),
            mae.into(),
            vec![ParentRef { id: parent.clone() }],
            EvolutionMetadata {
                fitness: LenientF64(0.5),
                generations: 1,
                population_size: 2,
                parent_id: parent.clone(),
                genetic_code_length: 6,
                total_evaluations: 2,
                generation_stats: json!([]),
                extra: Default::default(),
            },
        )
        .unwrap();
    let child = answer["function_id"].as_i64().unwrap();
    let bob = client(p, "Bob");
    for _ in 0..3 {
        let Ok(batch) = bob.request_task(TaskType::Evaluate) else {
            break;
        };
        let evaluations = batch
            .functions
            .iter()
            .map(|f| Evaluation {
                function_id: f.id.clone(),
                score: 0.42,
                criteria: Criteria {
                    accuracy: 0.42,
                    stability: 1.0,
                    efficiency: 1.0,
                },
            })
            .collect();
        bob.submit_evaluation(batch.batch_id.as_str().unwrap(), evaluations)
            .unwrap();
    }
    (parent, child)
}

#[test]
fn the_pool_serves_its_pages_and_their_json() {
    let p = pool();
    let (parent, child) = one_cycle(&p);
    let base = p.url().to_string();
    let api = format!("{base}/api/v1");

    // One function: its formula, IR, export, lineage and evaluations.
    let (s, f) = get_json(&format!("{api}/functions/{child}"));
    assert_eq!(s, 200, "{f}");
    assert_eq!(f["component_type"], "loss");
    assert_eq!(f["parent_id"], parent);
    assert!(
        f["formula"]["plain"]
            .as_str()
            .unwrap()
            .contains("|y_true - y_pred|"),
        "{f}"
    );
    assert!(
        f["formula"]["latex"]
            .as_str()
            .unwrap()
            .starts_with("\\begin{aligned}")
    );
    assert!(f["ir"].as_str().unwrap().contains("function"), "{f}");
    assert!(
        f["pytorch"].as_str().unwrap().contains("torch.nn.Module"),
        "{f}"
    );
    assert_eq!(f["evaluations"][0]["score"], 0.42, "{f}");
    assert_eq!(f["consensus_score"], 0.42, "{f}");
    let (_, parent_json) = get_json(&format!("{api}/functions/{parent}"));
    assert_eq!(parent_json["children"], json!([child]), "{parent_json}");
    // Unknown ids: JSON 404 from the API, a readable page from the site.
    assert_eq!(get_json(&format!("{api}/functions/999999")).0, 404);
    assert_eq!(get_json(&format!("{api}/functions/x")).0, 404);
    let (s, ty, page) = get(&format!("{base}/function/999999"));
    assert_eq!(s, 404);
    assert!(
        ty.starts_with("text/html") && page.contains("999999"),
        "{page}"
    );
    let (s, _, page) = get(&format!(
        "{base}/function/%3Cscript%3Ealert(1)%3C%2Fscript%3E"
    ));
    assert_eq!(s, 404);
    assert!(!page.contains("<script>alert"), "escaped: {page}");
    assert!(page.contains("&lt;script&gt;"), "{page}");

    // The history and the miners.
    let (s, st) = get_json(&format!("{api}/stats"));
    assert_eq!(s, 200);
    assert!(st["functions"].as_i64().unwrap() >= 3, "{st}");
    assert_eq!(st["submissions_per_hour"][0][1], 1, "{st}");
    assert!(st["evaluations"].as_i64().unwrap() >= 1, "{st}");
    assert!(!st["best_over_time"].as_array().unwrap().is_empty(), "{st}");
    let (s, m) = get_json(&format!("{api}/miners"));
    assert_eq!(s, 200);
    let miners = m["miners"].as_array().unwrap();
    let bob = miners
        .iter()
        .find(|x| x["evaluations"].as_i64().unwrap_or(0) > 0)
        .unwrap_or_else(|| panic!("{m}"));
    assert_eq!(bob["agreement"], 1.0, "{m}");
    assert!(miners.iter().any(|x| x["functions_evolved"] == 1), "{m}");
    // The leaderboard carries what the table shows.
    let (_, lb) = get_json(&format!("{api}/leaderboard"));
    let row = &lb["functions"][0];
    assert!(
        row["evaluations"].as_i64().is_some() && row["created_at"].as_f64().is_some(),
        "{lb}"
    );

    // The pages and their files.
    for page in ["/", "/miners", &format!("/function/{child}")] {
        let (s, ty, body) = get(&format!("{base}{page}"));
        assert_eq!(s, 200, "{page}");
        assert!(
            ty.starts_with("text/html") && body.contains("<html"),
            "{page}"
        );
    }
    let (s, ty, _) = get(&format!("{base}/ui/app.css"));
    assert_eq!((s, ty.starts_with("text/css")), (200, true));
    let (s, ty, _) = get(&format!("{base}/ui/vendor/katex/katex.min.js"));
    assert_eq!((s, ty.starts_with("text/javascript")), (200, true));
    assert_eq!(get(&format!("{base}/ui/nothing.js")).0, 404);
    assert_eq!(get(&format!("{base}/ui/../Cargo.toml")).0, 404);
}

/// `ncpc mine --ui`: returns (the process, the page's URL with its token).
fn miner_with_page(pool_url: &str, home: &std::path::Path) -> (std::process::Child, String) {
    let key = home.join("miner.key");
    std::fs::write(&key, "//PageMiner").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ncpc"))
        .env("HOME", home)
        .env("NCPC_DATA", home.join("data"))
        .args(["mine", "--pool-url", pool_url, "--ui", "--delay", "0.3"])
        .args(["--task-type", "evaluate", "--scoring", "ncpc"])
        .args(["--seed-file", key.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("the miner prints its page's address")
            .unwrap();
        if let Some(u) = line.strip_prefix("ncpc: miner page at ") {
            break u.trim().to_string();
        }
    };
    // Keep draining stderr so the miner never blocks on it.
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}

fn control(page: &str, token: &str, body: Value) -> (u16, Value) {
    let r = reqwest::blocking::Client::new()
        .post(format!("{page}api/control"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .unwrap();
    let s = r.status().as_u16();
    (
        s,
        serde_json::from_str(&r.text().unwrap()).unwrap_or(Value::Null),
    )
}

fn cycles(page: &str) -> usize {
    get_json(&format!("{page}api/state")).1["cycles"]
        .as_array()
        .map_or(0, |c| c.len())
}

#[test]
fn the_miner_page_is_driven_only_with_its_token() {
    let p = pool();
    let home = tempfile::tempdir().unwrap();
    let (mut miner, url) = miner_with_page(p.url(), home.path());
    let (page, token) = url.split_once("#token=").expect("a token in the fragment");
    let (s, state) = get_json(&format!("{page}api/state"));
    assert_eq!(s, 200);
    assert!(
        state["address"].as_str().unwrap().starts_with('5'),
        "{state}"
    );
    assert!(
        !state.to_string().contains("PageMiner"),
        "no secret in the state"
    );
    let (s, ty, html) = get(page);
    assert_eq!(s, 200);
    assert!(ty.starts_with("text/html") && html.contains("<html"));

    // A wrong token changes nothing.
    let (s, answer) = control(page, "00", json!({"action": "pause"}));
    assert_eq!(s, 403, "{answer}");
    assert!(answer["detail"].as_str().unwrap().contains("token"));
    assert_eq!(get_json(&format!("{page}api/state")).1["paused"], false);
    assert_eq!(control(page, token, json!({"action": "fly"})).0, 422);
    assert_eq!(
        control(page, token, json!({"action": "set", "delay": -1})).0,
        422
    );

    // Cycles run; paused, none starts; resumed, they go on.
    let t0 = Instant::now();
    while cycles(page) < 1 {
        assert!(t0.elapsed() < Duration::from_secs(60), "no cycle ran");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (s, state) = control(page, token, json!({"action": "pause"}));
    assert_eq!((s, state["paused"].clone()), (200, json!(true)));
    std::thread::sleep(Duration::from_secs(2)); // the running cycle finishes
    let held = cycles(page);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(cycles(page), held, "a cycle started while paused");
    let (s, state) = control(
        page,
        token,
        json!({"action": "set", "task_type": "evolve", "alternate": true, "delay": 0.1}),
    );
    assert_eq!(s, 200);
    assert_eq!(state["settings"]["task_type"], "evolve", "{state}");
    assert_eq!(state["settings"]["delay"], 0.1, "{state}");
    control(page, token, json!({"action": "resume"}));
    let t0 = Instant::now();
    while cycles(page) <= held {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no cycle after resuming"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, _, metrics) = get(&format!("{page}metrics"));
    assert!(metrics.contains("ncpc_miner_cycles_total"), "{metrics}");
    let _ = miner.kill();
    let _ = miner.wait();
}
