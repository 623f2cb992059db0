//! The burn backend against the oracles: every corpus loss lowered to burn gives the
//! interpreter's loss and, through burn-autodiff, the gradient IR's dL/dy_pred; training a
//! population on burn reproduces the trainer's own runs within float rounding.
//!
//! Runs on burn's CPU backend (`--features burn-cpu`); with `--features wgpu` and
//! `NCPC_TEST_WGPU=1` the same checks run on the wgpu device (Mesa's lavapipe in CI).
#![cfg(feature = "burn-cpu")]

mod common;

use burn::tensor::{Tensor, TensorData};
use ncp_ir::DType;
use ncp_ir::tensor::Tensor as IrTensor;
use ncpc::burn_backend::lower::{LowerError, lower_loss};
use ncpc::formats::CompileOptions;
use ncpc::loss::{compile_for_inputs, evaluate_function};
use ncpc::train::burn::population::{Member, kernel_steps, train_population};
use ncpc::train::data::synthetic::blobs;
use ncpc::train::protocol::{Protocol, ProtocolName};
use ncpc::train::run::{BurnDevice, LossStep, SeedRun, train_run};
use ncpc::train::task::TaskData;
use rand::{Rng, SeedableRng};

const B: usize = 6;
const C: usize = 4;

fn on_wgpu() -> bool {
    std::env::var("NCPC_TEST_WGPU").is_ok_and(|v| v == "1")
}

fn device() -> burn::tensor::Device {
    let which = if on_wgpu() {
        BurnDevice::Wgpu
    } else {
        BurnDevice::Cpu
    };
    ncpc::burn_backend::device(which).expect("burn device")
}

/// The losses' steps to check: on wgpu the population kernel and burn graphs, on the CPU
/// device graphs (the kernel is WGSL; it runs on wgpu only).
fn loss_steps() -> Vec<LossStep> {
    if on_wgpu() {
        vec![LossStep::Kernel, LossStep::Graph]
    } else {
        vec![LossStep::Graph]
    }
}

/// Train `members` with `step`; with the kernel step, check that the kernel ran.
fn train(members: &[Member], data: &TaskData, p: &Protocol, step: LossStep) -> Vec<SeedRun> {
    let before = kernel_steps();
    let runs = train_population(members, data, p, &device(), step);
    if step == LossStep::Kernel {
        assert!(
            kernel_steps() > before,
            "the population kernel did not run (see the log for why)"
        );
    }
    runs
}

/// The run ended at its first step, before recording any loss.
fn assert_fails_at_first_step(run: &SeedRun, step: LossStep) {
    let why = run.failure.as_deref().unwrap_or("");
    assert!(
        why.starts_with("step 1:") && run.losses.is_empty(),
        "{step:?}: {run:?}"
    );
}

/// A loss that mixes rows (the standard deviation of every error): the population kernel does
/// not lower it, so in a kernel step it keeps its burn graph.
fn row_mixing() -> ncp_ir::Function {
    ncp_ir::text::parse_function(
        "function mixing(f32[B,C], f32[B,C]) -> f32 {\nblock0(v0: f32[B,C], v1: f32[B,C]):\n    v2 = sub v1, v0 : f32[B,C]\n    v3 = std<all> v2 : f32\n    return v3\n}",
    )
    .unwrap()
}

fn inputs(seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let pred: Vec<f32> = (0..B * C).map(|_| rng.random_range(-2.0..2.0)).collect();
    let mut truth = vec![0f32; B * C];
    for r in 0..B {
        truth[r * C + rng.random_range(0..C)] = 1.0;
    }
    (pred, truth)
}

fn close(a: f32, b: f32) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a.is_infinite() || b.is_infinite() {
        return a == b;
    }
    (a - b).abs() <= 1e-4 + 1e-4 * a.abs().max(b.abs())
}

/// Every corpus genome: the lowered loss equals the interpreter's, and burn-autodiff's
/// gradient equals the gradient IR's, within 1e-4 (absolute plus relative).
#[test]
fn lowered_losses_and_gradients_match_the_interpreter() {
    let dev = device().autodiff();
    let mut checked = 0;
    let mut grads_checked = 0;
    let mut mismatches = Vec::new();
    for dir in ["tests/corpus/amm", "tests/corpus/daml", "tests/corpus/haz"] {
        for path in common::json_files(dir) {
            let text = std::fs::read_to_string(&path).unwrap();
            let Ok(func) = compile_for_inputs(&text, &CompileOptions::default(), B, C, true) else {
                continue;
            };
            for seed in 0..3 {
                let (pred, truth) = inputs(seed);
                let yp = IrTensor {
                    dtype: DType::F32,
                    shape: vec![B, C],
                    data: pred.iter().map(|v| *v as f64).collect(),
                };
                let yt = IrTensor {
                    dtype: DType::F32,
                    shape: vec![B, C],
                    data: truth.iter().map(|v| *v as f64).collect(),
                };
                let Ok(want) = evaluate_function(&func, &yp, &yt, true) else {
                    continue;
                };
                let tp = Tensor::<2>::from_data(TensorData::new(pred.clone(), [B, C]), &dev)
                    .require_grad();
                let tt = Tensor::<2>::from_data(TensorData::new(truth.clone(), [B, C]), &dev);
                let got = lower_loss(&func, tp.clone(), tt, 1_000_000);
                let name = format!("{} (inputs {seed})", path.display());
                match (want.fault, got) {
                    (Some(t), Err(LowerError::Trap(u))) => assert_eq!(t, u, "{name}"),
                    (Some(t), other) => {
                        mismatches.push(format!("{name}: trap {t:?}, burn {other:?}"))
                    }
                    (None, Err(e)) => mismatches.push(format!("{name}: burn failed: {e}")),
                    (None, Ok(loss)) => {
                        let value: f32 = loss.clone().into_data().iter::<f32>().next().unwrap();
                        if !close(value, want.loss) {
                            mismatches.push(format!("{name}: loss {} vs {value}", want.loss));
                            continue;
                        }
                        checked += 1;
                        let Some(gw) = want.grad else { continue };
                        if !value.is_finite() || !loss.is_tracked() {
                            continue;
                        }
                        let grads = loss.backward();
                        let g: Vec<f32> =
                            tp.grad(&grads).expect("grad").into_data().iter().collect();
                        let gw: Vec<f32> = gw.concat();
                        if gw.iter().all(|v| v.is_finite())
                            && !g.iter().zip(&gw).all(|(a, b)| close(*a, *b))
                        {
                            mismatches.push(format!("{name}: grad\n  ir   {gw:?}\n  burn {g:?}"));
                        }
                        grads_checked += 1;
                    }
                }
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    assert!(checked >= 150, "only {checked} losses compared");
    assert!(
        grads_checked >= 100,
        "only {grads_checked} gradients compared"
    );
}

fn synthetic() -> TaskData {
    TaskData::from_dataset(&blobs(5, 600, 16, 4), 400, 0.5, 0.25)
}

fn func(name: &str, batch: usize, classes: usize) -> ncp_ir::Function {
    let text =
        std::fs::read_to_string(common::root().join(format!("tests/corpus/amm/{name}.json")))
            .unwrap();
    compile_for_inputs(&text, &CompileOptions::default(), batch, classes, true).unwrap()
}

fn native(name: &str, data: &TaskData, p: &Protocol, seed: u64) -> SeedRun {
    let f = func(name, p.batch, data.classes);
    let mut cand = ncpc::train::candidate::CandidateLoss::new(
        f,
        ncpc::loss::Backend::Jit,
        ncpc::jit::MathMode::Exact,
    );
    train_run(&mut cand, data, p, seed)
}

fn assert_runs_agree(native: &SeedRun, burn: &SeedRun, what: &str) {
    assert_eq!(
        native.failure.is_some(),
        burn.failure.is_some(),
        "{what}: {native:?} / {burn:?}"
    );
    assert_eq!(native.losses.len(), burn.losses.len(), "{what}");
    for (k, (a, b)) in native.losses.iter().zip(&burn.losses).enumerate() {
        assert!(
            (a - b).abs() <= 1e-3 * a.abs().max(1.0),
            "{what}: step {k} loss {a} (native) vs {b} (burn)"
        );
    }
    assert!(
        (native.accuracy - burn.accuracy).abs() <= 0.02,
        "{what}: accuracy {} vs {}",
        native.accuracy,
        burn.accuracy
    );
}

/// A population of mixed losses and seeds on burn: each member follows the trainer's own run
/// with the same loss and seed (dropout included), within float rounding, whichever the
/// losses' step (a loss that mixes rows keeps its graph beside the kernel's members).
#[test]
fn population_members_follow_the_native_trainer() {
    let data = synthetic();
    let mut p = Protocol::preset(ProtocolName::Standard);
    p.steps = Some(30);
    p.curve_every = 10;
    p.hurdles.clear();
    p.dropout = 0.2;
    let jobs = [
        ("cross_entropy", 1u64),
        ("mse", 2),
        ("baikal", 3),
        ("cross_entropy", 4),
        ("mixing", 5),
    ];
    let members: Vec<Member> = jobs
        .iter()
        .map(|(name, seed)| Member {
            func: match *name {
                "mixing" => row_mixing(),
                name => func(name, p.batch, data.classes),
            },
            seed: *seed,
        })
        .collect();
    for step in loss_steps() {
        let runs = train(&members, &data, &p, step);
        assert_eq!(runs.len(), jobs.len());
        for ((m, (name, seed)), run) in members.iter().zip(&jobs).zip(&runs) {
            assert_eq!(run.seed, *seed);
            let mut cand = ncpc::train::candidate::CandidateLoss::new(
                m.func.clone(),
                ncpc::loss::Backend::Jit,
                ncpc::jit::MathMode::Exact,
            );
            let want = train_run(&mut cand, &data, &p, *seed);
            assert_runs_agree(&want, run, &format!("{step:?}: {name} seed {seed}"));
            assert_eq!(run.curve.len(), want.curve.len());
        }
        // A member alone gives what it gave inside the population.
        let alone = train(&members[1..2], &data, &p, step);
        assert_runs_agree(&runs[1], &alone[0], "mse alone vs in the population");
    }
}

/// Failures are per member: a NaN loss, or a loss whose parameter types refuse the batch,
/// fails its own member at the step it happens and leaves the others training.
#[test]
fn a_failing_member_fails_alone() {
    let data = synthetic();
    let mut p = Protocol::preset(ProtocolName::Amm);
    p.batch = 32;
    let c = data.classes;
    let members = vec![
        Member {
            func: func("cross_entropy", p.batch, c),
            seed: 1,
        },
        Member {
            func: func("edge_exp_overflow", p.batch, c),
            seed: 1,
        },
        // Typed for batches of 7 rows: the batch of 32 is refused at the first step.
        Member {
            func: ncp_ir::text::parse_function(
                "function fixed(f32[7,C], f32[7,C]) -> f32 {\nblock0(v0: f32[7,C], v1: f32[7,C]):\n    v2 = sub v1, v0 : f32[7,C]\n    v3 = mul v2, v2 : f32[7,C]\n    v4 = mean<all> v3 : f32\n    return v4\n}",
            )
            .unwrap(),
            seed: 1,
        },
    ];
    let want = native("cross_entropy", &data, &p, 1);
    let native_overflow = native("edge_exp_overflow", &data, &p, 1);
    let mut cand = ncpc::train::candidate::CandidateLoss::new(
        members[2].func.clone(),
        ncpc::loss::Backend::Jit,
        ncpc::jit::MathMode::Exact,
    );
    let native_fixed = train_run(&mut cand, &data, &p, 1);
    assert!(native_fixed.failure.is_some(), "{native_fixed:?}");
    for step in loss_steps() {
        let runs = train(&members, &data, &p, step);
        assert_runs_agree(&want, &runs[0], "cross-entropy beside a failing member");
        assert_eq!(
            runs[1].failure.is_some(),
            native_overflow.failure.is_some(),
            "{step:?}: {:?} vs {:?}",
            runs[1],
            native_overflow
        );
        assert_fails_at_first_step(&runs[2], step);
    }
}

/// A batch as wide as the classes: the interpreter refuses to bind symbolic B and C to one
/// size, so the member fails at its first step on every path, the population kernel's
/// included (which lowers the loss, and checks the batch against the loss's types each step).
#[test]
fn a_batch_the_loss_refuses_fails_on_every_path() {
    let data = synthetic();
    let mut p = Protocol::preset(ProtocolName::Amm);
    p.batch = data.classes;
    let members = vec![Member {
        func: func("mse", 32, data.classes),
        seed: 1,
    }];
    let g = ncpc::gpu::emit::gradient_ir(&members[0].func).unwrap();
    let wgsl = ncpc::gpu::emit::Dialect::Wgsl;
    assert!(ncpc::gpu::emit::population(&[g], data.classes, wgsl).is_ok());
    let native = native("mse", &data, &p, 1);
    assert!(native.failure.is_some(), "{native:?}");
    for step in loss_steps() {
        let runs = train_population(&members, &data, &p, &device(), step);
        assert_fails_at_first_step(&runs[0], step);
    }
}

/// The small CNN: two members (cross-entropy, two seeds) trained as one population by grouped
/// convolutions learn MNIST, and a member alone trains as it did inside the population.
#[test]
fn the_small_cnn_learns_mnist_as_a_population() {
    use ncpc::train::burn::nets::Cnn;
    assert_eq!(
        Cnn::for_input(784, 10),
        Some(Cnn {
            ch: 1,
            side: 28,
            classes: 10
        })
    );
    assert_eq!(
        Cnn::for_input(3072, 10).map(|c| (c.ch, c.side)),
        Some((3, 32))
    );
    assert_eq!(Cnn::for_input(50, 10), None);
    let mut p = Protocol::preset(ProtocolName::Amm);
    p.architecture = ncpc::train::protocol::Architecture::Cnn;
    p.early_stop = None;
    p.steps = Some(60);
    let data = TaskData::for_protocol(&p, &std::env::temp_dir(), &mut Vec::new()).unwrap();
    let members: Vec<Member> = [1u64, 2]
        .iter()
        .map(|seed| Member {
            func: func("cross_entropy", p.batch, data.classes),
            seed: *seed,
        })
        .collect();
    let step = loss_steps()[0];
    let runs = train(&members, &data, &p, step);
    for r in &runs {
        assert!(r.failure.is_none(), "{r:?}");
        assert!(r.accuracy > 0.6, "seed {}: accuracy {}", r.seed, r.accuracy);
    }
    let alone = train(&members[1..], &data, &p, step);
    assert_runs_agree(&runs[1], &alone[0], "CNN member alone vs in the population");
}

/// Validation of a wide population fits the device's buffers: eight CNN members over the
/// standard protocol's 1000 validation images would need 173 MB for the first convolution in
/// one pass, beyond wgpu's default 128 MiB storage binding, so validation runs in chunks
/// sized by the network's widest activation.
#[test]
fn a_wide_population_validates_in_chunks_that_fit() {
    use ncpc::train::burn::nets::Net;
    let mut p = Protocol::preset(ProtocolName::Standard);
    p.architecture = ncpc::train::protocol::Architecture::Cnn;
    p.steps = Some(2);
    p.hurdles.clear();
    let data = TaskData::for_protocol(&p, &std::env::temp_dir(), &mut Vec::new()).unwrap();
    let net = Net::for_protocol(&p, data.dim, data.classes).unwrap();
    assert_eq!(net.floats_per_sample(), 8 * 26 * 26);
    assert!(data.val_y.len() >= 1000, "{}", data.val_y.len());
    let members: Vec<Member> = (0..8u64)
        .map(|seed| Member {
            func: func("cross_entropy", p.batch, data.classes),
            seed,
        })
        .collect();
    for r in train_population(&members, &data, &p, &device(), loss_steps()[0]) {
        assert!(r.failure.is_none(), "{r:?}");
        assert!(r.accuracy.is_finite(), "{r:?}");
    }
}
