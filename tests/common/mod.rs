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
