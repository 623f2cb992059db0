//! AMM's loss-evaluation data, as its `DatasetFactory` builds it for `mnist` (torchvision
//! branch): the first 2000 MNIST training images, `ToTensor` (`x / 255` in float32) then
//! `Normalize((0.1307,), (0.3081,))` (`(x - 0.1307) / 0.3081` in float32), flattened to 784,
//! one-hot targets, then `torch.manual_seed(42)`, `torch.randperm(2000)`: the first 1800
//! indices train, the last 200 validate.

use super::AmmExactError;
use crate::train::data::{Split, embedded_mnist};
use crate::train::torch_rng::TorchGenerator;

/// Features per image.
pub const INPUT: usize = 784;
/// Classes.
pub const CLASSES: usize = 10;
/// Images AMM takes from the start of the training set.
pub const TOTAL: usize = 2000;
/// Of which for training (`val_split` 0.1).
pub const TRAIN: usize = 1800;

/// The split data, in AMM's order.
#[derive(Clone, Debug)]
pub struct AmmData {
    /// Training features, `TRAIN x INPUT`, row-major.
    pub train_x: Vec<f32>,
    /// One-hot training targets, `TRAIN x CLASSES`.
    pub train_y: Vec<f32>,
    /// Validation features, `(TOTAL - TRAIN) x INPUT`.
    pub val_x: Vec<f32>,
    /// One-hot validation targets, `(TOTAL - TRAIN) x CLASSES`.
    pub val_y: Vec<f32>,
    /// Validation labels (the argmax of `val_y`).
    pub val_labels: Vec<usize>,
}

/// One pixel as torchvision's `ToTensor` and `Normalize(0.1307, 0.3081)` leave it.
pub fn normalize(pixel: u8) -> f32 {
    (pixel as f32 / 255.0 - 0.1307f32) / 0.3081f32
}

impl AmmData {
    /// Build it from ncpc's embedded MNIST subset (the first 2000 training images, in the
    /// training set's order, as torchvision's `MNIST(train=True)` reads them).
    pub fn load() -> Result<AmmData, AmmExactError> {
        let d = embedded_mnist(Split::Train).map_err(|e| AmmExactError::Data(e.to_string()))?;
        if d.len() < TOTAL || d.sample_len() != INPUT {
            return Err(AmmExactError::Data(format!(
                "the embedded MNIST subset has {} images of {} values; AMM's data needs {TOTAL} of {INPUT}",
                d.len(),
                d.sample_len()
            )));
        }
        let feats: Vec<f32> = d.images[..TOTAL * INPUT]
            .iter()
            .map(|p| normalize(*p))
            .collect();
        let mut g = TorchGenerator::manual_seed(42);
        let perm = g.randperm(TOTAL);
        let (tr, va) = perm.split_at(TRAIN);
        let gather_x = |idx: &[usize]| -> Vec<f32> {
            idx.iter()
                .flat_map(|i| feats[i * INPUT..(i + 1) * INPUT].iter().copied())
                .collect()
        };
        let onehot = |idx: &[usize]| -> Vec<f32> {
            let mut y = vec![0f32; idx.len() * CLASSES];
            for (r, i) in idx.iter().enumerate() {
                y[r * CLASSES + d.labels[*i] as usize % CLASSES] = 1.0;
            }
            y
        };
        Ok(AmmData {
            train_x: gather_x(tr),
            train_y: onehot(tr),
            val_x: gather_x(va),
            val_y: onehot(va),
            val_labels: va.iter().map(|i| d.labels[*i] as usize % CLASSES).collect(),
        })
    }

    /// Validation images.
    pub fn val_len(&self) -> usize {
        self.val_labels.len()
    }
}
