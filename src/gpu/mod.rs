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

/// What the candidates of one launch read.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Inputs {
    /// One batch for all: y_pred and y_true hold `b x c` values (FEC probes, benchmarks).
    Shared,
    /// A batch per candidate: `k x b x c` values, candidate after candidate (a population in
    /// training, each network with its own predictions and samples).
    PerCandidate,
}

/// A built population kernel on its device (host C, CUDA, wgpu): every candidate's loss and
/// dL/dy_pred (row-major `[b, c]` per candidate, in candidate order).
pub trait PopulationRunner {
    /// What can go wrong on this device.
    type Error: std::error::Error;

    /// Run every candidate on a batch of `b` rows that `inputs` describes.
    fn run_on(
        &self,
        inputs: Inputs,
        y_pred: &[f32],
        y_true: &[f32],
        b: usize,
    ) -> Result<Vec<(f32, Vec<f32>)>, Self::Error>;

    /// Run every candidate on one shared `[b, c]` batch.
    fn run(
        &self,
        y_pred: &[f32],
        y_true: &[f32],
        b: usize,
    ) -> Result<Vec<(f32, Vec<f32>)>, Self::Error> {
        self.run_on(Inputs::Shared, y_pred, y_true, b)
    }

    /// Run every candidate on its own batch (`[k, b, c]` inputs, candidate after candidate).
    fn run_each(
        &self,
        y_pred: &[f32],
        y_true: &[f32],
        b: usize,
    ) -> Result<Vec<(f32, Vec<f32>)>, Self::Error> {
        self.run_on(Inputs::PerCandidate, y_pred, y_true, b)
    }
}

/// Whether a batch fits a population kernel of `k` candidates and `c` classes: `b` rows
/// (1 to 2^32 - 1) and inputs of the size `inputs` says. Returns the values between two
/// candidates' inputs (the kernel's stride); the error says what was expected.
pub(crate) fn check_batch(
    k: usize,
    c: usize,
    inputs: Inputs,
    y_pred: &[f32],
    y_true: &[f32],
    b: usize,
) -> Result<usize, String> {
    let (stride, what) = match inputs {
        Inputs::Shared => (0, format!("{b} x {c}")),
        Inputs::PerCandidate => (b * c, format!("{k} x {b} x {c}")),
    };
    let want = match inputs {
        Inputs::Shared => b * c,
        Inputs::PerCandidate => k * b * c,
    };
    if b == 0 || y_pred.len() != want || y_true.len() != want || b > u32::MAX as usize {
        return Err(format!(
            "y_pred and y_true must both hold {what} values (they hold {} and {})",
            y_pred.len(),
            y_true.len()
        ));
    }
    Ok(stride)
}
