//! DAML's composite score: one genome trained in several runs (datasets and networks), the
//! accuracies combined as the DAML validator combines them,
//! `0.7 mean(acc) + 0.3 (1 - std(acc) / mean(acc))`, which rewards a loss that works
//! everywhere over one that shines on one task.

use super::protocol::Protocol;
use super::run::{EvalError, Genome, Report, evaluate};
use serde::Serialize;

/// The composite of run accuracies, with torch's unbiased standard deviation as DAML takes
/// it. One run has no spread (DAML's torch call would give NaN; ncpc counts the spread as
/// 0). A failed run (non-finite accuracy) or a mean accuracy of 0 (DAML divides by it) makes
/// the composite `-inf`.
pub fn daml_composite(accuracies: &[f64]) -> f64 {
    if accuracies.is_empty() || accuracies.iter().any(|a| !a.is_finite()) {
        return f64::NEG_INFINITY;
    }
    let n = accuracies.len() as f64;
    let mean = accuracies.iter().sum::<f64>() / n;
    if mean <= 0.0 {
        return f64::NEG_INFINITY;
    }
    let std = if accuracies.len() < 2 {
        0.0
    } else {
        (accuracies.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    };
    0.7 * mean + 0.3 * (1.0 - std / mean)
}

/// One loss's composite: its score and its accuracy in each run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CompositeScore {
    /// The loss's name.
    pub name: String,
    /// The composite (`-Infinity` when a run failed).
    #[serde(with = "crate::numbers::lenient")]
    pub score: f64,
    /// Mean accuracy over the runs.
    #[serde(with = "crate::numbers::lenient")]
    pub accuracy: f64,
    /// Accuracy per run, in the order of [`CompositeReport::runs`].
    #[serde(with = "crate::numbers::lenient_vec")]
    pub run_accuracies: Vec<f64>,
    /// The first failure, naming its run.
    pub failure: Option<String>,
}

/// A composite evaluation: the candidate's composite, the baselines' composites under the
/// same runs, and each run's full report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CompositeReport {
    /// The composite of the candidate.
    #[serde(with = "crate::numbers::lenient")]
    pub score: f64,
    /// The candidate's mean accuracy over the runs.
    #[serde(with = "crate::numbers::lenient")]
    pub accuracy: f64,
    /// The candidate in full.
    pub candidate: CompositeScore,
    /// Baselines (cross-entropy, MSE) under the same runs.
    pub baselines: Vec<CompositeScore>,
    /// Each run's report (its protocol, data, network, candidate and baselines).
    pub runs: Vec<Report>,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Runs left out and substitutions made.
    pub notes: Vec<String>,
}

/// A run of the composite: a protocol with its data loaded.
pub type CompositeRun = super::run::Prepared;

/// What a run is called in reports: its data and network.
pub fn run_label(r: &Report) -> String {
    format!("{} / {}", r.data, r.model)
}

fn combine(name: &str, per_run: &[(f64, Option<String>)], labels: &[String]) -> CompositeScore {
    let run_accuracies: Vec<f64> = per_run
        .iter()
        .map(|(a, f)| if f.is_some() { f64::NAN } else { *a })
        .collect();
    let failure = per_run
        .iter()
        .zip(labels)
        .find_map(|((_, f), l)| f.as_ref().map(|f| format!("{l}: {f}")));
    let accuracy = run_accuracies.iter().sum::<f64>() / run_accuracies.len().max(1) as f64;
    CompositeScore {
        name: name.into(),
        score: daml_composite(&run_accuracies),
        accuracy,
        run_accuracies,
        failure,
    }
}

/// Evaluate `genome` in every run (each with its baselines when its protocol asks) and
/// combine. `on_run` is called after each training run. Fails only when the genome does not
/// compile.
pub fn evaluate_composite(
    genome: &Genome,
    runs: &[CompositeRun],
    notes: Vec<String>,
    on_run: &(dyn Fn() + Sync),
) -> Result<CompositeReport, EvalError> {
    let t0 = std::time::Instant::now();
    let reports: Vec<Report> = runs
        .iter()
        .map(|r| {
            evaluate(
                genome,
                &r.protocol,
                &r.data,
                r.opts,
                r.notes.clone(),
                on_run,
            )
        })
        .collect::<Result<_, _>>()?;
    let labels: Vec<String> = reports.iter().map(run_label).collect();
    let candidate = combine(
        &genome.name,
        &reports
            .iter()
            .map(|r| (r.candidate.accuracy, r.candidate.failure.clone()))
            .collect::<Vec<_>>(),
        &labels,
    );
    let baseline_names: Vec<String> = reports
        .first()
        .map(|r| r.baselines.iter().map(|b| b.name.clone()).collect())
        .unwrap_or_default();
    let baselines = baseline_names
        .iter()
        .map(|name| {
            let per_run: Vec<(f64, Option<String>)> = reports
                .iter()
                .map(|r| match r.baselines.iter().find(|b| &b.name == name) {
                    Some(b) => (b.accuracy, b.failure.clone()),
                    None => (f64::NAN, Some("not trained".into())),
                })
                .collect();
            combine(name, &per_run, &labels)
        })
        .collect();
    Ok(CompositeReport {
        score: candidate.score,
        accuracy: candidate.accuracy,
        candidate,
        baselines,
        runs: reports,
        seconds: t0.elapsed().as_secs_f64(),
        notes,
    })
}

/// The protocols of the composite's runs: `base` on each of `datasets`, with each of
/// `architectures`.
pub fn plan(
    base: &Protocol,
    datasets: &[super::data::DatasetName],
    architectures: &[super::protocol::Architecture],
) -> Vec<Protocol> {
    datasets
        .iter()
        .flat_map(|d| {
            architectures.iter().map(move |a| Protocol {
                dataset: *d,
                architecture: *a,
                ..base.clone()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_composite_is_damls_formula_with_the_unbiased_std() {
        // torch.tensor([0.5, 0.7, 0.9]): mean 0.7, std (unbiased) 0.2.
        let s = daml_composite(&[0.5, 0.7, 0.9]);
        let want = 0.7 * 0.7 + 0.3 * (1.0 - 0.2 / 0.7);
        assert!((s - want).abs() < 1e-12, "{s} vs {want}");
        // Equal accuracies: no spread penalty.
        assert!((daml_composite(&[0.6, 0.6]) - (0.42 + 0.3)).abs() < 1e-12);
        assert!((daml_composite(&[0.6]) - (0.42 + 0.3)).abs() < 1e-12);
        // The spread costs: the same mean with more spread scores lower.
        assert!(daml_composite(&[0.2, 1.0]) < daml_composite(&[0.5, 0.7]));
        for bad in [&[][..], &[0.5, f64::NAN], &[0.0, 0.0]] {
            assert_eq!(daml_composite(bad), f64::NEG_INFINITY, "{bad:?}");
        }
    }

    #[test]
    fn the_plan_crosses_datasets_and_networks() {
        use super::super::data::DatasetName as D;
        use super::super::protocol::{Architecture as A, ProtocolName};
        let base = Protocol::preset(ProtocolName::Daml);
        let runs = plan(&base, &[D::Cifar10, D::Mnist], &[A::Mlp, A::Cnn]);
        let got: Vec<(D, A)> = runs.iter().map(|p| (p.dataset, p.architecture)).collect();
        assert_eq!(
            got,
            [
                (D::Cifar10, A::Mlp),
                (D::Cifar10, A::Cnn),
                (D::Mnist, A::Mlp),
                (D::Mnist, A::Cnn)
            ]
        );
        assert!(runs.iter().all(|p| p.steps == Some(600) && p.batch == 32));
    }
}
