//! The optimizer on 10,000 random genome/input pairs, a third each AMM, DAML and HAZ: it never
//! changes a loss (bit-equal, faults included) or moves a gradient beyond 1e-5 relative, and
//! it shrinks each format's programs. Genomes a front end rejects are counted (they must be
//! errors, never panics). `cargo test --release --test optimizer -- --nocapture` prints the
//! op counts.

mod common;

use ncp_ir::passes::{OptOptions, optimize};
use ncp_ir::tensor::Tensor;
use ncp_ir::{DimModel, Function};
use ncpc::formats::daml::{self, PSet};
use ncpc::formats::{FormatError, Mode, amm, haz};
use ncpc::loss::evaluate_function;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random_inputs(rng: &mut ChaCha8Rng) -> (Tensor, Tensor) {
    let (b, c) = (rng.random_range(2..6usize), rng.random_range(2..6usize));
    let c = if c == b { c + 1 } else { c };
    let scale = [0.1f32, 1.0, 10.0, 100.0][rng.random_range(0..4)];
    let yp: Vec<Vec<f32>> = (0..b)
        .map(|_| {
            (0..c)
                .map(|_| rng.random_range(-1.0f32..1.0) * scale)
                .collect()
        })
        .collect();
    let yt = common::one_hot(rng, b, c);
    common::tensors(&yp, &yt)
}

#[derive(Default)]
struct Tally {
    genomes: usize,
    ops_before: usize,
    ops_after: usize,
    /// Genomes the front end rejected with an error (never a panic).
    not_compiled: usize,
}

/// Run a front end, turning a panic into a failure that shows the genome.
fn compile<T>(
    genome: impl FnOnce() -> String,
    lower: impl FnOnce() -> T,
    failures: &mut Vec<String>,
) -> Option<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(lower)) {
        Ok(r) => Some(r),
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| p.downcast_ref::<&str>().copied())
                .unwrap_or("?");
            failures.push(format!("the front end panicked: {msg}\n{}", genome()));
            None
        }
    }
}

/// Compile a HAZ gene for these inputs: symbolic dims, or concrete ones when a slot size
/// meets B or C.
fn lower_haz(g: &haz::Gene, yp: &Tensor) -> Result<Function, FormatError> {
    match haz::lower(g, "g", Mode::Compat, DimModel::Symbolic) {
        Ok((f, _)) => Ok(f),
        Err(e) if haz::requires_concrete_dims(&e) => {
            let dims = DimModel::Concrete {
                b: yp.shape[0] as u32,
                c: yp.shape[1] as u32,
            };
            haz::lower(g, "g", Mode::Compat, dims).map(|(f, _)| f)
        }
        Err(e) => Err(e),
    }
}

fn check(f: &Function, (yp, yt): (Tensor, Tensor), tally: &mut Tally, failures: &mut Vec<String>) {
    let mut g = f.clone();
    if let Err(e) = optimize(
        &mut g,
        OptOptions {
            verify_each: true,
            ..Default::default()
        },
    ) {
        failures.push(format!(
            "optimize failed: {e}\n{}",
            ncp_ir::text::print_function(f)
        ));
        return;
    }
    tally.genomes += 1;
    tally.ops_before += f.inst_count();
    tally.ops_after += g.inst_count();
    let (a, b) = match (
        evaluate_function(f, &yp, &yt, false),
        evaluate_function(&g, &yp, &yt, true),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (a, b) => {
            failures.push(format!(
                "evaluation differs in success: {:?} vs {:?}",
                a.err(),
                b.err()
            ));
            return;
        }
    };
    let same = a.loss.to_bits() == b.loss.to_bits() || (a.loss.is_nan() && b.loss.is_nan());
    if !same || a.fault != b.fault || a.grad.is_some() != b.grad.is_some() {
        failures.push(format!(
            "loss {} vs {} (fault {:?} vs {:?}, gradient {} vs {})\n{}",
            a.loss,
            b.loss,
            a.fault,
            b.fault,
            if a.grad.is_some() { "some" } else { "none" },
            if b.grad.is_some() { "some" } else { "none" },
            ncp_ir::text::print_function(f)
        ));
        return;
    }
    if let (Some(ga), Some(gb)) = (&a.grad, &b.grad) {
        for (x, y) in ga.iter().flatten().zip(gb.iter().flatten()) {
            if !common::close(*y, *x, 1e-5, 1e-6) {
                failures.push(format!(
                    "gradient {x} vs {y}\n{}",
                    ncp_ir::text::print_function(f)
                ));
                return;
            }
        }
    }
}

#[test]
fn optimizer_never_changes_results_on_10k_random_pairs() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed);
    let mut failures = Vec::new();
    let (mut amm_t, mut daml_t, mut haz_t) = (Tally::default(), Tally::default(), Tally::default());
    for i in 0..10_000 {
        match i % 3 {
            0 => {
                let len = rng.random_range(1..30);
                let p = amm::random::random_program(&mut rng, len, i % 6 == 0);
                let inputs = random_inputs(&mut rng);
                let lowered = compile(
                    || amm::to_json(&p),
                    || amm::lower(&p, "g", Mode::Compat, DimModel::Symbolic),
                    &mut failures,
                );
                match lowered {
                    Some(Ok((f, _))) => check(&f, inputs, &mut amm_t, &mut failures),
                    Some(Err(_)) => amm_t.not_compiled += 1,
                    None => {}
                }
            }
            1 => {
                let pset = if i % 6 == 1 {
                    PSet::Miner
                } else {
                    PSet::Validator
                };
                let e = daml::random_expr(&mut rng, 1, 6, pset);
                let inputs = random_inputs(&mut rng);
                let lowered = compile(
                    || daml::print_expr(&e),
                    || daml::lower(&e, "g", DimModel::Symbolic),
                    &mut failures,
                );
                match lowered {
                    Some(Ok(f)) => check(&f, inputs, &mut daml_t, &mut failures),
                    Some(Err(err)) => {
                        daml_t.not_compiled += 1;
                        failures.push(format!(
                            "a DAML expression did not compile: {err}\n{}",
                            daml::print_expr(&e)
                        ));
                    }
                    None => {}
                }
            }
            _ => {
                let len = rng.random_range(1..30);
                let g = haz::random::random_gene(&mut rng, len);
                let inputs = random_inputs(&mut rng);
                let lowered = compile(
                    || haz::random::to_json(&g),
                    || lower_haz(&g, &inputs.0),
                    &mut failures,
                );
                match lowered {
                    Some(Ok(f)) => check(&f, inputs, &mut haz_t, &mut failures),
                    Some(Err(_)) => haz_t.not_compiled += 1,
                    None => {}
                }
            }
        }
    }
    for (name, t) in [("amm", &amm_t), ("daml", &daml_t), ("haz", &haz_t)] {
        eprintln!(
            "{name}: {} genomes, mean ops {:.2} -> {:.2} ({:.1}% removed); {} did not compile",
            t.genomes,
            t.ops_before as f64 / t.genomes as f64,
            t.ops_after as f64 / t.genomes as f64,
            100.0 * (1.0 - t.ops_after as f64 / t.ops_before as f64),
            t.not_compiled,
        );
    }
    assert!(
        failures.is_empty(),
        "{} failures, first:\n{}",
        failures.len(),
        failures[0]
    );
    assert!(
        amm_t.ops_after * 10 < amm_t.ops_before * 9,
        "the optimizer should remove over 10% of AMM ops"
    );
    assert!(
        daml_t.ops_after < daml_t.ops_before,
        "DAML ops should shrink"
    );
    assert!(haz_t.ops_after < haz_t.ops_before, "HAZ ops should shrink");
}
