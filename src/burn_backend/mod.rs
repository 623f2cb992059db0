//! The burn backends: candidate losses lowered from the IR to burn tensor graphs
//! ([`lower`]) and networks trained on a burn device with burn-autodiff, a whole population
//! of candidates per pass ([`population`]).
//!
//! Built with the `burn-cpu` feature (burn's pure-Rust `flex` backend) and, for GPUs, `wgpu`
//! (burn's wgpu backend with its fusion); `cuda` is declared but not built here. The device is
//! chosen in one place, [`device`].

pub mod lower;
pub mod population;

use crate::train::run::BurnDevice;
use burn::tensor::{Device, Tensor, TensorData};

/// Why a burn device could not be had.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The binary was built without the feature the device needs.
    #[error("--backend {name} needs ncpc built with `--features {feature}`")]
    NotBuilt {
        /// The backend asked for.
        name: &'static str,
        /// The cargo feature that provides it.
        feature: &'static str,
    },
    /// The device did not start (no adapter, no driver).
    #[error("the {name} device did not start: {reason}")]
    Unavailable {
        /// The backend asked for.
        name: &'static str,
        /// What went wrong.
        reason: String,
    },
}

/// The burn device for `which`, checked by a round trip of a small tensor (burn panics on a
/// missing adapter; that panic becomes [`DeviceError::Unavailable`]).
pub fn device(which: BurnDevice) -> Result<Device, DeviceError> {
    let dev = match which {
        BurnDevice::Cpu => Device::flex(),
        BurnDevice::Wgpu => wgpu_device()?,
    };
    let probe = dev.clone();
    let round_trip = std::panic::catch_unwind(move || {
        let t = Tensor::<1>::from_data(TensorData::new(vec![1f32, 2.0], [2]), &probe);
        t.sum().into_data().iter::<f32>().next()
    });
    // The panic message was already printed by the hook; say what it means.
    match round_trip {
        Ok(Some(3.0)) => Ok(dev),
        Ok(other) => Err(DeviceError::Unavailable {
            name: which.name(),
            reason: format!("a probe sum gave {other:?}, not 3"),
        }),
        Err(e) => Err(DeviceError::Unavailable {
            name: which.name(),
            reason: panic_text(&e),
        }),
    }
}

#[cfg(feature = "wgpu")]
fn wgpu_device() -> Result<Device, DeviceError> {
    Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice))
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_device() -> Result<Device, DeviceError> {
    Err(DeviceError::NotBuilt {
        name: "wgpu",
        feature: "wgpu",
    })
}

/// The message of a caught panic.
pub(crate) fn panic_text(e: &Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic without a message".into())
}
