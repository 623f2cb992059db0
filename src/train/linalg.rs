//! The few dense kernels the trainer needs, written so that the compiler vectorizes them
//! while their summation order stays fixed: results depend only on the inputs, never on the
//! machine's thread count.

mod sparse;
pub use sparse::{SparseRows, sparse_linear_backward, sparse_linear_forward};

/// Lanes of the partial sums in [`dot`]: eight independent accumulators let the loop
/// vectorize without reassociating a single running sum.
const LANES: usize = 8;

/// Outputs accumulated together in registers by the layer kernels (four AVX2 registers).
const BLOCK: usize = 32;

/// `row[o] += sum over (k, x) in entries of x * m[k * row.len() + o]`, the entries in order,
/// for every output `o`: outputs are taken [`BLOCK`] at a time and held in registers across
/// all entries. Every kernel of the layers is this, with different rows and entries.
#[inline(always)]
fn accumulate(row: &mut [f32], entries: impl Iterator<Item = (usize, f32)> + Clone, m: &[f32]) {
    if entries.clone().next().is_none() {
        return;
    }
    let outs = row.len();
    let mut o0 = 0;
    while o0 + BLOCK <= outs {
        let mut acc = [0f32; BLOCK];
        acc.copy_from_slice(&row[o0..o0 + BLOCK]);
        for (k, x) in entries.clone() {
            let at = k * outs + o0;
            let mr = &m[at..at + BLOCK];
            for l in 0..BLOCK {
                acc[l] += x * mr[l];
            }
        }
        row[o0..o0 + BLOCK].copy_from_slice(&acc);
        o0 += BLOCK;
    }
    for (o, out) in row.iter_mut().enumerate().skip(o0) {
        let mut a = *out;
        for (k, x) in entries.clone() {
            a += x * m[k * outs + o];
        }
        *out = a;
    }
}

/// `sum(a[i] * b[i])` with a fixed summation order (eight strided partial sums combined
/// pairwise, then the tail in order).
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0f32; LANES];
    let (ac, bc) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ar.iter().zip(br) {
        s += x * y;
    }
    s
}

/// `y += alpha * x`, elementwise.
#[inline(always)]
pub fn axpy(y: &mut [f32], alpha: f32, x: &[f32]) {
    debug_assert_eq!(x.len(), y.len());
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += alpha * xi;
    }
}

/// An affine map applied to a layer's input on the fly: the layer sees `scale * x + shift`.
/// Feeding raw pixels in [0, 1] (mostly exact zeros) with the normalisation as an affine lets
/// the first layer skip the zeros: four fifths of MNIST's pixels.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Affine {
    /// Multiplier.
    pub scale: f32,
    /// Offset.
    pub shift: f32,
}

/// The output every row starts from: the bias, plus `shift * sum_i w[i]` under an affine.
fn with_shift(w: &[f32], bias: &[f32], affine: Option<Affine>) -> Vec<f32> {
    let outs = bias.len();
    let mut base = bias.to_vec();
    if let Some(a) = affine {
        let mut colsum = vec![0f32; outs];
        for wr in w.chunks_exact(outs) {
            for (c, v) in colsum.iter_mut().zip(wr) {
                *c += v;
            }
        }
        for (b, c) in base.iter_mut().zip(&colsum) {
            *b += a.shift * c;
        }
    }
    base
}

/// Adds the bias gradient (`dy` summed over its `n` rows, in order) to `db`, and the
/// affine's shift term (`shift` times that sum, for every input) to `dw`.
fn bias_and_shift(dy: &[f32], n: usize, affine: Option<Affine>, dw: &mut [f32], db: &mut [f32]) {
    let outs = db.len();
    let mut col = vec![0f32; outs];
    for dyr in dy.chunks_exact(outs).take(n) {
        for (c, g) in col.iter_mut().zip(dyr) {
            *c += g;
        }
    }
    for (b, c) in db.iter_mut().zip(&col) {
        *b += c;
    }
    if let Some(a) = affine
        && a.shift != 0.0
    {
        for dwr in dw.chunks_exact_mut(outs) {
            axpy(dwr, a.shift, &col);
        }
    }
}

/// The non-zero `(index, scale * value)` pairs of `items`, in order, written without
/// branches (the zero pattern of images is unpredictable) into `buf`, which must hold one
/// slot per item.
#[inline(always)]
fn compact(
    items: impl Iterator<Item = (usize, f32)>,
    scale: f32,
    buf: &mut [(usize, f32)],
) -> &[(usize, f32)] {
    let mut k = 0;
    for (i, v) in items {
        buf[k] = (i, scale * v);
        k += (v != 0.0) as usize;
    }
    &buf[..k]
}

/// Whether the CPU runs AVX2 (checked once). Only the vector width changes with it: there is
/// no fused multiply-add anywhere (Rust never contracts `a * b + c`), so results are
/// bit-identical with and without it, on every machine.
pub(crate) fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static AVX2: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVX2.get_or_init(|| std::arch::is_x86_feature_detected!("avx2"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A dense layer's forward pass with weights stored `[in][out]`:
/// `out[r] = bias + sum_i x'[r][i] * w[i]` over `n` rows, where `x' = affine(x)`, summed in
/// input order. Zero inputs are skipped (they add nothing); the affine's shift is added as
/// `shift * sum_i w[i]`.
#[inline(always)]
fn forward_body(
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    n: usize,
    affine: Option<Affine>,
    out: &mut Vec<f32>,
) {
    let outs = bias.len();
    let ins = w.len() / outs;
    let base = with_shift(w, bias, affine);
    let scale = affine.map_or(1.0, |a| a.scale);
    out.clear();
    out.resize(n * outs, 0.0);
    let mut buf = vec![(0usize, 0f32); ins];
    for (xr, yr) in x.chunks_exact(ins).zip(out.chunks_exact_mut(outs)).take(n) {
        let nz = compact(xr.iter().copied().enumerate(), scale, &mut buf);
        yr.copy_from_slice(&base);
        accumulate(yr, nz.iter().copied(), w);
    }
}

/// A dense layer's backward pass (weights `[in][out]`). Given the layer input `x` (`n x in`,
/// before the affine) and the gradient of its output `dy` (`n x out`), adds the weight and
/// bias gradients to `dw` and `db` (rows summed in order, then the affine's shift term), and
/// writes the input gradient to `dx` when asked (the first layer does not need it).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn backward_body(
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    n: usize,
    affine: Option<Affine>,
    dw: &mut [f32],
    db: &mut [f32],
    dx: Option<&mut Vec<f32>>,
) {
    let outs = db.len();
    let ins = w.len() / outs;
    let scale = affine.map_or(1.0, |a| a.scale);
    // Per input: its non-zero rows, then blocks of outputs accumulated in registers over
    // them (each weight gradient still sums its rows in order).
    let mut buf = vec![(0usize, 0f32); n];
    for (i, dwr) in dw.chunks_exact_mut(outs).enumerate() {
        let nz = compact((0..n).map(|r| (r, x[r * ins + i])), scale, &mut buf);
        accumulate(dwr, nz.iter().copied(), dy);
    }
    bias_and_shift(dy, n, affine, dw, db);
    if let Some(dx) = dx {
        dx.clear();
        dx.resize(n * ins, 0.0);
        for (dxr, dyr) in dx.chunks_exact_mut(ins).zip(dy.chunks_exact(outs)) {
            for (d, wr) in dxr.iter_mut().zip(w.chunks_exact(outs)) {
                *d = dot(dyr, wr);
            }
        }
    }
}

/// A dense layer's forward pass (see `forward_body`), vectorized with AVX2 where the CPU
/// has it.
pub fn linear_forward(
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    n: usize,
    affine: Option<Affine>,
    out: &mut Vec<f32>,
) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        #[target_feature(enable = "avx2")]
        fn avx2(x: &[f32], w: &[f32], b: &[f32], n: usize, a: Option<Affine>, o: &mut Vec<f32>) {
            forward_body(x, w, b, n, a, o)
        }
        // SAFETY: the CPU has AVX2 (checked above).
        return unsafe { avx2(x, w, bias, n, affine, out) };
    }
    forward_body(x, w, bias, n, affine, out)
}

/// A dense layer's backward pass (see `backward_body`), vectorized with AVX2 where the CPU
/// has it.
#[allow(clippy::too_many_arguments)]
pub fn linear_backward(
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    n: usize,
    affine: Option<Affine>,
    dw: &mut [f32],
    db: &mut [f32],
    dx: Option<&mut Vec<f32>>,
) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        #[target_feature(enable = "avx2")]
        #[allow(clippy::too_many_arguments)]
        fn avx2(
            x: &[f32],
            w: &[f32],
            dy: &[f32],
            n: usize,
            a: Option<Affine>,
            dw: &mut [f32],
            db: &mut [f32],
            dx: Option<&mut Vec<f32>>,
        ) {
            backward_body(x, w, dy, n, a, dw, db, dx)
        }
        // SAFETY: the CPU has AVX2 (checked above).
        return unsafe { avx2(x, w, dy, n, affine, dw, db, dx) };
    }
    backward_body(x, w, dy, n, affine, dw, db, dx)
}

/// Index of the largest value as `torch.max(dim=1)` reports it on CPU: the first one on ties,
/// and the first NaN if there is one (NaN compares greater than everything there).
pub fn argmax(row: &[f32]) -> usize {
    if let Some(i) = row.iter().position(|v| v.is_nan()) {
        return i;
    }
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_a_plain_sum_on_exact_values() {
        let a: Vec<f32> = (0..37).map(|i| i as f32).collect();
        let b: Vec<f32> = (0..37).map(|i| (i % 5) as f32).collect();
        let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert_eq!(dot(&a, &b), plain);
    }

    #[test]
    fn linear_backward_is_the_transpose_of_forward() {
        // y = W x + b with W = [[1, 2], [3, 4]] (stored [in][out]: [[1, 3], [2, 4]]),
        // x = [1, 1]: dy = [1, 0] gives dW row 0 = x, db = [1, 0], dx = W row 0.
        let (w, b, x) = (vec![1.0, 3.0, 2.0, 4.0], vec![0.5, -0.5], vec![1.0, 1.0]);
        let mut y = Vec::new();
        linear_forward(&x, &w, &b, 1, None, &mut y);
        assert_eq!(y, vec![3.5, 6.5]);
        let (mut dw, mut db, mut dx) = (vec![0.0; 4], vec![0.0; 2], Vec::new());
        linear_backward(
            &x,
            &w,
            &[1.0, 0.0],
            1,
            None,
            &mut dw,
            &mut db,
            Some(&mut dx),
        );
        assert_eq!(dw, vec![1.0, 0.0, 1.0, 0.0]);
        assert_eq!(db, vec![1.0, 0.0]);
        assert_eq!(dx, vec![1.0, 2.0]);
    }

    /// Plain sequential sums, the definition the kernels must match bit for bit.
    fn naive(x: &[f32], w: &[f32], b: &[f32], n: usize, dy: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let (outs, ins) = (b.len(), w.len() / b.len());
        let mut y = vec![0f32; n * outs];
        for r in 0..n {
            for o in 0..outs {
                let mut a = b[o];
                for i in 0..ins {
                    if x[r * ins + i] != 0.0 {
                        a += x[r * ins + i] * w[i * outs + o];
                    }
                }
                y[r * outs + o] = a;
            }
        }
        let mut dw = vec![0f32; ins * outs];
        for i in 0..ins {
            for o in 0..outs {
                let mut a = 0f32;
                for r in 0..n {
                    if x[r * ins + i] != 0.0 {
                        a += x[r * ins + i] * dy[r * outs + o];
                    }
                }
                dw[i * outs + o] = a;
            }
        }
        (y, dw)
    }

    #[test]
    fn blocked_kernels_match_plain_sums_bit_for_bit() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let (n, ins, outs) = (7, 50, 70);
        let mut v = |k: usize, zeros: f64| -> Vec<f32> {
            (0..k)
                .map(|_| {
                    if rng.random_bool(zeros) {
                        0.0
                    } else {
                        rng.random_range(-1.0f32..1.0)
                    }
                })
                .collect()
        };
        let (x, w, b, dy) = (
            v(n * ins, 0.6),
            v(ins * outs, 0.0),
            v(outs, 0.0),
            v(n * outs, 0.0),
        );
        let (want_y, want_dw) = naive(&x, &w, &b, n, &dy);
        let mut y = Vec::new();
        linear_forward(&x, &w, &b, n, None, &mut y);
        assert_eq!(y, want_y);
        let (mut dw, mut db) = (vec![0f32; ins * outs], vec![0f32; outs]);
        linear_backward(&x, &w, &dy, n, None, &mut dw, &mut db, None);
        assert_eq!(dw, want_dw);
    }

    #[test]
    fn sparse_kernels_give_the_dense_kernels_bits() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12);
        let (n, ins, outs) = (9, 40, 70);
        let x: Vec<f32> = (0..n * ins)
            .map(|_| {
                if rng.random_bool(0.7) {
                    0.0
                } else {
                    rng.random_range(0.0f32..1.0)
                }
            })
            .collect();
        let w: Vec<f32> = (0..ins * outs)
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect();
        let b: Vec<f32> = (0..outs).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let dy: Vec<f32> = (0..n * outs)
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect();
        let a = Some(Affine {
            scale: 3.2,
            shift: -0.42,
        });
        let sx = SparseRows::from_dense(&x, ins);
        let mut batch = SparseRows::default();
        sx.gather(0..n, &mut batch);
        assert_eq!(batch, sx);
        let (mut y1, mut y2) = (Vec::new(), Vec::new());
        linear_forward(&x, &w, &b, n, a, &mut y1);
        sparse_linear_forward(&sx, &w, &b, a, &mut y2);
        assert_eq!(y1, y2);
        let (mut d1, mut d2) = (vec![0f32; ins * outs], vec![0f32; ins * outs]);
        let (mut b1, mut b2) = (vec![0f32; outs], vec![0f32; outs]);
        linear_backward(&x, &w, &dy, n, a, &mut d1, &mut b1, None);
        sparse_linear_backward(&sx, &dy, a, &mut d2, &mut b2, &mut SparseRows::default());
        assert_eq!((d1, b1), (d2, b2));
    }

    #[test]
    fn an_affine_input_equals_the_transformed_input() {
        let a = Affine {
            scale: 2.0,
            shift: -0.5,
        };
        let x = vec![0.0, 0.25, 1.0, 0.0, 0.5, 0.75];
        let xt: Vec<f32> = x.iter().map(|v| a.scale * v + a.shift).collect();
        let w = vec![0.5, -1.0, 0.25, 2.0, -0.75, 1.5];
        let b = vec![0.125, -0.25];
        let (mut y1, mut y2) = (Vec::new(), Vec::new());
        linear_forward(&x, &w, &b, 2, Some(a), &mut y1);
        linear_forward(&xt, &w, &b, 2, None, &mut y2);
        assert_eq!(y1, y2);
        let dy = vec![1.0, -2.0, 0.5, 0.25];
        let (mut d1, mut d2) = (vec![0.0; 6], vec![0.0; 6]);
        let (mut b1, mut b2) = (vec![0.0; 2], vec![0.0; 2]);
        linear_backward(&x, &w, &dy, 2, Some(a), &mut d1, &mut b1, None);
        linear_backward(&xt, &w, &dy, 2, None, &mut d2, &mut b2, None);
        assert_eq!((d1, b1), (d2, b2));
    }

    #[test]
    fn argmax_takes_the_first_of_ties_and_the_first_nan() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1);
        assert_eq!(argmax(&[0.0, f32::NAN, 5.0, f32::NAN]), 1);
    }
}
