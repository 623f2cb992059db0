//! Helpers shared by the integration tests.
#![allow(dead_code)]

use serde_json::Value as Json;
use std::path::{Path, PathBuf};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Sorted `*.json` files of a directory under the root.
pub fn json_files(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    v.sort();
    v
}

/// A number from a reference file ("NaN", "Infinity", "-Infinity" strings included).
pub fn num(v: &Json) -> f32 {
    ncpc::numbers::decode(v).unwrap_or_else(|| panic!("not a number: {v}"))
}

/// A matrix from a reference file.
pub fn matrix(v: &Json) -> Vec<Vec<f32>> {
    ncpc::numbers::decode_matrix(v, "matrix").expect("matrix")
}

/// Whether `got` matches `want` within `rel` relative (plus `abs`), NaN matching NaN and
/// infinities matching the same infinity.
pub fn close(got: f32, want: f32, rel: f32, abs: f32) -> bool {
    if want.is_nan() {
        return got.is_nan();
    }
    if want.is_infinite() {
        return got == want;
    }
    (got - want).abs() <= rel * want.abs() + abs
}

/// File stem.
pub fn stem(p: &Path) -> String {
    p.file_stem().unwrap().to_string_lossy().into_owned()
}

/// Compare ncpc's loss and gradient with one PyTorch reference case: the loss within 1e-5
/// relative (1e-7 absolute), the gradient within 1e-4 relative or 1e-5 absolute (entries that
/// are f32 rounding noise from cancellation differ between any two f32 implementations), and
/// the same presence of a gradient. Differences are pushed to `failures`.
pub fn check_against_reference(
    what: &str,
    got: &ncpc::loss::LossValue,
    case: &Json,
    failures: &mut Vec<String>,
) {
    let want_loss = num(&case["loss"]);
    if !close(got.loss, want_loss, 1e-5, 1e-7) {
        failures.push(format!("{what}: loss {} vs {want_loss}", got.loss));
    }
    match (&got.grad, case["grad_pred"].is_null()) {
        (None, true) => {}
        (Some(_), true) => failures.push(format!("{what}: ncpc has a gradient, PyTorch none")),
        (None, false) => failures.push(format!("{what}: PyTorch has a gradient, ncpc none")),
        (Some(g), false) => {
            let want = matrix(&case["grad_pred"]);
            for (i, (gr, wr)) in g.iter().zip(&want).enumerate() {
                for (j, (a, b)) in gr.iter().zip(wr).enumerate() {
                    if !close(*a, *b, 1e-4, 1e-5) {
                        failures.push(format!("{what}: grad[{i}][{j}] {a} vs {b}"));
                    }
                }
            }
        }
    }
}

/// One-hot targets for `b` rows of `c` classes.
pub fn one_hot(rng: &mut impl rand::Rng, b: usize, c: usize) -> Vec<Vec<f32>> {
    (0..b)
        .map(|_| {
            let k = rng.random_range(0..c);
            (0..c).map(|j| (j == k) as u8 as f32).collect()
        })
        .collect()
}

/// Tensors from rows.
pub fn tensors(
    yp: &[Vec<f32>],
    yt: &[Vec<f32>],
) -> (ncp_ir::tensor::Tensor, ncp_ir::tensor::Tensor) {
    (
        ncp_ir::tensor::Tensor::from_rows(yp).unwrap(),
        ncp_ir::tensor::Tensor::from_rows(yt).unwrap(),
    )
}

/// Write a gzip IDX file (unsigned bytes) with the given dimensions.
pub fn write_idx(path: &Path, dims: &[u32], data: &[u8]) {
    use std::io::Write;
    let mut bytes = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend_from_slice(data);
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(path).unwrap(),
        flate2::Compression::fast(),
    );
    gz.write_all(&bytes).unwrap();
    gz.finish().unwrap();
}
