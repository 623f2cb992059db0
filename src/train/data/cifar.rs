//! The CIFAR-10 binary format: records of one label byte and 3072 pixel bytes (32x32, the red,
//! green and blue planes in that order).

use super::DataError;
use std::path::Path;

/// Bytes per record.
pub const RECORD: usize = 1 + 3 * 32 * 32;

/// Parse one batch file: (images, labels), images row-major `n x 3072`.
pub fn parse(bytes: &[u8], file: &Path) -> Result<(Vec<u8>, Vec<u8>), DataError> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD) {
        return Err(DataError::corrupt(
            file,
            format!(
                "{} bytes is not a whole number of {RECORD}-byte CIFAR-10 records",
                bytes.len()
            ),
        ));
    }
    let n = bytes.len() / RECORD;
    let mut images = Vec::with_capacity(n * (RECORD - 1));
    let mut labels = Vec::with_capacity(n);
    for (k, rec) in bytes.chunks(RECORD).enumerate() {
        if rec[0] > 9 {
            return Err(DataError::corrupt(
                file,
                format!("record {k} has label {}; CIFAR-10 labels are 0..9", rec[0]),
            ));
        }
        labels.push(rec[0]);
        images.extend_from_slice(&rec[1..]);
    }
    Ok((images, labels))
}
