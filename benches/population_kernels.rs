//! Population kernels from the IR (src/gpu): K candidate losses and their gradients over one
//! `[rows, 10]` batch in one call. Reports loss elements per second (rows x 10 x K per call):
//! - criterion: host C on this machine (the whole call), and with `--features cuda-rt` the
//!   CUDA kernel including its transfers;
//! - resident (printed, and written as JSON to `NCPC_BENCH_JSON` when set): the kernel alone
//!   with the batch already on the device, for CUDA (`--features cuda-rt`) and WGSL on wgpu
//!   (`--features wgpu`), where each has a device; `NCPC_BENCH_RESIDENT_K` and `_ROWS` size it
//!   (default 64 over 1e6 rows, issue 17's target of >= 3e11 elements/s on an H100).
//!
//! `cargo bench --bench population_kernels` (`NCPC_BENCH_K`, default 16; `NCPC_BENCH_ROWS`,
//! default 100000, for the criterion part).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ncp_ir::Function;
use ncp_ir::passes::{OptOptions, gradient, optimize};
use ncpc::formats::{CompileOptions, compile};
use ncpc::gpu::PopulationRunner;
use ncpc::gpu::emit::{Dialect, population};
use std::time::Duration;
#[cfg(any(feature = "cuda-rt", feature = "wgpu"))]
use std::time::Instant;

#[path = "common/loss_inputs.rs"]
mod loss_inputs;
use loss_inputs::inputs;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// K gradient functions: MSE, cross-entropy and Baikal in turn.
fn candidates(k: usize) -> Vec<Function> {
    let root = env!("CARGO_MANIFEST_DIR");
    let names = ["mse", "cross_entropy", "baikal"];
    (0..k)
        .map(|j| {
            let text =
                std::fs::read_to_string(format!("{root}/tests/corpus/amm/{}.json", names[j % 3]))
                    .unwrap();
            let mut f = compile(&text, &CompileOptions::default()).unwrap().func;
            optimize(&mut f, OptOptions::default()).unwrap();
            let mut g = gradient(&f).unwrap().func;
            optimize(&mut g, OptOptions::default()).unwrap();
            g
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let (k, rows) = (env("NCPC_BENCH_K", 16), env("NCPC_BENCH_ROWS", 100_000));
    let funcs = candidates(k);
    let (yp, yt) = inputs(rows, 10);
    let mut group = c.benchmark_group("population_kernels");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements((k * rows * 10) as u64));
    let pop = population(&funcs, 10, Dialect::HostC).unwrap_or_else(|e| panic!("{e}"));
    let host = ncpc::gpu::host::build(&pop).unwrap();
    group.bench_function(format!("host_c/k{k}/rows{rows}"), |b| {
        b.iter(|| host.run(&yp, &yt, rows).unwrap())
    });
    #[cfg(feature = "cuda-rt")]
    match ncpc::gpu::cuda::build(&population(&funcs, 10, Dialect::Cuda).unwrap()) {
        Ok(dev) => {
            group.bench_function(format!("cuda/k{k}/rows{rows}"), |b| {
                b.iter(|| dev.run(&yp, &yt, rows).unwrap())
            });
        }
        Err(e) => eprintln!("no CUDA run: {e}"),
    }
    group.finish();
    resident();
}

/// The device-resident timings: (backend, elements per second) for each device found.
fn resident() {
    let (k, rows) = (
        env("NCPC_BENCH_RESIDENT_K", 64),
        env("NCPC_BENCH_RESIDENT_ROWS", 1_000_000),
    );
    let mut out: Vec<String> = Vec::new();
    let elements = (k * rows * 10) as f64;
    // (device, seconds per evaluation, seconds to emit and build the kernel)
    let mut report = |backend: &str, r: Result<(String, f64, f64), String>| match r {
        Ok((device, secs, build)) => {
            println!(
                "population_kernels resident {backend} k{k} rows{rows} on {device}: {:.3} ms, {:.3e} elements/s (kernel built in {:.1} ms)",
                secs * 1e3,
                elements / secs,
                build * 1e3
            );
            out.push(format!(
                "{{\"backend\": \"{backend}\", \"device\": {device:?}, \"k\": {k}, \"rows\": {rows}, \"seconds\": {secs:e}, \"elements_per_s\": {:e}, \"build_seconds\": {build:e}}}",
                elements / secs
            ));
        }
        Err(e) => println!("population_kernels resident {backend}: not run ({e})"),
    };
    let funcs = candidates(k);
    let (yp, yt) = inputs(rows, 10);
    #[cfg(feature = "cuda-rt")]
    report("cuda", {
        let t = Instant::now();
        population(&funcs, 10, Dialect::Cuda)
            .map_err(|e| e.to_string())
            .and_then(|p| ncpc::gpu::cuda::build(&p).map_err(|e| e.to_string()))
            .and_then(|d| {
                let build = t.elapsed().as_secs_f64();
                d.time_resident(&yp, &yt, rows, 20)
                    .map(|s| ("GPU 0".to_string(), s, build))
                    .map_err(|e| e.to_string())
            })
    });
    #[cfg(feature = "wgpu")]
    report("wgpu", {
        let t = Instant::now();
        population(&funcs, 10, Dialect::Wgsl)
            .map_err(|e| e.to_string())
            .and_then(|p| ncpc::gpu::wgpu_population::build(&p).map_err(|e| e.to_string()))
            .and_then(|d| {
                let build = t.elapsed().as_secs_f64();
                d.time_resident(&yp, &yt, rows, 20)
                    .map(|s| (d.adapter().to_string(), s, build))
                    .map_err(|e| e.to_string())
            })
    });
    let _ = (&funcs, &yp, &yt, &mut report);
    if let Ok(path) = std::env::var("NCPC_BENCH_JSON") {
        let json = format!("[{}]\n", out.join(", "));
        if let Err(e) = std::fs::write(&path, json) {
            eprintln!("writing {path}: {e}");
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
