//! Dataset readers: the embedded MNIST subset, IDX and CIFAR-10 parsing with errors that name
//! the file, checksums, the data root, and the synthetic task.

use ncpc::train::data::{self, DataError, DatasetName, Split, cifar, idx, synthetic};
use std::io::Write;
use std::path::Path;

#[test]
fn embedded_mnist_is_the_first_2000_training_images() {
    let d = data::embedded_mnist(Split::Train).unwrap();
    assert_eq!(
        (d.len(), d.sample_shape.clone(), d.classes),
        (2000, vec![28, 28], 10)
    );
    assert_eq!(
        &d.labels[..8],
        &[5, 0, 4, 1, 9, 2, 1, 3],
        "MNIST's first training labels"
    );
    let mut counts = [0usize; 10];
    d.labels.iter().for_each(|l| counts[*l as usize] += 1);
    assert!(
        counts.iter().all(|c| (150..260).contains(c)),
        "every digit is present: {counts:?}"
    );
    let t = data::embedded_mnist(Split::Test).unwrap();
    assert_eq!((t.len(), &t.labels[..5]), (1000, &[7u8, 2, 1, 0, 4][..]));
    // Normalized as the AMM protocol does.
    let x = d.take(1).features(0.1307, 0.3081);
    assert!((x[0] - (-0.1307 / 0.3081)).abs() < 1e-6 && x.iter().any(|v| *v > 2.0));
}

fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        b.extend(d.to_be_bytes());
    }
    b.extend(data);
    b
}

fn expect_corrupt(r: Result<impl std::fmt::Debug, DataError>, file: &str, needle: &str) {
    match r {
        Err(e @ DataError::Corrupt { .. }) => {
            let m = e.to_string();
            assert!(m.contains(file) && m.contains(needle), "{m}");
        }
        other => panic!("expected a corrupt-file error, got {other:?}"),
    }
}

#[test]
fn idx_errors_name_the_file_and_the_problem() {
    let f = Path::new("some/file.idx");
    let good = idx_bytes(&[2, 3], &[1, 2, 3, 4, 5, 6]);
    assert_eq!(idx::parse(&good, f).unwrap().dims, vec![2, 3]);
    expect_corrupt(
        idx::parse(&good[..good.len() - 1], f),
        "some/file.idx",
        "truncated",
    );
    expect_corrupt(
        idx::parse(&[1, 2, 3, 4], f),
        "some/file.idx",
        "not an IDX file",
    );
    expect_corrupt(
        idx::parse(&[0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0], f),
        "some/file.idx",
        "element type 0x0d",
    );
    expect_corrupt(
        idx::parse(&[0, 0, 8, 2, 0, 0], f),
        "some/file.idx",
        "header",
    );
    expect_corrupt(
        idx::parse(&idx_bytes(&[0xffff_ffff, 0xffff_ffff], &[]), f),
        "some/file.idx",
        "too large",
    );
    expect_corrupt(
        idx::maybe_gunzip(vec![0x1f, 0x8b, 8, 0, 1, 2, 3], f),
        "some/file.idx",
        "gzip",
    );
}

#[test]
fn gzip_and_raw_files_read_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let raw = idx_bytes(&[4], &[1, 2, 3, 4]);
    std::fs::write(dir.path().join("a"), &raw).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&raw).unwrap();
    std::fs::write(dir.path().join("b.gz"), gz.finish().unwrap()).unwrap();
    assert_eq!(
        idx::read(&dir.path().join("a")).unwrap(),
        idx::read(&dir.path().join("b.gz")).unwrap()
    );
    match idx::read(&dir.path().join("nope")) {
        Err(DataError::Io { file, .. }) => assert!(file.ends_with("nope")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn cifar_batches_parse_and_reject_bad_bytes() {
    let f = Path::new("data_batch_1.bin");
    let mut bytes = Vec::new();
    for label in [3u8, 7] {
        bytes.push(label);
        bytes.extend((0..3072).map(|k| (k % 251) as u8));
    }
    let (images, labels) = cifar::parse(&bytes, f).unwrap();
    assert_eq!((images.len(), labels), (2 * 3072, vec![3, 7]));
    expect_corrupt(
        cifar::parse(&bytes[..100], f),
        "data_batch_1.bin",
        "whole number",
    );
    bytes[3073] = 10;
    expect_corrupt(cifar::parse(&bytes, f), "data_batch_1.bin", "label 10");
    // A CIFAR-10 root with generated batches loads through the same path as real files.
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path().join("cifar-10");
    std::fs::create_dir_all(&c).unwrap();
    bytes[3073] = 1;
    std::fs::write(c.join("test_batch.bin"), &bytes).unwrap();
    let d = data::load(DatasetName::Cifar10, Split::Test, dir.path()).unwrap();
    assert_eq!((d.len(), d.sample_shape), (2, vec![3, 32, 32]));
    assert!(matches!(
        data::load(DatasetName::Cifar10, Split::Train, dir.path()),
        Err(DataError::Missing { .. })
    ));
}

#[test]
fn mnist_layout_loads_and_checksums_catch_other_files() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("mnist");
    std::fs::create_dir_all(&m).unwrap();
    for (name, dims, data) in [
        ("t10k-images-idx3-ubyte", vec![2u32, 2, 2], vec![0u8; 8]),
        ("t10k-labels-idx1-ubyte", vec![2], vec![1, 9]),
    ] {
        std::fs::write(m.join(name), idx_bytes(&dims, &data)).unwrap();
    }
    let d = data::load(DatasetName::Mnist, Split::Test, dir.path()).unwrap();
    assert_eq!((d.len(), d.sample_shape.clone()), (2, vec![2, 2]));
    match data::verify(DatasetName::Mnist, dir.path()) {
        Err(DataError::Missing { missing, .. }) => assert_eq!(missing, "train-images-idx3-ubyte"),
        other => panic!("{other:?}"),
    }
    for (name, dims) in [
        ("train-images-idx3-ubyte", vec![1u32, 2, 2]),
        ("train-labels-idx1-ubyte", vec![1]),
    ] {
        std::fs::write(
            m.join(name),
            idx_bytes(&dims, &vec![0u8; dims.iter().product::<u32>() as usize]),
        )
        .unwrap();
    }
    expect_corrupt(
        data::verify(DatasetName::Mnist, dir.path()),
        "train-images-idx3-ubyte",
        "SHA-256",
    );
    // Labels out of range and mismatched counts are caught too.
    std::fs::write(m.join("t10k-labels-idx1-ubyte"), idx_bytes(&[2], &[1, 12])).unwrap();
    expect_corrupt(
        data::load(DatasetName::Mnist, Split::Test, dir.path()),
        "t10k-labels-idx1-ubyte",
        "label 1 is 12",
    );
    std::fs::write(
        m.join("t10k-labels-idx1-ubyte"),
        idx_bytes(&[3], &[1, 2, 3]),
    )
    .unwrap();
    expect_corrupt(
        data::load(DatasetName::Mnist, Split::Test, dir.path()),
        "t10k-labels-idx1-ubyte",
        "3 labels for 2 images",
    );
}

#[test]
fn data_root_prefers_the_flag_then_the_environment() {
    assert_eq!(data::data_root(Some(Path::new("/x/y"))), Path::new("/x/y"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ncpc"))
        .args(["data", "path"])
        .env("NCPC_DATA", "/from/env")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "/from/env");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ncpc"))
        .args(["data", "path"])
        .env_remove("NCPC_DATA")
        .env("XDG_CACHE_HOME", "/cache")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "/cache/ncpc/data"
    );
}

#[test]
fn synthetic_blobs_are_deterministic() {
    let a = synthetic::blobs(7, 100, 16, 3);
    assert_eq!(a, synthetic::blobs(7, 100, 16, 3));
    assert_ne!(a, synthetic::blobs(8, 100, 16, 3));
    assert!(a.labels.iter().all(|l| *l < 3) && a.images.len() == 1600);
}
