//! What an unauthenticated request costs the pool server in CPU: `ncpc pool serve` runs as its
//! own process, each kind of request a stranger can send (no valid signature) is sent N times
//! over one kept-alive connection, and the server's CPU time (user + system, from
//! /proc/PID/stat) is divided by N. The per-IP limit is raised so every request does its full
//! work; with the default limit most of them would be answered 429 before any work.
//!
//! `cargo bench --bench pool_unauth_cost -- [N]` (default 2000). Linux only (/proc).

use ncpc::identity::Identity;
use ncpc::pool::protocol::{API_PREFIX, Auth};
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which is in parentheses): utime is the 14th field of the
    // line, stime the 15th.
    let rest = stat
        .rsplit_once(')')
        .ok_or_else(|| anyhow::anyhow!("odd /proc stat"))?
        .1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>()? + f[12].parse::<f64>()?;
    // The kernel's USER_HZ is 100 on Linux.
    Ok(ticks / 100.0)
}

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .filter(|a| !a.starts_with("--"))
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.to_string()
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_ncpc"))
        .args([
            "pool",
            "serve",
            "--listen",
            &addr,
            "--db",
            "sqlite::memory:",
        ])
        .args(["--ip-rate", "1000000"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let start = Instant::now();
    while std::net::TcpStream::connect(&addr).is_err() {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(20),
            "the pool did not start"
        );
        std::thread::sleep(Duration::from_millis(30));
    }
    let base = format!("http://{addr}{API_PREFIX}");
    let stranger = Identity::from_secret("//Stranger", "bench")?;
    let a = stranger.ss58();
    let mut bad_sig = serde_json::to_value(Auth::sign(&stranger, 0))?;
    bad_sig["message"] = json!(format!(
        "auth:{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs()
    ));
    let big = {
        let mut b = bad_sig.clone();
        b["padding"] = json!("x".repeat(250 << 10));
        b
    };
    let program: Vec<serde_json::Value> = (0..256).map(|i| json!([451, 1, i % 7])).collect();
    let mut forged_submit = bad_sig.clone();
    forged_submit["evolved_function"] = json!(serde_json::to_string(&program)?);
    forged_submit["parent_functions"] = json!([]);
    forged_submit["metadata"] = json!({"fitness": 0.5, "generations": 1, "population_size": 1,
        "parent_id": 1, "genetic_code_length": 256, "total_evaluations": 1});
    let kinds: Vec<(&str, String, Option<Vec<u8>>)> = vec![
        ("GET leaderboard", format!("{base}/leaderboard"), None),
        (
            "GET miner info (unknown)",
            format!("{base}/miners/{a}"),
            None,
        ),
        (
            "GET balance (unknown)",
            format!("{base}/miners/{a}/balance"),
            None,
        ),
        ("GET openapi.json", format!("{base}/openapi.json"), None),
        (
            "GET unknown path",
            format!("http://{addr}/nothing/here"),
            None,
        ),
        (
            "POST register, bad signature",
            format!("{base}/miners/register"),
            Some(serde_json::to_vec(&bad_sig)?),
        ),
        (
            "POST register, 250 KiB body, bad signature",
            format!("{base}/miners/register"),
            Some(serde_json::to_vec(&big)?),
        ),
        (
            "POST request, malformed JSON",
            format!("{base}/tasks/{a}/request"),
            Some(b"{\"task_type\":".to_vec()),
        ),
        (
            "POST submit_evolution, 256 jumps, bad signature",
            format!("{base}/tasks/{a}/00000000-0000-4000-8000-000000000000/submit_evolution"),
            Some(serde_json::to_vec(&forged_submit)?),
        ),
    ];
    let http = reqwest::blocking::Client::new();
    println!("server CPU per unauthenticated request ({n} each, one connection):");
    let mut worst = (0.0f64, "");
    for (name, url, body) in &kinds {
        let before = cpu_seconds(child.id())?;
        let mut statuses = std::collections::BTreeMap::new();
        for _ in 0..n {
            let resp = match body {
                Some(b) => http
                    .post(url)
                    .header("content-type", "application/json")
                    .body(b.clone())
                    .send()?,
                None => http.get(url).send()?,
            };
            *statuses.entry(resp.status().as_u16()).or_insert(0) += 1;
            let _ = resp.bytes()?;
        }
        let per = (cpu_seconds(child.id())? - before) / n as f64;
        println!("  {name:<50} {:>8.1} us  (answers {statuses:?})", per * 1e6);
        if per > worst.0 {
            worst = (per, name);
        }
    }
    println!("worst: {} at {:.1} us", worst.1, worst.0 * 1e6);
    let _ = child.kill();
    let _ = child.wait();
    Ok(())
}
