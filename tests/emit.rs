//! Round trips through the emitters: genome -> IR -> optimized IR -> emitted genome -> IR.
//! The re-compiled genome must optimize to the same canonical hash, or where the emitter had to
//! write an equivalent but different op, give the same loss and gradient on fixed random inputs.
//! Run with `--nocapture` to see how many genomes round-trip per format.

use ncpc::formats::amm::{self, random::random_program};
use ncpc::formats::{self, CompileOptions, Format, FormatError, Mode, daml_emit};
use ncpc::ir::passes::{OptOptions, canonical_hash, optimize};
use ncpc::ir::tensor::Tensor;
use ncpc::ir::{Function, text::parse_function};
use ncpc::loss::{LossValue, evaluate_function};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

const B: usize = 4;
const C: usize = 3;

fn compile(text: &str, format: Format, mode: Mode) -> Result<Function, FormatError> {
    let opts = CompileOptions {
        format: Some(format),
        mode,
        ..Default::default()
    };
    let mut f = formats::compile(text, &opts)?.func;
    optimize(&mut f, OptOptions::default())?;
    Ok(f)
}

/// Input pairs: one-hot targets twice, then soft targets.
fn inputs() -> Vec<(Tensor, Tensor)> {
    (0..3u64)
        .map(|seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let yp: Vec<Vec<f32>> = (0..B)
                .map(|_| (0..C).map(|_| rng.random_range(-2.0f32..2.0)).collect())
                .collect();
            let yt: Vec<Vec<f32>> = (0..B)
                .map(|_| {
                    let hot = rng.random_range(0..C);
                    (0..C)
                        .map(|j| match seed {
                            2 => rng.random_range(0.0f32..1.0),
                            _ => (j == hot) as u8 as f32,
                        })
                        .collect()
                })
                .collect();
            let t = |rows: &[Vec<f32>]| Tensor::from_rows(rows).expect("rectangular");
            (t(&yp), t(&yt))
        })
        .collect()
}

fn close(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits()
        || (a.is_nan() && b.is_nan())
        || (a - b).abs() <= 1e-6 * a.abs().max(b.abs())
}

fn same_values(a: &LossValue, b: &LossValue) -> bool {
    let grads = match (&a.grad, &b.grad) {
        (None, None) => true,
        (Some(x), Some(y)) => x
            .iter()
            .flatten()
            .zip(y.iter().flatten())
            .all(|(p, q)| close(*p, *q)),
        _ => false,
    };
    a.fault == b.fault && close(a.loss, b.loss) && grads
}

/// How one genome fared.
#[derive(Debug, PartialEq)]
enum Trip {
    /// Same canonical hash.
    Hash,
    /// Different IR, same loss and gradient.
    Values,
    /// The emitter reported that the function cannot be written.
    NoEquivalent(String),
}

/// Compare `orig` with what `emitted` compiles to; panics on a mismatch.
fn check(name: &str, orig: &Function, emitted: &str, format: Format) -> Trip {
    let back = compile(emitted, format, Mode::Compat).unwrap_or_else(|e| {
        panic!("{name}: the emitted {format} does not compile: {e}\n{emitted}")
    });
    let mut want = orig.clone();
    optimize(&mut want, OptOptions::default()).expect("optimizes");
    if canonical_hash(&back) == canonical_hash(&want) {
        return Trip::Hash;
    }
    for (yp, yt) in inputs() {
        let a = evaluate_function(orig, &yp, &yt, true).expect("original evaluates");
        let b = evaluate_function(&back, &yp, &yt, true).expect("round trip evaluates");
        assert!(
            same_values(&a, &b),
            "{name}: {format} round trip changes the result\n{emitted}\n{a:?}\n{b:?}"
        );
    }
    Trip::Values
}

fn emit_amm(name: &str, f: &Function) -> Trip {
    match amm::emit(f) {
        Ok(p) => {
            let text = amm::to_json(&p);
            // The program leaves nothing for compat mode to paper over, apart from the loss
            // ops' reshape of y_true, which only compat mode allows.
            if !matches!(f.blocks[f.entry()].term, ncpc::ir::Terminator::Trap(_))
                && let Err(e) = compile(&text, Format::Amm, Mode::Strict)
            {
                assert!(
                    e.to_string().contains("y_true is reshaped"),
                    "{name}: the emitted program fails strict mode: {e}\n{text}"
                );
            }
            check(name, f, &text, Format::Amm)
        }
        Err(FormatError::Emit {
            format: Format::Amm,
            msg,
        }) => Trip::NoEquivalent(msg),
        Err(e) => panic!("{name}: unexpected error: {e}"),
    }
}

fn emit_daml(name: &str, f: &Function) -> Trip {
    match daml_emit::emit(f) {
        Ok(text) => check(name, f, &text, Format::Daml),
        Err(FormatError::Emit {
            format: Format::Daml,
            msg,
        }) => Trip::NoEquivalent(msg),
        Err(e) => panic!("{name}: unexpected error: {e}"),
    }
}

#[derive(Default)]
struct Tally {
    total: usize,
    skipped: usize,
    hash: usize,
    values: usize,
    refused: Vec<String>,
}

impl Tally {
    fn add(&mut self, name: &str, t: Trip) {
        match t {
            Trip::Hash => self.hash += 1,
            Trip::Values => self.values += 1,
            Trip::NoEquivalent(m) => self.refused.push(format!("{name}: {m}")),
        }
    }
    fn report(&self, what: &str) {
        println!(
            "{what}: {} of {} round-trip ({} same hash, {} same loss and gradient); {} have no equivalent; {} skipped (do not compile or have control flow)",
            self.hash + self.values,
            self.total,
            self.hash,
            self.values,
            self.refused.len(),
            self.skipped
        );
        for r in &self.refused {
            println!("  {r}");
        }
    }
}

fn corpus(dir: &str, format: Format, emit: fn(&str, &Function) -> Trip) -> Tally {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut t = Tally::default();
    for path in files {
        t.total += 1;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.unwrap_or_default();
        let text = std::fs::read_to_string(&path).expect("readable corpus file");
        match compile(&text, format, Mode::Compat) {
            Ok(f) if f.is_straight_line() => t.add(&name, emit(&name, &f)),
            _ => t.skipped += 1,
        }
    }
    t
}

#[test]
fn amm_corpus_round_trips() {
    let t = corpus("tests/corpus/amm", Format::Amm, emit_amm);
    t.report("amm corpus -> amm");
    assert!(t.hash + t.values >= 40, "too few AMM genomes round-trip");
}

#[test]
fn daml_corpus_round_trips() {
    let t = corpus("tests/corpus/daml", Format::Daml, emit_daml);
    t.report("daml corpus -> daml");
    assert!(t.hash + t.values >= 25, "too few DAML genomes round-trip");
}

#[test]
fn daml_corpus_to_amm() {
    let t = corpus("tests/corpus/daml", Format::Daml, emit_amm);
    t.report("daml corpus -> amm");
    // Most DAML trees use ops AMM lacks (cos, round, exact sqrt/log); the ones that do not
    // must come back as the same function, and every refusal must say what cannot be written.
    assert_eq!(t.total, 31, "the corpus changed: update this tally");
    assert_eq!(
        t.hash + t.values,
        5,
        "DAML trees that round-trip through AMM"
    );
    assert_eq!(t.skipped, 0);
    assert!(
        t.refused
            .iter()
            .all(|r| r.contains("has no AMM equivalent") || r.contains("cannot be written")),
        "{:?}",
        t.refused
    );
}

#[test]
fn random_amm_programs_round_trip() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut t = Tally::default();
    for k in 0..1000 {
        let p = random_program(&mut rng, 14, k % 2 == 1);
        t.total += 1;
        let name = format!("random program {k}");
        match compile(&amm::to_json(&p), Format::Amm, Mode::Compat) {
            Ok(f) if f.is_straight_line() => t.add(&name, emit_amm(&name, &f)),
            _ => t.skipped += 1,
        }
    }
    t.refused.truncate(10);
    t.report("random amm programs -> amm (first 10 refusals)");
    assert!(t.hash + t.values >= 600);
}

fn ir(body: &str) -> Function {
    let src = format!(
        "function f(f32[B,C], f32[B,C]) -> f32 {{\nblock0(v0: f32[B,C], v1: f32[B,C]):\n{body}}}\n"
    );
    parse_function(&src).unwrap_or_else(|e| panic!("{e}\n{src}"))
}

fn emit_error(r: Result<impl std::fmt::Debug, FormatError>, format: Format) -> String {
    match r {
        Err(FormatError::Emit { format: f, msg }) if f == format => msg,
        other => panic!("expected an emit error for {format}, got {other:?}"),
    }
}

#[test]
fn sin_has_no_amm_equivalent() {
    let f = ir("    v2 = sin v0 : f32[B,C]\n    v3 = mean<all> v2 : f32\n    return v3\n");
    let msg = emit_error(amm::emit(&f), Format::Amm);
    assert_eq!(msg, "op `sin` has no AMM equivalent");
    // DAML has sin.
    assert_eq!(daml_emit::emit(&f).ok().as_deref(), Some("mean(sin(x))"));
}

#[test]
fn matmul_has_no_daml_equivalent() {
    let f = ir(concat!(
        "    v2 = transpose v1 : f32[C,B]\n    v3 = matmul v0, v2 : f32[B,B]\n",
        "    v4 = mean<all> v3 : f32\n    return v4\n"
    ));
    let msg = emit_error(daml_emit::emit(&f), Format::Daml);
    assert!(
        msg.contains("`transpose`") || msg.contains("`matmul`"),
        "{msg}"
    );
    let p = amm::emit(&f).expect("AMM has matmul");
    assert_eq!(
        check("matmul", &f, &amm::to_json(&p), Format::Amm),
        Trip::Hash
    );
}

#[test]
fn plain_div_log_and_inner_mean_are_refused_by_amm() {
    let div = ir("    v2 = div v0, v1 : f32[B,C]\n    v3 = mean<all> v2 : f32\n    return v3\n");
    assert!(emit_error(amm::emit(&div), Format::Amm).contains("`div`"));
    let log = ir("    v2 = log v0 : f32[B,C]\n    v3 = mean<all> v2 : f32\n    return v3\n");
    assert!(emit_error(amm::emit(&log), Format::Amm).contains("`log`"));
    let inner = ir(concat!(
        "    v2 = mean<all> v0 : f32\n    v3 = exp v1 : f32[B,C]\n",
        "    v4 = mean<all> v3 : f32\n    v5 = add v2, v4 : f32\n    return v5\n"
    ));
    assert!(emit_error(amm::emit(&inner), Format::Amm).contains("`mean<all>`"));
}

#[test]
fn control_flow_is_refused() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/amm/edge_jump_if.json");
    let text = std::fs::read_to_string(path).expect("corpus file");
    let f = compile(&text, Format::Amm, Mode::Compat).expect("compiles");
    assert!(!f.is_straight_line());
    let want = "control flow is not supported by the emitter";
    assert_eq!(emit_error(amm::emit(&f), Format::Amm), want);
    assert_eq!(emit_error(daml_emit::emit(&f), Format::Daml), want);
}

#[test]
fn float_constants_stay_floats() {
    let f = ir(concat!(
        "    v2 = const<2.0> : f32\n    v3 = mul v0, v2 : f32[B,C]\n",
        "    v4 = const<3.0> : f32\n    v5 = pow v3, v4 : f32[B,C]\n",
        "    v6 = mean<all> v5 : f32\n    return v6\n"
    ));
    let text = amm::to_json(&amm::emit(&f).expect("emits"));
    assert!(text.contains("2.0") && text.contains("3.0"), "{text}");
    assert_eq!(check("floats", &f, &text, Format::Amm), Trip::Hash);
}

/// `n` values live at once: `v0 * (k + 0.5)` for k = 1..=n, then summed.
fn live(n: usize) -> Function {
    let mut body = String::new();
    let mut next = 2;
    let mut products = Vec::new();
    for k in 1..=n {
        body += &format!("    v{next} = const<{k}.5> : f32\n");
        body += &format!("    v{} = mul v0, v{next} : f32[B,C]\n", next + 1);
        products.push(next + 1);
        next += 2;
    }
    let mut acc = products[0];
    for p in &products[1..] {
        body += &format!("    v{next} = add v{acc}, v{p} : f32[B,C]\n");
        acc = next;
        next += 1;
    }
    body += &format!("    v{next} = mean<all> v{acc} : f32\n    return v{next}\n");
    ir(&body)
}

#[test]
fn register_pressure() {
    // y_pred's register is reused by the last product, so 20 products fit; 21 do not.
    let ok = live(20);
    let p = amm::emit(&ok).expect("20 live values fit");
    assert_eq!(
        check("live20", &ok, &amm::to_json(&p), Format::Amm),
        Trip::Hash
    );
    let msg = emit_error(amm::emit(&live(21)), Format::Amm);
    assert!(msg.contains("20 registers"), "{msg}");
}

#[test]
fn neg_round_trips_through_daml() {
    let f = ir("    v2 = neg v0 : f32[B,C]\n    v3 = mean<all> v2 : f32\n    return v3\n");
    let text = daml_emit::emit(&f).expect("emits");
    assert_eq!(text, "mean(safe_mul(x, -1.0))");
    assert_eq!(check("neg", &f, &text, Format::Daml), Trip::Hash);
}
