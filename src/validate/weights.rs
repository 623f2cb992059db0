//! DAML's weights: `constrained_decay` (dml/configs/validator_config.py) and
//! `calculate_topk_scores` (dml/validators.py), reproduced operation for operation so that
//! the same scores give the same weights to the last bits (numpy's `linspace` and pairwise
//! `sum`, Python's compensated float `sum`).

/// numpy's `linspace(start, stop, n)` with its default `endpoint=True`: `i * step + start`,
/// the last element set to `stop` exactly.
fn linspace(start: f64, stop: f64, n: usize) -> Vec<f64> {
    if n == 0 {
        return Vec::new();
    }
    if n == 1 {
        return vec![start];
    }
    let delta = stop - start;
    let div = (n - 1) as f64;
    let step = delta / div;
    let mut y: Vec<f64> = (0..n)
        .map(|i| {
            let i = i as f64;
            // numpy divides first when the step underflows to zero.
            let scaled = if step == 0.0 {
                i / div * delta
            } else {
                i * step
            };
            scaled + start
        })
        .collect();
    y[n - 1] = stop;
    y
}

/// numpy's pairwise summation of a contiguous float64 array (`np.sum`): a plain loop below 8
/// elements, eight accumulators up to 128, halves (at multiples of 8) above.
fn numpy_sum(a: &[f64]) -> f64 {
    const BLOCK: usize = 128;
    let n = a.len();
    if n < 8 {
        let mut res = 0.0;
        for x in a {
            res += x;
        }
        res
    } else if n <= BLOCK {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - n % 8 {
            for (j, acc) in r.iter_mut().enumerate() {
                *acc += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            res += a[i];
            i += 1;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        numpy_sum(&a[..n2]) + numpy_sum(&a[n2..])
    }
}

/// Python's `sum` of floats (3.12 and later: Neumaier's compensated summation, from 0).
fn python_sum(xs: impl IntoIterator<Item = f64>) -> f64 {
    let (mut sum, mut c) = (0.0f64, 0.0f64);
    for x in xs {
        let t = sum + x;
        if sum.abs() >= x.abs() {
            c += (sum - t) + x;
        } else {
            c += (x - t) + sum;
        }
        sum = t;
    }
    if c != 0.0 && c.is_finite() {
        sum + c
    } else {
        sum
    }
}

/// DAML's `constrained_decay(n, ratio)`: `n` weights falling linearly from `ratio` times
/// the smallest to the smallest, normalized to sum to 1. `n` must be at least 1 and `ratio`
/// positive (DAML divides by `n (1 + ratio)`).
pub fn constrained_decay(n: usize, ratio: f64) -> Vec<f64> {
    let smallest = 2.0 / (n as f64 * (1.0 + ratio));
    let largest = smallest * ratio;
    let decay = linspace(largest, smallest, n);
    let total = numpy_sum(&decay);
    decay.iter().map(|d| d / total).collect()
}

/// DAML's `calculate_topk_scores`. `scores` are the miners' scores in the order DAML's score
/// dictionary would hold them (equal scores keep this order: Python's sort is stable);
/// `all_hotkeys` are the hotkeys that must appear in the result. Zero scores are dropped;
/// the others, best first, take the weights of `constrained_decay(top_k, ratio)` by rank
/// (the first `top_k` of them); then every weight is divided by their sum. The result lists
/// `all_hotkeys` in order (0 for those without a weight), then any scored hotkey not among
/// them (as Python's dict gains keys), each once.
pub fn topk_weights(
    scores: &[(String, f64)],
    all_hotkeys: &[String],
    top_k: usize,
    ratio: f64,
) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = Vec::new();
    let mut at = std::collections::HashMap::new();
    for h in all_hotkeys {
        if !at.contains_key(h) {
            at.insert(h.clone(), out.len());
            out.push((h.clone(), 0.0));
        }
    }
    // The last score of a hotkey named twice wins, at its first place (a dict built from
    // the pairs).
    let mut filtered: Vec<(String, f64)> = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for (h, s) in scores {
        match seen.get(h) {
            Some(&k) => filtered[k] = (h.clone(), *s),
            None => {
                seen.insert(h.clone(), filtered.len());
                filtered.push((h.clone(), *s));
            }
        }
    }
    filtered.retain(|(_, s)| *s != 0.0);
    if filtered.is_empty() || top_k == 0 {
        return out;
    }
    // Stable, best first; NaN (never passed by the validator) sorts as equal.
    filtered.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal));
    let ramp = constrained_decay(top_k, ratio);
    for ((h, _), w) in filtered.iter().zip(&ramp) {
        match at.get(h) {
            Some(&k) => out[k].1 = *w,
            None => {
                at.insert(h.clone(), out.len());
                out.push((h.clone(), *w));
            }
        }
    }
    let total = python_sum(out.iter().map(|(_, w)| *w));
    if total > 0.0 {
        for (_, w) in &mut out {
            *w /= total;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linspace_is_numpys() {
        assert_eq!(linspace(5.0, 1.0, 5), vec![5.0, 4.0, 3.0, 2.0, 1.0]);
        assert_eq!(linspace(2.0, 1.0, 1), vec![2.0]);
        assert!(linspace(0.0, 1.0, 0).is_empty());
    }

    #[test]
    fn the_sums_add_up() {
        let xs: Vec<f64> = (1..=300).map(f64::from).collect();
        assert_eq!(numpy_sum(&xs), 45150.0);
        assert_eq!(numpy_sum(&xs[..13]), 91.0);
        assert_eq!(numpy_sum(&xs[..5]), 15.0);
        // Compensation keeps what plain addition loses.
        assert_eq!(python_sum([1e16, 1.0, -1e16]), 1.0);
    }
}
