//! Submissions from an ncpc pool: its miners' functions, read a page at a time from
//! `GET {url}/api/v1/functions?after=ID&limit=N`. Seeds (no evolver) are the pool's own
//! functions, not submissions, and are left out.

use super::submissions::{Order, Skipped, Submission, SubmissionSet};
use crate::formats::Format;
use serde_json::Value as Json;
use std::time::Duration;

/// Functions asked for per page (the pool's cap).
const PAGE: u64 = 500;
/// Pages read at most (a pool that never ends its listing is an error, not a hang).
const MAX_PAGES: usize = 10_000;

/// Errors reading a pool's listing.
#[derive(Debug, thiserror::Error)]
pub enum PoolSourceError {
    /// The request failed or the pool answered with an error status.
    #[error("pool {url}: {msg}")]
    Http {
        /// The URL asked.
        url: String,
        /// What happened.
        msg: String,
    },
    /// The answer is not the listing.
    #[error("pool {url}: the answer is not a function listing: {msg}")]
    Shape {
        /// The URL asked.
        url: String,
        /// What is wrong.
        msg: String,
    },
}

/// Read every miner's function from the pool at `base` (e.g. `http://127.0.0.1:8000`).
/// Functions of another component type than `loss`, or whose program is missing, are listed
/// as skipped.
pub fn read_pool(base: &str) -> Result<SubmissionSet, PoolSourceError> {
    let base = base.trim_end_matches('/');
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| PoolSourceError::Http {
            url: base.into(),
            msg: e.to_string(),
        })?;
    let mut set = SubmissionSet::default();
    let mut after: i64 = 0;
    for _ in 0..MAX_PAGES {
        let url = format!("{base}/api/v1/functions?after={after}&limit={PAGE}");
        let http_err = |msg: String| PoolSourceError::Http {
            url: url.clone(),
            msg,
        };
        let resp = http.get(&url).send().map_err(|e| http_err(e.to_string()))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(http_err(format!("status {status}")));
        }
        let body = resp
            .text()
            .map_err(|e| http_err(format!("reading the answer: {e}")))?;
        let page: Json = serde_json::from_str(&body)
            .map_err(|e| http_err(format!("the answer is not JSON: {e}")))?;
        let shape = |msg: &str| PoolSourceError::Shape {
            url: url.clone(),
            msg: msg.into(),
        };
        let Some(functions) = page.get("functions").and_then(Json::as_array) else {
            return Err(shape("no `functions` list"));
        };
        for f in functions {
            if let Some(entry) = entry(f) {
                match entry {
                    Ok(s) => set.submissions.push(s),
                    Err(s) => set.skipped.push(s),
                }
            }
        }
        match page.get("next_after") {
            None | Some(Json::Null) => {
                set.sort();
                return Ok(set);
            }
            Some(n) => {
                let next = n
                    .as_i64()
                    .ok_or_else(|| shape("`next_after` is not an integer"))?;
                if next <= after {
                    return Err(shape("`next_after` does not advance"));
                }
                after = next;
            }
        }
    }
    Err(PoolSourceError::Shape {
        url: base.into(),
        msg: format!("more than {MAX_PAGES} pages"),
    })
}

/// One listed function as a submission; `None` for a seed (no evolver).
fn entry(f: &Json) -> Option<Result<Submission, Skipped>> {
    let id = f.get("function_id").and_then(Json::as_u64);
    let name = match id {
        Some(id) => format!("pool:{id}"),
        None => format!("pool:{}", f.get("function_id").unwrap_or(&Json::Null)),
    };
    let skip = |reason: &str| {
        Some(Err(Skipped {
            file: name.clone(),
            reason: reason.into(),
        }))
    };
    let hotkey = match f.get("evolver") {
        None | Some(Json::Null) => return None,
        Some(Json::String(h)) if !h.is_empty() => h.clone(),
        Some(_) => return skip("`evolver` is not a hotkey"),
    };
    let Some(id) = id else {
        return skip("`function_id` is not a non-negative integer");
    };
    match f.get("component_type").and_then(Json::as_str) {
        Some("loss") | None => {}
        Some(other) => return skip(&format!("a {other} function, not a loss")),
    }
    let genome = match f.get("function") {
        Some(p @ Json::Array(_)) => p.to_string(),
        Some(Json::String(s)) if !s.trim().is_empty() => s.clone(),
        _ => return skip("`function` is not an AMM program"),
    };
    Some(Ok(Submission {
        id: name,
        hotkey,
        order: Order::PoolId(id),
        genome,
        format: Some(Format::Amm),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_not_submissions_and_odd_entries_are_skipped() {
        let seed = serde_json::json!({"function_id": 1, "evolver": null, "function": [[453,1]]});
        assert!(entry(&seed).is_none());
        let ok = serde_json::json!({"function_id": 2, "evolver": "5H", "component_type": "loss",
            "function": [[453, 1]]});
        let s = entry(&ok).unwrap().unwrap();
        assert_eq!((s.id.as_str(), s.order), ("pool:2", Order::PoolId(2)));
        let opt = serde_json::json!({"function_id": 3, "evolver": "5H",
            "component_type": "optimizer", "function": [[453, 1]]});
        assert!(
            entry(&opt)
                .unwrap()
                .unwrap_err()
                .reason
                .contains("optimizer")
        );
    }
}
