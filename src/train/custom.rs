//! A user's own data: a folder of IDX files, or a CSV of features with a label column. The
//! class count is inferred and checked; the protocol's model, optimizer, steps and scoring
//! apply, its split does not (IDX folders bring their own test files; a CSV is split 80/20
//! by a permutation seeded 42).

use super::data::{DataError, find_idx, read_idx_pair};
use super::linalg::Affine;
use super::task::TaskData;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use std::path::{Path, PathBuf};

/// Where custom data comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum CustomData {
    /// A folder with `train-images-idx3-ubyte`, `train-labels-idx1-ubyte` and
    /// `t10k-…` (or `test-…`) files, raw or gzip.
    IdxDir(PathBuf),
    /// A CSV file with a header row; `label` names the label column (default: the last).
    Csv {
        /// The file.
        path: PathBuf,
        /// The label column's name.
        label: Option<String>,
    },
}

/// The most classes a custom dataset may have.
const MAX_CLASSES: usize = 256;

fn idx_split(dir: &Path, prefixes: &[&str]) -> Result<super::data::Dataset, DataError> {
    for prefix in prefixes {
        let img = find_idx(dir, &format!("{prefix}-images-idx3-ubyte"));
        let lab = find_idx(dir, &format!("{prefix}-labels-idx1-ubyte"));
        if let (Some(img), Some(lab)) = (img, lab) {
            return read_idx_pair(dir.display().to_string(), &img, &lab);
        }
    }
    Err(DataError::Invalid(format!(
        "{}: no {}-images-idx3-ubyte[.gz] with its labels file",
        dir.display(),
        prefixes.join("- or ")
    )))
}

/// Load custom data for training and validation.
pub fn load(data: &CustomData) -> Result<TaskData, DataError> {
    match data {
        CustomData::IdxDir(dir) => {
            let train = idx_split(dir, &["train"])?;
            let test = idx_split(dir, &["t10k", "test"])?;
            if test.sample_len() != train.sample_len() {
                return Err(DataError::Invalid(format!(
                    "{}: test samples have {} values, training samples {}",
                    dir.display(),
                    test.sample_len(),
                    train.sample_len()
                )));
            }
            if test.classes > train.classes {
                return Err(DataError::Invalid(format!(
                    "{}: the test labels go up to class {}, the training labels only to {}",
                    dir.display(),
                    test.classes - 1,
                    train.classes - 1
                )));
            }
            // Standardize with the training pixels' own mean and spread.
            let n = train.images.len().max(1) as f64;
            let mean = train.images.iter().map(|p| *p as f64 / 255.0).sum::<f64>() / n;
            let var = train
                .images
                .iter()
                .map(|p| (*p as f64 / 255.0 - mean).powi(2))
                .sum::<f64>()
                / n;
            let std = var.sqrt().max(1e-6);
            let mut d = TaskData::from_dataset(&train, train.len(), mean as f32, std as f32);
            let t = TaskData::from_dataset(&test, 0, mean as f32, std as f32);
            d.val_x = t.val_x;
            d.val_y = t.val_y;
            d.classes = train.classes;
            d.source = format!(
                "{}: {} training, {} test samples, {} classes",
                dir.display(),
                d.train_y.len(),
                d.val_y.len(),
                d.classes
            );
            Ok(d.with_sparse())
        }
        CustomData::Csv { path, label } => load_csv(path, label.as_deref()),
    }
}

fn load_csv(path: &Path, label: Option<&str>) -> Result<TaskData, DataError> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::Io {
        file: path.to_path_buf(),
        source: e,
    })?;
    let bad = |line: usize, msg: String| DataError::corrupt(path, format!("line {line}: {msg}"));
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines
        .next()
        .ok_or_else(|| DataError::corrupt(path, "empty file: a header row is needed".into()))?;
    let names: Vec<&str> = header.split(',').map(str::trim).collect();
    if names.len() < 2 {
        return Err(bad(
            1,
            "a header with a label column and at least one feature is needed".into(),
        ));
    }
    let label_at = match label {
        Some(l) => names.iter().position(|n| *n == l).ok_or_else(|| {
            bad(
                1,
                format!("no column named `{l}` (columns: {})", names.join(", ")),
            )
        })?,
        None => names.len() - 1,
    };
    let mut features: Vec<f32> = Vec::new();
    let mut raw_labels: Vec<String> = Vec::new();
    for (k, line) in lines {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != names.len() {
            return Err(bad(
                k + 1,
                format!("{} fields, the header has {}", fields.len(), names.len()),
            ));
        }
        for (c, f) in fields.iter().enumerate() {
            if c == label_at {
                raw_labels.push(f.to_string());
                continue;
            }
            let v: f32 = f
                .parse()
                .ok()
                .filter(|v: &f32| v.is_finite())
                .ok_or_else(|| {
                    bad(
                        k + 1,
                        format!("column `{}` is `{f}`, not a finite number", names[c]),
                    )
                })?;
            features.push(v);
        }
    }
    let dim = names.len() - 1;
    let n = raw_labels.len();
    if n < 10 {
        return Err(DataError::corrupt(
            path,
            format!("{n} rows; at least 10 are needed"),
        ));
    }
    // Labels: integers 0..k as they are, anything else as classes in sorted order.
    let ints: Option<Vec<usize>> = raw_labels.iter().map(|l| l.parse::<usize>().ok()).collect();
    let (labels, classes) = match ints {
        Some(v) => {
            let k = v.iter().max().map_or(0, |m| m + 1);
            (v, k)
        }
        None => {
            let mut distinct: Vec<&String> = raw_labels.iter().collect();
            distinct.sort();
            distinct.dedup();
            let v = raw_labels
                .iter()
                .map(|l| distinct.binary_search(&l).unwrap_or(0))
                .collect();
            (v, distinct.len())
        }
    };
    if !(2..=MAX_CLASSES).contains(&classes) {
        return Err(DataError::corrupt(
            path,
            format!(
                "{classes} classes in column `{}`; 2 to {MAX_CLASSES} are supported",
                names[label_at]
            ),
        ));
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(42));
    let n_train = n - (n / 5).max(1);
    let (tr, va) = order.split_at(n_train);
    // Standardize each feature with the training rows' mean and spread.
    let mut mean = vec![0f64; dim];
    let mut sq = vec![0f64; dim];
    for r in tr {
        for (c, v) in features[r * dim..(r + 1) * dim].iter().enumerate() {
            mean[c] += *v as f64;
            sq[c] += (*v as f64).powi(2);
        }
    }
    let m = tr.len() as f64;
    let std: Vec<f64> = (0..dim)
        .map(|c| {
            mean[c] /= m;
            (sq[c] / m - mean[c] * mean[c]).max(0.0).sqrt().max(1e-6)
        })
        .collect();
    let take = |rows: &[usize]| -> (Vec<f32>, Vec<u8>, Vec<usize>) {
        let mut x = Vec::with_capacity(rows.len() * dim);
        for r in rows {
            for (c, v) in features[r * dim..(r + 1) * dim].iter().enumerate() {
                x.push(((*v as f64 - mean[c]) / std[c]) as f32);
            }
        }
        (x, Vec::new(), rows.iter().map(|r| labels[*r]).collect())
    };
    let (train_x, _, train_l) = take(tr);
    let (val_x, _, val_l) = take(va);
    if classes > 256 {
        return Err(DataError::corrupt(
            path,
            format!("{classes} classes; at most 256 are supported"),
        ));
    }
    Ok(TaskData {
        train_x,
        train_y: train_l.iter().map(|l| *l as u8).collect(),
        val_x,
        val_y: val_l.iter().map(|l| *l as u8).collect(),
        dim,
        classes,
        input: Affine {
            scale: 1.0,
            shift: 0.0,
        },
        source: format!(
            "{}: {} training, {} validation rows, {dim} features, {classes} classes (label `{}`)",
            path.display(),
            n_train,
            n - n_train,
            names[label_at]
        ),
        train_sparse: None,
        val_sparse: None,
    })
}
