//! The JIT against the interpreter (and, through benches/compare.py, against PyTorch eager):
//! loss + gradient per call at 32x10 and 256x10, throughput at 1M elements, and compile
//! latency for genomes of 10, 30 and 100 instructions, a training step of a loss that
//! branches on the data (guarded path kernels against the interpreter), and ncpc's exact
//! exp/log/softmax on whole buffers at each instruction set (`ncp_ir::vmath`).
//!
//! `cargo bench --bench jit`; `python3 benches/compare.py` runs this and the PyTorch peer and
//! prints the ratio table.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ncp_ir::passes::{OptOptions, optimize};
use ncp_ir::tensor::Tensor;
use ncp_ir::{DimModel, Function};
use ncpc::formats::{CompileOptions, Mode, amm, compile};
use ncpc::jit::{Jit, MathMode, Tier};
use ncpc::loss::evaluate_function;
use rand::SeedableRng;
use std::hint::black_box;
use std::time::Duration;

#[path = "common/loss_inputs.rs"]
mod loss_inputs;
use loss_inputs::inputs;

const GENOMES: &[&str] = &["mse", "cross_entropy", "baikal"];

fn genome(name: &str) -> Function {
    let root = env!("CARGO_MANIFEST_DIR");
    let text = std::fs::read_to_string(format!("{root}/tests/corpus/amm/{name}.json")).unwrap();
    let mut f = compile(&text, &CompileOptions::default()).unwrap().func;
    optimize(&mut f, OptOptions::default()).unwrap();
    f
}

/// Kernels of a loss that runs many times: the hot tier (what training switches to).
fn hot(math: MathMode) -> Jit {
    let mut j = Jit::with_math(math).unwrap();
    j.tier = Tier::Hot;
    j
}

fn per_call(c: &mut Criterion) {
    let mut jit = hot(MathMode::Exact);
    let mut fast = hot(MathMode::Fast);
    // Every loss's first kernel (what AMM's ten training steps run).
    let mut quick = Jit::new().unwrap();
    for (b, cc) in [(32usize, 10usize), (256, 10)] {
        let mut group = c.benchmark_group(format!("loss_grad_{b}x{cc}"));
        group
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1));
        let (yp, yt) = inputs(b, cc);
        let (tp, tt) = (
            Tensor::new(
                ncp_ir::DType::F32,
                vec![b, cc],
                yp.iter().map(|x| *x as f64).collect(),
            ),
            Tensor::new(
                ncp_ir::DType::F32,
                vec![b, cc],
                yt.iter().map(|x| *x as f64).collect(),
            ),
        );
        for g in GENOMES {
            let f = genome(g);
            let cl = jit
                .compile_loss(&f)
                .unwrap()
                .expect("the JIT takes the library losses");
            let mut grad = vec![0f32; b * cc];
            group.bench_function(BenchmarkId::new("jit", g), |bch| {
                bch.iter(|| {
                    jit.run(&cl, black_box(&yp), black_box(&yt), b, cc, &mut grad)
                        .unwrap()
                })
            });
            let clq = quick.compile_loss(&f).unwrap().unwrap();
            group.bench_function(BenchmarkId::new("jit_quick", g), |bch| {
                bch.iter(|| {
                    quick
                        .run(&clq, black_box(&yp), black_box(&yt), b, cc, &mut grad)
                        .unwrap()
                })
            });
            let clf = fast.compile_loss(&f).unwrap().unwrap();
            group.bench_function(BenchmarkId::new("jit_fast", g), |bch| {
                bch.iter(|| {
                    fast.run(&clf, black_box(&yp), black_box(&yt), b, cc, &mut grad)
                        .unwrap()
                })
            });
            group.bench_function(BenchmarkId::new("interp", g), |bch| {
                bch.iter(|| evaluate_function(black_box(&f), &tp, &tt, true).unwrap())
            });
        }
        group.finish();
    }
}

fn throughput(c: &mut Criterion) {
    let mut jit = hot(MathMode::Exact);
    let mut fast = hot(MathMode::Fast);
    let (b, cc) = (100_000usize, 10usize);
    let mut group = c.benchmark_group("throughput_1M");
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .sample_size(10);
    group.throughput(Throughput::Elements((b * cc) as u64));
    let (yp, yt) = inputs(b, cc);
    for g in GENOMES {
        let f = genome(g);
        let cl = jit.compile_loss(&f).unwrap().unwrap();
        let mut grad = vec![0f32; b * cc];
        group.bench_function(BenchmarkId::new("jit", g), |bch| {
            bch.iter(|| {
                jit.run(&cl, black_box(&yp), black_box(&yt), b, cc, &mut grad)
                    .unwrap()
            })
        });
        // The same kernel as one call over the whole batch (what `run` did before it went
        // by consecutive row blocks): the blocks' effect alone.
        group.bench_function(BenchmarkId::new("jit_one_call", g), |bch| {
            bch.iter(|| {
                jit.run_in_row_blocks(&cl, black_box(&yp), black_box(&yt), b, cc, &mut grad, b)
                    .unwrap()
            })
        });
        group.bench_function(BenchmarkId::new("jit_parallel", g), |bch| {
            bch.iter(|| {
                jit.run_blocks(&cl, black_box(&yp), black_box(&yt), b, cc, &mut grad, 4096)
                    .unwrap()
            })
        });
        let clf = fast.compile_loss(&f).unwrap().unwrap();
        group.bench_function(BenchmarkId::new("jit_fast", g), |bch| {
            bch.iter(|| {
                fast.run(&clf, black_box(&yp), black_box(&yt), b, cc, &mut grad)
                    .unwrap()
            })
        });
        assert!(
            fast.kernel_of(&clf).is_row_separable(),
            "{g} splits by rows"
        );
        group.bench_function(BenchmarkId::new("jit_fast_parallel", g), |bch| {
            bch.iter(|| {
                fast.run_blocks(&clf, black_box(&yp), black_box(&yt), b, cc, &mut grad, 4096)
                    .unwrap()
            })
        });
    }
    group.finish();
}

/// Straight-line random programs with `n` instructions that the JIT compiles.
fn programs(n: usize) -> Vec<Function> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(n as u64);
    let mut out = Vec::new();
    while out.len() < 20 {
        let p = amm::random::random_program(&mut rng, n.saturating_sub(3), false);
        let Ok((mut f, _)) = amm::lower(&p, "g", Mode::Compat, DimModel::Symbolic) else {
            continue;
        };
        optimize(&mut f, OptOptions::default()).unwrap();
        if Jit::new()
            .unwrap()
            .compile_loss(&f)
            .ok()
            .flatten()
            .is_some()
        {
            out.push(f);
        }
    }
    out
}

fn compile_latency(c: &mut Criterion) {
    let mut group = c.benchmark_group("compile");
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    for n in [10usize, 30, 100] {
        let fs = programs(n);
        let mut k = 0;
        group.bench_function(
            BenchmarkId::new("jit", format!("{n}_instructions")),
            |bch| {
                bch.iter(|| {
                    // A fresh compiler each time: no cache hit.
                    let mut jit = Jit::new().unwrap();
                    k = (k + 1) % fs.len();
                    jit.compile_loss(black_box(&fs[k])).unwrap()
                })
            },
        );
    }
    // One compiler whose cache is emptied before each compile: the kernel's cost alone
    // (a miner keeps one JIT per thread), in the quick tier (every loss's first kernel) and
    // the hot one (what a loss that keeps training is recompiled in).
    for (tier, label) in [(Tier::Quick, "kernel"), (Tier::Hot, "kernel_hot")] {
        for n in [10usize, 30, 100] {
            let fs = programs(n);
            let mut k = 0;
            let mut jit = Jit::new().unwrap();
            jit.tier = tier;
            group.bench_function(
                BenchmarkId::new(label, format!("{n}_instructions")),
                |bch| {
                    bch.iter(|| {
                        jit.forget_kernels();
                        k = (k + 1) % fs.len();
                        jit.compile_loss(black_box(&fs[k])).unwrap()
                    })
                },
            );
        }
    }
    group.finish();
}

/// A loss whose branch depends on y_pred: cross-entropy, or MSE when a logit exceeds 30. The
/// JIT compiles the path the first batch takes, guarded; the interpreter was the only
/// engine for such losses before.
const BRANCHY_CE: &str = "function branchy_ce(f32[B,C], f32[B,C]) -> f32 {
block0(v0: f32[B,C], v1: f32[B,C]):
    v2 = reduce_max<all> v0 : f32
    v3 = const<30.0> : f32
    v4 = gt v2, v3 : bool
    brif v4, block1, block2
block1:
    v5 = sub v0, v1 : f32[B,C]
    v6 = mul v5, v5 : f32[B,C]
    v7 = mean<all> v6 : f32
    return v7
block2:
    v8 = softmax v0 : f32[B,C]
    v9 = const<1e-7> : f32
    v10 = max v8, v9 : f32[B,C]
    v11 = log v10 : f32[B,C]
    v12 = mul v1, v11 : f32[B,C]
    v13 = sum<1> v12 : f32[B]
    v14 = neg v13 : f32[B]
    v15 = mean<0> v14 : f32
    return v15
}";

fn branching(c: &mut Criterion) {
    use ncpc::loss::Backend;
    use ncpc::train::candidate::CandidateLoss;
    let f = ncp_ir::text::parse_function(BRANCHY_CE).unwrap();
    let mut group = c.benchmark_group("branching_step");
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for (b, cc) in [(32usize, 10usize), (256, 10)] {
        let (yp, yt) = inputs(b, cc);
        for (name, backend) in [("jit", Backend::Jit), ("interp", Backend::Interp)] {
            let mut l = CandidateLoss::new(f.clone(), backend, ncpc::jit::MathMode::Exact);
            let mut grad = Vec::new();
            group.bench_function(BenchmarkId::new(name, format!("{b}x{cc}")), |bch| {
                bch.iter(|| {
                    l.loss_and_grad(black_box(&yp), black_box(&yt), b, cc, &mut grad)
                        .unwrap()
                })
            });
        }
    }
    group.finish();
}

/// ncpc's exact exp, log and softmax on one 256x10 buffer (`ncp_ir::vmath`, what the JIT's
/// wide calls run), at each instruction set this CPU has: the per-element cost of the
/// transcendentals inside the softmax losses.
fn wide_math(c: &mut Criterion) {
    use ncp_ir::vmath::{Level, exp_f32_at, log_f32_at, softmax_f32_at};
    let mut group = c.benchmark_group("vmath_256x10");
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(2560));
    let (x, _) = inputs(256, 10);
    let pos: Vec<f32> = x.iter().map(|v| v.abs() + 1e-3).collect();
    let mut out = vec![0f32; x.len()];
    for l in Level::ALL.into_iter().filter(|l| l.supported()) {
        group.bench_function(BenchmarkId::new("exp", l.name()), |b| {
            b.iter(|| exp_f32_at(l, black_box(&x), &mut out))
        });
        group.bench_function(BenchmarkId::new("log", l.name()), |b| {
            b.iter(|| log_f32_at(l, black_box(&pos), &mut out))
        });
        group.bench_function(BenchmarkId::new("softmax", l.name()), |b| {
            b.iter(|| softmax_f32_at(l, black_box(&x), &mut out, 10))
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    per_call,
    throughput,
    compile_latency,
    branching,
    wide_math
);
criterion_main!(benches);
