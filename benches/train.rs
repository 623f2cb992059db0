//! Candidate evaluation under the protocols: one training run (one seed, no baselines) per
//! iteration, on one thread, with the loss from the JIT and from the interpreter. The
//! PyTorch peer of the AMM protocol is benches/peers/amm_protocol.py; benches/compare_amm.py
//! runs both and prints candidates per second and their ratio.
//!
//! `cargo bench --bench train`

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use ncpc::formats::CompileOptions;
use ncpc::loss::Backend;
use ncpc::train::protocol::{Protocol, ProtocolName};
use ncpc::train::run::{EvalOptions, Genome, evaluate};
use ncpc::train::task::TaskData;
use std::hint::black_box;
use std::time::Duration;

fn genome(name: &str) -> Genome {
    let root = env!("CARGO_MANIFEST_DIR");
    Genome {
        name: name.into(),
        text: std::fs::read_to_string(format!("{root}/tests/corpus/amm/{name}.json")).unwrap(),
        opts: CompileOptions::default(),
    }
}

fn protocols(c: &mut Criterion) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut group = c.benchmark_group("candidate");
    group.measurement_time(Duration::from_secs(5));
    for name in [ProtocolName::Amm, ProtocolName::Standard] {
        let mut p = Protocol::preset(name);
        p.seeds = 1;
        p.baselines = false;
        let data = TaskData::for_protocol(&p, &std::env::temp_dir(), &mut Vec::new()).unwrap();
        for g in ["mse", "cross_entropy"] {
            let genome = genome(g);
            for backend in [Backend::Jit, Backend::Interp] {
                let opts = EvalOptions {
                    backend,
                    ..EvalOptions::default()
                };
                let id = BenchmarkId::new(format!("{name:?}/{g}"), format!("{backend:?}"));
                group.bench_with_input(id, &genome, |b, genome| {
                    b.iter(|| {
                        pool.install(|| {
                            black_box(
                                evaluate(genome, &p, &data, opts, Vec::new(), &|| {})
                                    .unwrap()
                                    .score,
                            )
                        })
                    })
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, protocols);
criterion_main!(benches);
