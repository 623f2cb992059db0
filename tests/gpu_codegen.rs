//! The population kernels' C (src/gpu/emit.rs) against the interpreter: every row-separable
//! loss of the corpus and of random genomes, emitted as host C (the CUDA source with the grid
//! as loops), compiled by the system's C compiler, K candidates per launch, each candidate's
//! loss and gradient compared with the interpreter's. Transcendentals come from the C
//! library, so the bound is a tolerance (relative 1e-4, absolute 1e-5), as for burn.

mod common;

use ncp_ir::passes::{OptOptions, optimize};
use ncp_ir::tensor::Tensor;
use ncp_ir::{Function, Value};
use ncpc::formats::daml::{self, PSet};
use ncpc::formats::{CompileOptions, Mode, amm, compile};
use ncpc::gpu::emit::{Dialect, EmitError, population, population_of};
use ncpc::gpu::host;
use ncpc::gpu::{Inputs, PopulationRunner};
use ncpc::loss::evaluate_function;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;

use ncpc::gpu::emit::gradient_ir as grad_ir;

/// A population kernel that runs: host C here, WGSL where a wgpu adapter is.
type Runner = Box<dyn Fn(&[f32], &[f32], usize) -> Vec<(f32, Vec<f32>)>>;

/// Build `pop` for `dialect` and return its runner on one shared batch.
fn runner(pop: &ncpc::gpu::emit::Population, dialect: Dialect) -> Runner {
    runner_on(pop, dialect, Inputs::Shared)
}

/// Build `pop` for `dialect` and return its runner on the batches `inputs` says.
fn runner_on(pop: &ncpc::gpu::emit::Population, dialect: Dialect, inputs: Inputs) -> Runner {
    match dialect {
        Dialect::HostC => {
            let k = host::build(pop).unwrap_or_else(|e| panic!("{e}\n{}", pop.source));
            Box::new(move |p, t, b| k.run_on(inputs, p, t, b).unwrap())
        }
        #[cfg(feature = "wgpu")]
        Dialect::Wgsl => {
            let k = ncpc::gpu::wgpu_population::build(pop)
                .unwrap_or_else(|e| panic!("{e}\n{}", pop.source));
            eprintln!("wgpu adapter: {}", k.adapter());
            Box::new(move |p, t, b| k.run_on(inputs, p, t, b).unwrap())
        }
        d => panic!("no runner for {d:?} in this build"),
    }
}

/// The largest finite magnitude among the values the gradient IR computes on these inputs.
fn largest_intermediate(g: &Function, yp: &Tensor, yt: &Tensor) -> f64 {
    let inputs = [yp.clone(), yt.clone()];
    let Ok(dims) = ncp_ir::interp::bind_dims(g, &inputs) else {
        return 0.0;
    };
    let b = g.entry();
    let mut env: HashMap<Value, Tensor> = g.blocks[b].params.iter().copied().zip(inputs).collect();
    let mut largest = 0f64;
    for &i in &g.blocks[b].insts {
        let inst = &g.insts[i];
        let args: Vec<&Tensor> = inst.args.iter().map(|a| &env[a]).collect();
        let Ok(out) = ncp_ir::interp::eval_inst(g, inst, &args, dims) else {
            return largest;
        };
        for v in out.data.iter().filter(|v| v.is_finite()) {
            largest = largest.max(v.abs());
        }
        env.insert(inst.result, out);
    }
    largest
}

/// Emit every function the backend takes as one population, run it, compare each with the
/// interpreter. Returns (taken, row-separable with a gradient).
fn check(
    losses: &[(String, Function)],
    b: usize,
    c: usize,
    rng: &mut ChaCha8Rng,
    dialect: Dialect,
) -> (usize, usize) {
    let mut taken: Vec<(String, Function, Function)> = Vec::new();
    let mut separable = 0;
    for (name, f) in losses {
        let Some(g) = grad_ir(f) else { continue };
        separable += ncpc::jit::plan::row_separable(&g) as usize;
        match population(std::slice::from_ref(&g), c, dialect) {
            Ok(_) => taken.push((name.clone(), f.clone(), g)),
            Err(EmitError::Unsupported(why)) => {
                if std::env::var("NCPC_TEST_SHOW").is_ok() {
                    eprintln!("refused {name}: {why}");
                }
            }
        }
    }
    if taken.is_empty() {
        return (0, separable);
    }
    let grads: Vec<Function> = taken.iter().map(|t| t.2.clone()).collect();
    let pop = population(&grads, c, dialect).unwrap();
    let run = runner(&pop, dialect);
    for scale in [3.0f32, 1e4] {
        let yp: Vec<Vec<f32>> = (0..b)
            .map(|_| (0..c).map(|_| rng.random_range(-scale..scale)).collect())
            .collect();
        let yt = common::one_hot(rng, b, c);
        let (tp, tt) = common::tensors(&yp, &yt);
        let flat = |m: &Vec<Vec<f32>>| m.iter().flatten().copied().collect::<Vec<f32>>();
        let got = run(&flat(&yp), &flat(&yt), b);
        for ((name, f, g), (loss, grad)) in taken.iter().zip(&got) {
            let want = evaluate_function(f, &tp, &tt, true).unwrap();
            if want.fault.is_some() {
                continue;
            }
            // C computes in double as the interpreter does: 1e-4 relative, 1e-5 absolute.
            // WGSL computes in f32 (it has no f64): burn's tolerance (1e-4 relative and
            // absolute), plus a few f32 ulps of the largest intermediate value, which is what
            // f32 arithmetic can promise where terms cancel (softmax's gradient, say).
            let (rel, abs) = match dialect {
                Dialect::Wgsl => (1e-4, 1e-4 + 1e-6 * largest_intermediate(g, &tp, &tt) as f32),
                _ => (1e-4, 1e-5),
            };
            let same = |a: f32, w: f32| (a.is_nan() && w.is_nan()) || common::close(a, w, rel, abs);
            assert!(
                same(*loss, want.loss),
                "{name} {b}x{c} scale {scale}: loss {loss} ({dialect:?}) vs {} (interp)\n{}",
                want.loss,
                ncp_ir::text::print_function(f)
            );
            let wg: Vec<f32> = want.grad.unwrap().into_iter().flatten().collect();
            for (j, (x, y)) in grad.iter().zip(&wg).enumerate() {
                assert!(
                    same(*x, *y),
                    "{name} {b}x{c} scale {scale}: gradient[{j}] {x} ({dialect:?}) vs {y} (interp)\n{}",
                    ncp_ir::text::print_function(f)
                );
            }
        }
    }
    (taken.len(), separable)
}

/// The corpus's straight-line losses, optimized.
fn corpus() -> Vec<(String, Function)> {
    let mut losses = Vec::new();
    for dir in ["tests/corpus/amm", "tests/corpus/daml", "tests/corpus/haz"] {
        for path in common::json_files(dir) {
            let text = std::fs::read_to_string(&path).unwrap();
            if let Ok(cf) = compile(&text, &CompileOptions::default()) {
                let mut f = cf.func;
                if optimize(&mut f, OptOptions::default()).is_ok() && f.is_straight_line() {
                    losses.push((path.display().to_string(), f));
                }
            }
        }
    }
    losses
}

/// 300 random genomes (AMM programs and DEAP expressions), optimized, straight-line ones kept.
fn random_losses(rng: &mut ChaCha8Rng) -> Vec<(String, Function)> {
    let mut losses = Vec::new();
    for i in 0..300 {
        let f = if i % 2 == 0 {
            let len = rng.random_range(1..20);
            let p = amm::random::random_program(rng, len, false);
            match amm::lower(&p, "g", Mode::Compat, ncp_ir::DimModel::Symbolic) {
                Ok((f, _)) => f,
                Err(_) => continue,
            }
        } else {
            let e = daml::random_expr(rng, 1, 5, PSet::Validator);
            daml::lower(&e, "g", ncp_ir::DimModel::Symbolic).unwrap()
        };
        let mut f = f;
        if optimize(&mut f, OptOptions::default()).is_ok() && f.is_straight_line() {
            losses.push((format!("random #{i}"), f));
        }
    }
    losses
}

#[test]
fn population_c_matches_the_interpreter_on_the_corpus() {
    let losses = corpus();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (taken, separable) = check(&losses, 32, 10, &mut rng, Dialect::HostC);
    eprintln!(
        "corpus: {} straight-line losses, {separable} row-separable with a gradient, {taken} lowered to C",
        losses.len()
    );
    // Every row-separable loss of the corpus is lowered (MSE, cross-entropy, Baikal, ...).
    assert!(taken == separable && taken > 20, "{taken} of {separable}");
    check(&losses, 7, 3, &mut rng, Dialect::HostC);
}

#[test]
fn population_c_matches_the_interpreter_on_random_genomes() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let losses = random_losses(&mut rng);
    let (taken, separable) = check(&losses, 16, 10, &mut rng, Dialect::HostC);
    eprintln!(
        "random: {} straight-line losses, {separable} row-separable with a gradient, {taken} lowered to C",
        losses.len()
    );
    assert!(taken == separable && taken > 20, "{taken} of {separable}");
}

/// With `--features wgpu`: the WGSL of every row-separable loss of the corpus and of random
/// genomes parses and validates in naga (no device needed), each loss alone and all as one
/// population.
#[cfg(feature = "wgpu")]
#[test]
fn population_wgsl_validates() {
    use ncpc::gpu::wgpu_population::validate;
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut losses = corpus();
    losses.extend(random_losses(&mut rng));
    let mut grads = Vec::new();
    for (name, f) in &losses {
        let Some(g) = grad_ir(f) else { continue };
        if !ncpc::jit::plan::row_separable(&g) {
            continue;
        }
        let pop = population(std::slice::from_ref(&g), 10, Dialect::Wgsl)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        validate(&pop.source).unwrap_or_else(|e| panic!("{name}: {e}\n{}", pop.source));
        grads.push(g);
    }
    let pop = population(&grads, 10, Dialect::Wgsl).unwrap();
    validate(&pop.source).unwrap();
    eprintln!("{} population kernels validate as WGSL", grads.len());
    assert!(grads.len() > 80, "{}", grads.len());
}

/// With `--features wgpu` and NCPC_TEST_WGPU=1 (CI: Mesa's lavapipe): the WGSL population
/// agrees with the interpreter on the corpus and on random genomes, within the same tolerance
/// as the C backends and burn.
#[cfg(feature = "wgpu")]
#[test]
fn population_wgsl_matches_the_interpreter_on_a_wgpu_adapter() {
    if std::env::var("NCPC_TEST_WGPU").is_err() {
        eprintln!("skipped: set NCPC_TEST_WGPU=1 where a wgpu adapter (lavapipe) is");
        return;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let losses = corpus();
    let (taken, separable) = check(&losses, 32, 10, &mut rng, Dialect::Wgsl);
    eprintln!("corpus on wgpu: {taken} of {separable} row-separable losses");
    assert!(taken == separable && taken > 20, "{taken} of {separable}");
    check(&losses, 7, 3, &mut rng, Dialect::Wgsl);
    let losses = random_losses(&mut rng);
    let (taken, separable) = check(&losses, 16, 10, &mut rng, Dialect::Wgsl);
    eprintln!("random on wgpu: {taken} of {separable} row-separable losses");
    assert!(taken == separable && taken > 20, "{taken} of {separable}");
}

/// Unsupported losses are refused with the reason, never a panic.
#[test]
fn losses_that_mix_rows_are_refused() {
    let text = "function g(f32[B,C], f32[B,C]) -> f32 {\nblock0(v0: f32[B,C], v1: f32[B,C]):\n    v2 = std<all> v0 : f32\n    return v2\n}";
    let f = ncp_ir::text::parse_function(text).unwrap();
    let g = grad_ir(&f).unwrap();
    let e = population(&[g], 10, Dialect::Cuda).unwrap_err();
    assert!(e.to_string().contains("mixes rows"), "{e}");
    assert!(population(&[], 0, Dialect::Cuda).is_err());
    // A loss typed for 7 classes is not compiled for 10.
    let text = "function g(f32[B,7], f32[B,7]) -> f32 {\nblock0(v0: f32[B,7], v1: f32[B,7]):\n    v2 = sub v1, v0 : f32[B,7]\n    v3 = mul v2, v2 : f32[B,7]\n    v4 = mean<all> v3 : f32\n    return v4\n}";
    let g = grad_ir(&ncp_ir::text::parse_function(text).unwrap()).unwrap();
    let e = population(std::slice::from_ref(&g), 10, Dialect::Wgsl).unwrap_err();
    assert!(e.to_string().contains("typed for 7 classes"), "{e}");
    assert!(population(&[g], 7, Dialect::Wgsl).is_ok());
}

/// With `--features cuda-rt`: where libcuda and NVRTC load and a GPU is there, the CUDA build
/// of the corpus's population agrees with the interpreter; elsewhere the error says which
/// libraries were looked for and how to point the loader at them (no panic).
#[cfg(feature = "cuda-rt")]
#[test]
fn cuda_population_matches_the_interpreter_or_says_what_is_missing() {
    use ncpc::gpu::cuda;
    if let Err(e) = cuda::check_libraries() {
        let m = e.to_string();
        assert!(
            m.contains("LD_LIBRARY_PATH") && m.contains("names tried"),
            "{m}"
        );
        eprintln!("no CUDA here: {m}");
        return;
    }
    let mut losses = Vec::new();
    for name in ["mse", "cross_entropy", "baikal"] {
        let text = std::fs::read_to_string(format!("tests/corpus/amm/{name}.json")).unwrap();
        let mut f = compile(&text, &CompileOptions::default()).unwrap().func;
        optimize(&mut f, OptOptions::default()).unwrap();
        losses.push(f);
    }
    let grads: Vec<Function> = losses.iter().map(|f| grad_ir(f).unwrap()).collect();
    let pop = population(&grads, 10, Dialect::Cuda).unwrap();
    let k = match cuda::build(&pop) {
        Ok(k) => k,
        Err(cuda::CudaError::Driver(m)) => {
            eprintln!("CUDA libraries load but no device runs: {m}");
            return;
        }
        Err(e) => panic!("{e}\n{}", pop.source),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let b = 1000;
    let yp: Vec<Vec<f32>> = (0..b)
        .map(|_| (0..10).map(|_| rng.random_range(-3.0f32..3.0)).collect())
        .collect();
    let yt = common::one_hot(&mut rng, b, 10);
    let (tp, tt) = common::tensors(&yp, &yt);
    let flat = |m: &Vec<Vec<f32>>| m.iter().flatten().copied().collect::<Vec<f32>>();
    let got = k.run(&flat(&yp), &flat(&yt), b).unwrap();
    for (f, (loss, grad)) in losses.iter().zip(&got) {
        let want = evaluate_function(f, &tp, &tt, true).unwrap();
        assert!(
            common::close(*loss, want.loss, 1e-4, 1e-5),
            "{loss} vs {}",
            want.loss
        );
        let wg: Vec<f32> = want.grad.unwrap().into_iter().flatten().collect();
        for (x, y) in grad.iter().zip(&wg) {
            assert!(common::close(*x, *y, 1e-4, 1e-5), "{x} vs {y}");
        }
    }
}

/// A batch that does not fit the kernel is an error that says what was expected, for every
/// runner built here (host C; WGSL where a wgpu adapter is), never a panic or a read past the
/// buffers.
#[test]
fn a_batch_of_the_wrong_size_is_an_error() {
    let text = std::fs::read_to_string("tests/corpus/amm/mse.json").unwrap();
    let mut f = compile(&text, &CompileOptions::default()).unwrap().func;
    optimize(&mut f, OptOptions::default()).unwrap();
    let g = grad_ir(&f).unwrap();
    let pop = population(std::slice::from_ref(&g), 10, Dialect::HostC).unwrap();
    let k = host::build(&pop).unwrap();
    let (yp, yt) = (vec![0.5f32; 40], vec![0.0f32; 40]);
    for (p, t, b) in [
        (&yp[..], &yt[..], 5),
        (&yp[..30], &yt[..], 3),
        (&yp[..], &yt[..], 0),
    ] {
        let e = k.run(p, t, b).unwrap_err().to_string();
        assert!(e.contains("must both hold") && e.contains("x 10"), "{e}");
    }
    assert_eq!(k.run(&yp, &yt, 4).unwrap().len(), 1);
    #[cfg(feature = "wgpu")]
    if std::env::var("NCPC_TEST_WGPU").is_ok() {
        let pop = population(&[g], 10, Dialect::Wgsl).unwrap();
        let k = ncpc::gpu::wgpu_population::build(&pop).unwrap();
        let e = k.run(&yp[..30], &yt, 3).unwrap_err().to_string();
        assert!(e.contains("must both hold"), "{e}");
        assert_eq!(k.run(&yp, &yt, 4).unwrap().len(), 1);
    }
}

/// A population in training: candidates that share losses (one loss under several seeds),
/// each on its own batch. Every candidate gets what a kernel of its loss alone gives on its
/// batch, and each loss is emitted once however many candidates run it.
#[test]
fn candidates_with_their_own_batches_and_shared_losses() {
    let grads: Vec<Function> = ["mse", "cross_entropy", "baikal"]
        .iter()
        .map(|name| {
            let text = std::fs::read_to_string(format!("tests/corpus/amm/{name}.json")).unwrap();
            let mut f = compile(&text, &CompileOptions::default()).unwrap().func;
            optimize(&mut f, OptOptions::default()).unwrap();
            grad_ir(&f).unwrap()
        })
        .collect();
    let slots = [0usize, 1, 0, 2, 1, 1];
    let (b, c) = (37, 10);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let n = slots.len() * b * c;
    let yp: Vec<f32> = (0..n).map(|_| rng.random_range(-3.0..3.0)).collect();
    let mut yt = vec![0f32; n];
    for row in 0..slots.len() * b {
        yt[row * c + rng.random_range(0..c)] = 1.0;
    }
    let mut dialects = vec![Dialect::HostC];
    if cfg!(feature = "wgpu") && std::env::var("NCPC_TEST_WGPU").is_ok() {
        dialects.push(Dialect::Wgsl);
    }
    for dialect in dialects {
        let pop = population_of(&grads, &slots, c, dialect).unwrap();
        assert_eq!(pop.finish.len(), slots.len());
        // Row functions 0, 1 and 2, and no fourth.
        let defines = |i: usize| {
            pop.source.contains(&match dialect {
                Dialect::Wgsl => format!("fn ncp_row_{i}(i: u32"),
                _ => format!("void ncp_row_{i}(const float"),
            })
        };
        assert!(
            (0..grads.len()).all(defines) && !defines(grads.len()),
            "each loss is emitted once"
        );
        let all = runner_on(&pop, dialect, Inputs::PerCandidate)(&yp, &yt, b);
        assert_eq!(all.len(), slots.len());
        for (k, (slot, (loss, grad))) in slots.iter().zip(&all).enumerate() {
            let alone = population(std::slice::from_ref(&grads[*slot]), c, dialect).unwrap();
            let span = k * b * c..(k + 1) * b * c;
            let want =
                runner_on(&alone, dialect, Inputs::PerCandidate)(&yp[span.clone()], &yt[span], b);
            assert_eq!(
                (loss.to_bits(), grad),
                (want[0].0.to_bits(), &want[0].1),
                "{dialect:?}: candidate {k} (loss {slot})"
            );
        }
        // A batch per candidate must hold every candidate's rows.
        let k = host::build(&population_of(&grads, &slots, c, Dialect::HostC).unwrap()).unwrap();
        let e = k
            .run_each(&yp[..b * c], &yt[..b * c], b)
            .unwrap_err()
            .to_string();
        assert!(e.contains("6 x 37 x 10"), "{e}");
    }
    let e = population_of(&grads, &[0, 3], c, Dialect::HostC).unwrap_err();
    assert!(e.to_string().contains("candidate 1 runs loss 3"), "{e}");
}
