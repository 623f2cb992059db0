//! Your own data: a CSV with a label column and a folder of IDX files, trained on through
//! `ncpc eval`, and bad files refused with the line and column named.

mod common;

use ncpc::train::data::synthetic::blobs;
use std::io::Write;
use std::process::Command;

fn ncpc(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ncpc"))
        .args(args)
        .output()
        .unwrap()
}

fn mse() -> String {
    format!("{}/tests/corpus/amm/mse.json", env!("CARGO_MANIFEST_DIR"))
}

fn eval_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec![
        "eval",
        &*Box::leak(mse().into_boxed_str()),
        "--protocol",
        "standard",
        "--steps",
        "40",
        "--seeds",
        "1",
        "--json",
    ];
    all.extend_from_slice(args);
    let out = ncpc(&all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_csv_with_named_classes_trains() {
    let d = blobs(3, 300, 6, 3);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("points.csv");
    let mut f = std::fs::File::create(&path).unwrap();
    writeln!(f, "kind,a,b,c,d,e,f").unwrap();
    let names = ["bird", "cat", "dog"];
    for (row, label) in d.images.chunks(6).zip(&d.labels) {
        let feats: Vec<String> = row
            .iter()
            .map(|v| format!("{}", *v as f32 * 0.5 - 20.0))
            .collect();
        writeln!(f, "{},{}", names[*label as usize], feats.join(",")).unwrap();
    }
    drop(f);
    let r = eval_json(&["--csv", path.to_str().unwrap(), "--label-column", "kind"]);
    assert!(r["accuracy"].as_f64().unwrap() > 0.8, "{r}");
    let data = r["data"].as_str().unwrap();
    assert!(
        data.contains("240 training, 60 validation rows, 6 features, 3 classes"),
        "{data}"
    );
}

#[test]
fn bad_csvs_are_refused_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let mut rows = String::from("x,y,label\n");
    for k in 0..12 {
        rows += &format!("{k},{},{}\n", k * 2, k % 2);
    }
    let cases = [
        (
            write("nan.csv", &rows.replace("3,6,1", "3,oops,1")),
            "line 5: column `y` is `oops`",
        ),
        (
            write("short.csv", &rows.replace("3,6,1", "3,1")),
            "line 5: 2 fields, the header has 3",
        ),
        (
            write("one.csv", &rows.replace(",1\n", ",0\n")),
            "1 classes in column `label`",
        ),
        (write("empty.csv", ""), "a header row is needed"),
    ];
    for (path, want) in cases {
        let out = ncpc(&["eval", &mse(), "--csv", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{}", path.display());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(want) && err.contains(path.to_str().unwrap()),
            "{err}"
        );
    }
    let out = ncpc(&[
        "eval",
        &mse(),
        "--csv",
        dir.path().join("nan.csv").to_str().unwrap(),
        "--label-column",
        "nope",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no column named `nope`"));
}

#[test]
fn a_folder_of_idx_files_trains_with_its_own_class_count() {
    let dir = tempfile::tempdir().unwrap();
    let d = blobs(4, 500, 16, 4);
    let (train, test) = (400usize, 100usize);
    common::write_idx(
        &dir.path().join("train-images-idx3-ubyte.gz"),
        &[train as u32, 4, 4],
        &d.images[..train * 16],
    );
    common::write_idx(
        &dir.path().join("train-labels-idx1-ubyte.gz"),
        &[train as u32],
        &d.labels[..train],
    );
    common::write_idx(
        &dir.path().join("test-images-idx3-ubyte.gz"),
        &[test as u32, 4, 4],
        &d.images[train * 16..],
    );
    common::write_idx(
        &dir.path().join("test-labels-idx1-ubyte.gz"),
        &[test as u32],
        &d.labels[train..],
    );
    let r = eval_json(&["--idx-dir", dir.path().to_str().unwrap()]);
    assert!(r["accuracy"].as_f64().unwrap() > 0.8, "{r}");
    assert!(
        r["data"]
            .as_str()
            .unwrap()
            .contains("400 training, 100 test samples, 4 classes"),
        "{r}"
    );
    assert_eq!(r["model"], "16-64-4");
    // A folder without the files says which.
    let empty = tempfile::tempdir().unwrap();
    let out = ncpc(&["eval", &mse(), "--idx-dir", empty.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("train-images-idx3-ubyte"));
}
