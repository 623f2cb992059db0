//! A population kernel built as host C: the emitted source (`Dialect::HostC`) compiled by the
//! system's C compiler (`$CC`, else `cc`) into a shared library and loaded. This is how the
//! code the CUDA backend compiles is tested where there is no GPU, and a CPU reference for it.

use super::emit::{LossFinish, Population};
use super::{Inputs, PopulationRunner};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a host build or run failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The C compiler could not be run or rejected the source.
    #[error("the C compiler ({cc}) {what}")]
    Compiler {
        /// The command.
        cc: String,
        /// What happened (its diagnostics).
        what: String,
    },
    /// The built library could not be loaded.
    #[error("loading {path}: {what}")]
    Load {
        /// The library.
        path: String,
        /// The loader's message.
        what: String,
    },
    /// The inputs do not fit.
    #[error("inputs: {0}")]
    Inputs(String),
}

type PopulationFn = unsafe extern "C" fn(*const f32, *const f32, *mut f32, *mut f64, i64, i64);

/// A built population kernel.
pub struct HostKernel {
    lib: libloading::Library,
    dir: PathBuf,
    finish: Vec<LossFinish>,
    c: usize,
}

static BUILDS: AtomicU64 = AtomicU64::new(0);

/// Compile `pop` (emitted with `Dialect::HostC`) and load it.
pub fn build(pop: &Population) -> Result<HostKernel, HostError> {
    let n = BUILDS.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("ncpc-pop-{}-{n}", std::process::id()));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let err = |what: String| HostError::Compiler {
        cc: cc.clone(),
        what,
    };
    std::fs::create_dir_all(&dir).map_err(|e| err(format!("has no build folder: {e}")))?;
    let src = dir.join("population.c");
    let lib = dir.join("population.so");
    std::fs::write(&src, &pop.source).map_err(|e| err(format!("has no source file: {e}")))?;
    // No contraction into fused multiply-adds: each operation rounds as the IR says.
    let out = std::process::Command::new(&cc)
        .args([
            "-O2",
            "-std=c99",
            "-ffp-contract=off",
            "-fPIC",
            "-shared",
            "-o",
        ])
        .arg(&lib)
        .arg(&src)
        .arg("-lm")
        .output()
        .map_err(|e| err(format!("could not be run: {e}")))?;
    if !out.status.success() {
        return Err(err(format!(
            "rejected the source: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    // SAFETY: a library we just built from our own source; its only symbol is a plain C
    // function and it has no initializers.
    let l = unsafe { libloading::Library::new(&lib) }.map_err(|e| HostError::Load {
        path: lib.display().to_string(),
        what: e.to_string(),
    })?;
    Ok(HostKernel {
        lib: l,
        dir,
        finish: pop.finish.clone(),
        c: pop.c,
    })
}

impl Drop for HostKernel {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl PopulationRunner for HostKernel {
    type Error = HostError;

    fn run_on(
        &self,
        inputs: Inputs,
        y_pred: &[f32],
        y_true: &[f32],
        b: usize,
    ) -> Result<Vec<(f32, Vec<f32>)>, Self::Error> {
        let (k, c) = (self.finish.len(), self.c);
        let stride =
            super::check_batch(k, c, inputs, y_pred, y_true, b).map_err(HostError::Inputs)?;
        let mut grads = vec![0f32; k * b * c];
        let mut shares = vec![0f64; k * b];
        // SAFETY: the symbol has the signature `emit::population` writes; the buffers have
        // the sizes the kernel indexes (k * b * c gradients, k * b shares, and inputs of
        // (k - 1) * stride + b * c values, which `check_batch` checked).
        unsafe {
            let f: libloading::Symbol<PopulationFn> =
                self.lib
                    .get(b"ncp_population\0")
                    .map_err(|e| HostError::Load {
                        path: self.dir.display().to_string(),
                        what: e.to_string(),
                    })?;
            f(
                y_pred.as_ptr(),
                y_true.as_ptr(),
                grads.as_mut_ptr(),
                shares.as_mut_ptr(),
                b as i64,
                stride as i64,
            );
        }
        Ok((0..k)
            .map(|j| {
                let loss = self.finish[j].loss(&shares[j * b..(j + 1) * b], b, c);
                (loss, grads[j * b * c..(j + 1) * b * c].to_vec())
            })
            .collect())
    }
}
