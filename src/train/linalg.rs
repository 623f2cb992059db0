//! The few dense kernels the trainer needs, written so that the compiler vectorizes them
//! while their summation order stays fixed: results depend only on the inputs, never on the
//! machine's thread count.

/// Lanes of the partial sums in [`dot`]: eight independent accumulators let the loop
/// vectorize without reassociating a single running sum.
const LANES: usize = 8;

/// `sum(a[i] * b[i])` with a fixed summation order (eight strided partial sums combined
/// pairwise, then the tail in order).
#[inline]
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
#[inline]
pub fn axpy(y: &mut [f32], alpha: f32, x: &[f32]) {
    debug_assert_eq!(x.len(), y.len());
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += alpha * xi;
    }
}

/// A dense layer's forward pass: `out[r][o] = bias[o] + dot(x[r], w[o])` for `n` rows, with
/// `w` stored `[out][in]` as PyTorch's `nn.Linear` stores it.
pub fn linear_forward(x: &[f32], w: &[f32], bias: &[f32], n: usize, out: &mut Vec<f32>) {
    let outs = bias.len();
    let ins = w.len() / outs;
    out.clear();
    out.resize(n * outs, 0.0);
    for (xr, yr) in x.chunks_exact(ins).zip(out.chunks_exact_mut(outs)).take(n) {
        for ((y, wr), b) in yr.iter_mut().zip(w.chunks_exact(ins)).zip(bias) {
            *y = b + dot(xr, wr);
        }
    }
}

/// A dense layer's backward pass. Given the layer input `x` (`n x in`) and the gradient of
/// its output `dy` (`n x out`), adds the weight and bias gradients to `dw` and `db`, and
/// writes the input gradient to `dx` when asked (the first layer does not need it). Rows are
/// summed in order.
pub fn linear_backward(
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    n: usize,
    dw: &mut [f32],
    db: &mut [f32],
    dx: Option<&mut Vec<f32>>,
) {
    let outs = db.len();
    let ins = w.len() / outs;
    for (o, (dwr, dbo)) in dw.chunks_exact_mut(ins).zip(db.iter_mut()).enumerate() {
        for (r, xr) in x.chunks_exact(ins).take(n).enumerate() {
            let g = dy[r * outs + o];
            if g != 0.0 {
                axpy(dwr, g, xr);
            }
            *dbo += g;
        }
    }
    if let Some(dx) = dx {
        dx.clear();
        dx.resize(n * ins, 0.0);
        for (dxr, dyr) in dx.chunks_exact_mut(ins).zip(dy.chunks_exact(outs)) {
            for (g, wr) in dyr.iter().zip(w.chunks_exact(ins)) {
                if *g != 0.0 {
                    axpy(dxr, *g, wr);
                }
            }
        }
    }
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
        // y = W x + b with W = [[1, 2], [3, 4]], x = [1, 1]: dy = [1, 0] gives dW row 0 = x,
        // db = [1, 0], dx = W row 0.
        let (w, b, x) = (vec![1.0, 2.0, 3.0, 4.0], vec![0.5, -0.5], vec![1.0, 1.0]);
        let mut y = Vec::new();
        linear_forward(&x, &w, &b, 1, &mut y);
        assert_eq!(y, vec![3.5, 6.5]);
        let (mut dw, mut db, mut dx) = (vec![0.0; 4], vec![0.0; 2], Vec::new());
        linear_backward(&x, &w, &[1.0, 0.0], 1, &mut dw, &mut db, Some(&mut dx));
        assert_eq!(dw, vec![1.0, 1.0, 0.0, 0.0]);
        assert_eq!(db, vec![1.0, 0.0]);
        assert_eq!(dx, vec![1.0, 2.0]);
    }

    #[test]
    fn argmax_takes_the_first_of_ties_and_the_first_nan() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1);
        assert_eq!(argmax(&[0.0, f32::NAN, 5.0, f32::NAN]), 1);
    }
}
