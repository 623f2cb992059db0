//! The population kernel on an NVIDIA GPU (`--features cuda-rt`): the emitted CUDA C
//! (`Dialect::Cuda`) compiled at run time by NVRTC and launched through the driver API, both
//! loaded at run time by cudarc, so building needs nothing from CUDA. One launch evaluates
//! every candidate on every row: the grid is (rows / 128, candidates).
//!
//! Where libcuda or libnvrtc cannot be loaded, [`check_libraries`] says which names were
//! tried and how to point the loader at them, instead of cudarc's panic.

use super::emit::{LossFinish, Population};
use super::{Inputs, PopulationRunner};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, LaunchConfig, PushKernelArg,
};
use std::sync::Arc;

/// Why the CUDA path failed.
#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    /// A CUDA library is not on the loader's path.
    #[error("{lib} could not be loaded (names tried: {tried}); {HINT}")]
    Missing {
        /// The library.
        lib: &'static str,
        /// The file names tried.
        tried: String,
    },
    /// NVRTC rejected the source.
    #[error("NVRTC: {0}")]
    Compile(String),
    /// The driver failed.
    #[error("CUDA driver: {0}")]
    Driver(String),
    /// The inputs do not fit.
    #[error("inputs: {0}")]
    Inputs(String),
}

const HINT: &str = "put the NVIDIA driver's libcuda and NVRTC on LD_LIBRARY_PATH (NVRTC from the CUDA toolkit, or the pip package nvidia-cuda-nvrtc: its `nvidia/cuda_nvrtc/lib` folder)";

fn driver(e: impl std::fmt::Display) -> CudaError {
    CudaError::Driver(e.to_string())
}

/// Whether libcuda and libnvrtc can be loaded; the error names the files tried.
pub fn check_libraries() -> Result<(), CudaError> {
    // SAFETY: each call loads and drops a shared library by name, running no code of ours.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(CudaError::Missing {
            lib: "libcuda (the NVIDIA driver)",
            tried: cudarc::get_lib_name_candidates("cuda").join(", "),
        });
    }
    // SAFETY: as above.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(CudaError::Missing {
            lib: "libnvrtc (CUDA's run-time compiler)",
            tried: cudarc::get_lib_name_candidates("nvrtc").join(", "),
        });
    }
    Ok(())
}

/// A population kernel loaded on GPU 0.
pub struct CudaPopulation {
    stream: Arc<CudaStream>,
    func: CudaFunction,
    finish: Vec<LossFinish>,
    c: usize,
}

/// Compile `pop` (emitted with `Dialect::Cuda`) with NVRTC and load it on GPU 0.
pub fn build(pop: &Population) -> Result<CudaPopulation, CudaError> {
    check_libraries()?;
    let ptx =
        cudarc::nvrtc::compile_ptx(&pop.source).map_err(|e| CudaError::Compile(e.to_string()))?;
    let ctx = CudaContext::new(0).map_err(driver)?;
    let module = ctx.load_module(ptx).map_err(driver)?;
    let func = module.load_function("ncp_population").map_err(driver)?;
    Ok(CudaPopulation {
        stream: ctx.default_stream(),
        func,
        finish: pop.finish.clone(),
        c: pop.c,
    })
}

/// One batch on the GPU with the population's outputs.
struct Resident {
    yp: CudaSlice<f32>,
    yt: CudaSlice<f32>,
    grads: CudaSlice<f32>,
    shares: CudaSlice<f64>,
    rows: i64,
    stride: i64,
}

impl CudaPopulation {
    /// Copy the batch to the GPU and allocate the outputs.
    fn upload(
        &self,
        inputs: Inputs,
        y_pred: &[f32],
        y_true: &[f32],
        b: usize,
    ) -> Result<Resident, CudaError> {
        let (k, c) = (self.finish.len(), self.c);
        let stride =
            super::check_batch(k, c, inputs, y_pred, y_true, b).map_err(CudaError::Inputs)?;
        let s = &self.stream;
        Ok(Resident {
            yp: s.clone_htod(y_pred).map_err(driver)?,
            yt: s.clone_htod(y_true).map_err(driver)?,
            grads: s.alloc_zeros::<f32>(k * b * c).map_err(driver)?,
            shares: s.alloc_zeros::<f64>(k * b).map_err(driver)?,
            rows: b as i64,
            stride: stride as i64,
        })
    }

    /// One launch over every row and candidate (grid: rows / 128 x candidates).
    fn launch(&self, r: &mut Resident) -> Result<(), CudaError> {
        let threads = 128u32;
        let cfg = LaunchConfig {
            grid_dim: (
                (r.rows as u32).div_ceil(threads),
                self.finish.len() as u32,
                1,
            ),
            block_dim: (threads, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut launch = self.stream.launch_builder(&self.func);
        launch
            .arg(&r.yp)
            .arg(&r.yt)
            .arg(&mut r.grads)
            .arg(&mut r.shares)
            .arg(&r.rows)
            .arg(&r.stride);
        // SAFETY: the kernel's parameters are exactly these (two input arrays of
        // (k - 1) * stride + b * c floats, k * b * c gradients, k * b shares, the row count, the
        // stride), all allocated for this batch by `upload`, and it indexes only within them.
        unsafe { launch.launch(cfg) }.map_err(driver)?;
        Ok(())
    }

    /// Seconds per evaluation of the whole population with the batch already on the GPU (no
    /// transfers): `iters` launches back to back after one to warm up, timed by the host
    /// around a synchronisation.
    pub fn time_resident(
        &self,
        y_pred: &[f32],
        y_true: &[f32],
        b: usize,
        iters: usize,
    ) -> Result<f64, CudaError> {
        let mut r = self.upload(Inputs::Shared, y_pred, y_true, b)?;
        self.launch(&mut r)?;
        self.stream.synchronize().map_err(driver)?;
        let t = std::time::Instant::now();
        for _ in 0..iters.max(1) {
            self.launch(&mut r)?;
        }
        self.stream.synchronize().map_err(driver)?;
        Ok(t.elapsed().as_secs_f64() / iters.max(1) as f64)
    }
}

impl PopulationRunner for CudaPopulation {
    type Error = CudaError;

    fn run_on(
        &self,
        inputs: Inputs,
        y_pred: &[f32],
        y_true: &[f32],
        b: usize,
    ) -> Result<Vec<(f32, Vec<f32>)>, Self::Error> {
        let mut r = self.upload(inputs, y_pred, y_true, b)?;
        self.launch(&mut r)?;
        let (k, c) = (self.finish.len(), self.c);
        let g = self.stream.clone_dtoh(&r.grads).map_err(driver)?;
        let sh = self.stream.clone_dtoh(&r.shares).map_err(driver)?;
        Ok((0..k)
            .map(|j| {
                let loss = self.finish[j].loss(&sh[j * b..(j + 1) * b], b, c);
                (loss, g[j * b * c..(j + 1) * b * c].to_vec())
            })
            .collect())
    }
}
