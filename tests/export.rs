//! `ncpc export --to pytorch` computes the same loss as `ncpc run`, checked with PyTorch when
//! it is installed (a Python with torch: $NCPC_TORCH_PYTHON, else `python3` if it imports
//! torch; otherwise the numeric check is skipped and says so). `ncpc explain` always runs.

mod common;

use std::process::Command;

fn ncpc(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ncpc"))
        .args(args)
        .output()
        .unwrap()
}

fn torch_python() -> Option<String> {
    let candidates = std::env::var("NCPC_TORCH_PYTHON")
        .ok()
        .into_iter()
        .chain(["python3".to_string()]);
    for py in candidates {
        let ok = Command::new(&py)
            .args(["-c", "import torch"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Some(py);
        }
    }
    None
}

const INPUTS: &str = r#"{"y_pred": [[0.5, -1.25, 2.0], [0.1, 0.2, -0.3], [1.5, 0.0, -2.5], [-0.75, 0.6, 0.9]],
 "y_true": [[1, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0]]}"#;

#[test]
fn explain_prints_plain_and_latex_formulas() {
    let ce = common::root().join("tests/corpus/amm/cross_entropy.json");
    let out = ncpc(&["explain", ce.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("loss = mean_b(-sum_c(y_true * log(max(softmax(y_pred), 1e-7))))"),
        "{text}"
    );
    assert!(text.contains("\\sum_{c}"), "{text}");
}

#[test]
fn pytorch_export_matches_ncpc_run() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("inputs.json");
    std::fs::write(&inputs, INPUTS).unwrap();
    let mut cases = Vec::new();
    for path in common::json_files("tests/corpus/amm") {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if name.starts_with("edge_") {
            continue;
        }
        let module = dir.path().join(format!("m_{name}.py"));
        let exported = ncpc(&[
            "export",
            path.to_str().unwrap(),
            "--to",
            "pytorch",
            "-o",
            module.to_str().unwrap(),
        ]);
        if !exported.status.success() {
            // Control flow or a program that always faults: the export must say why.
            let err = String::from_utf8_lossy(&exported.stderr);
            assert!(
                err.contains("control flow") || err.contains("faults") || err.contains("formula"),
                "{name}: {err}"
            );
            continue;
        }
        let run = ncpc(&[
            "run",
            path.to_str().unwrap(),
            "--inputs",
            inputs.to_str().unwrap(),
            "--json",
        ]);
        assert!(run.status.success(), "{name}");
        let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
        if v.get("fault").is_some_and(|f| !f.is_null()) {
            continue;
        }
        cases.push((name, module, common::num(&v["loss"])));
    }
    assert!(cases.len() >= 20, "only {} genomes exported", cases.len());
    let Some(py) = torch_python() else {
        eprintln!(
            "skipped the numeric check of {} exports: no Python with torch",
            cases.len()
        );
        return;
    };
    let script = format!(
        "import importlib.util, json, sys, torch\n\
         x = json.load(open({inputs:?}))\n\
         yp = torch.tensor(x['y_pred'], dtype=torch.float32)\n\
         yt = torch.tensor(x['y_true'], dtype=torch.float32)\n\
         out = {{}}\n\
         for name, path in json.loads(sys.argv[1]).items():\n\
         \x20   spec = importlib.util.spec_from_file_location(name, path)\n\
         \x20   m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n\
         \x20   cls = [c for c in vars(m).values() if isinstance(c, type) and issubclass(c, torch.nn.Module) and c is not torch.nn.Module][0]\n\
         \x20   out[name] = float(cls()(yp, yt))\n\
         print(json.dumps(out))\n"
    );
    let map: serde_json::Map<String, serde_json::Value> = cases
        .iter()
        .map(|(n, m, _)| (n.clone(), serde_json::Value::from(m.to_str().unwrap())))
        .collect();
    let out = Command::new(&py)
        .args(["-c", &script, &serde_json::Value::Object(map).to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for (name, _, want) in &cases {
        let t = got[name].as_f64().map(|x| x as f32).unwrap_or(f32::NAN);
        let close = (t.is_nan() && want.is_nan())
            || t == *want
            || (t - want).abs() <= 1e-5 * want.abs().max(1e-3);
        assert!(close, "{name}: torch {t}, ncpc {want}");
    }
    eprintln!("checked {} PyTorch exports against ncpc run", cases.len());
}
