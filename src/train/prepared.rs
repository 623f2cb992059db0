//! A protocol ready to score genomes (its data loaded, its engine chosen), as evolution,
//! mining and the validator call it: whole protocols, their hurdle stages, and batches.

use super::protocol::Protocol;
use super::run::{Engine, EvalOptions, Genome, evaluate, score_runs, train_jobs};
use super::seed_run::SeedRun;
use super::task::TaskData;
use crate::formats::CompileOptions;
use crate::loss::compile_for_inputs;

/// A protocol ready to score genomes: its settings, its data loaded, the engine chosen.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The protocol.
    pub protocol: Protocol,
    /// Its data.
    pub data: TaskData,
    /// Substitutions made while loading (e.g. MNIST for a missing CIFAR-10).
    pub notes: Vec<String>,
    /// Engine options.
    pub opts: EvalOptions,
}

impl Prepared {
    /// Load the protocol's data from `root` (or the embedded subset). When the protocol's
    /// dataset is its default CIFAR-10 (`daml-mlp`) and CIFAR-10 is absent, MNIST stands in,
    /// with a note; a dataset the user named must be there.
    pub fn load(
        mut protocol: Protocol,
        root: &std::path::Path,
        dataset_named: bool,
        opts: EvalOptions,
    ) -> Result<Prepared, super::data::DataError> {
        use super::data::{DataError, DatasetName};
        let mut notes = Vec::new();
        let data = match TaskData::for_protocol(&protocol, root, &mut notes) {
            Ok(d) => d,
            Err(DataError::Missing { .. })
                if protocol.dataset == DatasetName::Cifar10 && !dataset_named =>
            {
                notes.push(format!(
                    "CIFAR-10 is not under {} (it cannot be fetched here); using MNIST",
                    root.display()
                ));
                protocol.dataset = DatasetName::Mnist;
                TaskData::for_protocol(&protocol, root, &mut notes)?
            }
            Err(e) => return Err(e),
        };
        Ok(Prepared {
            protocol,
            data,
            notes,
            opts,
        })
    }

    /// The protocol's fitness of an AMM-or-other genome text, without baselines;
    /// `-inf` for a genome that does not compile or fails.
    pub fn score(&self, text: &str) -> f64 {
        self.score_seeds(text, 0, self.protocol.seeds)
    }

    /// The score under `count` of the protocol's seeds starting at its `skip`-th.
    fn score_seeds(&self, text: &str, skip: usize, count: usize) -> f64 {
        let g = Genome {
            name: "candidate".into(),
            text: text.into(),
            opts: CompileOptions::default(),
        };
        let mut p = self.protocol.clone();
        p.baselines = false;
        p.seed += skip as u64;
        p.seeds = count.max(1);
        match evaluate(&g, &p, &self.data, self.opts, Vec::new(), &|| {}) {
            Ok(r) if !r.score.is_nan() => r.score,
            _ => f64::NEG_INFINITY,
        }
    }

    /// The scores of a batch of genomes and stages (see [`Prepared::score_stage`]), in order.
    /// On a burn device the whole batch trains as one population (every candidate and seed
    /// in lockstep); otherwise candidates run in parallel. Protocols scored against a
    /// baseline go one candidate at a time.
    pub fn score_batch(&self, items: &[(&str, super::stage::Stage)]) -> Vec<f64> {
        use super::stage::Stage;
        use rayon::prelude::*;
        if self.opts.burn.is_none() {
            return items
                .par_iter()
                .map(|(t, st)| self.score_stage(t, *st))
                .collect();
        }
        if self.protocol.score_needs_baseline() {
            // One population per candidate (with its baselines), one after another on the device.
            return items
                .iter()
                .map(|(t, st)| self.score_stage(t, *st))
                .collect();
        }
        let n = self.protocol.seeds.max(1);
        let c = self.data.classes;
        let batch = self.protocol.batch.min(self.data.train_y.len()).max(1);
        // Which seeds each item trains: (first seed offset, count).
        let spans: Vec<(usize, usize)> = items
            .iter()
            .map(|(_, st)| match st {
                Stage::First => (0, 1),
                Stage::Rest { .. } if n > 1 => (1, n - 1),
                _ => (0, n),
            })
            .collect();
        let funcs: Vec<Option<ncp_ir::Function>> = items
            .par_iter()
            .map(|(t, _)| compile_for_inputs(t, &CompileOptions::default(), batch, c, true).ok())
            .collect();
        let mut compiled = Vec::new();
        let mut jobs = Vec::new();
        let mut owner = Vec::new();
        for (i, f) in funcs.into_iter().enumerate() {
            let Some(f) = f else { continue };
            compiled.push(f);
            for j in 0..spans[i].1 {
                jobs.push((
                    compiled.len() - 1,
                    self.protocol.seed + (spans[i].0 + j) as u64,
                ));
                owner.push(i);
            }
        }
        let mut p = self.protocol.clone();
        p.baselines = false;
        let Ok(results) = train_jobs(&compiled, &jobs, &self.data, &p, self.opts, &|| {}) else {
            return vec![f64::NEG_INFINITY; items.len()];
        };
        let mut runs: Vec<Vec<SeedRun>> = vec![Vec::new(); items.len()];
        let mut engines = vec![Engine::Interp; items.len()];
        for (i, (engine, run)) in owner.into_iter().zip(results) {
            engines[i] = engine;
            runs[i].push(run);
        }
        items
            .iter()
            .zip(runs)
            .zip(engines)
            .map(|(((_, st), rs), engine)| {
                if rs.is_empty() {
                    return f64::NEG_INFINITY;
                }
                let score = score_runs("candidate", engine, rs, &p, None).score;
                let score = match st {
                    Stage::Rest { first } if n > 1 => {
                        if first.is_finite() && score.is_finite() {
                            (first + score * (n - 1) as f64) / n as f64
                        } else {
                            f64::NEG_INFINITY
                        }
                    }
                    _ => score,
                };
                if score.is_nan() {
                    f64::NEG_INFINITY
                } else {
                    score
                }
            })
            .collect()
    }

    /// Whether the protocol's score is a mean over seeds of per-seed scores (so the first seed
    /// is a cheap estimate and the rest complete it): several seeds, and a score that does
    /// not depend on a baseline.
    pub fn splits_by_seed(&self) -> bool {
        self.protocol.seeds > 1 && !self.protocol.score_needs_baseline()
    }

    /// A stage of the score, for the evolution engine's hurdle: the full protocol, its first
    /// seed, or the other seeds combined with the first seed's score into the full score
    /// (the same value [`Prepared::score`] gives, up to the last bits of the mean).
    pub fn score_stage(&self, text: &str, stage: super::stage::Stage) -> f64 {
        use super::stage::Stage;
        let n = self.protocol.seeds.max(1);
        match stage {
            Stage::Full => self.score(text),
            Stage::First => self.score_seeds(text, 0, 1),
            Stage::Rest { .. } if n == 1 => self.score(text),
            Stage::Rest { first } => {
                let rest = self.score_seeds(text, 1, n - 1);
                if first.is_finite() && rest.is_finite() {
                    (first + rest * (n - 1) as f64) / n as f64
                } else {
                    f64::NEG_INFINITY
                }
            }
        }
    }
}
