//! The evaluation protocol flags shared by `ncpc eval`, `ncpc evolve` and `ncpc mine`.

use super::CliError;
use crate::jit::MathMode;
use crate::loss::Backend;
use crate::train::custom::CustomData;
use crate::train::data::{DatasetName, data_root};
use crate::train::optim::OptimizerKind;
use crate::train::protocol::{Architecture, Metric, Protocol, ProtocolName};
use crate::train::run::{BurnDevice, EvalOptions, LossStep, Prepared};
use clap::Args;
use std::path::PathBuf;

/// Where the candidate loss is computed during training.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EvalBackend {
    /// Cranelift kernels for loss and dL/dy_pred (the interpreter for what the JIT does not
    /// compile), the trainer's own backward pass.
    Jit,
    /// The reference interpreter for the loss (slow; the oracle).
    Interp,
    /// burn's CPU backend (`flex`): the loss lowered to a burn graph, burn-autodiff, the
    /// runs of one evaluation trained as one population (needs the `burn-cpu` feature).
    Cpu,
    /// burn's wgpu backend with fusion, likewise on a GPU (needs the `wgpu` feature).
    Wgpu,
}

/// Protocol flags.
#[derive(Args, Debug, Clone)]
pub struct ProtocolArgs {
    /// The evaluation protocol.
    #[arg(long, value_enum, default_value = "standard")]
    pub protocol: ProtocolName,
    /// The network: the protocol's MLP, or a small CNN (conv 8 - pool - conv 16 - pool -
    /// linear; burn backends only).
    #[arg(long, value_enum)]
    pub model: Option<Architecture>,
    /// Dataset (default: the protocol's; daml-mlp falls back to MNIST without CIFAR-10).
    #[arg(long, value_enum)]
    pub dataset: Option<DatasetName>,
    /// Number of seeds (default: the protocol's).
    #[arg(long)]
    pub seeds: Option<usize>,
    /// Optimizer (default: Adam).
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerKind>,
    /// Learning rate (default 1e-3).
    #[arg(long)]
    pub lr: Option<f32>,
    /// Validation metric (default: accuracy).
    #[arg(long, value_enum)]
    pub metric: Option<Metric>,
    /// Training steps (default: the protocol's).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Batch size (default: the protocol's).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Engine for the loss.
    #[arg(long, value_enum, default_value = "jit")]
    pub backend: EvalBackend,
    /// JIT transcendentals (exact is bit-equal to the interpreter).
    #[arg(long, value_enum, default_value = "exact")]
    pub math: MathMode,
    /// With `--backend wgpu`: the losses' step of population training on the population
    /// kernel (one WGSL dispatch for every member whose loss it lowers), or every loss as
    /// its own burn graph.
    #[arg(long, value_enum, default_value = "kernel")]
    pub loss_step: LossStep,
    /// Data root (default: $NCPC_DATA, else the user's cache dir).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Your own data: a folder of IDX files (train-… and t10k-… or test-…, raw or gzip),
    /// classes inferred from the labels.
    #[arg(long, conflicts_with_all = ["dataset", "csv"])]
    pub idx_dir: Option<PathBuf>,
    /// Your own data: a CSV with a header row, numeric features and a label column (last by
    /// default), split 80/20; classes inferred.
    #[arg(long, conflicts_with = "dataset")]
    pub csv: Option<PathBuf>,
    /// The CSV's label column.
    #[arg(long, requires = "csv")]
    pub label_column: Option<String>,
}

fn positive<T: PartialOrd + Default + Copy + std::fmt::Display>(
    v: Option<T>,
    flag: &str,
) -> Result<Option<T>, CliError> {
    match v {
        Some(x) if x.partial_cmp(&T::default()) != Some(std::cmp::Ordering::Greater) => {
            Err(anyhow::anyhow!("{flag} must be greater than 0, not {x}").into())
        }
        _ => Ok(v),
    }
}

impl ProtocolArgs {
    /// The protocol with the flags applied (`adjust` applies the caller's own flags), and
    /// its data loaded.
    pub fn resolve(&self, adjust: impl FnOnce(&mut Protocol)) -> Result<Prepared, CliError> {
        self.resolve_from(None, adjust)
    }

    /// Like [`ProtocolArgs::resolve`], starting from `base` instead of the `--protocol`
    /// preset (a config file's protocol); the other flags still apply on top.
    pub fn resolve_from(
        &self,
        base: Option<Protocol>,
        adjust: impl FnOnce(&mut Protocol),
    ) -> Result<Prepared, CliError> {
        let (p, opts, root) = self.settings(base, adjust)?;
        if p.name == ProtocolName::Daml {
            return Err(anyhow::anyhow!(
                "the daml protocol combines several training runs into one score; only `ncpc eval` runs it (use daml-mlp for its MLP run)"
            )
            .into());
        }
        let custom = match (&self.idx_dir, &self.csv) {
            (Some(dir), _) => Some(CustomData::IdxDir(dir.clone())),
            (_, Some(path)) => Some(CustomData::Csv {
                path: path.clone(),
                label: self.label_column.clone(),
            }),
            _ => None,
        };
        if let Some(c) = custom {
            let data = crate::train::custom::load(&c)?;
            return Ok(Prepared {
                protocol: p,
                notes: vec![format!(
                    "your own data: {}; the protocol's split is not used",
                    data.source
                )],
                data,
                opts,
            });
        }
        Ok(Prepared::load(p, &root, self.dataset.is_some(), opts)?)
    }

    /// The runs of the `daml` composite: daml-mlp on each dataset present (only the one
    /// named by --dataset, when given), with the MLP and, on a burn backend, the small CNN
    /// (only the --model network, when given). MNIST is always present (the embedded
    /// subset stands in for the full set). Notes say what was left out.
    pub fn composite_runs(
        &self,
        adjust: impl FnOnce(&mut Protocol),
    ) -> Result<(Vec<Prepared>, Vec<String>), CliError> {
        use crate::train::data::{DataError, DatasetName};
        if self.idx_dir.is_some() || self.csv.is_some() {
            return Err(anyhow::anyhow!(
                "the daml composite runs on the standard datasets, not --idx-dir or --csv"
            )
            .into());
        }
        let (base, opts, root) = self.settings(None, adjust)?;
        let datasets = match self.dataset {
            Some(d) => vec![d],
            None => vec![
                DatasetName::Cifar10,
                DatasetName::FashionMnist,
                DatasetName::Mnist,
            ],
        };
        let architectures = match (self.model, opts.burn) {
            (Some(m), _) => vec![m],
            (None, Some(_)) => vec![Architecture::Mlp, Architecture::Cnn],
            (None, None) => vec![Architecture::Mlp],
        };
        let mut notes = Vec::new();
        if opts.burn.is_none() && self.model.is_none() {
            notes.push("the small CNN runs only on the burn backends (--backend cpu|wgpu)".into());
        }
        let mut runs = Vec::new();
        for p in crate::train::composite::plan(&base, &datasets, &architectures) {
            // Loaded as named, so that a missing set is an error (not MNIST standing in);
            // a set the user did not name is then left out.
            match Prepared::load(p.clone(), &root, true, opts) {
                Ok(r) => runs.push(r),
                Err(DataError::Missing { .. }) if self.dataset.is_none() => {
                    let note = format!(
                        "{} is not under {}: left out",
                        p.dataset.dir(),
                        root.display()
                    );
                    if !notes.contains(&note) {
                        notes.push(note);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok((runs, notes))
    }

    /// The protocol with the flags applied, the engine options and the data root.
    fn settings(
        &self,
        base: Option<Protocol>,
        adjust: impl FnOnce(&mut Protocol),
    ) -> Result<(Protocol, EvalOptions, PathBuf), CliError> {
        let (backend, burn) = match self.backend {
            EvalBackend::Jit => (Backend::Jit, None),
            EvalBackend::Interp => (Backend::Interp, None),
            EvalBackend::Cpu => (Backend::Jit, Some(BurnDevice::Cpu)),
            EvalBackend::Wgpu => (Backend::Jit, Some(BurnDevice::Wgpu)),
        };
        if let Some(dev) = burn {
            crate::train::run::check_burn_device(dev)?;
        }
        let mut p = base.unwrap_or_else(|| Protocol::preset(self.protocol));
        if let Some(d) = self.dataset {
            p.dataset = d;
        }
        if let Some(n) = positive(self.seeds, "--seeds")? {
            p.seeds = n;
        }
        if let Some(m) = self.model {
            p.architecture = m;
        }
        if let Some(o) = self.optimizer {
            p.optimizer = o;
        }
        if let Some(lr) = positive(self.lr, "--lr")? {
            if !lr.is_finite() {
                return Err(anyhow::anyhow!("--lr must be finite").into());
            }
            p.lr = lr;
        }
        if let Some(m) = self.metric {
            p.metric = m;
        }
        if let Some(s) = positive(self.steps, "--steps")? {
            p.steps = Some(s);
            p.hurdles.retain(|h| h.step < s);
        }
        if let Some(b) = positive(self.batch, "--batch")? {
            p.batch = b;
        }
        adjust(&mut p);
        if p.architecture == Architecture::Cnn && burn.is_none() {
            return Err(anyhow::anyhow!(crate::train::run::CNN_NEEDS_BURN).into());
        }
        let root = data_root(self.data_dir.as_deref());
        let opts = EvalOptions {
            backend,
            math: self.math,
            burn,
            loss_step: self.loss_step,
        };
        Ok((p, opts, root))
    }
}
