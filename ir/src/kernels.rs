//! Tensor kernels of the reference interpreter. Each computes in f64 and rounds the result to
//! the result dtype once (see [`crate::tensor`]).

use crate::op::Axis;
use crate::tensor::{Tensor, broadcast_shapes, broadcast_strides, round_to, strides};
use crate::types::DType;

/// Which value a slice reduction keeps.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ReduceKind {
    /// Sum.
    Sum,
    /// Arithmetic mean.
    Mean,
    /// Maximum (NaN wins).
    Max,
    /// Minimum (NaN wins).
    Min,
    /// Unbiased standard deviation (n - 1 degrees of freedom; NaN for one element).
    Std,
}

fn offsets(shape_out: &[usize], bst: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n: usize = shape_out.iter().product();
    let ost = strides(shape_out);
    let mut out = vec![Vec::with_capacity(n); bst.len()];
    for lin in 0..n {
        let mut rem = lin;
        let mut offs = vec![0usize; bst.len()];
        for d in 0..shape_out.len() {
            let c = rem / ost[d];
            rem %= ost[d];
            for (k, s) in bst.iter().enumerate() {
                offs[k] += c * s[d];
            }
        }
        for (k, o) in offs.into_iter().enumerate() {
            out[k].push(o);
        }
    }
    out
}

/// Apply an elementwise kernel to broadcast operands.
pub fn elementwise(
    kernel: fn(&[f64]) -> f64,
    args: &[&Tensor],
    out_dtype: DType,
) -> Result<Tensor, String> {
    let mut shape: Vec<usize> = Vec::new();
    for a in args {
        shape = broadcast_shapes(&shape, &a.shape).ok_or_else(|| {
            format!(
                "shapes {:?} do not broadcast",
                args.iter().map(|a| a.shape.clone()).collect::<Vec<_>>()
            )
        })?;
    }
    let bst: Vec<Vec<usize>> = args
        .iter()
        .map(|a| broadcast_strides(&a.shape, &shape))
        .collect();
    let offs = offsets(&shape, &bst);
    let n: usize = shape.iter().product();
    let mut buf = vec![0.0; args.len()];
    let mut data = Vec::with_capacity(n);
    for i in 0..n {
        for ((slot, a), off) in buf.iter_mut().zip(args).zip(&offs) {
            *slot = a.data[off[i]];
        }
        data.push(round_to(out_dtype, kernel(&buf)));
    }
    Ok(Tensor {
        dtype: out_dtype,
        shape,
        data,
    })
}

/// Split `shape` around `axis` into (outer, len, inner) extents.
fn split(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    let outer = shape[..axis].iter().product();
    let inner = shape[axis + 1..].iter().product();
    (outer, shape[axis], inner)
}

/// The smallest f64 that rounds to infinity as an f32 (f32::MAX plus half an ulp).
pub const F32_OVERFLOW: f64 = 3.402_823_567_797_336_6e38;

/// Sequential summation in f64; a total beyond f32's range becomes ±inf, as PyTorch's f32
/// accumulation overflows. (A partial sum that overflows and then cancels back into range
/// stays finite here, where f32 accumulation would stick at infinity.) The JIT sums the same
/// way, in the same order, so the two agree bit for bit.
fn sum_f64_overflowing(xs: &[f64]) -> f64 {
    overflow_to_inf(sum_from_zero(xs))
}

/// A sequential sum starting from +0.0 (so a sum of negative zeros is +0, as in PyTorch and
/// the JIT; Rust's `Sum` starts from -0.0).
fn sum_from_zero(xs: &[f64]) -> f64 {
    xs.iter().fold(0.0, |a, x| a + x)
}

/// ±inf for an f64 whose magnitude rounds to infinity as an f32.
pub fn overflow_to_inf(acc: f64) -> f64 {
    if acc.abs() >= F32_OVERFLOW {
        f64::INFINITY.copysign(acc)
    } else {
        acc
    }
}

fn reduce_slice(kind: ReduceKind, xs: &[f64], f32_acc: bool) -> (f64, usize) {
    match kind {
        ReduceKind::Sum if f32_acc => (sum_f64_overflowing(xs), 0),
        ReduceKind::Mean if f32_acc => (overflow_to_inf(sum_from_zero(xs)) / xs.len() as f64, 0),
        ReduceKind::Sum => (sum_from_zero(xs), 0),
        ReduceKind::Mean => (sum_from_zero(xs) / xs.len() as f64, 0),
        ReduceKind::Std => {
            let n = xs.len() as f64;
            let m = sum_from_zero(xs) / n;
            let ss: f64 = xs.iter().fold(0.0, |a, x| a + (x - m) * (x - m));
            ((ss / (n - 1.0)).sqrt(), 0)
        }
        ReduceKind::Max | ReduceKind::Min => {
            let mut best = xs[0];
            let mut at = 0;
            for (i, &x) in xs.iter().enumerate() {
                if best.is_nan() {
                    break;
                }
                let better = x.is_nan()
                    || if kind == ReduceKind::Max {
                        x > best
                    } else {
                        x < best
                    };
                if better {
                    best = x;
                    at = i;
                }
            }
            (best, at)
        }
    }
}

/// Gather the slices of `x` along `axis` (all elements for [`Axis::All`]).
fn slices(x: &Tensor, axis: Axis) -> (Vec<usize>, Vec<Vec<usize>>) {
    match axis {
        Axis::All => (Vec::new(), vec![(0..x.numel()).collect()]),
        Axis::Index(a) => {
            let a = a as usize;
            let (outer, len, inner) = split(&x.shape, a);
            let mut out_shape = x.shape.clone();
            out_shape.remove(a);
            let mut idx = Vec::with_capacity(outer * inner);
            for o in 0..outer {
                for i in 0..inner {
                    idx.push((0..len).map(|k| (o * len + k) * inner + i).collect());
                }
            }
            (out_shape, idx)
        }
    }
}

/// A reduction.
pub fn reduce(kind: ReduceKind, x: &Tensor, axis: Axis, out_dtype: DType) -> Tensor {
    let (shape, groups) = slices(x, axis);
    let data = groups
        .iter()
        .map(|g| {
            let xs: Vec<f64> = g.iter().map(|i| x.data[*i]).collect();
            round_to(
                out_dtype,
                reduce_slice(kind, &xs, out_dtype == DType::F32).0,
            )
        })
        .collect();
    Tensor {
        dtype: out_dtype,
        shape,
        data,
    }
}

/// Bool mask of the elements a max/min reduction selects: per slice the first extremum (the
/// index torch's `max(dim)` returns) for an axis, every extremum (ties share) for all.
pub fn extremum_mask(x: &Tensor, axis: Axis, max: bool) -> Tensor {
    let kind = if max {
        ReduceKind::Max
    } else {
        ReduceKind::Min
    };
    let (_, groups) = slices(x, axis);
    let mut data = vec![0.0; x.numel()];
    for g in groups {
        let xs: Vec<f64> = g.iter().map(|i| x.data[*i]).collect();
        let (best, at) = reduce_slice(kind, &xs, false);
        match axis {
            Axis::Index(_) => data[g[at]] = 1.0,
            Axis::All => {
                for (k, &i) in g.iter().enumerate() {
                    let hit = if best.is_nan() {
                        xs[k].is_nan()
                    } else {
                        xs[k] == best
                    };
                    if hit {
                        data[i] = 1.0;
                    }
                }
            }
        }
    }
    Tensor {
        dtype: DType::Bool,
        shape: x.shape.clone(),
        data,
    }
}

/// Whether any element is non-zero (NaN counts as non-zero).
pub fn any_nonzero(x: &Tensor) -> Tensor {
    Tensor::scalar(DType::Bool, x.data.iter().any(|v| *v != 0.0) as u8 as f64)
}

/// `torch.matmul` for operands of rank 1 or 2.
pub fn matmul(a: &Tensor, b: &Tensor, out_dtype: DType) -> Result<Tensor, String> {
    let (m, k, a_vec) = match a.shape.as_slice() {
        [m, k] => (*m, *k, false),
        [k] => (1, *k, true),
        _ => return Err("matmul needs rank 1 or 2".into()),
    };
    let (k2, n, b_vec) = match b.shape.as_slice() {
        [k2, n] => (*k2, *n, false),
        [k2] => (*k2, 1, true),
        _ => return Err("matmul needs rank 1 or 2".into()),
    };
    if k != k2 {
        return Err(format!(
            "matmul shapes {:?} and {:?} do not fit",
            a.shape, b.shape
        ));
    }
    let mut data = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0;
            for t in 0..k {
                s += a.data[i * k + t] * b.data[t * n + j];
            }
            data[i * n + j] = round_to(out_dtype, s);
        }
    }
    let shape = match (a_vec, b_vec) {
        (false, false) => vec![m, n],
        (false, true) => vec![m],
        (true, false) => vec![n],
        (true, true) => vec![],
    };
    Ok(Tensor {
        dtype: out_dtype,
        shape,
        data,
    })
}

/// Swap the two axes of a rank-2 tensor.
pub fn transpose(x: &Tensor) -> Tensor {
    let (r, c) = (x.shape[0], x.shape[1]);
    let mut data = vec![0.0; r * c];
    for i in 0..r {
        for j in 0..c {
            data[j * r + i] = x.data[i * c + j];
        }
    }
    Tensor {
        dtype: x.dtype,
        shape: vec![c, r],
        data,
    }
}

/// Softmax over the last axis.
pub fn softmax(x: &Tensor) -> Tensor {
    let c = *x.shape.last().unwrap_or(&1);
    let mut data = Vec::with_capacity(x.numel());
    for row in x.data.chunks(c.max(1)) {
        let m = row.iter().fold(f64::NEG_INFINITY, |a, &b| {
            if b.is_nan() || a.is_nan() {
                f64::NAN
            } else {
                a.max(b)
            }
        });
        let e: Vec<f64> = row.iter().map(|v| crate::math::exp64(v - m)).collect();
        let s: f64 = e.iter().sum();
        data.extend(e.iter().map(|v| round_to(x.dtype, v / s)));
    }
    Tensor {
        dtype: x.dtype,
        shape: x.shape.clone(),
        data,
    }
}

/// Re-insert a reduced `axis` and broadcast `x` to `like_shape`.
pub fn expand(x: &Tensor, axis: Axis, like_shape: &[usize]) -> Tensor {
    let n: usize = like_shape.iter().product();
    let data = match axis {
        Axis::All => vec![x.data[0]; n],
        Axis::Index(a) => {
            let (outer, len, inner) = split(like_shape, a as usize);
            let mut d = Vec::with_capacity(n);
            for o in 0..outer {
                for _ in 0..len {
                    for i in 0..inner {
                        d.push(x.data[o * inner + i]);
                    }
                }
            }
            d
        }
    };
    Tensor {
        dtype: x.dtype,
        shape: like_shape.to_vec(),
        data,
    }
}

/// Broadcast `x` to `shape` (numpy rules).
pub fn broadcast_to(x: &Tensor, shape: &[usize]) -> Tensor {
    let bst = broadcast_strides(&x.shape, shape);
    let offs = offsets(shape, &[bst]);
    Tensor {
        dtype: x.dtype,
        shape: shape.to_vec(),
        data: offs[0].iter().map(|o| x.data[*o]).collect(),
    }
}

/// Sum `x` over the dims along which `shape` was broadcast to `x`'s shape.
pub fn sum_to(x: &Tensor, shape: &[usize]) -> Tensor {
    let bst = broadcast_strides(shape, &x.shape);
    let offs = offsets(&x.shape, &[bst]);
    let n: usize = shape.iter().product();
    let mut data = vec![0.0; n];
    for (i, o) in offs[0].iter().enumerate() {
        data[*o] += x.data[i];
    }
    let data = data.into_iter().map(|v| round_to(x.dtype, v)).collect();
    Tensor {
        dtype: x.dtype,
        shape: shape.to_vec(),
        data,
    }
}

/// Number of elements a reduction over `axis` combines.
pub fn count(x: &Tensor, axis: Axis) -> Tensor {
    let n = match axis {
        Axis::All => x.numel(),
        Axis::Index(a) => x.shape[a as usize],
    };
    Tensor::scalar(DType::F32, n as f64)
}
