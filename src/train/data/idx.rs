//! The IDX format of MNIST and Fashion-MNIST, raw or gzip-compressed.

use super::DataError;
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::Path;

/// Largest decompressed file accepted (the full MNIST training images are 47 MB).
pub const MAX_BYTES: u64 = 512 << 20;

/// An IDX array of unsigned bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Idx {
    /// Dimensions, outermost first (`[n]` for labels, `[n, 28, 28]` for images).
    pub dims: Vec<usize>,
    /// The bytes, row-major.
    pub data: Vec<u8>,
}

/// Decompress if the bytes are gzip (detected by their magic number, not the file name).
pub fn maybe_gunzip(bytes: Vec<u8>, file: &Path) -> Result<Vec<u8>, DataError> {
    if bytes.len() < 2 || bytes[0] != 0x1f || bytes[1] != 0x8b {
        return Ok(bytes);
    }
    let mut out = Vec::new();
    GzDecoder::new(&bytes[..])
        .take(MAX_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| DataError::corrupt(file, format!("gzip: {e}")))?;
    if out.len() as u64 > MAX_BYTES {
        return Err(DataError::corrupt(
            file,
            format!("decompresses to more than {} MiB", MAX_BYTES >> 20),
        ));
    }
    Ok(out)
}

/// Parse IDX bytes (already decompressed); `file` names the source in errors.
pub fn parse(bytes: &[u8], file: &Path) -> Result<Idx, DataError> {
    if bytes.len() < 4 {
        return Err(DataError::corrupt(
            file,
            "shorter than an IDX header".into(),
        ));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(DataError::corrupt(
            file,
            format!(
                "not an IDX file (magic {:02x}{:02x}{:02x}{:02x})",
                bytes[0], bytes[1], bytes[2], bytes[3]
            ),
        ));
    }
    if bytes[2] != 0x08 {
        return Err(DataError::corrupt(
            file,
            format!(
                "IDX element type 0x{:02x} is not supported (only unsigned bytes, 0x08)",
                bytes[2]
            ),
        ));
    }
    let ndim = bytes[3] as usize;
    if ndim == 0 || ndim > 4 {
        return Err(DataError::corrupt(
            file,
            format!("{ndim} dimensions; IDX files here have 1 to 4"),
        ));
    }
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(DataError::corrupt(file, "truncated in the header".into()));
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|k| {
            u32::from_be_bytes(bytes[4 + 4 * k..8 + 4 * k].try_into().expect("four bytes")) as usize
        })
        .collect();
    let count = dims
        .iter()
        .try_fold(1usize, |a, d| a.checked_mul(*d))
        .filter(|n| *n as u64 <= MAX_BYTES);
    let Some(count) = count else {
        return Err(DataError::corrupt(
            file,
            format!("dimensions {dims:?} are too large"),
        ));
    };
    let body = &bytes[header..];
    if body.len() != count {
        return Err(DataError::corrupt(
            file,
            format!(
                "dimensions {dims:?} need {count} bytes of data, the file has {}{}",
                body.len(),
                if body.len() < count {
                    " (truncated)"
                } else {
                    ""
                }
            ),
        ));
    }
    Ok(Idx {
        dims,
        data: body.to_vec(),
    })
}

/// Read an IDX file, raw or gzip.
pub fn read(file: &Path) -> Result<Idx, DataError> {
    let bytes = super::read_limited(file)?;
    let bytes = maybe_gunzip(bytes, file)?;
    parse(&bytes, file)
}
