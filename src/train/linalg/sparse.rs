//! Sparse rows (MNIST images are mostly zeros) and the dense-layer kernels over them, with
//! the dense kernels' bits.

use super::*;

/// Rows of a mostly-zero matrix: for each row, its non-zero columns and values, in column
/// order (compressed sparse rows). MNIST images are four-fifths zeros.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SparseRows {
    /// Row `r` is `idx[offsets[r]..offsets[r + 1]]`.
    pub offsets: Vec<usize>,
    /// Column of each entry.
    pub idx: Vec<u32>,
    /// Value of each entry.
    pub val: Vec<f32>,
    /// Columns per row.
    pub cols: usize,
}

impl SparseRows {
    /// The non-zero entries of a dense row-major matrix with `cols` columns.
    pub fn from_dense(x: &[f32], cols: usize) -> SparseRows {
        let mut s = SparseRows {
            offsets: vec![0],
            cols,
            ..SparseRows::default()
        };
        for row in x.chunks_exact(cols.max(1)) {
            for (i, v) in row.iter().enumerate() {
                if *v != 0.0 {
                    s.idx.push(i as u32);
                    s.val.push(*v);
                }
            }
            s.offsets.push(s.idx.len());
        }
        s
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Row `r`: its columns and values.
    pub fn row(&self, r: usize) -> (&[u32], &[f32]) {
        let (a, b) = (self.offsets[r], self.offsets[r + 1]);
        (&self.idx[a..b], &self.val[a..b])
    }

    /// The given rows, in that order, as a new matrix (a training batch).
    pub fn gather(&self, rows: impl IntoIterator<Item = usize>, out: &mut SparseRows) {
        out.offsets.clear();
        out.offsets.push(0);
        out.idx.clear();
        out.val.clear();
        out.cols = self.cols;
        for r in rows {
            let (i, v) = self.row(r);
            out.idx.extend_from_slice(i);
            out.val.extend_from_slice(v);
            out.offsets.push(out.idx.len());
        }
    }
}

#[inline(always)]
fn sparse_forward_body(x: &SparseRows, w: &[f32], base: &[f32], scale: f32, out: &mut [f32]) {
    let outs = base.len();
    for (r, yr) in out.chunks_exact_mut(outs).enumerate().take(x.rows()) {
        let (idx, val) = x.row(r);
        yr.copy_from_slice(base);
        accumulate(
            yr,
            idx.iter().zip(val).map(|(i, v)| (*i as usize, scale * v)),
            w,
        );
    }
}

/// [`linear_forward`] on a sparse input: the same sums (zeros skipped, inputs in column
/// order), so the same bits as the dense pass on the dense matrix.
pub fn sparse_linear_forward(
    x: &SparseRows,
    w: &[f32],
    bias: &[f32],
    affine: Option<Affine>,
    out: &mut Vec<f32>,
) {
    let base = with_shift(w, bias, affine);
    let scale = affine.map_or(1.0, |a| a.scale);
    out.clear();
    out.resize(x.rows() * bias.len(), 0.0);
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        #[target_feature(enable = "avx2")]
        fn avx2(x: &SparseRows, w: &[f32], base: &[f32], scale: f32, out: &mut [f32]) {
            sparse_forward_body(x, w, base, scale, out)
        }
        // SAFETY: the CPU has AVX2 (checked above).
        return unsafe { avx2(x, w, &base, scale, out) };
    }
    sparse_forward_body(x, w, &base, scale, out)
}

#[inline(always)]
fn sparse_backward_body(cols: &SparseRows, dy: &[f32], outs: usize, scale: f32, dw: &mut [f32]) {
    for (i, dwr) in dw.chunks_exact_mut(outs).enumerate() {
        let (rows, val) = cols.row(i);
        accumulate(
            dwr,
            rows.iter().zip(val).map(|(r, v)| (*r as usize, scale * v)),
            dy,
        );
    }
}

/// [`linear_backward`] of a first layer on a sparse input (no input gradient): the same
/// sums in the same order as the dense pass. `scratch` holds the input's columns.
pub fn sparse_linear_backward(
    x: &SparseRows,
    dy: &[f32],
    affine: Option<Affine>,
    dw: &mut [f32],
    db: &mut [f32],
    scratch: &mut SparseRows,
) {
    let outs = db.len();
    // The batch by columns (counting sort; rows stay in order within a column).
    let ins = x.cols;
    scratch.cols = x.rows();
    scratch.offsets.clear();
    scratch.offsets.resize(ins + 1, 0);
    for i in &x.idx {
        scratch.offsets[*i as usize + 1] += 1;
    }
    for k in 0..ins {
        scratch.offsets[k + 1] += scratch.offsets[k];
    }
    scratch.idx.resize(x.idx.len(), 0);
    scratch.val.resize(x.val.len(), 0.0);
    let mut fill = scratch.offsets[..ins].to_vec();
    for r in 0..x.rows() {
        let (idx, val) = x.row(r);
        for (i, v) in idx.iter().zip(val) {
            let at = &mut fill[*i as usize];
            scratch.idx[*at] = r as u32;
            scratch.val[*at] = *v;
            *at += 1;
        }
    }
    let scale = affine.map_or(1.0, |a| a.scale);
    #[cfg(target_arch = "x86_64")]
    let done = if has_avx2() {
        #[target_feature(enable = "avx2")]
        fn avx2(cols: &SparseRows, dy: &[f32], outs: usize, scale: f32, dw: &mut [f32]) {
            sparse_backward_body(cols, dy, outs, scale, dw)
        }
        // SAFETY: the CPU has AVX2 (checked above).
        unsafe { avx2(scratch, dy, outs, scale, dw) };
        true
    } else {
        false
    };
    #[cfg(not(target_arch = "x86_64"))]
    let done = false;
    if !done {
        sparse_backward_body(scratch, dy, outs, scale, dw);
    }
    bias_and_shift(dy, x.rows(), affine, dw, db);
}
