//! Whole-population loss kernels generated from the IR (the compiler's GPU half): the
//! optimized gradient IR of K candidate losses becomes one kernel that computes every
//! candidate's loss and dL/dy_pred over one batch in one launch ([`emit`]). The source comes
//! in three dialects: CUDA C for NVRTC (`cuda`, with `--features cuda-rt`: cudarc loads the
//! driver and NVRTC at run time), WGSL for wgpu (`wgpu_population`, with `--features wgpu`)
//! and host C for the system compiler ([`host`], which tests the CUDA source without a GPU).
//! What is not built yet is listed in docs/backends.md.

#[cfg(feature = "cuda-rt")]
pub mod cuda;
pub mod emit;
pub mod host;
mod syntax;
#[cfg(feature = "wgpu")]
pub mod wgpu_population;

/// Whether a batch fits a population kernel of `c` classes: `b` rows (1 to 2^32 - 1), both
/// inputs `b x c` values; the error says what was expected.
pub(crate) fn check_batch(
    c: usize,
    y_pred: &[f32],
    y_true: &[f32],
    b: usize,
) -> Result<(), String> {
    if b == 0 || y_pred.len() != b * c || y_true.len() != b * c || b > u32::MAX as usize {
        return Err(format!(
            "y_pred and y_true must both hold {b} x {c} values (they hold {} and {})",
            y_pred.len(),
            y_true.len()
        ));
    }
    Ok(())
}
