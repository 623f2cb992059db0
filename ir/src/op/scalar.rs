//! Scalar kernels of the op table over the interpreter's `f64` storage, with PyTorch's
//! semantics (NaN propagation, the sign of remainders, ...).

use crate::types::DType;

pub(super) const F: &[DType] = &[DType::F32];
pub(super) const FI: &[DType] = &[DType::F32, DType::I64];
pub(super) const FIB: &[DType] = &[DType::F32, DType::I64, DType::Bool];

pub(super) fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        x * 0.0 // keeps NaN as NaN and zero as zero
    }
}

pub(super) fn sigmoid(x: f64) -> f64 {
    crate::math::sigmoid64(x)
}

/// torch.remainder: the result takes the sign of the divisor.
pub(super) fn remainder(a: f64, b: f64) -> f64 {
    let m = a % b;
    if m != 0.0 && ((b < 0.0) != (m < 0.0)) {
        m + b
    } else {
        m
    }
}

/// torch.maximum / torch.minimum propagate NaN from either side.
pub(super) fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}
pub(super) fn nan_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}
/// torch.clamp propagates NaN from the clamped value.
pub(super) fn clamp_min(x: f64, lo: f64) -> f64 {
    if x.is_nan() {
        x
    } else if x < lo {
        lo
    } else {
        x
    }
}
pub(super) fn clamp_max(x: f64, hi: f64) -> f64 {
    if x.is_nan() {
        x
    } else if x > hi {
        hi
    } else {
        x
    }
}
pub(super) fn b2f(b: bool) -> f64 {
    b as u8 as f64
}
