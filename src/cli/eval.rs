//! `ncpc eval`: score a genome by training networks with it under a protocol.

use super::CliError;
use super::compile::FormatArg;
use super::input::{read_source, stem};
use crate::formats::{CompileOptions, Mode};
use crate::jit::MathMode;
use crate::loss::Backend;
use crate::train::data::{DatasetName, data_root};
use crate::train::optim::OptimizerKind;
use crate::train::protocol::{Metric, Protocol, ProtocolName};
use crate::train::run::{EvalOptions, Genome, LossScore, Report, evaluate};
use crate::train::task::TaskData;
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
    /// burn's CPU backend (not built yet).
    Cpu,
    /// burn's wgpu backend (not built yet).
    Wgpu,
}

/// Arguments of `ncpc eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Genome file, or `-` for stdin.
    pub genome: PathBuf,
    /// The protocol.
    #[arg(long, value_enum, default_value = "standard")]
    pub protocol: ProtocolName,
    /// Dataset (default: the protocol's; daml-mlp falls back to MNIST without CIFAR-10).
    #[arg(long, value_enum)]
    pub dataset: Option<DatasetName>,
    /// Number of seeds (default: the protocol's).
    #[arg(long)]
    pub seeds: Option<usize>,
    /// First seed (default 42).
    #[arg(long)]
    pub seed: Option<u64>,
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
    /// Skip the cross-entropy and MSE baselines (HAZ scoring still trains cross-entropy).
    #[arg(long)]
    pub no_baselines: bool,
    /// Engine for the loss.
    #[arg(long, value_enum, default_value = "jit")]
    pub backend: EvalBackend,
    /// JIT transcendentals (exact is bit-equal to the interpreter).
    #[arg(long, value_enum, default_value = "exact")]
    pub math: MathMode,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Genome format (detected by default).
    #[arg(long, value_enum, default_value = "auto")]
    pub format: FormatArg,
    /// compat (behave as the public interpreters) or strict.
    #[arg(long, value_enum, default_value = "compat")]
    pub mode: Mode,
    /// Data root (default: $NCPC_DATA, else the user's cache dir).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

impl EvalArgs {
    /// The protocol with the flags applied.
    fn protocol(&self) -> Result<Protocol, CliError> {
        let mut p = Protocol::preset(self.protocol);
        if let Some(d) = self.dataset {
            p.dataset = d;
        }
        if let Some(n) = self.seeds {
            if n == 0 {
                return Err(anyhow::anyhow!("--seeds must be at least 1").into());
            }
            p.seeds = n;
        }
        if let Some(s) = self.seed {
            p.seed = s;
        }
        if let Some(o) = self.optimizer {
            p.optimizer = o;
        }
        if let Some(lr) = self.lr {
            if !(lr.is_finite() && lr > 0.0) {
                return Err(anyhow::anyhow!("--lr must be a positive number, not {lr}").into());
            }
            p.lr = lr;
        }
        if let Some(m) = self.metric {
            p.metric = m;
        }
        if let Some(s) = self.steps {
            if s == 0 {
                return Err(anyhow::anyhow!("--steps must be at least 1").into());
            }
            p.steps = Some(s);
            p.hurdles.retain(|h| h.step < s);
        }
        if let Some(b) = self.batch {
            if b == 0 {
                return Err(anyhow::anyhow!("--batch must be at least 1").into());
            }
            p.batch = b;
        }
        if self.no_baselines {
            p.baselines = false;
        }
        Ok(p)
    }
}

/// Run `ncpc eval`.
pub fn run(a: EvalArgs) -> Result<(), CliError> {
    let backend = match a.backend {
        EvalBackend::Jit => Backend::Jit,
        EvalBackend::Interp => Backend::Interp,
        EvalBackend::Cpu | EvalBackend::Wgpu => {
            let name = if a.backend == EvalBackend::Cpu {
                "cpu"
            } else {
                "wgpu"
            };
            return Err(anyhow::anyhow!(
                "--backend {name} needs the burn lowering, which is not built yet; use jit (default) or interp"
            )
            .into());
        }
    };
    let text = read_source(&a.genome)?;
    let mut p = a.protocol()?;
    let root = data_root(a.data_dir.as_deref());
    let mut notes = Vec::new();
    let explicit_dataset = a.dataset.is_some();
    let data = match TaskData::for_protocol(&p, &root, &mut notes) {
        Ok(d) => d,
        // DAML's MLP run is on CIFAR-10; without it, run the same protocol on MNIST.
        Err(crate::train::data::DataError::Missing { .. })
            if p.dataset == DatasetName::Cifar10 && !explicit_dataset =>
        {
            notes.push(format!(
                "CIFAR-10 is not under {} (it cannot be fetched here); using MNIST",
                root.display()
            ));
            p.dataset = DatasetName::Mnist;
            TaskData::for_protocol(&p, &root, &mut notes)?
        }
        Err(e) => return Err(e.into()),
    };
    let genome = Genome {
        name: stem(&a.genome),
        text,
        opts: CompileOptions {
            format: a.format.format(),
            mode: a.mode,
            ..CompileOptions::default()
        },
    };
    let runs = p.seeds
        * if p.baselines || p.score_needs_baseline() {
            3
        } else {
            1
        };
    let bar = indicatif::ProgressBar::new(runs as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {pos}/{len} runs, {elapsed}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(format!("eval {}", genome.name));
    let opts = EvalOptions {
        backend,
        math: a.math,
    };
    let report = evaluate(&genome, &p, &data, opts, notes, &|| bar.inc(1));
    bar.finish_and_clear();
    let report = report?;
    if a.json {
        let text = serde_json::to_string_pretty(&report).map_err(anyhow::Error::from)?;
        println!("{text}");
    } else {
        print!("{}", table(&report));
    }
    Ok(())
}

fn fmt_num(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.4}")
    } else {
        format!("{x}")
    }
}

fn row(s: &LossScore) -> String {
    format!(
        "{:<16} {:>10} {:>10}  {:<6} {}\n",
        s.name,
        fmt_num(s.score),
        fmt_num(s.accuracy),
        format!("{:?}", s.engine).to_lowercase(),
        s.failure.as_deref().unwrap_or("")
    )
}

/// The human-readable report.
fn table(r: &Report) -> String {
    let mut out = String::new();
    let p = &r.protocol;
    out.push_str(&format!(
        "protocol  {:?}, {} seed(s) from {}, {:?} lr {}, batch {}\n",
        p.name, p.seeds, p.seed, p.optimizer, p.lr, p.batch
    ));
    out.push_str(&format!("data      {}\nmodel     {}\n", r.data, r.model));
    for n in &r.notes {
        out.push_str(&format!("note      {n}\n"));
    }
    out.push_str(&format!(
        "\n{:<16} {:>10} {:>10}  {:<6} {}\n",
        "loss", "score", "accuracy", "engine", "failure"
    ));
    out.push_str(&row(&r.candidate));
    for b in &r.baselines {
        out.push_str(&row(b));
    }
    if !r.candidate.curve.is_empty() {
        let pts: Vec<String> = r
            .candidate
            .curve
            .iter()
            .map(|c| format!("{}:{:.3}", c.step, c.accuracy))
            .collect();
        out.push_str(&format!("\ncurve     {}\n", pts.join(" ")));
    }
    if let Some(ce) = r.baselines.iter().find(|b| b.name == "cross-entropy")
        && r.score.is_finite()
        && ce.score.is_finite()
    {
        out.push_str(&format!("vs cross-entropy  {:+.4}\n", r.score - ce.score));
    }
    out.push_str(&format!("seconds   {:.2}\n", r.seconds));
    out
}
