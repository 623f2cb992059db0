//! Every op of the table through every backend. For each op, [`cases`] gives small losses
//! that use it (on f32 tensors, and on i64 or bool values where the op takes them); each runs on
//! random and edge inputs through the interpreter (the oracle), the JIT in exact mode (bit-equal
//! to the interpreter), the JIT in fast mode (within fast math's tolerance) and, with the
//! `burn-cpu` feature, the burn lowering (within 1e-4).
//!
//! A backend passes an op when it computes it correctly or reports it unsupported *and* the op
//! is in that backend's declared list of unsupported ops below; anything else (a wrong value,
//! an unexpected refusal, a panic) fails. Adding an op to the table without a case here does
//! not compile: [`cases`] matches every opcode.

mod common;

use ncp_ir::op::OPS;
use ncp_ir::tensor::Tensor;
use ncp_ir::{DType, Function, Opcode};
use ncpc::gpu::PopulationRunner;
use ncpc::jit::{Jit, MathMode};
use ncpc::loss::{LossValue, evaluate_function, evaluate_function_jit};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Ops the JIT reports unsupported in these cases (none today).
const JIT_UNSUPPORTED: &[Opcode] = &[];

const B: usize = 5;
const C: usize = 3;

/// The ops' test losses, as bodies of `(v0: f32[B,C], v1: f32[B,C]) -> f32`.
fn cases(op: Opcode) -> Vec<String> {
    use Opcode as O;
    let n = op.name();
    let unary = format!("v2 = {n} v0 : f32[B,C]\nv3 = mean<all> v2 : f32\nreturn v3");
    let binary = format!("v2 = {n} v0, v1 : f32[B,C]\nv3 = mean<all> v2 : f32\nreturn v3");
    // An i64 scalar from the dims (C - B is negative, B * C positive).
    let int_unary = format!(
        "v2 = dim<B> : i64\nv3 = dim<C> : i64\nv4 = sub v3, v2 : i64\nv5 = {n} v4 : i64\n\
         v6 = cast<f32> v5 : f32\nv7 = mean<all> v0 : f32\nv8 = mul v6, v7 : f32\nreturn v8"
    );
    let int_binary = format!(
        "v2 = dim<B> : i64\nv3 = dim<C> : i64\nv4 = {n} v2, v3 : i64\n\
         v5 = cast<f32> v4 : f32\nv6 = mean<all> v0 : f32\nv7 = mul v5, v6 : f32\nreturn v7"
    );
    let bool_binary = |result: &str| {
        format!(
            "v2 = gt v0, v1 : bool[B,C]\nv3 = ge v1, v0 : bool[B,C]\nv4 = {n} v2, v3 : {result}[B,C]\n\
             v5 = cast<f32> v4 : f32[B,C]\nv6 = mul v5, v0 : f32[B,C]\nv7 = mean<all> v6 : f32\nreturn v7"
        )
    };
    let compare = format!(
        "v2 = {n} v0, v1 : bool[B,C]\nv3 = select v2, v0, v1 : f32[B,C]\nv4 = mean<all> v3 : f32\nreturn v4"
    );
    let takes = |d: DType| op.info().dtypes.contains(&d);
    let mut out = match op {
        O::Const => vec![
            "v2 = const<1.5> : f32\nv3 = mul v0, v2 : f32[B,C]\nv4 = mean<all> v3 : f32\nreturn v4"
                .to_string(),
        ],
        O::Dim => vec![
            "v2 = dim<C> : i64\nv3 = cast<f32> v2 : f32\nv4 = mul v0, v3 : f32[B,C]\n\
             v5 = mean<all> v4 : f32\nreturn v5"
                .to_string(),
        ],
        O::Neg | O::Abs | O::Sqrt | O::Exp | O::Log | O::Sin | O::Cos | O::Tan | O::Asin
        | O::Acos | O::Atan | O::Tanh | O::Sigmoid | O::Relu | O::Floor | O::Ceil | O::Round
        | O::Sign | O::Recip => vec![unary],
        O::Add | O::Sub | O::Mul | O::Div | O::Pow | O::Max | O::Min | O::Rem | O::Hypot
        | O::ClampMin | O::ClampMax => vec![binary],
        O::Gt | O::Ge | O::Eq => vec![compare, bool_binary("bool")],
        O::Select => vec![
            "v2 = gt v0, v1 : bool[B,C]\nv3 = select v2, v0, v1 : f32[B,C]\nv4 = mean<all> v3 : f32\nreturn v4"
                .to_string(),
        ],
        O::Cast => vec![
            "v2 = cast<bool> v0 : bool[B,C]\nv3 = cast<f32> v2 : f32[B,C]\nv4 = mul v3, v1 : f32[B,C]\n\
             v5 = add v4, v0 : f32[B,C]\nv6 = mean<all> v5 : f32\nreturn v6"
                .to_string(),
            "v2 = mean<all> v0 : f32\nv3 = cast<i64> v2 : i64\nv4 = cast<f32> v3 : f32\nreturn v4"
                .to_string(),
        ],
        O::OnesLike | O::ZerosLike => vec![format!(
            "v2 = {n} v0 : f32[B,C]\nv3 = add v2, v0 : f32[B,C]\nv4 = mul v3, v1 : f32[B,C]\n\
             v5 = mean<all> v4 : f32\nreturn v5"
        )],
        O::Sum | O::Mean | O::RMax | O::RMin | O::Std => vec![
            format!("v2 = {n}<1> v0 : f32[B]\nv3 = mean<all> v2 : f32\nreturn v3"),
            format!("v2 = {n}<0> v0 : f32[C]\nv3 = mean<all> v2 : f32\nreturn v3"),
            format!("v2 = {n}<all> v0 : f32\nreturn v2"),
        ],
        O::AnyNonzero => vec![
            "v2 = gt v0, v1 : bool[B,C]\nv3 = any_nonzero v2 : bool\nv4 = cast<f32> v3 : f32\n\
             v5 = mean<all> v0 : f32\nv6 = add v4, v5 : f32\nreturn v6"
                .to_string(),
        ],
        O::Matmul => vec![
            "v2 = transpose v1 : f32[C,B]\nv3 = matmul v0, v2 : f32[B,B]\nv4 = mean<all> v3 : f32\nreturn v4"
                .to_string(),
        ],
        O::Transpose => vec![
            "v2 = transpose v0 : f32[C,B]\nv3 = mul v2, v2 : f32[C,B]\nv4 = sum<0> v3 : f32[B]\n\
             v5 = mean<all> v4 : f32\nreturn v5"
                .to_string(),
        ],
        O::Softmax => vec![
            "v2 = softmax v0 : f32[B,C]\nv3 = mul v2, v1 : f32[B,C]\nv4 = sum<all> v3 : f32\nreturn v4"
                .to_string(),
        ],
        O::Reshape => vec![
            "v2 = mean<1> v0 : f32[B]\nv3 = reshape<[B,1]> v2 : f32[B,1]\nv4 = sub v0, v3 : f32[B,C]\n\
             v5 = mul v4, v4 : f32[B,C]\nv6 = mean<all> v5 : f32\nreturn v6"
                .to_string(),
        ],
        O::Expand => vec![
            "v2 = mean<1> v0 : f32[B]\nv3 = expand<1> v2, v0 : f32[B,C]\nv4 = mul v3, v0 : f32[B,C]\n\
             v5 = mean<all> v4 : f32\nreturn v5"
                .to_string(),
        ],
        O::BroadcastLike => vec![
            "v2 = mean<all> v0 : f32\nv3 = broadcast_like v2, v0 : f32[B,C]\nv4 = mul v3, v1 : f32[B,C]\n\
             v5 = mean<all> v4 : f32\nreturn v5"
                .to_string(),
        ],
        O::SumTo => vec![
            "v2 = mean<0> v1 : f32[C]\nv3 = sum_to v0, v2 : f32[C]\nv4 = mul v3, v2 : f32[C]\n\
             v5 = mean<all> v4 : f32\nreturn v5"
                .to_string(),
        ],
        O::Count => vec![
            "v2 = count<1> v0 : f32\nv3 = sum<1> v0 : f32[B]\nv4 = div v3, v2 : f32[B]\n\
             v5 = mean<all> v4 : f32\nreturn v5"
                .to_string(),
        ],
        O::MaxMask | O::MinMask => vec![format!(
            "v2 = {n}<1> v0 : bool[B,C]\nv3 = select v2, v0, v1 : f32[B,C]\nv4 = mean<all> v3 : f32\nreturn v4"
        )],
    };
    let elementwise_int = matches!(
        op.info().class,
        ncp_ir::op::Class::Unary | ncp_ir::op::Class::Binary
    );
    if elementwise_int && takes(DType::I64) {
        out.push(if op.info().arity == 1 {
            int_unary
        } else {
            int_binary
        });
    }
    if matches!(op, O::Add | O::Mul | O::Max | O::Min) {
        out.push(bool_binary("bool"));
    }
    out
}

fn parse(body: &str) -> Function {
    let text = format!(
        "function t(f32[B,C], f32[B,C]) -> f32 {{\nblock0(v0: f32[B,C], v1: f32[B,C]):\n{}\n}}\n",
        body.lines()
            .map(|l| format!("    {}", l.trim()))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let f = ncp_ir::text::parse_function(&text)
        .unwrap_or_else(|e| panic!("test case does not parse: {e}\n{text}"));
    ncp_ir::verify::verify(&f).unwrap_or_else(|e| panic!("test case does not verify: {e}\n{text}"));
    f
}

/// Random inputs, then inputs full of edge values.
fn inputs(kind: usize, rng: &mut ChaCha8Rng) -> (Tensor, Tensor) {
    const EDGES: [f32; 10] = [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        0.0,
        -0.0,
        1e30,
        -1e-30,
        1.0,
        -1.0,
        0.5,
    ];
    let mut draw = |_| -> f32 {
        match kind {
            0 => rng.random_range(-2.0..2.0),
            1 => rng.random_range(-0.9..0.9),
            _ => EDGES[rng.random_range(0..EDGES.len())],
        }
    };
    let yp: Vec<f32> = (0..B * C).map(&mut draw).collect();
    let yt: Vec<f32> = (0..B * C).map(&mut draw).collect();
    let t = |v: Vec<f32>| Tensor {
        dtype: DType::F32,
        shape: vec![B, C],
        data: v.into_iter().map(f64::from).collect(),
    };
    (t(yp), t(yt))
}

fn same_bits(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// Fast math: within 1e-4 relative (plus 1e-6 absolute); non-finite values must agree.
fn fast_close(a: f32, b: f32) -> bool {
    if !a.is_finite() || !b.is_finite() {
        return same_bits(a, b) || (a.is_nan() && b.is_nan()) || a == b;
    }
    (a - b).abs() <= 1e-6 + 1e-4 * a.abs().max(b.abs())
}

fn agree(got: &LossValue, want: &LossValue, eq: fn(f32, f32) -> bool) -> Result<(), String> {
    if !eq(got.loss, want.loss) {
        return Err(format!("loss {} vs {} (interpreter)", got.loss, want.loss));
    }
    match (&got.grad, &want.grad) {
        (Some(g), Some(w)) => {
            for (x, y) in g.iter().flatten().zip(w.iter().flatten()) {
                if !eq(*x, *y) {
                    return Err(format!("gradient {x} vs {y} (interpreter)"));
                }
            }
            Ok(())
        }
        (None, None) => Ok(()),
        _ => Err("gradient presence differs".into()),
    }
}

#[derive(Default)]
struct Tally {
    checked: usize,
    failures: Vec<String>,
}

fn check_jit(
    jit: &mut Jit,
    op: Opcode,
    f: &Function,
    (yp, yt, want): (&Tensor, &Tensor, &LossValue),
    eq: fn(f32, f32) -> bool,
    what: &str,
    t: &mut Tally,
) {
    match evaluate_function_jit(jit, f, yp, yt) {
        Ok(Some(got)) => match agree(&got, want, eq) {
            Ok(()) => t.checked += 1,
            Err(e) => t.failures.push(format!("{what}: {e}")),
        },
        Ok(None) if JIT_UNSUPPORTED.contains(&op) => {}
        Ok(None) => t.failures.push(format!(
            "{what}: reported unsupported, but `{}` is not declared so",
            op.name()
        )),
        Err(e) => t.failures.push(format!("{what}: error {e}")),
    }
}

#[test]
fn every_op_through_every_backend() {
    let mut exact = Jit::new().unwrap();
    let mut fast = Jit::with_math(MathMode::Fast).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(15);
    let mut t = Tally::default();
    let mut per_op = 0;
    for info in OPS {
        let op = info.op;
        for (k, body) in cases(op).iter().enumerate() {
            let f = parse(body);
            assert!(
                f.insts.iter().any(|(_, i)| i.op == op),
                "case {k} of `{}` does not use it",
                op.name()
            );
            per_op += 1;
            for kind in 0..4 {
                let (yp, yt) = inputs(kind, &mut rng);
                let want = evaluate_function(&f, &yp, &yt, false)
                    .unwrap_or_else(|e| panic!("the interpreter fails on `{}`: {e}", op.name()));
                if want.fault.is_some() {
                    continue;
                }
                let what = format!("`{}` case {k} inputs {kind}", op.name());
                let run = (&yp, &yt, &want);
                check_jit(
                    &mut exact,
                    op,
                    &f,
                    run,
                    same_bits,
                    &format!("exact JIT {what}"),
                    &mut t,
                );
                if kind < 2 {
                    // Fast math promises closeness on ordinary values, not edge behaviour of
                    // its polynomials at infinities.
                    check_jit(
                        &mut fast,
                        op,
                        &f,
                        run,
                        fast_close,
                        &format!("fast JIT {what}"),
                        &mut t,
                    );
                }
                #[cfg(feature = "burn-cpu")]
                if kind < 2 {
                    on_burn::check(op, &f, run, &what, &mut t);
                }
            }
        }
    }
    eprintln!(
        "every op: {} ops, {per_op} cases, {} backend runs agreed",
        OPS.len(),
        t.checked
    );
    assert!(t.failures.is_empty(), "{}", t.failures.join("\n"));
}

#[cfg(feature = "burn-cpu")]
mod on_burn {
    use super::*;
    use burn::tensor::{Tensor as BTensor, TensorData};
    use ncpc::burn_backend::lower::{LowerError, lower_loss};

    /// Ops the burn lowering reports unsupported in these cases.
    const BURN_UNSUPPORTED: &[Opcode] = &[];

    pub fn check(
        op: Opcode,
        f: &Function,
        (yp, yt, want): (&Tensor, &Tensor, &LossValue),
        what: &str,
        t: &mut Tally,
    ) {
        let dev = ncpc::burn_backend::device(ncpc::train::run::BurnDevice::Cpu).unwrap();
        let tp = BTensor::<2>::from_data(TensorData::new(yp.to_f32(), [B, C]), &dev);
        let tt = BTensor::<2>::from_data(TensorData::new(yt.to_f32(), [B, C]), &dev);
        match lower_loss(f, tp, tt, 1_000_000) {
            Ok(loss) => {
                let v: f32 = loss.into_data().iter::<f32>().next().unwrap();
                let ok = if v.is_finite() && want.loss.is_finite() {
                    (v - want.loss).abs() <= 1e-4 + 1e-4 * v.abs().max(want.loss.abs())
                } else {
                    v == want.loss || (v.is_nan() && want.loss.is_nan())
                };
                if ok {
                    t.checked += 1;
                } else {
                    t.failures.push(format!(
                        "burn {what}: loss {v} vs {} (interpreter)",
                        want.loss
                    ));
                }
            }
            Err(LowerError::Unsupported(_)) if BURN_UNSUPPORTED.contains(&op) => {}
            Err(e) => t.failures.push(format!("burn {what}: {e}")),
        }
    }
}

/// The population kernels (src/gpu) by every op of the table: each case's gradient IR, where
/// it is row-separable (the kernels' domain: a loss whose rows are independent), is emitted as
/// host C and as WGSL; an op may be refused only if it is declared below. All host-C cases run
/// as one population on random inputs and agree with the interpreter within 1e-4; with
/// `--features wgpu` and NCPC_TEST_WGPU=1 the WGSL population runs too.
/// A built population kernel: (y_pred, y_true) -> every candidate's loss and gradient.
type PopRunner = Box<dyn Fn(&[f32], &[f32]) -> Vec<(f32, Vec<f32>)>>;

#[test]
fn every_op_through_the_population_kernels() {
    use ncp_ir::passes::{OptOptions, gradient, optimize};
    use ncpc::gpu::emit::{Dialect, EmitError, population};
    /// Ops refused inside row-separable losses, with the reason in the error: integer
    /// division, power and remainder (the IR's semantics need 64-bit integer care the kernels
    /// do not have yet).
    const POP_UNSUPPORTED: &[Opcode] = &[Opcode::Div, Opcode::Pow, Opcode::Rem];
    let mut taken: Vec<(Opcode, Function, Function)> = Vec::new();
    let mut failures = Vec::new();
    let (mut ops_seen, mut mixing) = (std::collections::BTreeSet::new(), 0);
    for info in OPS {
        let op = info.op;
        for body in cases(op) {
            let f = parse(&body);
            let Ok(g) = gradient(&f) else { continue };
            let mut gf = g.func;
            if !g.has_grad || optimize(&mut gf, OptOptions::default()).is_err() {
                continue;
            }
            if !ncpc::jit::plan::row_separable(&gf) || !gf.is_straight_line() {
                mixing += 1;
                continue;
            }
            let mut lowered = true;
            for dialect in [Dialect::HostC, Dialect::Wgsl] {
                match population(std::slice::from_ref(&gf), C, dialect) {
                    Ok(_) => {}
                    Err(EmitError::Unsupported(_)) if POP_UNSUPPORTED.contains(&op) => {
                        lowered = false
                    }
                    Err(e) => {
                        lowered = false;
                        failures.push(format!("`{}` {dialect:?}: {e}", op.name()))
                    }
                }
            }
            if lowered {
                ops_seen.insert(op.name());
                taken.push((op, f, gf));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let grads: Vec<Function> = taken.iter().map(|t| t.2.clone()).collect();
    let mut runners: Vec<(&str, PopRunner)> = Vec::new();
    let pop = population(&grads, C, Dialect::HostC).unwrap();
    let host = ncpc::gpu::host::build(&pop).unwrap_or_else(|e| panic!("{e}"));
    runners.push(("host C", Box::new(move |p, t| host.run(p, t, B).unwrap())));
    #[cfg(feature = "wgpu")]
    if std::env::var("NCPC_TEST_WGPU").is_ok() {
        let pop = population(&grads, C, Dialect::Wgsl).unwrap();
        let dev = ncpc::gpu::wgpu_population::build(&pop).unwrap_or_else(|e| panic!("{e}"));
        runners.push(("WGSL", Box::new(move |p, t| dev.run(p, t, B).unwrap())));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let mut checked = 0;
    for kind in 0..2 {
        let (yp, yt) = inputs(kind, &mut rng);
        for (what, run) in &runners {
            let got = run(&yp.to_f32(), &yt.to_f32());
            for ((op, f, _), (loss, grad)) in taken.iter().zip(&got) {
                let want = evaluate_function(f, &yp, &yt, true).unwrap();
                if want.fault.is_some() {
                    continue;
                }
                let got = LossValue {
                    loss: *loss,
                    grad: Some(grad.chunks(C).map(|r| r.to_vec()).collect()),
                    fault: None,
                };
                match agree(&got, &want, fast_close) {
                    Ok(()) => checked += 1,
                    Err(e) => failures.push(format!("{what} `{}` inputs {kind}: {e}", op.name())),
                }
            }
        }
    }
    eprintln!(
        "population kernels: {} cases of {} ops lowered, {mixing} cases mix rows, {checked} runs agreed",
        taken.len(),
        ops_seen.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let absent: Vec<&str> = OPS
        .iter()
        .map(|i| i.op.name())
        .filter(|n| !ops_seen.contains(n))
        .collect();
    eprintln!(
        "ops in no case with a row-separable gradient IR (row-mixing, no gradient, or folded away): {absent:?}"
    );
    assert!(ops_seen.len() > 30, "{ops_seen:?}");
}
