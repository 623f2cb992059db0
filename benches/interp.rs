//! The reference interpreter on the losses the pool trains with: loss + gradient at AMM's
//! training shape (B=32, C=10). The interpreter is the oracle, not the fast path; this bench
//! is the baseline the Cranelift JIT is measured against. Peer: `peers/loss_eval.py` does the
//! same work with PyTorch eager (forward + backward).
//!
//! `cargo bench --bench interp`

use criterion::{Criterion, criterion_group, criterion_main};
use ncp_ir::passes::{OptOptions, optimize};
use ncp_ir::tensor::Tensor;
use ncpc::formats::{CompileOptions, compile};
use ncpc::loss::evaluate_function;
use std::hint::black_box;

const GENOMES: &[&str] = &[
    "tests/corpus/amm/mse.json",
    "tests/corpus/amm/cross_entropy.json",
    "tests/corpus/amm/baikal.json",
    "tests/corpus/daml/evolved_baseline_loss.json",
];

fn inputs(b: usize, c: usize) -> (Tensor, Tensor) {
    let yp: Vec<Vec<f32>> = (0..b)
        .map(|i| {
            (0..c)
                .map(|j| ((i * 7 + j * 3) % 11) as f32 / 5.0 - 1.0)
                .collect()
        })
        .collect();
    let yt: Vec<Vec<f32>> = (0..b)
        .map(|i| (0..c).map(|j| (j == i % c) as u8 as f32).collect())
        .collect();
    (
        Tensor::from_rows(&yp).unwrap(),
        Tensor::from_rows(&yt).unwrap(),
    )
}

fn bench(c: &mut Criterion) {
    let root = env!("CARGO_MANIFEST_DIR");
    let (yp, yt) = inputs(32, 10);
    for g in GENOMES {
        let text = std::fs::read_to_string(format!("{root}/{g}")).unwrap();
        let mut f = compile(&text, &CompileOptions::default()).unwrap().func;
        optimize(&mut f, OptOptions::default()).unwrap();
        let name = std::path::Path::new(g)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        c.bench_function(&format!("interp_loss_grad/{name}"), |b| {
            b.iter(|| {
                evaluate_function(black_box(&f), black_box(&yp), black_box(&yt), true).unwrap()
            })
        });
        c.bench_function(&format!("compile_optimize/{name}"), |b| {
            b.iter(|| {
                let mut f = compile(black_box(&text), &CompileOptions::default())
                    .unwrap()
                    .func;
                optimize(&mut f, OptOptions::default()).unwrap();
                f
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
