//! Where a round's weights go. On the subnet a validator sets them on chain; here the chain
//! is a trait, [`WeightSink`], with a file sink (`weights.json`) and a dry-run sink. A
//! substrate client can implement it later (docs/validator.md says what it needs).
//!
//! The document ([`WeightsDoc`]) depends only on the round's inputs and settings, never on
//! the machine, the thread count, the time or the output directory: two validators with the
//! same inputs write the same bytes.

use super::round::{HotkeyResult, RoundResult, SubmissionResult};
use super::submissions::Skipped;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The weights file's name.
pub const WEIGHTS_FILE: &str = "weights.json";

/// What the document's `format` field says.
pub const FORMAT: &str = "ncpc-validator-weights/1";

/// The round's settings, as recorded in the document.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RoundInfo {
    /// SHA-256 over every submission and skipped entry (see
    /// [`SubmissionSet::digest`](super::submissions::SubmissionSet::digest)).
    pub inputs_sha256: String,
    /// How originals were scored, one line per run.
    pub scoring: Vec<String>,
    /// Which signature found duplicates.
    pub signature: super::signature::SignatureMode,
    /// Hotkeys weighted.
    pub top_k: usize,
    /// Weight of the best over the k-th.
    pub ratio: f64,
    /// Counts.
    pub submissions: usize,
    /// Originals.
    pub originals: usize,
    /// Duplicates.
    pub duplicates: usize,
    /// Without a signature.
    pub no_signature: usize,
    /// Skipped files.
    pub skipped: usize,
}

/// One hotkey in the document (its weight is also in [`WeightsDoc::weights`]).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct HotkeyEntry {
    /// Its weight.
    pub weight: f64,
    /// Its score.
    pub score: f64,
    /// The submission that gave the score.
    pub submission: String,
    /// The hotkey it copies, when it has no original.
    pub duplicate_of: Option<String>,
    /// Why it scored 0, if it failed.
    pub failure: Option<String>,
    /// Submissions it made.
    pub submissions: usize,
}

impl From<&HotkeyResult> for HotkeyEntry {
    fn from(h: &HotkeyResult) -> Self {
        HotkeyEntry {
            weight: h.weight,
            score: h.score,
            submission: h.submission.clone(),
            duplicate_of: h.duplicate_of.clone(),
            failure: h.failure.clone(),
            submissions: h.submissions,
        }
    }
}

/// The round's weights with everything that explains them (`weights.json`).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct WeightsDoc {
    /// [`FORMAT`].
    pub format: &'static str,
    /// The round's settings and counts.
    pub round: RoundInfo,
    /// Hotkey -> weight (they sum to 1 when any hotkey scored; all 0 otherwise).
    pub weights: BTreeMap<String, f64>,
    /// Hotkey -> score, chosen submission, duplicate-of and failure.
    pub hotkeys: BTreeMap<String, HotkeyEntry>,
    /// Every submission, earliest first.
    pub submissions: Vec<SubmissionResult>,
    /// Files that were not submissions, and why.
    pub skipped: Vec<Skipped>,
}

impl WeightsDoc {
    /// The document of a finished round.
    pub fn new(round: RoundInfo, result: &RoundResult, skipped: &[Skipped]) -> WeightsDoc {
        WeightsDoc {
            format: FORMAT,
            round,
            weights: result
                .hotkeys
                .iter()
                .map(|h| (h.hotkey.clone(), h.weight))
                .collect(),
            hotkeys: result
                .hotkeys
                .iter()
                .map(|h| (h.hotkey.clone(), h.into()))
                .collect(),
            submissions: result.submissions.clone(),
            skipped: skipped.to_vec(),
        }
    }

    /// The document as pretty JSON with a final newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// Errors of a sink.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Writing the weights failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Where weights are set: the chain, a file, nowhere.
pub trait WeightSink {
    /// Set the round's weights; answers a line saying what was done.
    fn set_weights(&mut self, doc: &WeightsDoc) -> Result<String, SinkError>;
}

/// Writes `weights.json` into a directory (atomically: a temporary file renamed over it).
#[derive(Clone, Debug)]
pub struct FileSink {
    dir: PathBuf,
}

impl FileSink {
    /// A sink writing into `dir`.
    pub fn new(dir: &Path) -> FileSink {
        FileSink {
            dir: dir.to_path_buf(),
        }
    }

    /// The file it writes.
    pub fn path(&self) -> PathBuf {
        self.dir.join(WEIGHTS_FILE)
    }
}

impl WeightSink for FileSink {
    fn set_weights(&mut self, doc: &WeightsDoc) -> Result<String, SinkError> {
        let path = self.path();
        let tmp = self.dir.join(format!(".{WEIGHTS_FILE}.tmp"));
        let io = |source| SinkError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(doc.to_json().as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        Ok(format!(
            "wrote {} ({} hotkeys)",
            path.display(),
            doc.weights.len()
        ))
    }
}

/// Sets nothing: keeps the document it would have set (for `--dry-run` and tests).
#[derive(Clone, Debug, Default)]
pub struct DryRunSink {
    /// The last document, as JSON.
    pub last: Option<String>,
}

impl WeightSink for DryRunSink {
    fn set_weights(&mut self, doc: &WeightsDoc) -> Result<String, SinkError> {
        self.last = Some(doc.to_json());
        let nonzero = doc.weights.values().filter(|w| **w > 0.0).count();
        Ok(format!(
            "dry run: {} weights ({nonzero} above 0) not set anywhere",
            doc.weights.len()
        ))
    }
}
