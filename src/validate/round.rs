//! A validator round: signatures, duplicates (earliest wins), scores of the originals
//! (parallel, resumable), each hotkey's best original, and DAML's top-k weights.

use super::ValidateError;
use super::scorer::{Scored, Scorer};
use super::signature::{SignatureMode, Verdict, resolve, signature};
use super::state::RoundState;
use super::submissions::{Order, SubmissionSet};
use super::weights::topk_weights;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The round's settings.
#[derive(Clone, Debug)]
pub struct RoundConfig {
    /// Hotkeys weighted (DAML: 50).
    pub top_k: usize,
    /// Weight of the best over the k-th (DAML: 5).
    pub ratio: f64,
    /// Which keys make a signature.
    pub signature: SignatureMode,
    /// Worker threads (`None`: rayon's default, one per core).
    pub threads: Option<usize>,
    /// Train at most this many originals in this run, then stop (the round continues on
    /// the next run).
    pub stop_after: Option<usize>,
}

/// What happened to one submission.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SubmissionResult {
    /// Its id (file or pool entry).
    pub id: String,
    /// Its hotkey.
    pub hotkey: String,
    /// When it was made.
    pub order: Order,
    /// `original`, `duplicate` or `no-signature`.
    pub status: &'static str,
    /// Its score (0 for duplicates and failures).
    pub score: f64,
    /// The id of the original it copies.
    pub duplicate_of: Option<String>,
    /// Why it scored 0, if it failed.
    pub failure: Option<String>,
}

/// One hotkey's outcome: its best original (or, without one, its earliest submission).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct HotkeyResult {
    /// The hotkey.
    pub hotkey: String,
    /// Its weight (DAML's top-k rule).
    pub weight: f64,
    /// Its score: that of its best original, 0 without one.
    pub score: f64,
    /// The submission that gave the score (its best original, else its earliest).
    pub submission: String,
    /// The hotkey whose earlier submission it copies (when it has no original).
    pub duplicate_of: Option<String>,
    /// Why it scored 0, if it did not score.
    pub failure: Option<String>,
    /// How many submissions it made.
    pub submissions: usize,
}

/// Counts of a round.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RoundStats {
    /// Submissions read.
    pub submissions: usize,
    /// Files or entries skipped.
    pub skipped: usize,
    /// Originals (scored or to be scored).
    pub originals: usize,
    /// Duplicates of an earlier submission.
    pub duplicates: usize,
    /// Submissions whose signature could not be computed.
    pub no_signature: usize,
    /// Originals trained in this run.
    pub trained: usize,
    /// Originals whose score came from the round state.
    pub reused: usize,
}

/// A finished round.
#[derive(Clone, Debug, PartialEq)]
pub struct RoundResult {
    /// Every submission, earliest first.
    pub submissions: Vec<SubmissionResult>,
    /// Every hotkey, in the order DAML's score dictionary would hold them: by its chosen
    /// submission, earliest first (equal scores rank in this order).
    pub hotkeys: Vec<HotkeyResult>,
    /// Counts.
    pub stats: RoundStats,
}

/// How a run of [`run_round`] ended.
#[derive(Clone, Debug, PartialEq)]
pub enum RoundOutcome {
    /// Every original is scored; the weights are known.
    Complete(RoundResult),
    /// Stopped before every original was scored; run again to continue.
    Stopped {
        /// Counts so far.
        stats: RoundStats,
        /// Originals still to train.
        remaining: usize,
    },
}

/// Run a round over `set`: compute signatures, resolve duplicates, score the originals not
/// in `state` (recording each score there as soon as it is known), stop early when `stop`
/// turns true or `config.stop_after` originals have been trained, and weight the hotkeys.
/// `on_scored(done, total)` is called after each original is trained.
///
/// The result depends only on `set`, the scorer's settings and `config` (not on threads,
/// timing or how often the round was stopped).
pub fn run_round(
    set: &SubmissionSet,
    scorer: &Scorer,
    config: &RoundConfig,
    state: &RoundState,
    stop: &AtomicBool,
    on_scored: &(dyn Fn(usize, usize) + Sync),
) -> Result<RoundOutcome, ValidateError> {
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(n) = config.threads {
        builder = builder.num_threads(n);
    }
    let pool = builder
        .build()
        .map_err(|e| ValidateError::Threads(e.to_string()))?;
    pool.install(|| round_in_pool(set, scorer, config, state, stop, on_scored))
}

fn round_in_pool(
    set: &SubmissionSet,
    scorer: &Scorer,
    config: &RoundConfig,
    state: &RoundState,
    stop: &AtomicBool,
    on_scored: &(dyn Fn(usize, usize) + Sync),
) -> Result<RoundOutcome, ValidateError> {
    use rayon::prelude::*;
    let subs = &set.submissions;
    let signatures: Vec<_> = subs
        .par_iter()
        .map(|s| signature(s, config.signature))
        .collect();
    let verdicts = resolve(&signatures);
    let digests: Vec<String> = subs.iter().map(|s| s.genome_digest()).collect();
    let mut stats = RoundStats {
        submissions: subs.len(),
        skipped: set.skipped.len(),
        ..RoundStats::default()
    };
    let mut scores: Vec<Option<Scored>> = vec![None; subs.len()];
    let mut todo = Vec::new();
    for (i, v) in verdicts.iter().enumerate() {
        match v {
            Verdict::Original => {
                stats.originals += 1;
                match state.get(scorer.digest(), &digests[i]) {
                    Some(s) => {
                        stats.reused += 1;
                        scores[i] = Some(s.clone());
                    }
                    None => todo.push(i),
                }
            }
            Verdict::Duplicate(_) => stats.duplicates += 1,
            Verdict::NoSignature(_) => stats.no_signature += 1,
        }
    }
    let started = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let total = todo.len();
    let trained: Vec<(usize, Scored)> = todo
        .par_iter()
        .filter_map(|&i| {
            if stop.load(Ordering::SeqCst) {
                return None;
            }
            if let Some(n) = config.stop_after
                && started.fetch_add(1, Ordering::SeqCst) >= n
            {
                return None;
            }
            let s = scorer.score(&subs[i]);
            let recorded = state.record(scorer.digest(), &digests[i], &s);
            on_scored(done.fetch_add(1, Ordering::SeqCst) + 1, total);
            Some(recorded.map(|()| (i, s)).map_err(ValidateError::from))
        })
        .collect::<Result<_, _>>()?;
    stats.trained = trained.len();
    for (i, s) in trained {
        scores[i] = Some(s);
    }
    if stats.trained < total {
        return Ok(RoundOutcome::Stopped {
            stats,
            remaining: total - stats.trained,
        });
    }
    let submissions: Vec<SubmissionResult> = subs
        .iter()
        .zip(&verdicts)
        .zip(scores)
        .map(|((s, v), scored)| {
            let (status, scored, duplicate_of) = match v {
                Verdict::Original => (
                    "original",
                    scored.unwrap_or_else(|| Scored::failed("not scored")),
                    None,
                ),
                Verdict::Duplicate(o) => (
                    "duplicate",
                    Scored {
                        score: 0.0,
                        failure: None,
                    },
                    Some(subs[*o].id.clone()),
                ),
                Verdict::NoSignature(why) => (
                    "no-signature",
                    Scored::failed(format!("no signature (treated as a duplicate): {why}")),
                    None,
                ),
            };
            SubmissionResult {
                id: s.id.clone(),
                hotkey: s.hotkey.clone(),
                order: s.order,
                status,
                score: scored.score,
                duplicate_of,
                failure: scored.failure,
            }
        })
        .collect();
    let hotkeys = weigh(&submissions, &verdicts, set, config);
    Ok(RoundOutcome::Complete(RoundResult {
        submissions,
        hotkeys,
        stats,
    }))
}

/// Each hotkey's chosen submission (its best original, ties to the earliest; without an
/// original, its earliest submission) and DAML's top-k weights over their scores.
fn weigh(
    results: &[SubmissionResult],
    verdicts: &[Verdict],
    set: &SubmissionSet,
    config: &RoundConfig,
) -> Vec<HotkeyResult> {
    use std::collections::HashMap;
    // Per hotkey: (chosen index, submission count), in the order hotkeys first appear.
    let mut chosen: HashMap<&str, (usize, usize)> = HashMap::new();
    for (i, r) in results.iter().enumerate() {
        let is_original = verdicts[i] == Verdict::Original;
        chosen
            .entry(r.hotkey.as_str())
            .and_modify(|(c, n)| {
                *n += 1;
                let cur_original = verdicts[*c] == Verdict::Original;
                let better = match (is_original, cur_original) {
                    (true, false) => true,
                    (true, true) => r.score > results[*c].score,
                    _ => false,
                };
                if better {
                    *c = i;
                }
            })
            .or_insert((i, 1));
    }
    let mut order: Vec<(usize, usize)> = chosen.into_values().collect();
    order.sort();
    let scores: Vec<(String, f64)> = order
        .iter()
        .map(|(c, _)| (results[*c].hotkey.clone(), results[*c].score))
        .collect();
    let all: Vec<String> = scores.iter().map(|(h, _)| h.clone()).collect();
    let weights: HashMap<String, f64> = topk_weights(&scores, &all, config.top_k, config.ratio)
        .into_iter()
        .collect();
    order
        .into_iter()
        .map(|(c, n)| {
            let r = &results[c];
            let duplicate_of = match verdicts[c] {
                Verdict::Duplicate(o) => Some(set.submissions[o].hotkey.clone()),
                _ => None,
            };
            HotkeyResult {
                hotkey: r.hotkey.clone(),
                weight: weights.get(&r.hotkey).copied().unwrap_or(0.0),
                score: r.score,
                submission: r.id.clone(),
                duplicate_of,
                failure: r.failure.clone(),
                submissions: n,
            }
        })
        .collect()
}
