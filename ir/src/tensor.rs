//! Run-time tensors of the reference interpreter.
//!
//! Every element is stored as an `f64` that is exactly representable in the tensor's dtype:
//! f32 results are computed in f64 and rounded to f32 once per op, which for `+ - * /` and
//! `sqrt` is the correctly rounded f32 result (f64 has more than twice f32's precision), and
//! for transcendentals is at least as accurate as PyTorch's f32 kernels. i64 values are exact
//! up to 2^53; bool is 0.0 / 1.0.

use crate::types::DType;

/// A dense row-major tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Element type.
    pub dtype: DType,
    /// Concrete shape; empty for a scalar.
    pub shape: Vec<usize>,
    /// Elements, row-major.
    pub data: Vec<f64>,
}

/// Round `v` to what `dtype` can hold.
pub fn round_to(dtype: DType, v: f64) -> f64 {
    match dtype {
        DType::F32 => (v as f32) as f64,
        DType::I64 => {
            if v.is_nan() {
                0.0
            } else {
                (v as i64) as f64
            }
        }
        DType::Bool => (v != 0.0) as u8 as f64,
    }
}

impl Tensor {
    /// A tensor from parts; elements are rounded to `dtype`.
    pub fn new(dtype: DType, shape: Vec<usize>, data: Vec<f64>) -> Tensor {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        let data = data.into_iter().map(|v| round_to(dtype, v)).collect();
        Tensor { dtype, shape, data }
    }
    /// A scalar.
    pub fn scalar(dtype: DType, v: f64) -> Tensor {
        Tensor::new(dtype, Vec::new(), vec![v])
    }
    /// An f32 tensor from f32 rows, e.g. parsed inputs.
    pub fn from_rows(rows: &[Vec<f32>]) -> Option<Tensor> {
        let c = rows.first()?.len();
        if rows.iter().any(|r| r.len() != c) {
            return None;
        }
        let data = rows
            .iter()
            .flat_map(|r| r.iter().map(|x| *x as f64))
            .collect();
        Some(Tensor {
            dtype: DType::F32,
            shape: vec![rows.len(), c],
            data,
        })
    }
    /// A tensor of `shape` filled with `v`.
    pub fn full(dtype: DType, shape: Vec<usize>, v: f64) -> Tensor {
        let n = shape.iter().product();
        Tensor {
            dtype,
            shape,
            data: vec![round_to(dtype, v); n],
        }
    }
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.data.len()
    }
    /// The elements as f32.
    pub fn to_f32(&self) -> Vec<f32> {
        self.data.iter().map(|x| *x as f32).collect()
    }
    /// The rows of a rank-2 tensor as f32 (a scalar or vector is one row).
    pub fn rows_f32(&self) -> Vec<Vec<f32>> {
        match self.shape.as_slice() {
            [_, c] if *c > 0 => self
                .data
                .chunks(*c)
                .map(|r| r.iter().map(|x| *x as f32).collect())
                .collect(),
            _ => vec![self.to_f32()],
        }
    }
}

/// Row-major strides of `shape`.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Broadcast concrete shapes with numpy rules.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = Vec::with_capacity(rank);
    for i in 0..rank {
        let da = if i + a.len() >= rank {
            a[i + a.len() - rank]
        } else {
            1
        };
        let db = if i + b.len() >= rank {
            b[i + b.len() - rank]
        } else {
            1
        };
        out.push(if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return None;
        });
    }
    Some(out)
}

/// Strides for reading a tensor of `shape` as if broadcast to `out` (0 on broadcast dims).
pub fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let st = strides(shape);
    let off = out.len() - shape.len();
    (0..out.len())
        .map(|i| {
            if i < off || shape[i - off] == 1 {
                0
            } else {
                st[i - off]
            }
        })
        .collect()
}
