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

/// A minimal HTTP/1.1 server on loopback serving `files` (path -> body) for `requests`
/// requests, 404 for anything else. Returns its base URL.
fn serve(files: Vec<(String, Vec<u8>)>, requests: usize) -> String {
    use std::io::{BufRead, BufReader};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).map_or(true, |n| n == 0) || h == "\r\n" {
                    break;
                }
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let (status, body) = match files.iter().find(|(p, _)| *p == path) {
                Some((_, b)) => ("200 OK", b.clone()),
                None => ("404 Not Found", b"no such file".to_vec()),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    format!("http://{addr}")
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn sha(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn fetch_downloads_checks_and_lays_out_a_dataset() {
    let names = [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ];
    let raws: Vec<Vec<u8>> = vec![
        idx_bytes(&[3, 2, 2], &[7; 12]),
        idx_bytes(&[3], &[0, 1, 2]),
        idx_bytes(&[1, 2, 2], &[9; 4]),
        idx_bytes(&[1], &[5]),
    ];
    let files: Vec<(String, Vec<u8>)> = names
        .iter()
        .zip(&raws)
        .map(|(n, r)| (format!("/mnist/{n}.gz"), gz(r)))
        .collect();
    let sums: Vec<(String, String)> = names
        .iter()
        .zip(&raws)
        .map(|(n, r)| (n.to_string(), sha(r)))
        .collect();
    let table: Vec<(&str, &str, &str)> = sums
        .iter()
        .map(|(n, s)| ("mnist", n.as_str(), s.as_str()))
        .collect();

    let base = serve(files.clone(), 4);
    let root = tempfile::tempdir().unwrap();
    let written = data::fetch::fetch(
        DatasetName::Mnist,
        root.path(),
        Some(&format!("{base}/mnist")),
        &table,
    )
    .unwrap();
    assert_eq!(written.len(), 4);
    let d = data::load(DatasetName::Mnist, Split::Train, root.path()).unwrap();
    assert_eq!((d.len(), d.labels.clone()), (3, vec![0, 1, 2]));

    // A file whose digest does not match: an error naming the URL, nothing written.
    let mut bad = files.clone();
    bad[1].1 = gz(&idx_bytes(&[3], &[0, 1, 3]));
    let base = serve(bad, 2);
    let root = tempfile::tempdir().unwrap();
    let err = data::fetch::fetch(
        DatasetName::Mnist,
        root.path(),
        Some(&format!("{base}/mnist")),
        &table,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("train-labels-idx1-ubyte.gz") && err.contains("SHA-256"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(root.path().join("mnist"))
            .unwrap()
            .count(),
        0,
        "nothing half-written"
    );

    // A missing file and an unreachable server are clear errors too.
    let base = serve(vec![], 1);
    let err = data::fetch::fetch(DatasetName::Mnist, root.path(), Some(&base), &table)
        .unwrap_err()
        .to_string();
    assert!(err.contains("404"), "{err}");
    let err = data::fetch::fetch(
        DatasetName::Mnist,
        root.path(),
        Some("http://127.0.0.1:9"),
        &table,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("http://127.0.0.1:9/train-images-idx3-ubyte.gz"),
        "{err}"
    );
}

#[test]
fn fetch_unpacks_cifar10_batches() {
    let mut tar = tar::Builder::new(Vec::new());
    let mut record = vec![4u8];
    record.extend(vec![1u8; 3072]);
    for name in [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
        "test_batch.bin",
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(record.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, format!("cifar-10-batches-bin/{name}"), &record[..])
            .unwrap();
    }
    let archive = gz(&tar.into_inner().unwrap());
    let base = serve(vec![("/cifar-10-binary.tar.gz".into(), archive)], 1);
    let root = tempfile::tempdir().unwrap();
    assert_eq!(
        data::fetch::fetch(DatasetName::Cifar10, root.path(), Some(&base), &[])
            .unwrap()
            .len(),
        6
    );
    let d = data::load(DatasetName::Cifar10, Split::Train, root.path()).unwrap();
    assert_eq!((d.len(), d.labels[0]), (5, 4));
}
