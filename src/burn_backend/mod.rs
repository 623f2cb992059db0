//! The burn backend: candidate losses lowered from the IR to burn tensor graphs ([`lower`])
//! on a burn device ([`device`]). It imports the IR and burn only; training networks on burn
//! (a whole population of candidates per pass) is the trainer's, in `train::burn`.
//!
//! Built with the `burn-cpu` feature (burn's pure-Rust `flex` backend) and, for GPUs, `wgpu`
//! (burn's wgpu backend with its fusion); `cuda` is declared but not built here. Only
//! [`BurnDevice`], the choice itself, exists without the features.

#[cfg(feature = "burn-cpu")]
mod device;
#[cfg(feature = "burn-cpu")]
pub mod lower;

#[cfg(feature = "burn-cpu")]
pub(crate) use device::panic_text_of;
#[cfg(feature = "burn-cpu")]
pub use device::{DeviceError, device};

use serde::Serialize;

/// A burn device to train on (the `burn-cpu` and `wgpu` features).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BurnDevice {
    /// burn's pure-Rust CPU backend (`flex`).
    Cpu,
    /// burn's wgpu backend (Vulkan, Metal, DX12).
    Wgpu,
}

impl BurnDevice {
    /// The `--backend` name.
    pub fn name(self) -> &'static str {
        match self {
            BurnDevice::Cpu => "cpu",
            BurnDevice::Wgpu => "wgpu",
        }
    }
}

/// How population training on a burn device computes the losses and their gradients
/// (`--loss-step`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LossStep {
    /// On wgpu, the members whose loss the population kernel lowers get it from one WGSL
    /// dispatch per step (`gpu::wgpu_population`); the rest, and every member on the CPU
    /// device, keep their burn graphs.
    #[default]
    Kernel,
    /// Every member's loss as its own burn graph (burn-autodiff's gradient).
    Graph,
}
