//! Miners' submissions: reading a directory of submission files (DAML's miner output with
//! the chain's block number beside it), one file per submission. See docs/validator.md for
//! the layout. A file that cannot be read as a submission is reported and skipped; it never
//! stops the round.

use crate::formats::Format;
use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Largest submission file read, in bytes (DAML's validator refuses genes above 20 KiB:
/// `max_gene_size`).
pub const MAX_FILE_BYTES: u64 = 20 * 1024;

/// Longest hotkey accepted (an SS58 address is 47 or 48 characters).
const MAX_HOTKEY_CHARS: usize = 128;

/// When a submission was made: what decides which of two equal functions is the original.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "value")]
pub enum Order {
    /// The chain block that recorded the submission (DAML's rule).
    Block(u64),
    /// Unix seconds, for submissions without a block.
    Timestamp(u64),
    /// The pool's function id (ids grow in the order the pool stored functions).
    PoolId(u64),
}

impl Order {
    /// The field name the order came from.
    pub fn kind(self) -> &'static str {
        match self {
            Order::Block(_) => "block",
            Order::Timestamp(_) => "timestamp",
            Order::PoolId(_) => "pool id",
        }
    }

    /// The number.
    pub fn value(self) -> u64 {
        match self {
            Order::Block(v) | Order::Timestamp(v) | Order::PoolId(v) => v,
        }
    }
}

/// One miner's submission.
#[derive(Clone, Debug, PartialEq)]
pub struct Submission {
    /// Where it came from: the file's path relative to the submissions directory (with `/`),
    /// or `pool:<function id>`.
    pub id: String,
    /// The miner's hotkey.
    pub hotkey: String,
    /// When it was made.
    pub order: Order,
    /// The genome text (any format ncpc reads).
    pub genome: String,
    /// The genome's format, when the file names it (else detected).
    pub format: Option<Format>,
}

impl Submission {
    /// The key that sorts submissions earliest first: the order, then the hotkey, then the id
    /// (ties on a block are broken by hotkey so that the result depends on nothing else).
    pub fn sort_key(&self) -> (Order, &str, &str) {
        (self.order, &self.hotkey, &self.id)
    }

    /// SHA-256 of the genome's format and text: what the round state keys scores by.
    pub fn genome_digest(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.format.map(|f| f.to_string()).unwrap_or_default());
        h.update([0]);
        h.update(&self.genome);
        hex(&h.finalize())
    }
}

/// A file that was not read as a submission, and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    /// The file (relative to the submissions directory) or pool entry.
    pub file: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The submissions of a round: those read, in a fixed order (earliest first), and those
/// skipped.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SubmissionSet {
    /// The submissions, sorted by [`Submission::sort_key`].
    pub submissions: Vec<Submission>,
    /// What could not be read.
    pub skipped: Vec<Skipped>,
}

impl SubmissionSet {
    /// Sort the submissions earliest first and the skipped entries by name.
    pub fn sort(&mut self) {
        self.submissions
            .sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        self.skipped.sort_by(|a, b| a.file.cmp(&b.file));
    }

    /// SHA-256 over every submission (id, hotkey, order, format, genome) and every skipped
    /// entry: two validators with the same digest had the same inputs.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        for s in &self.submissions {
            for part in [
                s.id.as_str(),
                s.hotkey.as_str(),
                s.order.kind(),
                &s.order.value().to_string(),
                &s.format.map(|f| f.to_string()).unwrap_or_default(),
                &s.genome,
            ] {
                h.update((part.len() as u64).to_le_bytes());
                h.update(part);
            }
        }
        for s in &self.skipped {
            h.update((s.file.len() as u64).to_le_bytes());
            h.update(&s.file);
        }
        hex(&h.finalize())
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Errors reading the submissions directory itself (one file's problems are [`Skipped`]).
#[derive(Debug, thiserror::Error)]
pub enum SubmissionsError {
    /// The directory cannot be listed.
    #[error("submissions directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Read every `*.json` file under `dir` (subdirectories included, hidden entries not) as one
/// submission each. Files that are not submissions are listed in
/// [`SubmissionSet::skipped`] with the reason.
///
/// In a round, submissions are ordered by block when any file has a `block`; a file with only
/// a `timestamp` is then skipped (blocks and seconds cannot be compared).
pub fn read_dir(dir: &Path) -> Result<SubmissionSet, SubmissionsError> {
    let mut files = Vec::new();
    collect(dir, dir, &mut files)?;
    files.sort();
    let mut set = SubmissionSet::default();
    for (rel, path) in files {
        match read_file(&path, &rel) {
            Ok(s) => set.submissions.push(s),
            Err(reason) => set.skipped.push(Skipped { file: rel, reason }),
        }
    }
    if set
        .submissions
        .iter()
        .any(|s| matches!(s.order, Order::Block(_)))
    {
        let (keep, drop): (Vec<_>, Vec<_>) = std::mem::take(&mut set.submissions)
            .into_iter()
            .partition(|s| matches!(s.order, Order::Block(_)));
        set.submissions = keep;
        set.skipped.extend(drop.into_iter().map(|s| {
            Skipped {
                file: s.id,
                reason:
                    "has a `timestamp` but no `block`, and this round orders submissions by block"
                        .into(),
            }
        }));
    }
    set.sort();
    Ok(set)
}

/// The `*.json` files under `dir`, as (relative path with `/`, path).
fn collect(
    root: &Path,
    dir: &Path,
    out: &mut Vec<(String, PathBuf)>,
) -> Result<(), SubmissionsError> {
    let entries = std::fs::read_dir(dir).map_err(|source| SubmissionsError::Dir {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| SubmissionsError::Dir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            collect(root, &path, out)?;
        } else if name.ends_with(".json") {
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            out.push((rel, path));
        }
    }
    Ok(())
}

/// Read one submission file; `Err` is the reason it is skipped.
fn read_file(path: &Path, rel: &str) -> Result<Submission, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!(
            "{} bytes; submissions are at most {MAX_FILE_BYTES} bytes (DAML's max_gene_size)",
            meta.len()
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    parse(&text, rel)
}

/// Parse a submission file's text (see docs/validator.md): a JSON object with `hotkey`,
/// `block` or `timestamp`, and the genome as `expression` (a DAML tree, as DAML's miners
/// write `best_gene.json`) or `genome` (any format: text, an AMM program list or a HAZ
/// object), optionally `format`. DAML's double encoding (the object as a JSON string) is
/// accepted. `Err` names the field that is wrong.
pub fn parse(text: &str, id: &str) -> Result<Submission, String> {
    let mut v: Json = serde_json::from_str(text)
        .map_err(|e| format!("not JSON (line {}, column {}): {e}", e.line(), e.column()))?;
    if let Json::String(inner) = &v {
        v = serde_json::from_str(inner)
            .map_err(|e| format!("a JSON string that is not a JSON object inside: {e}"))?;
    }
    let Json::Object(obj) = &v else {
        return Err("not a JSON object".into());
    };
    let hotkey = match obj.get("hotkey") {
        Some(Json::String(h)) => h.clone(),
        Some(Json::Null) | None => return Err("no `hotkey`".into()),
        Some(_) => return Err("`hotkey` is not a string".into()),
    };
    if hotkey.is_empty()
        || hotkey.chars().count() > MAX_HOTKEY_CHARS
        || hotkey.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(format!(
            "`hotkey` must be 1 to {MAX_HOTKEY_CHARS} characters without spaces or control characters"
        ));
    }
    let number = |field: &str| -> Result<Option<u64>, String> {
        match obj.get(field) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::Number(n)) => n
                .as_u64()
                .map(Some)
                .ok_or_else(|| format!("`{field}` must be a non-negative integer, not {n}")),
            Some(other) => Err(format!(
                "`{field}` must be a non-negative integer, not {other}"
            )),
        }
    };
    let order = match (number("block")?, number("timestamp")?) {
        (Some(b), _) => Order::Block(b),
        (None, Some(t)) => Order::Timestamp(t),
        (None, None) => return Err("neither `block` nor `timestamp`".into()),
    };
    let format = match obj.get("format") {
        None | Some(Json::Null) => None,
        Some(Json::String(f)) => Some(match f.as_str() {
            "amm" => Format::Amm,
            "daml" => Format::Daml,
            "haz" => Format::Haz,
            "ir" => Format::Ir,
            other => {
                return Err(format!(
                    "`format` is {other:?}; it must be amm, daml, haz or ir"
                ));
            }
        }),
        Some(_) => return Err("`format` is not a string".into()),
    };
    let genome = match (obj.get("expression"), obj.get("genome")) {
        (Some(_), Some(_)) => return Err("both `expression` and `genome`; give one".into()),
        (Some(Json::String(e)), None) => e.clone(),
        (Some(_), None) => return Err("`expression` is not a string".into()),
        (None, Some(Json::String(g))) => g.clone(),
        (None, Some(g @ (Json::Array(_) | Json::Object(_)))) => g.to_string(),
        (None, Some(_)) => return Err("`genome` must be text, a list or an object".into()),
        (None, None) => return Err("no genome: neither `expression` nor `genome`".into()),
    };
    let format = match (format, obj.contains_key("expression")) {
        (None, true) => Some(Format::Daml),
        (f, _) => f,
    };
    if genome.trim().is_empty() {
        return Err("the genome is empty".into());
    }
    Ok(Submission {
        id: id.into(),
        hotkey,
        order,
        genome,
        format,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damls_miner_output_with_a_block_is_a_submission() {
        let s = parse(
            r#"{"expression": "safe_sub(x, y)", "hotkey": "5Abc", "block": 7}"#,
            "a.json",
        )
        .unwrap();
        assert_eq!(s.hotkey, "5Abc");
        assert_eq!(s.order, Order::Block(7));
        assert_eq!(s.format, Some(Format::Daml));
        // DAML's double encoding.
        let twice = serde_json::to_string(
            &serde_json::json!({"expression": "x", "hotkey": "h", "timestamp": 3}).to_string(),
        )
        .unwrap();
        assert_eq!(parse(&twice, "b").unwrap().order, Order::Timestamp(3));
        let amm = parse(r#"{"hotkey":"h","block":1,"genome":[[453,1]]}"#, "c").unwrap();
        assert_eq!(amm.genome, "[[453,1]]");
        assert_eq!(amm.format, None);
    }

    #[test]
    fn bad_fields_are_named() {
        for (text, want) in [
            ("{", "not JSON"),
            ("[1]", "not a JSON object"),
            (r#"{"block":1,"genome":"x"}"#, "`hotkey`"),
            (r#"{"hotkey":"h","genome":"x"}"#, "`block`"),
            (r#"{"hotkey":"h","block":-1,"genome":"x"}"#, "`block`"),
            (r#"{"hotkey":"h","block":1}"#, "no genome"),
            (
                r#"{"hotkey":"h","block":1,"genome":"x","format":"py"}"#,
                "`format`",
            ),
            (r#"{"hotkey":"a b","block":1,"genome":"x"}"#, "`hotkey`"),
        ] {
            let e = parse(text, "f").unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
