//! `ncpc data fetch`: download a dataset from its public mirror, check it, and lay it out
//! under the data root. Files are written under a temporary name and renamed into place only
//! once checked, so a failed or interrupted fetch leaves nothing half-written.

use super::{DataError, DatasetName, cifar, idx};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Largest download accepted (the CIFAR-10 archive is 162 MiB).
pub const MAX_DOWNLOAD: u64 = 256 << 20;

/// The public mirror of each dataset (a base URL; file names are appended).
pub fn default_mirror(name: DatasetName) -> &'static str {
    match name {
        DatasetName::Mnist => "https://ossci-datasets.s3.amazonaws.com/mnist",
        DatasetName::FashionMnist => "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com",
        DatasetName::Cifar10 => "https://www.cs.toronto.edu/~kriz",
    }
}

const IDX_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

fn get(client: &reqwest::blocking::Client, url: &str) -> Result<Vec<u8>, DataError> {
    let err = |msg: String| DataError::Fetch {
        url: url.to_string(),
        msg,
    };
    let resp = client.get(url).send().map_err(|e| err(format!("{e}")))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(err(format!("the server answered {status}")));
    }
    let mut body = Vec::new();
    resp.take(MAX_DOWNLOAD + 1)
        .read_to_end(&mut body)
        .map_err(|e| err(format!("reading the body: {e}")))?;
    if body.len() as u64 > MAX_DOWNLOAD {
        return Err(err(format!("larger than {} MiB", MAX_DOWNLOAD >> 20)));
    }
    Ok(body)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    let io = |source| DataError::Io {
        file: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Fetch `name` from `mirror` (default: [`default_mirror`]) into `root`, checking MNIST-style
/// files against `sums` (`(dataset dir, file, SHA-256 of the decompressed file)`) and CIFAR-10
/// batches by their format. Returns the files written.
pub fn fetch(
    name: DatasetName,
    root: &Path,
    mirror: Option<&str>,
    sums: &[(&str, &str, &str)],
) -> Result<Vec<PathBuf>, DataError> {
    let base = mirror.unwrap_or(default_mirror(name)).trim_end_matches('/');
    let dir = root.join(name.dir());
    std::fs::create_dir_all(&dir).map_err(|source| DataError::Io {
        file: dir.clone(),
        source,
    })?;
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(600))
        .connect_timeout(Duration::from_secs(20))
        .build()
        .map_err(|e| DataError::Fetch {
            url: base.to_string(),
            msg: e.to_string(),
        })?;
    let mut written = Vec::new();
    match name {
        DatasetName::Mnist | DatasetName::FashionMnist => {
            // Download and check all four before writing any.
            let mut files = Vec::new();
            for file in IDX_FILES {
                let url = format!("{base}/{file}.gz");
                let gz = get(&client, &url)?;
                let target = dir.join(format!("{file}.gz"));
                let raw = idx::maybe_gunzip(gz.clone(), &target)?;
                idx::parse(&raw, &target)?;
                let want = sums
                    .iter()
                    .find(|(d, f, _)| *d == name.dir() && *f == file)
                    .map(|s| s.2);
                let got: String = Sha256::digest(&raw)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                match want {
                    Some(w) if w == got => {}
                    Some(w) => {
                        return Err(DataError::Fetch {
                            url,
                            msg: format!("SHA-256 {got} does not match the expected {w}"),
                        });
                    }
                    None => {
                        return Err(DataError::Fetch {
                            url,
                            msg: "no SHA-256 is recorded for this file".into(),
                        });
                    }
                }
                files.push((target, gz));
            }
            for (target, gz) in files {
                write_atomically(&target, &gz)?;
                written.push(target);
            }
        }
        DatasetName::Cifar10 => {
            let url = format!("{base}/cifar-10-binary.tar.gz");
            let archive = get(&client, &url)?;
            let tar_bytes = idx::maybe_gunzip(archive, Path::new(&url))?;
            let mut batches = Vec::new();
            let mut ar = tar::Archive::new(&tar_bytes[..]);
            let entries = ar.entries().map_err(|e| DataError::Fetch {
                url: url.clone(),
                msg: format!("not a tar archive: {e}"),
            })?;
            for entry in entries {
                let mut entry = entry.map_err(|e| DataError::Fetch {
                    url: url.clone(),
                    msg: format!("tar: {e}"),
                })?;
                let path = entry
                    .path()
                    .map_err(|e| DataError::Fetch {
                        url: url.clone(),
                        msg: format!("tar: {e}"),
                    })?
                    .into_owned();
                let Some(file) = path
                    .file_name()
                    .and_then(|f| f.to_str())
                    .map(str::to_string)
                else {
                    continue;
                };
                if !(file.starts_with("data_batch_") || file == "test_batch.bin")
                    || !file.ends_with(".bin")
                {
                    continue;
                }
                let mut bytes = Vec::new();
                entry
                    .read_to_end(&mut bytes)
                    .map_err(|e| DataError::Fetch {
                        url: url.clone(),
                        msg: format!("tar: {e}"),
                    })?;
                let target = dir.join(&file);
                cifar::parse(&bytes, &target)?;
                batches.push((target, bytes));
            }
            if batches.len() != 6 {
                return Err(DataError::Fetch {
                    url,
                    msg: format!("the archive holds {} of the 6 batch files", batches.len()),
                });
            }
            for (target, bytes) in batches {
                write_atomically(&target, &bytes)?;
                written.push(target);
            }
        }
    }
    Ok(written)
}
