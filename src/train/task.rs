//! The data of one protocol run: features normalised and split into training and
//! validation sets, ready for the trainer.

use super::data::{self, DataError, Dataset, DatasetName, Split};
use super::linalg::{Affine, SparseRows};
use super::protocol::{Protocol, SplitRule};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use std::path::Path;

/// Training and validation data as the trainer consumes it.
#[derive(Clone, Debug)]
pub struct TaskData {
    /// Training features, `train_y.len() x dim`, normalised.
    pub train_x: Vec<f32>,
    /// Training labels.
    pub train_y: Vec<u8>,
    /// Validation features.
    pub val_x: Vec<f32>,
    /// Validation labels.
    pub val_y: Vec<u8>,
    /// Features per sample.
    pub dim: usize,
    /// Number of classes.
    pub classes: usize,
    /// The normalisation the network applies to the stored features (pixels are stored in
    /// [0, 1], so that zeros stay exact zeros the first layer can skip).
    pub input: Affine,
    /// Where the data came from, for reports.
    pub source: String,
    /// `train_x` as sparse rows, when most features are zero (then the trainer uses it).
    pub train_sparse: Option<SparseRows>,
    /// `val_x` as sparse rows, likewise.
    pub val_sparse: Option<SparseRows>,
}

/// Features are kept sparse when at least this fraction is zero.
const SPARSE_AT: f64 = 0.5;

fn sparse_if_worth_it(x: &[f32], dim: usize) -> Option<SparseRows> {
    let zeros = x.iter().filter(|v| **v == 0.0).count();
    (dim > 0 && !x.is_empty() && zeros as f64 >= SPARSE_AT * x.len() as f64)
        .then(|| SparseRows::from_dense(x, dim))
}

/// The per-dataset mean and standard deviation of pixel values in [0, 1] used to normalise
/// features (MNIST's are the ones the AMM client uses).
pub fn normalisation(name: DatasetName) -> (f32, f32) {
    match name {
        DatasetName::Mnist => (0.1307, 0.3081),
        DatasetName::FashionMnist => (0.2860, 0.3530),
        DatasetName::Cifar10 => (0.4734, 0.2516),
    }
}

/// Test sets DAML's validators load whole: their `randperm` runs over all of it.
const FULL_TEST_SETS: [usize; 1] = [10_000];

/// The first `n` samples of `test` in DAML's validation order: `torch.manual_seed(42)`, a
/// `randperm` over the `train_len` training samples (the training sampler, drawn first), then
/// one over the test set. When `test` is not a whole test set (the embedded MNIST subset),
/// its first `n` samples stand in and `notes` says so.
pub fn daml_validation(
    test: &Dataset,
    train_len: usize,
    n: usize,
    notes: &mut Vec<String>,
) -> Dataset {
    if !FULL_TEST_SETS.contains(&test.len()) {
        notes.push(format!(
            "{}: {} test samples, not a whole test set: validating on the first {n} in file \
             order instead of DAML's permutation",
            test.name,
            test.len()
        ));
        return test.take(n);
    }
    let mut g = super::torch_rng::TorchGenerator::manual_seed(42);
    let _training_order = g.randperm(train_len);
    let order = g.randperm(test.len());
    test.select(&order[..n.min(order.len())])
}

/// `(x - mean) / std` as an affine map.
fn standardize(mean: f32, std: f32) -> Affine {
    Affine {
        scale: 1.0 / std,
        shift: -mean / std,
    }
}

/// How many samples of each split a protocol reads (`None`: all).
fn needs(split: SplitRule) -> (Option<usize>, Option<usize>) {
    match split {
        SplitRule::Permuted { total, .. } => (Some(total), Some(0)),
        // DAML's order draws from the whole test set.
        SplitRule::TestSet {
            train,
            val,
            daml_order,
        } => (train, if daml_order { None } else { val }),
    }
}

/// Load a split: from the data root when the dataset is there, else (MNIST only) from the
/// embedded subset when it holds enough samples. Returns the dataset and, when the embedded
/// subset stands in for a larger set, a note saying so.
fn load_split(
    name: DatasetName,
    split: Split,
    want: Option<usize>,
    root: &Path,
) -> Result<(Dataset, Option<String>), DataError> {
    if want == Some(0) {
        return Ok((Dataset::empty(), None));
    }
    let embedded_size = if split == Split::Train { 2000 } else { 1000 };
    let fits_embedded = want.is_some_and(|n| n <= embedded_size);
    if name == DatasetName::Mnist && fits_embedded {
        // The embedded subset is the first samples of the full set, byte for byte.
        return Ok((data::embedded_mnist(split)?, None));
    }
    match data::load(name, split, root) {
        Ok(d) => Ok((d, None)),
        Err(DataError::Missing { .. }) if name == DatasetName::Mnist => {
            let d = data::embedded_mnist(split)?;
            let note = format!(
                "full MNIST is not under {} (`ncpc data fetch mnist`); using the embedded {} {} samples",
                root.display(),
                d.len(),
                if split == Split::Train {
                    "training"
                } else {
                    "test"
                }
            );
            Ok((d, Some(note)))
        }
        Err(e) => Err(e),
    }
}

impl TaskData {
    /// The data a protocol trains and validates on, read from `root` (or the embedded
    /// subset). Notes about substitutions go to `notes`.
    pub fn for_protocol(
        p: &Protocol,
        root: &Path,
        notes: &mut Vec<String>,
    ) -> Result<TaskData, DataError> {
        let (want_train, want_val) = needs(p.split);
        let (train, n1) = load_split(p.dataset, Split::Train, want_train, root)?;
        let (test, n2) = load_split(p.dataset, Split::Test, want_val, root)?;
        notes.extend(n1.into_iter().chain(n2));
        let (mean, std) = normalisation(p.dataset);
        let input = standardize(mean, std);
        let dim = train.sample_len();
        let classes = train.classes;
        let source = train.name.clone();
        match p.split {
            SplitRule::Permuted { total, train: n } => {
                let all = train.take(total);
                if all.len() < total || n >= total {
                    return Err(DataError::Invalid(format!(
                        "{}: the protocol needs {total} samples split {n}/{}, the set has {}",
                        all.name,
                        total.saturating_sub(n),
                        all.len()
                    )));
                }
                let mut order: Vec<usize> = (0..total).collect();
                order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(42));
                let x = all.features(0.0, 1.0);
                let pick = |idx: &[usize]| {
                    let mut xs = Vec::with_capacity(idx.len() * dim);
                    for i in idx {
                        xs.extend_from_slice(&x[i * dim..(i + 1) * dim]);
                    }
                    (xs, idx.iter().map(|i| all.labels[*i]).collect())
                };
                let (train_x, train_y) = pick(&order[..n]);
                let (val_x, val_y) = pick(&order[n..]);
                Ok(TaskData {
                    train_x,
                    train_y,
                    val_x,
                    val_y,
                    dim,
                    classes,
                    input,
                    source: format!(
                        "{source}: first {total} training samples, {n}/{} split",
                        total - n
                    ),
                    train_sparse: None,
                    val_sparse: None,
                }
                .with_sparse())
            }
            SplitRule::TestSet {
                train: nt,
                val: nv,
                daml_order,
            } => {
                let va = match nv {
                    Some(n) if daml_order => daml_validation(&test, train.len(), n, notes),
                    Some(n) => test.take(n),
                    None => test,
                };
                // Whole sets are moved, not copied (full MNIST is 47 MB of pixels).
                let tr = match nt {
                    Some(n) => train.take(n),
                    None => train,
                };
                if va.sample_len() != dim {
                    return Err(DataError::Invalid(format!(
                        "{}: test samples have {} features, training samples {dim}",
                        va.name,
                        va.sample_len()
                    )));
                }
                Ok(TaskData {
                    train_x: tr.features(0.0, 1.0),
                    train_y: tr.labels.clone(),
                    val_x: va.features(0.0, 1.0),
                    val_y: va.labels.clone(),
                    dim,
                    classes,
                    input,
                    source: format!("{source}: {} training, {} test samples", tr.len(), va.len()),
                    train_sparse: None,
                    val_sparse: None,
                }
                .with_sparse())
            }
        }
    }

    /// Data from an in-memory dataset (for tests and custom sets): the first `n_train`
    /// samples train, the rest validate; features scaled by `mean` and `std`.
    pub fn from_dataset(d: &Dataset, n_train: usize, mean: f32, std: f32) -> TaskData {
        let dim = d.sample_len();
        let x = d.features(0.0, 1.0);
        let n_train = n_train.min(d.len());
        TaskData {
            train_x: x[..n_train * dim].to_vec(),
            train_y: d.labels[..n_train].to_vec(),
            val_x: x[n_train * dim..].to_vec(),
            val_y: d.labels[n_train..].to_vec(),
            dim,
            classes: d.classes,
            input: standardize(mean, std),
            source: d.name.clone(),
            train_sparse: None,
            val_sparse: None,
        }
        .with_sparse()
    }

    /// Add the sparse forms of the features where they pay.
    pub(crate) fn with_sparse(mut self) -> TaskData {
        self.train_sparse = sparse_if_worth_it(&self.train_x, self.dim);
        self.val_sparse = sparse_if_worth_it(&self.val_x, self.dim);
        self
    }
}

#[cfg(test)]
mod daml_order_tests {
    use super::*;

    /// A test set whose sample `i` holds `i` in its pixels (two bytes) and `i % 10` as label.
    fn numbered(n: usize) -> Dataset {
        Dataset {
            name: "numbered".into(),
            images: (0..n).flat_map(|i| [(i >> 8) as u8, i as u8]).collect(),
            labels: (0..n).map(|i| (i % 10) as u8).collect(),
            sample_shape: vec![2],
            classes: 10,
        }
    }

    fn index_of(d: &Dataset, k: usize) -> usize {
        (d.images[2 * k] as usize) << 8 | d.images[2 * k + 1] as usize
    }

    #[test]
    fn daml_s_validation_order_is_torch_s_second_randperm() {
        // torch 2.15: manual_seed(42); randperm(60000); randperm(10000)[:8] and [3231]
        // (MNIST), and after randperm(50000) (CIFAR-10).
        let test = numbered(10_000);
        let mut notes = Vec::new();
        let v = daml_validation(&test, 60_000, 3232, &mut notes);
        assert!(notes.is_empty());
        assert_eq!(v.len(), 3232);
        let first: Vec<usize> = (0..8).map(|k| index_of(&v, k)).collect();
        assert_eq!(first, [914, 4169, 3956, 8025, 9992, 1890, 9568, 4111]);
        assert_eq!(index_of(&v, 3231), 1327);
        assert_eq!(v.labels[0], (914 % 10) as u8);
        let c = daml_validation(&test, 50_000, 8, &mut notes);
        let first: Vec<usize> = (0..8).map(|k| index_of(&c, k)).collect();
        assert_eq!(first, [1682, 9430, 9589, 3601, 8760, 2815, 472, 4640]);
    }

    #[test]
    fn a_partial_test_set_falls_back_to_file_order_with_a_note() {
        let mut notes = Vec::new();
        let v = daml_validation(&numbered(1000), 2000, 100, &mut notes);
        assert_eq!(index_of(&v, 0), 0);
        assert_eq!(v.len(), 100);
        assert!(notes[0].contains("file order"), "{notes:?}");
    }
}
