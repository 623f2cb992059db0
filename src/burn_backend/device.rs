//! The burn device, chosen in one place ([`device`]) and probed once per process.

use super::BurnDevice;
use burn::tensor::{Device, Tensor, TensorData};
use std::sync::{Arc, Mutex};

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

const WGPU_HINT: &str = "\n  (on Linux wgpu needs a Vulkan driver: Mesa's mesa-vulkan-drivers without a GPU; \
     with an NVIDIA GPU in a container, the driver's Vulkan ICD, which comes with the `graphics` \
     driver capability)";

/// The burn device for `which`, checked once per process by a round trip of a small tensor
/// (burn panics on a missing adapter; that panic becomes [`DeviceError::Unavailable`]).
pub fn device(which: BurnDevice) -> Result<Device, DeviceError> {
    static PROBED: Mutex<Vec<(BurnDevice, Result<Device, String>)>> = Mutex::new(Vec::new());
    let mut probed = PROBED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, r)) = probed.iter().find(|(w, _)| *w == which) {
        return r.clone().map_err(|reason| DeviceError::Unavailable {
            name: which.name(),
            reason,
        });
    }
    let result = probe(which);
    let cached = match &result {
        Ok(d) => Ok(d.clone()),
        Err(DeviceError::Unavailable { reason, .. }) => Err(reason.clone()),
        Err(_) => return result, // not built: nothing to cache
    };
    probed.push((which, cached));
    result
}

fn probe(which: BurnDevice) -> Result<Device, DeviceError> {
    let dev = match which {
        BurnDevice::Cpu => Device::flex(),
        BurnDevice::Wgpu => wgpu_device()?,
    };
    let probe = dev.clone();
    // burn reports a missing adapter by panicking on its device thread; the caller then sees
    // only a closed channel. A chained hook records the first panic message during the probe
    // (and still prints it), so the error can say what happened.
    let first_panic: Arc<Mutex<Option<String>>> = Arc::default();
    let seen = first_panic.clone();
    let previous: Arc<dyn Fn(&std::panic::PanicHookInfo<'_>) + Send + Sync> =
        Arc::from(std::panic::take_hook());
    let chained = previous.clone();
    std::panic::set_hook(Box::new(move |info| {
        let mut slot = seen.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert_with(|| panic_text_of(info.payload()));
        drop(slot);
        chained(info);
    }));
    let round_trip = std::panic::catch_unwind(move || {
        let t = Tensor::<1>::from_data(TensorData::new(vec![1f32, 2.0], [2]), &probe);
        t.sum().into_data().iter::<f32>().next()
    });
    let _ = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| previous(info)));
    let first = first_panic.lock().unwrap_or_else(|e| e.into_inner()).take();
    match round_trip {
        Ok(Some(3.0)) => Ok(dev),
        Ok(other) => Err(DeviceError::Unavailable {
            name: which.name(),
            reason: format!("a probe sum gave {other:?}, not 3"),
        }),
        Err(e) => {
            let mut reason = first.unwrap_or_else(|| panic_text_of(e.as_ref()));
            if which == BurnDevice::Wgpu {
                reason.push_str(WGPU_HINT);
            }
            Err(DeviceError::Unavailable {
                name: which.name(),
                reason,
            })
        }
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

/// The message of a panic payload.
pub(crate) fn panic_text_of(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic without a message".into())
}
