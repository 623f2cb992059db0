//! Population-batched work on a burn device, for the GPU targets of the wgpu backend.
//!
//! - `population/loss`: K corpus losses (AMM programs, lowered to burn graphs) evaluated on
//!   one shared `[rows, 10]` batch, one readback per population; throughput in elements
//!   (K x rows x 10 per iteration). Also with burn-autodiff's dL/dy_pred (`loss+grad`).
//! - `population/amm`: K candidates trained under the AMM protocol as one population (K
//!   networks in lockstep, batched matmuls); throughput in candidates. On wgpu twice: the
//!   losses' step as burn graphs (`graph`) and on the population kernel (`kernel`).
//!
//! Device: `NCPC_BENCH_DEVICE=cpu|wgpu` (default cpu); sizes: `NCPC_BENCH_ROWS` (default
//! 20000 on cpu, 1000000 on wgpu) and `NCPC_BENCH_K` (default 16 losses, 64 candidates).
//! The PyTorch peer is benches/peers/gpu_population.py; scripts/gpu-check.sh runs both.
//!
//! `cargo bench --features wgpu --bench population`

use burn::tensor::{Tensor, TensorData};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ncpc::burn_backend::lower::lower_loss;
use ncpc::formats::CompileOptions;
use ncpc::loss::compile_for_inputs;
use ncpc::train::burn::population::{Member, train_population};
use ncpc::train::protocol::{Protocol, ProtocolName};
use ncpc::train::run::{BurnDevice, LossStep};
use ncpc::train::task::TaskData;
use std::hint::black_box;
use std::time::Duration;

const GENOMES: [&str; 4] = ["mse", "cross_entropy", "baikal", "mae"];
const C: usize = 10;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn text(name: &str) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    std::fs::read_to_string(format!("{root}/tests/corpus/amm/{name}.json")).unwrap()
}

fn which() -> BurnDevice {
    match std::env::var("NCPC_BENCH_DEVICE").as_deref() {
        Ok("wgpu") => BurnDevice::Wgpu,
        _ => BurnDevice::Cpu,
    }
}

/// The inputs benches/jit.rs and the peers use: a fixed pattern, one-hot targets.
fn inputs(rows: usize) -> (Vec<f32>, Vec<f32>) {
    let n = rows * C;
    let yp = (0..n)
        .map(|k| ((((k / C) * 7 + (k % C) * 3) % 11) as f32) / 5.0 - 1.0)
        .collect();
    let yt = (0..n)
        .map(|k| ((k % C) == ((k / C) % C)) as u8 as f32)
        .collect();
    (yp, yt)
}

fn loss(c: &mut Criterion) {
    let dev_kind = which();
    let dev = ncpc::burn_backend::device(dev_kind).expect("burn device");
    let rows = env_usize(
        "NCPC_BENCH_ROWS",
        if dev_kind == BurnDevice::Cpu {
            20_000
        } else {
            1_000_000
        },
    );
    let k = env_usize("NCPC_BENCH_K", 16);
    let funcs: Vec<_> = (0..k)
        .map(|i| {
            let g = GENOMES[i % GENOMES.len()];
            compile_for_inputs(&text(g), &CompileOptions::default(), rows, C, true).unwrap()
        })
        .collect();
    let (yp, yt) = inputs(rows);
    let mut group = c.benchmark_group("population");
    group.throughput(Throughput::Elements((k * rows * C) as u64));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    for grad in [false, true] {
        let d = if grad {
            dev.clone().autodiff()
        } else {
            dev.clone()
        };
        let pred = Tensor::<2>::from_data(TensorData::new(yp.clone(), [rows, C]), &d);
        let truth = Tensor::<2>::from_data(TensorData::new(yt.clone(), [rows, C]), &d);
        let id = BenchmarkId::new(
            if grad { "loss+grad" } else { "loss" },
            format!("{}/K{k}/rows{rows}", dev_kind.name()),
        );
        group.bench_function(id, |b| {
            b.iter(|| {
                let p = if grad {
                    pred.clone().require_grad()
                } else {
                    pred.clone()
                };
                let losses: Vec<Tensor<2>> = funcs
                    .iter()
                    .map(|f| lower_loss(f, p.clone(), truth.clone(), 1_000_000).unwrap())
                    .collect();
                let all = Tensor::cat(losses, 0);
                if grad {
                    let grads = all.clone().sum().backward();
                    let g = p.grad(&grads).unwrap();
                    // One readback of the gradient's sum and the losses.
                    black_box(g.sum().into_data());
                }
                black_box(all.inner().into_data())
            })
        });
    }
    group.finish();
}

fn amm(c: &mut Criterion) {
    let dev_kind = which();
    let dev = ncpc::burn_backend::device(dev_kind).expect("burn device");
    let k = env_usize("NCPC_BENCH_K", 64);
    let mut p = Protocol::preset(ProtocolName::Amm);
    p.seeds = 1;
    let data = TaskData::for_protocol(&p, &std::env::temp_dir(), &mut Vec::new()).unwrap();
    let members: Vec<Member> = (0..k)
        .map(|i| Member {
            func: compile_for_inputs(
                &text(GENOMES[i % GENOMES.len()]),
                &CompileOptions::default(),
                p.batch,
                data.classes,
                true,
            )
            .unwrap(),
            seed: 42 + i as u64,
        })
        .collect();
    let mut group = c.benchmark_group("population");
    group.throughput(Throughput::Elements(k as u64));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    // The losses' step as burn graphs, and (on wgpu) on the population kernel.
    let steps: &[LossStep] = match dev_kind {
        BurnDevice::Wgpu => &[LossStep::Graph, LossStep::Kernel],
        BurnDevice::Cpu => &[LossStep::Graph],
    };
    for step in steps {
        group.bench_function(
            BenchmarkId::new(
                "amm",
                format!("{}/{step:?}/K{k}", dev_kind.name()).to_lowercase(),
            ),
            |b| b.iter(|| black_box(train_population(&members, &data, &p, &dev, *step))),
        );
    }
    group.finish();
}

criterion_group!(benches, loss, amm);
criterion_main!(benches);
