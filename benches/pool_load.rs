//! Load on the pool server over loopback: many simulated miners, each sending signed AMM-style
//! `reset_active` calls (signature check, replay guard, rate limiter, one database statement)
//! and unsigned balance reads, from a fixed number of client threads on the same machine.
//! Requests are signed before the clock starts, so the client's signing cost is not measured.
//!
//! A second phase runs whole evolve cycles through ncpc's client, as miners do: request an
//! evolve task, then submit a new program for it (signed with the stronger header scheme,
//! signing included in the time; the server checks every genome with the AMM front end and
//! its probes, deduplicates it and stores it durably).
//!
//! `cargo bench --bench pool_load -- [MINERS] [REQUESTS_PER_MINER] [THREADS] [CYCLE_MINERS]`
//! (defaults 1000, 10, 16, 200). Prints requests per second and latency percentiles. The pool
//! keeps its state in a new SQLite file, or where `NCPC_BENCH_DB` says (any `--db` value, e.g.
//! a fresh Postgres database's URL). `NCPC_BENCH_REPLICAS=2` serves the same database from two
//! servers (replicas; in this process, sharing its cores) and sends each client thread's
//! requests to one of them in turn. `NCPC_BENCH_VIEWERS=N` keeps N dashboard pages open
//! throughout: each fetches what the pages poll (`/leaderboard` and `/stats`, plus a
//! function page's JSON) every `NCPC_BENCH_VIEWER_MS` (default 5000, as the pages do), so a
//! run with and one without give the pages' cost.

use ncpc::identity::Identity;
use ncpc::pool::client::PoolClient;
use ncpc::pool::protocol::{API_PREFIX, Auth, EvolutionMetadata, LenientF64, ParentRef, TaskType};
use ncpc::pool::server::{DbLocation, ServerConfig, spawn_local};
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
    // NCPC_BENCH_DB: any `--db` location (a fresh Postgres database, say); default a new
    // SQLite file.
    let db: DbLocation = match std::env::var("NCPC_BENCH_DB") {
        Ok(s) if !s.trim().is_empty() => s.parse()?,
        _ => DbLocation::Sqlite(dir.join("pool.sqlite")),
    };
    let replicas: usize = std::env::var("NCPC_BENCH_REPLICAS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1);
    eprintln!("database: {db}; {replicas} server(s)");
    let pools = (0..replicas)
        .map(|_| {
            spawn_local(ServerConfig {
                listen: "127.0.0.1:0".parse()?,
                db: db.clone(),
                rate_burst: 1_000_000,
                rate_per_second: 1_000_000.0,
                // Every simulated miner is on 127.0.0.1.
                ip_rate_burst: 1_000_000,
                ip_rate_per_second: 1_000_000.0,
                max_connections_per_ip: 100_000,
                max_skew_seconds: 600,
                ..ServerConfig::default()
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let bases: Vec<String> = pools
        .iter()
        .map(|p| format!("{}{API_PREFIX}", p.url()))
        .collect();
    let base = bases[0].clone();
    let viewers: usize = std::env::var("NCPC_BENCH_VIEWERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let viewer_ms: u64 = std::env::var("NCPC_BENCH_VIEWER_MS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5000);
    let viewing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let polls = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    for _ in 0..viewers {
        let (base, viewing, polls) = (base.clone(), viewing.clone(), polls.clone());
        std::thread::spawn(move || {
            let http = reqwest::blocking::Client::new();
            while viewing.load(std::sync::atomic::Ordering::Relaxed) {
                for path in ["/leaderboard", "/stats", "/functions/1"] {
                    if http.get(format!("{base}{path}")).send().is_ok() {
                        polls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_millis(viewer_ms));
            }
        });
    }
    if viewers > 0 {
        eprintln!("{viewers} dashboard viewer(s) polling every {viewer_ms} ms");
    }
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
        let base = &bases[i % bases.len()];
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
    let (all, failed) = gather(handles)?;
    let elapsed = start.elapsed();
    report(
        &format!(
            "{} requests ({} signed) from {miners} miners",
            all.len(),
            all.len().div_ceil(2)
        ),
        all,
        elapsed,
        failed,
    );
    let urls: Vec<&str> = pools.iter().map(|p| p.url()).collect();
    cycles(&urls, &ids[..arg(4, 200).min(ids.len())], threads)?;
    viewing.store(false, std::sync::atomic::Ordering::Relaxed);
    if viewers > 0 {
        eprintln!(
            "dashboard viewers made {} requests",
            polls.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
    drop(pools);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// What a client thread measured: latencies, and how many requests failed.
type Measured = (Vec<Duration>, usize);

/// Latencies and failure counts of every client thread, together.
fn gather(
    handles: Vec<std::thread::JoinHandle<anyhow::Result<Measured>>>,
) -> anyhow::Result<Measured> {
    let mut all = Vec::new();
    let mut failed = 0;
    for h in handles {
        let (lat, f) = h
            .join()
            .map_err(|_| anyhow::anyhow!("a client thread panicked"))??;
        all.extend(lat);
        failed += f;
    }
    Ok((all, failed))
}

fn report(what: &str, mut lat: Vec<Duration>, elapsed: Duration, failed: usize) {
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "{what} in {:.2} s: {:.0} requests/s; latency p50 {:?}, p99 {:?}, max {:?}; {failed} failed",
        elapsed.as_secs_f64(),
        lat.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        pct(1.0),
    );
}

/// One evolve cycle per miner (request, then submit a program of its own), `threads` miners
/// at a time: requests per second and latency of both calls together.
fn cycles(urls: &[&str], ids: &[Identity], threads: usize) -> anyhow::Result<()> {
    let clients: Vec<PoolClient> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| PoolClient::new(urls[i % urls.len()], id.clone()))
        .collect::<Result<_, _>>()?;
    let start = Instant::now();
    let chunks: Vec<Vec<(usize, PoolClient)>> = {
        let mut c: Vec<Vec<(usize, PoolClient)>> = (0..threads).map(|_| Vec::new()).collect();
        for (i, cl) in clients.into_iter().enumerate() {
            c[i % threads].push((i, cl));
        }
        c
    };
    let handles: Vec<_> = chunks
        .into_iter()
        .map(|mine| {
            std::thread::spawn(move || -> anyhow::Result<(Vec<Duration>, usize)> {
                let mut lat = Vec::new();
                let mut failed = 0;
                for (i, client) in mine {
                    let t = Instant::now();
                    let task = client.request_task(TaskType::Evolve);
                    lat.push(t.elapsed());
                    let Ok(task) = task else {
                        failed += 1;
                        continue;
                    };
                    let parent = task.functions.first().map(|f| f.id.clone()).unwrap_or_default();
                    // A function of this miner's own: MSE plus its own multiple of MAE (a
                    // constant added to MSE would be a duplicate of MSE).
                    let c = 0.1 + i as f64 * 0.05;
                    let program = format!(
                        "[[100, 1, 0], [100, 2, 1], [2, 1, 2, 3], [10, 3, 4], [9, 3, 5], [21, 5, {c:?}, 5], [1, 4, 5, 4], [201, 4, -1, 9], [453, 9]]"
                    );
                    let meta = EvolutionMetadata {
                        fitness: LenientF64(0.5),
                        generations: 1,
                        population_size: 1,
                        parent_id: parent.clone(),
                        genetic_code_length: 8,
                        total_evaluations: 1,
                        generation_stats: serde_json::Value::Null,
                        extra: Default::default(),
                    };
                    let batch = task.batch_id.as_str().map(str::to_string).unwrap_or_else(|| task.batch_id.to_string());
                    let t = Instant::now();
                    let r = client.submit_evolution(&batch, program, vec![ParentRef { id: parent }], meta);
                    lat.push(t.elapsed());
                    if r.is_err() {
                        failed += 1;
                    }
                }
                Ok((lat, failed))
            })
        })
        .collect();
    let (all, failed) = gather(handles)?;
    report(
        &format!(
            "{} evolve cycles (request + submit_evolution, {} requests)",
            ids.len(),
            all.len()
        ),
        all,
        start.elapsed(),
        failed,
    );
    Ok(())
}
