//! Reading genome files and writing outputs.

use super::CliError;
use anyhow::Context;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Largest genome or inputs file read (bytes).
pub const MAX_FILE: u64 = 16 << 20;

/// Read a file, or stdin for `-`, with a size limit.
pub fn read_source(path: &Path) -> Result<String, CliError> {
    let mut buf = Vec::new();
    if path == Path::new("-") {
        std::io::stdin()
            .take(MAX_FILE + 1)
            .read_to_end(&mut buf)
            .context("reading stdin")?;
    } else {
        let f =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        f.take(MAX_FILE + 1)
            .read_to_end(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
    }
    if buf.len() as u64 > MAX_FILE {
        return Err(
            anyhow::anyhow!("{} is larger than {} MiB", path.display(), MAX_FILE >> 20).into(),
        );
    }
    String::from_utf8(buf).map_err(|e| {
        anyhow::anyhow!(
            "{} is not UTF-8 text (byte {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
        .into()
    })
}

/// A name for the function compiled from `path`.
pub fn stem(path: &Path) -> String {
    if path == Path::new("-") {
        return "stdin".into();
    }
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "loss".into())
}

/// Write to `-o FILE` or stdout.
pub fn write_output(out: Option<&PathBuf>, text: &str) -> Result<(), CliError> {
    match out {
        Some(p) => std::fs::write(p, text)
            .with_context(|| format!("cannot write {}", p.display()))
            .map_err(|e| CliError { code: 1, err: e }),
        None => {
            let mut so = std::io::stdout().lock();
            // A closed pipe (e.g. `| head`) is not an error worth reporting.
            let _ = so.write_all(text.as_bytes());
            Ok(())
        }
    }
}
