//! Population kernels from the IR (src/gpu): K candidate losses and their gradients over one
//! `[rows, 10]` batch in one call, as host C on this machine and, with `--features cuda-rt`
//! on a machine with a GPU, as CUDA C through NVRTC. Reports loss elements per second (rows x
//! 10 x K per call).
//!
//! `cargo bench --bench population_kernels` (`NCPC_BENCH_K`, default 16; `NCPC_BENCH_ROWS`,
//! default 100000). Issue 17's target is K = 64 over 1e6 rows on an H100 at >= 3e11.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ncp_ir::Function;
use ncp_ir::passes::{OptOptions, gradient, optimize};
use ncpc::formats::{CompileOptions, compile};
use ncpc::gpu::emit::{Dialect, population};
use std::time::Duration;

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
}

criterion_group!(benches, bench);
criterion_main!(benches);
