//! The round state: every score a validator has computed, one JSON line each, appended as
//! soon as the score is known. A stopped round (Ctrl-C, `--stop-after`, a crash) continues
//! from it without training finished submissions again; so does the next round, for
//! submissions already scored under the same settings.
//!
//! A line holds the scoring digest (protocols, data, engine), the genome digest, the score
//! and the failure. Lines that do not parse (a line cut short by a crash) are ignored and
//! counted.

use super::scorer::Scored;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The state file's name in the round's output directory.
pub const STATE_FILE: &str = "round-state.jsonl";

/// Errors of the round state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or appending failed.
    #[error("round state {path}: {source}")]
    Io {
        /// The state file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Line {
    scoring: String,
    genome: String,
    score: f64,
    failure: Option<String>,
}

/// The scores known to a round, and the file they are appended to.
#[derive(Debug)]
pub struct RoundState {
    path: PathBuf,
    known: HashMap<(String, String), Scored>,
    file: Mutex<std::fs::File>,
    ignored: usize,
}

impl RoundState {
    /// Open (or create) the state file in `dir`, creating `dir` if needed.
    pub fn open(dir: &Path) -> Result<RoundState, StateError> {
        let path = dir.join(STATE_FILE);
        let io = |source| StateError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut known = HashMap::new();
        let mut ignored = 0;
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    match serde_json::from_str::<Line>(line) {
                        Ok(l) if l.score.is_finite() => {
                            known.insert(
                                (l.scoring, l.genome),
                                Scored {
                                    score: l.score,
                                    failure: l.failure,
                                },
                            );
                        }
                        _ => ignored += 1,
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        // A line cut short by a crash must not swallow the next one.
        if std::fs::read(&path)
            .map_err(io)?
            .last()
            .is_some_and(|b| *b != b'\n')
        {
            file.write_all(b"\n").map_err(io)?;
        }
        Ok(RoundState {
            path,
            known,
            file: Mutex::new(file),
            ignored,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Lines that did not parse.
    pub fn ignored(&self) -> usize {
        self.ignored
    }

    /// The score of `genome` under `scoring`, if known.
    pub fn get(&self, scoring: &str, genome: &str) -> Option<&Scored> {
        self.known.get(&(scoring.to_string(), genome.to_string()))
    }

    /// Append a score (one write of one line, flushed to the disk).
    pub fn record(&self, scoring: &str, genome: &str, s: &Scored) -> Result<(), StateError> {
        let line = Line {
            scoring: scoring.into(),
            genome: genome.into(),
            score: s.score,
            failure: s.failure.clone(),
        };
        let mut text = serde_json::to_string(&line).unwrap_or_default();
        text.push('\n');
        let io = |source| StateError::Io {
            path: self.path.clone(),
            source,
        };
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_data().map_err(io)
    }
}
