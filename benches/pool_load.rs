//! Load on the pool server over loopback: many simulated miners, each sending signed AMM-style
//! `reset_active` calls (signature check, replay guard, rate limiter, one database statement)
//! and unsigned balance reads, from a fixed number of client threads on the same machine.
//! Requests are signed before the clock starts, so the client's signing cost is not measured.
//!
//! `cargo bench --bench pool_load -- [MINERS] [REQUESTS_PER_MINER] [THREADS]`
//! (defaults 1000, 10, 16). Prints requests per second and latency percentiles.

use ncpc::identity::Identity;
use ncpc::pool::protocol::{API_PREFIX, Auth};
use ncpc::pool::server::{ServerConfig, spawn_local};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .filter(|a| !a.starts_with("--"))
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    let (miners, per_miner, threads) = (arg(1, 1000), arg(2, 10), arg(3, 16).max(1));
    let dir = std::env::temp_dir().join(format!("ncpc-pool-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let pool = spawn_local(ServerConfig {
        listen: "127.0.0.1:0".parse()?,
        db: Some(dir.join("pool.sqlite")),
        rate_burst: 1_000_000,
        rate_per_second: 1_000_000.0,
        max_skew_seconds: 600,
        ..ServerConfig::default()
    })?;
    let base = format!("{}{API_PREFIX}", pool.url());
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    eprintln!(
        "signing {} requests for {miners} miners ...",
        miners * per_miner
    );
    let ids: Vec<Identity> = (0..miners)
        .map(|i| Identity::from_secret(&format!("//load{i}"), "bench"))
        .collect::<Result<_, _>>()?;
    // (url, body): None for an unsigned GET of the balance.
    let mut work: Vec<Vec<(String, Option<Vec<u8>>)>> = vec![Vec::new(); threads];
    for (i, id) in ids.iter().enumerate() {
        let a = id.ss58();
        for k in 0..per_miner {
            let item = if k % 2 == 0 {
                let auth = Auth::sign(id, now - k as i64);
                (
                    format!("{base}/tasks/{a}/reset_active"),
                    Some(serde_json::to_vec(&auth)?),
                )
            } else {
                (format!("{base}/miners/{a}/balance"), None)
            };
            work[(i * per_miner + k) % threads].push(item);
        }
    }
    // Registration is part of the setup, not of the measurement.
    let http = reqwest::blocking::Client::new();
    for id in &ids {
        let body = serde_json::to_vec(&Auth::sign(id, now - 200))?;
        http.post(format!("{base}/miners/register"))
            .header("content-type", "application/json")
            .body(body)
            .send()?
            .error_for_status()?;
    }
    eprintln!("running with {threads} client threads ...");
    let start = Instant::now();
    let handles: Vec<_> = work
        .into_iter()
        .map(|items| {
            std::thread::spawn(move || -> anyhow::Result<(Vec<Duration>, usize)> {
                let http = reqwest::blocking::Client::new();
                let mut lat = Vec::with_capacity(items.len());
                let mut failed = 0;
                for (url, body) in items {
                    let t = Instant::now();
                    let resp = match body {
                        Some(b) => http
                            .post(&url)
                            .header("content-type", "application/json")
                            .body(b)
                            .send()?,
                        None => http.get(&url).send()?,
                    };
                    if !resp.status().is_success() {
                        failed += 1;
                    }
                    let _ = resp.bytes()?;
                    lat.push(t.elapsed());
                }
                Ok((lat, failed))
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut failed = 0;
    for h in handles {
        let (lat, f) = h
            .join()
            .map_err(|_| anyhow::anyhow!("a client thread panicked"))??;
        all.extend(lat);
        failed += f;
    }
    let elapsed = start.elapsed();
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "{} requests ({} signed) from {miners} miners in {:.2} s: {:.0} requests/s; latency p50 {:?}, p99 {:?}, max {:?}; {failed} failed",
        all.len(),
        all.len().div_ceil(2),
        elapsed.as_secs_f64(),
        all.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        pct(1.0),
    );
    drop(pool);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
