//! A seeded synthetic classification task, for fast unit tests only (never for scores).

use super::Dataset;
use rand::{Rng, SeedableRng};

/// `n` samples of `d` byte features in `k` classes: each class has a random centre, samples
/// are the centre plus uniform noise, clamped to bytes. Deterministic for a seed.
pub fn blobs(seed: u64, n: usize, d: usize, k: usize) -> Dataset {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> = (0..k)
        .map(|_| (0..d).map(|_| rng.random_range(40.0..215.0)).collect())
        .collect();
    let mut images = Vec::with_capacity(n * d);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let c = rng.random_range(0..k);
        labels.push(c as u8);
        for centre in &centres[c] {
            images.push((centre + rng.random_range(-40.0f32..40.0)).clamp(0.0, 255.0) as u8);
        }
    }
    Dataset {
        name: format!("synthetic-{seed}"),
        images,
        labels,
        sample_shape: vec![d],
        classes: k,
    }
}
