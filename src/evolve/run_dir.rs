//! A search's output directory (`ncpc evolve --out DIR`, `--resume DIR`): the checkpoint
//! written after every generation, the effective protocol and configuration, and at the end
//! the results (`result.json`, `report.html`, `best.json`). Every file is written to a
//! temporary name and renamed, so a reader (or a resumed run after a crash) never sees half a
//! file.

use super::engine::Checkpoint;
use crate::train::protocol::Protocol;
use anyhow::Context;
use std::path::{Path, PathBuf};

/// The checkpoint file.
pub const CHECKPOINT: &str = "checkpoint.json";
/// The effective protocol, saved beside the results.
pub const PROTOCOL: &str = "protocol.json";

/// An output directory.
#[derive(Clone, Debug)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// The directory at `path`, created if missing.
    pub fn create(path: &Path) -> anyhow::Result<RunDir> {
        std::fs::create_dir_all(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(RunDir {
            path: path.to_path_buf(),
        })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read_json<T: serde::de::DeserializeOwned>(&self, name: &str) -> anyhow::Result<T> {
        let path = self.path.join(name);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read {} (is this an `ncpc evolve --out` directory?)",
                path.display()
            )
        })?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid checkpoint", path.display()))
    }

    /// The saved checkpoint.
    pub fn read_checkpoint(&self) -> anyhow::Result<Checkpoint> {
        self.read_json(CHECKPOINT)
    }

    /// The saved protocol.
    pub fn read_protocol(&self) -> anyhow::Result<Protocol> {
        self.read_json(PROTOCOL)
    }

    /// Write `text` as file `name`, atomically.
    pub fn write_text(&self, name: &str, text: &str) -> anyhow::Result<()> {
        let path = self.path.join(name);
        let tmp = self.path.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))
    }

    /// Write `v` as pretty JSON file `name`, atomically.
    pub fn write_json(&self, name: &str, v: &impl serde::Serialize) -> anyhow::Result<()> {
        self.write_text(name, &serde_json::to_string_pretty(v)?)
    }

    /// Save the checkpoint.
    pub fn save_checkpoint(&self, cp: &Checkpoint) -> anyhow::Result<()> {
        self.write_json(CHECKPOINT, cp)
    }

    /// Save the effective protocol.
    pub fn save_protocol(&self, p: &Protocol) -> anyhow::Result<()> {
        self.write_json(PROTOCOL, p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_written_whole_and_read_back() {
        let tmp = tempfile::tempdir().unwrap();
        let d = RunDir::create(&tmp.path().join("run")).unwrap();
        d.write_text("a.txt", "hello").unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join("a.txt")).unwrap(),
            "hello"
        );
        assert!(!d.path().join(".a.txt.tmp").exists());
        let err = d.read_checkpoint().unwrap_err().to_string();
        assert!(
            err.contains("is this an `ncpc evolve --out` directory?"),
            "{err}"
        );
        d.write_text(CHECKPOINT, "{").unwrap();
        let err = d.read_checkpoint().unwrap_err().to_string();
        assert!(err.contains("not a valid checkpoint"), "{err}");
    }
}
