//! Scoring an original: one protocol's score, or DAML's composite over several runs.

use super::signature::options;
use super::submissions::{Submission, hex};
use crate::train::composite::{evaluate_composite, run_label};
use crate::train::run::{Genome, Prepared, evaluate};
use sha2::{Digest, Sha256};

/// A submission's score, or 0 with the reason it failed (DAML scores failures 0).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Scored {
    /// The score (finite; 0 when it failed).
    pub score: f64,
    /// Why it failed, if it did.
    pub failure: Option<String>,
}

impl Scored {
    /// A failure, scored 0.
    pub fn failed(why: impl Into<String>) -> Scored {
        Scored {
            score: 0.0,
            failure: Some(why.into()),
        }
    }

    fn of(score: f64, failure: Option<String>) -> Scored {
        match failure {
            None if score.is_finite() => Scored {
                score,
                failure: None,
            },
            Some(f) => Scored::failed(f),
            None => Scored::failed(format!("the score is {score}")),
        }
    }
}

/// How originals are scored: one protocol with its data, or DAML's composite of several runs
/// (`0.7 mean + 0.3 (1 - std/mean)` of their accuracies).
#[derive(Clone, Debug)]
pub struct Scorer {
    runs: Vec<Prepared>,
    composite: bool,
    digest: String,
}

impl Scorer {
    /// Score with one protocol (its baselines are not trained unless its score needs them).
    pub fn single(run: Prepared) -> Scorer {
        Scorer::new(vec![run], false)
    }

    /// Score with DAML's composite over `runs`.
    pub fn composite(runs: Vec<Prepared>) -> Scorer {
        Scorer::new(runs, true)
    }

    fn new(mut runs: Vec<Prepared>, composite: bool) -> Scorer {
        for r in &mut runs {
            r.protocol.baselines = false;
        }
        let settings: Vec<serde_json::Value> = runs
            .iter()
            .map(|r| {
                serde_json::json!({
                    "protocol": r.protocol,
                    "data": r.data.source,
                    "train": r.data.train_y.len(),
                    "val": r.data.val_y.len(),
                    "dim": r.data.dim,
                    "classes": r.data.classes,
                    "engine": format!("{:?} {:?} {:?}", r.opts.backend, r.opts.math, r.opts.burn),
                })
            })
            .collect();
        let text = serde_json::json!({
            "ncpc": env!("CARGO_PKG_VERSION"),
            "composite": composite,
            "runs": settings,
        })
        .to_string();
        let digest = hex(&Sha256::digest(text.as_bytes()));
        Scorer {
            runs,
            composite,
            digest,
        }
    }

    /// SHA-256 of every setting that decides a score (protocols, data, engine, ncpc's
    /// version): the round state keeps scores under it.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// What the score is, one line per run.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if self.composite {
            lines.push(
                "DAML composite: 0.7 mean(accuracy) + 0.3 (1 - std/mean) over the runs".into(),
            );
        }
        for r in &self.runs {
            let p = &r.protocol;
            let model = p.model(r.data.dim, r.data.classes).describe();
            lines.push(format!(
                "{}: {} / {}, {} steps of {}, {} seed(s) from {}",
                serde_json::to_value(p.name)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
                r.data.source,
                match p.architecture {
                    crate::train::protocol::Architecture::Mlp => model,
                    crate::train::protocol::Architecture::Cnn => "small CNN".into(),
                },
                p.steps_for(r.data.train_y.len()),
                p.batch,
                p.seeds,
                p.seed
            ));
        }
        lines
    }

    /// Notes from loading the data (substitutions), without repeats.
    pub fn notes(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for n in self.runs.iter().flat_map(|r| &r.notes) {
            if !out.contains(n) {
                out.push(n.clone());
            }
        }
        out
    }

    /// Score one submission: train with its genome as the protocol (or every run) says.
    pub fn score(&self, s: &Submission) -> Scored {
        let g = Genome {
            name: "candidate".into(),
            text: s.genome.clone(),
            opts: options(s),
        };
        if self.composite {
            return match evaluate_composite(&g, &self.runs, Vec::new(), &|| {}) {
                Ok(r) => Scored::of(r.score, r.candidate.failure),
                Err(e) => Scored::failed(format!("does not compile: {e}")),
            };
        }
        let Some(r) = self.runs.first() else {
            return Scored::failed("no run to score with");
        };
        match evaluate(&g, &r.protocol, &r.data, r.opts, Vec::new(), &|| {}) {
            Ok(rep) => {
                let label = run_label(&rep);
                let failure = rep.candidate.failure.map(|f| format!("{label}: {f}"));
                Scored::of(rep.score, failure)
            }
            Err(e) => Scored::failed(format!("does not compile: {e}")),
        }
    }
}
