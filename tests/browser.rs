//! The pages in a real browser: a pool with 10,000 functions (SQLite) and a miner with its
//! page run here; tests/browser/dashboard.mjs drives Debian's Chromium through
//! playwright-core against them (the leaderboard's rows equal the API's, the charts are drawn,
//! a function page renders its formula with KaTeX, an unknown id is a 404 page, markup from
//! miners stays text, load times under 200 ms, the miner page's controls refuse a wrong token
//! and pause stops new cycles) and saves screenshots under target/browser-shots.
//!
//! Runs with `NCPC_TEST_BROWSER=1` after `npm ci --prefix tests/browser` and
//! `apt-get install chromium` (.ci/run does both); ignored otherwise.

use ncpc::pool::server::store::Store;
use ncpc::pool::server::{DbLocation, ServerConfig, spawn_local};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// Fill the pool's database with `n` evolved functions, some with consensus, evolved by a
/// handful of miners (one with markup in its name, which the pages must show as text).
fn populate(path: &std::path::Path, n: i64) {
    drop(Store::open(&DbLocation::Sqlite(path.to_path_buf())).unwrap());
    let mut db = rusqlite::Connection::open(path).unwrap();
    let tx = db.transaction().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let miners = [
        "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY",
        "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty",
        "5FLSigC9HGRKVhB9FiEo4Y3koPsNmBmLJbpXg2mp1hXcS59Y",
    ];
    for (k, m) in miners.iter().enumerate() {
        tx.execute(
            "INSERT OR IGNORE INTO miners (address, registered_at_ms) VALUES (?1, ?2)",
            rusqlite::params![m, now - 86_400_000 + k as i64],
        )
        .unwrap();
        tx.execute(
            "INSERT INTO ledger (miner, amount, reason, created_at_ms) VALUES (?1, ?2, 'test', ?3)",
            rusqlite::params![m, 10.0 * (k + 1) as f64, now],
        )
        .unwrap();
    }
    for i in 0..n {
        // MAE with a different constant each: distinct programs, one shape.
        let program = format!(
            "[[100,1,0],[100,2,1],[2,1,2,3],[9,3,4],[201,4,-1,5],[101,6,{}],[3,5,6,9],[453,9]]",
            1.0 + i as f64 / n as f64
        );
        let consensus = (i % 3 != 0).then(|| 0.1 + 0.8 * ((i * 7919) % 1000) as f64 / 1000.0);
        let t = now - (n - i) * 8_000;
        tx.execute(
            "INSERT INTO functions (component_type, program, hash, name, evolver, parent_id,
             created_at_ms, evaluation_count, consensus_score, consensus_at_ms)
             VALUES ('loss', ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            rusqlite::params![
                program,
                format!("test-{i}"),
                (i == 5).then_some("<img src=x onerror=alert(1)>"),
                miners[(i % 3) as usize],
                (i > 0).then_some(1i64),
                t,
                consensus.map_or(0, |_| 3),
                consensus,
                consensus.map(|_| t + 1000),
            ],
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

#[test]
#[cfg_attr(
    not(ncpc_browser),
    ignore = "set NCPC_TEST_BROWSER=1 (needs chromium and playwright-core)"
)]
fn the_pages_in_chromium() {
    let root = env!("CARGO_MANIFEST_DIR");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pool.sqlite");
    populate(&db, 10_000);
    let pool = spawn_local(ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        db: DbLocation::Sqlite(db),
        ip_rate_burst: 100_000,
        ip_rate_per_second: 100_000.0,
        rate_burst: 1000,
        rate_per_second: 1000.0,
        expired_lease_strikes: 1000,
        ..ServerConfig::default()
    })
    .unwrap();
    let function_id = 1234;

    let key = dir.path().join("miner.key");
    std::fs::write(&key, "//BrowserMiner").unwrap();
    let mut miner = Command::new(env!("CARGO_BIN_EXE_ncpc"))
        .env("HOME", dir.path())
        .env("NCPC_DATA", dir.path().join("data"))
        .args(["mine", "--pool-url", pool.url(), "--ui", "--delay", "0.5"])
        .args(["--task-type", "evaluate", "--scoring", "ncpc"])
        .args(["--seed-file", key.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(miner.stderr.take().unwrap()).lines();
    let miner_url = loop {
        let line = lines.next().expect("the miner's page address").unwrap();
        if let Some(u) = line.strip_prefix("ncpc: miner page at ") {
            break u.trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});

    let shots = std::path::Path::new(root).join("target/browser-shots");
    std::fs::create_dir_all(&shots).unwrap();
    let out = Command::new("node")
        .arg(format!("{root}/tests/browser/dashboard.mjs"))
        .env("POOL_URL", pool.url())
        .env("FUNCTION_ID", function_id.to_string())
        .env("MINER_URL", &miner_url)
        .env("SHOTS", &shots)
        .output()
        .expect("node runs");
    let _ = miner.kill();
    let _ = miner.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}\n{stderr}");
    assert!(
        out.status.success(),
        "the browser checks failed:\n{stdout}\n{stderr}"
    );
}
