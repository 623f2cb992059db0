//! Tests of the `ncpc` binary: outputs, round trips, and that bad input exits with code 2
//! and a message saying what and where, never a panic.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn ncpc(args: &[&str], stdin: Option<&str>) -> Output {
    ncpc_with_env(args, stdin, &[])
}

/// [`ncpc`] with environment variables set (`None` removes one).
fn ncpc_with_env(args: &[&str], stdin: Option<&str>, env: &[(&str, Option<&str>)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ncpc"));
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.args(args)
        .current_dir(common::root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn ncpc");
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    } else {
        drop(child.stdin.take());
    }
    child.wait_with_output().unwrap()
}

fn ok(args: &[&str], stdin: Option<&str>) -> String {
    let o = ncpc(args, stdin);
    assert!(
        o.status.success(),
        "ncpc {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// A 2x3 batch for `ncpc run --inputs`.
const SMALL_INPUTS: &str =
    r#"{"y_pred": [[1, 2, 3], [0.5, 0, -1]], "y_true": [[0, 0, 1], [1, 0, 0]]}"#;

/// Runs ncpc expecting exit code 2 and returns stderr.
fn bad(args: &[&str], stdin: Option<&str>) -> String {
    let o = ncpc(args, stdin);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(
        o.status.code(),
        Some(2),
        "ncpc {args:?}: expected exit 2, got {:?}; stderr: {err}",
        o.status.code()
    );
    assert!(!err.contains("panicked"), "ncpc {args:?} panicked: {err}");
    err
}

fn tmp(name: &str, text: &str) -> (tempfile::TempDir, String) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join(name);
    std::fs::write(&p, text).unwrap();
    let s = p.to_string_lossy().into_owned();
    (d, s)
}

#[test]
fn compile_mse_prints_typed_ssa_and_round_trips() {
    let ir = ok(
        &["compile", "tests/corpus/amm/mse.json", "--emit", "ir"],
        None,
    );
    assert!(
        ir.starts_with("function mse(f32[B,C], f32[B,C]) -> f32 {"),
        "{ir}"
    );
    assert!(ir.contains("= sub v1, v0 : f32[B,C]"), "{ir}");
    let again = ok(
        &["compile", "-", "--format", "ir", "--emit", "ir"],
        Some(&ir),
    );
    assert_eq!(again, ir);
    let opt = ok(
        &["compile", "tests/corpus/amm/mse.json", "--emit", "ir-opt"],
        None,
    );
    assert_eq!(
        ok(
            &["compile", "-", "--format", "ir", "--emit", "ir-opt"],
            Some(&opt)
        ),
        opt
    );
}

#[test]
fn stats_report_each_pass_and_a_hash() {
    let s = ok(
        &["compile", "tests/corpus/amm/bce.json", "--emit", "stats"],
        None,
    );
    for needle in [
        "ops before:",
        "ops after:",
        "pass fold:",
        "pass dce:",
        "pass cse:",
        "hash: ",
    ] {
        assert!(s.contains(needle), "missing {needle} in\n{s}");
    }
}

#[test]
fn run_json_has_loss_and_gradient() {
    let (_d, inputs) = tmp("in.json", SMALL_INPUTS);
    let out = ok(
        &[
            "run",
            "tests/corpus/amm/mse.json",
            "--inputs",
            &inputs,
            "--json",
        ],
        None,
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    // mse = mean((y_true - y_pred)^2) = (1 + 4 + 4 + 0.25 + 0 + 1) / 6
    let loss = v["loss"].as_f64().unwrap();
    assert!((loss - 10.25 / 6.0).abs() < 1e-6, "{out}");
    let g = v["grad_pred"].as_array().unwrap();
    assert_eq!(g.len(), 2);
    // d/dy_pred = 2 (y_pred - y_true) / 6
    assert!(
        (g[0][0].as_f64().unwrap() - 2.0 / 6.0).abs() < 1e-6,
        "{out}"
    );
}

#[test]
fn a_bad_ncpc_vmath_is_named_and_changes_no_value() {
    let (_d, inputs) = tmp("in.json", SMALL_INPUTS);
    let args = [
        "run",
        "tests/corpus/amm/cross_entropy.json",
        "--inputs",
        &inputs,
        "--json",
    ];
    let run = |v: Option<&str>| {
        let o = ncpc_with_env(&args, None, &[("NCPC_VMATH", v)]);
        assert!(o.status.success(), "NCPC_VMATH={v:?}: {o:?}");
        (
            String::from_utf8(o.stdout).unwrap(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (want, quiet) = run(None);
    assert!(!quiet.contains("NCPC_VMATH"), "{quiet}");
    // A level every CPU runs: honoured silently, same values.
    let (out, err) = run(Some("generic"));
    assert_eq!(out, want);
    assert!(!err.contains("NCPC_VMATH"), "{err}");
    // An unknown name: a warning that names it and the level used instead; same values.
    let (out, err) = run(Some("avx1024"));
    assert_eq!(out, want);
    assert!(
        err.contains(r#"NCPC_VMATH="avx1024" is not one of avx512, avx2, generic; using "#),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn run_encodes_non_finite_numbers_and_null_gradients() {
    let (_d, genome) = tmp(
        "c.json",
        "[[101, 1, 0.0], [4, 1, 1, 2], [7, 1, 3], [453, 3]]",
    );
    let (_d2, inputs) = tmp(
        "in.json",
        r#"{"y_pred": [[1, 2], [3, 4]], "y_true": [[0, 1], [1, 0]]}"#,
    );
    let out = ok(&["run", &genome, "--inputs", &inputs, "--json"], None);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["grad_pred"].is_null(), "{out}");
    let (_d3, g2) = tmp("inf.daml", "safe_exp(safe_mul(one, tensor(100.0)))");
    let out = ok(&["run", &g2, "--inputs", &inputs, "--json"], None);
    assert!(out.contains(r#""loss":"Infinity""#), "{out}");
    let (_d4, g3) = tmp("nan.daml", "std(one)");
    let out = ok(&["run", &g3, "--inputs", &inputs, "--json"], None);
    assert!(out.contains(r#""loss":"NaN""#), "{out}");
}

#[test]
fn inputs_where_b_equals_c_compile_for_concrete_dims() {
    let (_d, inputs) = tmp(
        "in.json",
        r#"{"y_pred": [[1, 2], [3, 4]], "y_true": [[0, 1], [1, 0]]}"#,
    );
    let out = ok(
        &[
            "run",
            "tests/corpus/amm/cross_entropy.json",
            "--inputs",
            &inputs,
            "--json",
        ],
        None,
    );
    assert!(out.contains("grad_pred\":[["), "{out}");
}

#[test]
fn faults_are_reported_with_amms_fallback_loss() {
    let (_d, genome) = tmp("noret.json", "[[100, 1, 1], [11, 1, 2]]");
    let (_d2, inputs) = tmp(
        "in.json",
        r#"{"y_pred": [[1, 2, 3], [3, 4, 5]], "y_true": [[0, 1, 0], [1, 0, 0]]}"#,
    );
    let out = ok(&["run", &genome, "--inputs", &inputs, "--json"], None);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["loss"].as_f64(), Some(1.0));
    assert!(v["fault"].as_str().unwrap().contains("RETURN"), "{out}");
}

#[test]
fn malformed_genome_json_says_where() {
    let (_d, g) = tmp("bad.json", "[[100, 1, 0],\n [2, 1, 2 3]]");
    let err = bad(&["compile", &g], None);
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn bad_ir_says_line_and_column() {
    let (_d, g) = tmp(
        "bad.ir",
        "function f(f32[B,C], f32[B,C]) -> f32 {\nblock0(v0: f32[B,C], v1: f32[B,C]):\n    v2 = frobnicate v0 : f32[B,C]\n    return v2\n}\n",
    );
    let err = bad(&["compile", &g, "--format", "ir"], None);
    assert!(
        err.contains("3:10") && err.contains("unknown op `frobnicate`"),
        "{err}"
    );
    let (_d, g) = tmp(
        "bad2.ir",
        "function f(f32[B,C], f32[B,C]) -> f32 {\nblock0(v0: f32[B,C], v1: f32[B,C]):\n    v2 = add v0, v9 : f32[B,C]\n    return v2\n}\n",
    );
    let err = bad(&["compile", &g], None);
    assert!(
        err.contains("3:18") && err.contains("`v9` is not defined"),
        "{err}"
    );
    let (_d, g) = tmp(
        "bad3.ir",
        "function f(f32[B,C], f32[B,C]) -> f32 {\nblock0(v0: f32[B,C], v1: f32[B,C]):\n    v2 = mean<all> v0 : f32[B]\n    return v2\n}\n",
    );
    let err = bad(&["compile", &g], None);
    assert!(
        err.contains("annotated f32[B] but `mean` gives f32"),
        "{err}"
    );
}

#[test]
fn strict_mode_names_the_instruction() {
    let (_d, g) = tmp("s.json", "[[100, 1, 1], [2, 1, 7, 3], [453, 3]]");
    ok(&["compile", &g, "--mode", "compat"], None);
    let err = bad(&["compile", &g, "--mode", "strict"], None);
    assert!(
        err.contains("instruction 1") && err.contains("register 7 is read before it is written"),
        "{err}"
    );
    let (_d, g) = tmp("s2.json", "[[100, 1, 1], [6, 1], [453, 9]]");
    let err = bad(&["compile", &g, "--mode", "strict"], None);
    assert!(
        err.contains("instruction 1") && err.contains("parameters"),
        "{err}"
    );
    let (_d, g) = tmp("s3.json", "[[100, 1, 1], [260, 1, 2, 3], [453, 3]]");
    let err = bad(&["compile", &g, "--mode", "strict"], None);
    assert!(
        err.contains("instruction 1") && err.contains("identity"),
        "{err}"
    );
}

#[test]
fn daml_errors_give_the_column() {
    let err = bad(
        &["compile", "-", "--format", "daml"],
        Some("safe_add(x, frob(y))"),
    );
    assert!(
        err.contains("column 13") && err.contains("unknown primitive or terminal `frob`"),
        "{err}"
    );
    let err = bad(&["compile", "-", "--format", "daml"], Some("safe_add(x)"));
    assert!(err.contains("takes 2 argument"), "{err}");
}

#[test]
fn bad_inputs_are_rejected_clearly() {
    let (_d, i1) = tmp(
        "a.json",
        r#"{"y_pred": [[1, 2], [3]], "y_true": [[0, 1], [1, 0]]}"#,
    );
    assert!(
        bad(&["run", "tests/corpus/amm/mse.json", "--inputs", &i1], None)
            .contains("row 1 has 1 values")
    );
    let (_d, i2) = tmp("b.json", r#"{"y_pred": [[1, 2]], "y_true": [[0, 1, 0]]}"#);
    assert!(
        bad(&["run", "tests/corpus/amm/mse.json", "--inputs", &i2], None).contains("one shape")
    );
    let (_d, i3) = tmp("c.json", r#"{"y_pred": [[1, "x"]], "y_true": [[0, 1]]}"#);
    assert!(
        bad(&["run", "tests/corpus/amm/mse.json", "--inputs", &i3], None)
            .contains("`y_pred`[0][1] is not a number")
    );
    let (_d, i4) = tmp("d.json", r#"{"y_true": [[0, 1]]}"#);
    assert!(
        bad(&["run", "tests/corpus/amm/mse.json", "--inputs", &i4], None)
            .contains("missing `y_pred`")
    );
    assert!(
        bad(&["run", "no/such/genome.json", "--inputs", &i4], None)
            .contains("cannot open no/such/genome.json")
    );
}

#[test]
fn unrecognizable_input_is_rejected() {
    let err = bad(&["compile", "-"], Some("{\"hello\": 1}"));
    assert!(err.contains("--format"), "{err}");
    bad(&["compile", "-"], Some("\u{0}\u{1}"));
}

#[test]
fn mine_refuses_bad_flags_and_says_when_the_pool_is_unreachable() {
    let err = bad(&["mine", "--delay=-1"], None);
    assert!(err.contains("--delay"), "{err}");
    let home = tempfile::tempdir().unwrap();
    let key = home.path().join("alice.key");
    std::fs::write(&key, "//Alice").unwrap();
    // Nothing listens on port 1: registration fails after its retries, with the URL named.
    let out = Command::new(env!("CARGO_BIN_EXE_ncpc"))
        .args([
            "mine",
            "--pool-url",
            "http://127.0.0.1:1",
            "--cycles",
            "1",
            "--seed-file",
        ])
        .arg(&key)
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot register") && err.contains("127.0.0.1:1"),
        "{err}"
    );
}

/// A loopback server answering one request with `body`; returns its URL and the request line.
fn one_shot(body: &'static str) -> (String, std::thread::JoinHandle<String>) {
    use std::io::{BufRead, BufReader};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).map_or(true, |n| n == 0) || h == "\r\n" {
                break;
            }
        }
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body.as_bytes()).unwrap();
        line
    });
    (url, handle)
}

#[test]
fn pool_balance_asks_for_the_keys_address_and_prints_the_answer() {
    let (url, request) = one_shot(r#"{"balance": 2.5}"#);
    let out = ok(
        &[
            "pool",
            "balance",
            "--pool-url",
            &url,
            "--mnemonic",
            "//Alice",
        ],
        None,
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["balance"], 2.5);
    let alice = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY";
    assert_eq!(
        request.join().unwrap().trim(),
        format!("GET /api/v1/miners/{alice}/balance HTTP/1.1")
    );
}

#[test]
fn pool_errors_name_the_url_or_the_key_file() {
    let err = bad(
        &["pool", "info", "--seed-file", "/nonexistent/ncpc-key"],
        None,
    );
    assert!(err.contains("/nonexistent/ncpc-key"), "{err}");
    let (url, request) = one_shot("not json");
    let err = bad(
        &[
            "pool",
            "register",
            "--pool-url",
            &url,
            "--mnemonic",
            "//Bob",
        ],
        None,
    );
    assert!(
        err.contains("/api/v1/miners/register") && err.contains("not json"),
        "{err}"
    );
    assert!(request.join().unwrap().starts_with("POST "));
}

/// Exit codes are decided in one place: 2 for bad input (a missing or malformed input), 1 for
/// a failure that is not the input's fault (a results folder that cannot be made).
#[test]
fn exit_codes_tell_bad_input_from_failures() {
    let err = bad(&["compile", "/nonexistent/genome.json"], None);
    assert!(err.contains("/nonexistent/genome.json"), "{err}");
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let out_dir = file.join("results");
    let o = ncpc(
        &[
            "evolve",
            "--population",
            "4",
            "--generations",
            "1",
            "--out",
            out_dir.to_str().unwrap(),
        ],
        None,
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot create"), "{stderr}");
    let help = ncpc(&["--help"], None);
    assert!(String::from_utf8_lossy(&help.stdout).contains("Exit codes: 0 success; 2 bad input"));
}

/// `--emit cuda|wgsl` print the population kernel for `--classes`; a loss the kernels do not
/// take, a bad class count and a bad dialect name each get a clear error and exit 2.
#[test]
fn population_kernels_are_emitted_or_refused_with_the_reason() {
    let cuda = ok(
        &[
            "compile",
            "tests/corpus/amm/cross_entropy.json",
            "--emit",
            "cuda",
            "--classes",
            "7",
        ],
        None,
    );
    assert!(
        cuda.contains("#define NCP_C 7") && cuda.contains("__global__"),
        "{cuda}"
    );
    let wgsl = ok(
        &[
            "compile",
            "tests/corpus/amm/cross_entropy.json",
            "--emit",
            "wgsl",
        ],
        None,
    );
    assert!(
        wgsl.contains("const NCP_C: i32 = 10;") && wgsl.contains("@compute"),
        "{wgsl}"
    );
    let mixing = "function g(f32[B,C], f32[B,C]) -> f32 {\nblock0(v0: f32[B,C], v1: f32[B,C]):\n    v2 = std<all> v0 : f32\n    return v2\n}\n";
    let e = bad(
        &["compile", "-", "--format", "ir", "--emit", "wgsl"],
        Some(mixing),
    );
    assert!(e.contains("mixes rows"), "{e}");
    let e = bad(
        &[
            "compile",
            "tests/corpus/amm/mse.json",
            "--emit",
            "cuda",
            "--classes",
            "0",
        ],
        None,
    );
    assert!(e.contains("0 classes"), "{e}");
    let e = bad(
        &["compile", "tests/corpus/amm/mse.json", "--emit", "opencl"],
        None,
    );
    assert!(e.contains("opencl") && e.contains("wgsl"), "{e}");
}

/// A genome whose branches depend on the data has no single kernel to show; `run` compiles
/// the path its input takes and says the JIT ran it.
#[test]
fn a_genome_that_branches_on_the_data_runs_on_the_jit_but_has_no_single_kernel() {
    let o = ncpc(
        &[
            "compile",
            "tests/corpus/amm/edge_jump_if.json",
            "--emit",
            "clif",
        ],
        None,
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("branches depend on the data"), "{err}");
    let clif = ok(
        &["compile", "tests/corpus/amm/mse.json", "--emit", "clif"],
        None,
    );
    assert!(clif.contains("function"), "{clif}");
    let (_d, inputs) = tmp("in.json", SMALL_INPUTS);
    let out = ok(
        &[
            "run",
            "tests/corpus/amm/edge_jump_if.json",
            "--inputs",
            &inputs,
            "--backend",
            "jit",
        ],
        None,
    );
    assert!(out.contains("backend: jit"), "{out}");
}
