//! Evaluation protocols: how a candidate loss is scored (see docs/evaluation.md). Each
//! preset reproduces a public system's protocol on its own terms; `standard` is ncpc's.

use super::data::DatasetName;
use super::model::MlpSpec;
use super::optim::OptimizerKind;
use serde::{Deserialize, Serialize};

/// The named protocols.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProtocolName {
    /// The Neural Component Pool client's: MNIST 1800/200, 10 Adam steps of 32, early stop,
    /// validation accuracy.
    Amm,
    /// AMM's own scoring reproduced (torch's random streams bit for bit, weights carried over
    /// between the functions of one evaluate task, AMM's score cache and failure
    /// encodings): `ncpc eval` scores its files as one evaluate task (see
    /// `train::amm_exact`); elsewhere it trains as `amm`.
    AmmExact,
    /// The DAML validator's CIFAR-10 MLP run (MNIST when CIFAR-10 is absent): 600 batches
    /// of 32, accuracy on 101 validation batches.
    DamlMlp,
    /// The DAML validator's score: `0.7 mean(acc) + 0.3 (1 - std(acc) / mean(acc))` over
    /// daml-mlp runs on every dataset present (CIFAR-10, Fashion-MNIST, MNIST), and the small
    /// CNN on each too on the burn backends. DAML's own seven runs (ResNet-50, MobileNetV3,
    /// EfficientNetV2 on Imagenette and FGVC-Aircraft) are out of reach here. `ncpc eval` only.
    Daml,
    /// Hierarchical AutoML-Zero's: MLP 784-128-10, Adam, batch 128, one epoch; score is the
    /// accuracy above cross-entropy's.
    Haz,
    /// ncpc's: several seeds, area under the validation curve plus final accuracy, hurdles,
    /// compared with cross-entropy under the same seeds and batch order.
    Standard,
}

/// What the validation set measures.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    /// Fraction of validation samples classified correctly (fitness = accuracy).
    Accuracy,
    /// Cross-entropy of the logits on the validation set (fitness = its negation).
    CrossEntropy,
}

/// How training batches are drawn.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sampling {
    /// Each batch drawn uniformly with replacement (AMM's `torch.randint`).
    WithReplacement,
    /// Shuffled epochs, a new permutation each epoch (a shuffling `DataLoader`).
    Epochs,
}

/// How the train and validation sets are made.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SplitRule {
    /// AMM's: the first `total` training samples, permuted by a generator seeded 42, the
    /// first `train` of them for training and the rest for validation.
    Permuted {
        /// Samples taken from the start of the training set.
        total: usize,
        /// Of which for training.
        train: usize,
    },
    /// Training samples from the training set, validation samples from the test set, each
    /// limited to its first `n` (`None`: all).
    TestSet {
        /// Training samples used.
        train: Option<usize>,
        /// Validation samples used.
        val: Option<usize>,
        /// Take the validation samples in DAML's order instead of file order: after
        /// `torch.manual_seed(42)`, a `randperm` of the training set and then one of the test
        /// set (dml/data.py's samplers), the first `val` of the latter. Needs the whole test
        /// set; with the embedded MNIST subset the first samples stand in, with a note.
        #[serde(default)]
        daml_order: bool,
    },
}

/// How a protocol turns training runs into a score.
#[derive(Copy, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scoring {
    /// The metric after training (mean over seeds).
    Final,
    /// `auc_weight * mean(validation curve) + (1 - auc_weight) * final accuracy`, mean
    /// over seeds.
    CurveAndFinal {
        /// Weight of the area under the curve.
        #[serde(alias = "auc-weight")]
        auc_weight: f64,
    },
    /// `max(0, accuracy - cross-entropy's accuracy)` (HAZ).
    OverCrossEntropy,
}

/// AMM's early stop: `patience` steps in a row without the training loss improving on its
/// best by at least `min_improvement` fails the candidate.
#[derive(Copy, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EarlyStop {
    /// Steps without improvement allowed.
    pub patience: usize,
    /// Improvement that counts.
    #[serde(alias = "min-improvement")]
    pub min_improvement: f32,
}

/// A hurdle: at `step`, the validation accuracy must reach `min_accuracy`, or the candidate
/// fails there (scored as failed, never as half-trained).
#[derive(Copy, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hurdle {
    /// The step after which the check runs (a validation point).
    pub step: usize,
    /// The accuracy to reach.
    #[serde(alias = "min-accuracy")]
    pub min_accuracy: f64,
}

/// The network a protocol trains.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    /// The protocol's MLP (`hidden` widths, `dropout`).
    #[default]
    Mlp,
    /// A small CNN: conv 3x3 (8) - ReLU - max-pool 2 - conv 3x3 (16) - ReLU - max-pool 2 -
    /// linear, on square images with 1 or 3 channels (burn backends only).
    Cnn,
}

/// Everything that defines a protocol.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Protocol {
    /// The preset it started from.
    pub name: ProtocolName,
    /// The dataset.
    pub dataset: DatasetName,
    /// Train/validation split.
    pub split: SplitRule,
    /// The network (`mlp` unless said otherwise).
    #[serde(default)]
    pub architecture: Architecture,
    /// Hidden layer widths of the MLP.
    pub hidden: Vec<usize>,
    /// Dropout after each hidden layer.
    pub dropout: f32,
    /// Optimizer.
    pub optimizer: OptimizerKind,
    /// Learning rate.
    pub lr: f32,
    /// Training steps (`None`: one epoch of the training set).
    pub steps: Option<usize>,
    /// Batch size.
    pub batch: usize,
    /// How batches are drawn.
    pub sampling: Sampling,
    /// AMM's early stop, if any.
    #[serde(alias = "early-stop")]
    pub early_stop: Option<EarlyStop>,
    /// Validation metric.
    pub metric: Metric,
    /// Validate every this many steps (0: only after training).
    #[serde(alias = "curve-every")]
    pub curve_every: usize,
    /// Hurdles.
    pub hurdles: Vec<Hurdle>,
    /// Number of seeds.
    pub seeds: usize,
    /// The first seed (seeds are `seed, seed + 1, ...`); it sets the model's initial weights,
    /// the batch order and dropout.
    pub seed: u64,
    /// Scoring rule.
    pub scoring: Scoring,
    /// Whether to also train the baselines (cross-entropy and MSE).
    pub baselines: bool,
}

impl Protocol {
    /// The preset with its documented settings.
    pub fn preset(name: ProtocolName) -> Protocol {
        let base = Protocol {
            name,
            dataset: DatasetName::Mnist,
            split: SplitRule::Permuted {
                total: 2000,
                train: 1800,
            },
            architecture: Architecture::Mlp,
            hidden: vec![64],
            dropout: 0.0,
            optimizer: OptimizerKind::Adam,
            lr: 1e-3,
            steps: Some(10),
            batch: 32,
            sampling: Sampling::WithReplacement,
            early_stop: None,
            metric: Metric::Accuracy,
            curve_every: 0,
            hurdles: Vec::new(),
            seeds: 1,
            seed: 42,
            scoring: Scoring::Final,
            baselines: true,
        };
        match name {
            ProtocolName::Amm | ProtocolName::AmmExact => Protocol {
                early_stop: Some(EarlyStop {
                    patience: 3,
                    min_improvement: 0.001,
                }),
                ..base
            },
            ProtocolName::DamlMlp | ProtocolName::Daml => Protocol {
                dataset: DatasetName::Cifar10,
                split: SplitRule::TestSet {
                    train: None,
                    val: Some(101 * 32),
                    daml_order: true,
                },
                hidden: vec![128, 128],
                dropout: 0.2,
                steps: Some(600),
                sampling: Sampling::Epochs,
                ..base
            },
            ProtocolName::Haz => Protocol {
                split: SplitRule::TestSet {
                    train: None,
                    val: None,
                    daml_order: false,
                },
                hidden: vec![128],
                steps: None,
                batch: 128,
                sampling: Sampling::Epochs,
                scoring: Scoring::OverCrossEntropy,
                ..base
            },
            ProtocolName::Standard => Protocol {
                split: SplitRule::TestSet {
                    train: Some(2000),
                    val: Some(1000),
                    daml_order: false,
                },
                steps: Some(150),
                curve_every: 25,
                hurdles: vec![Hurdle {
                    step: 50,
                    min_accuracy: 0.2,
                }],
                seeds: 3,
                scoring: Scoring::CurveAndFinal { auc_weight: 0.5 },
                ..base
            },
        }
    }

    /// The MLP for inputs of `input` features and `classes` outputs.
    pub fn model(&self, input: usize, classes: usize) -> MlpSpec {
        MlpSpec {
            input,
            hidden: self.hidden.clone(),
            output: classes,
            dropout: self.dropout,
        }
    }

    /// Training steps for a training set of `n` samples.
    pub fn steps_for(&self, n: usize) -> usize {
        self.steps.unwrap_or_else(|| n.div_ceil(self.batch))
    }

    /// This protocol with `factor` times the training (a higher fidelity for multi-fidelity
    /// search): the steps, the hurdles' steps, the curve's spacing and, with `more_data`, the
    /// training samples (where the split limits them) are scaled; the validation samples, the
    /// seeds and everything else stay.
    pub fn at_fidelity(&self, factor: f64, more_data: bool) -> Protocol {
        let f = factor.max(1.0);
        let scale = |n: usize| ((n as f64 * f).round() as usize).max(n);
        let mut p = self.clone();
        p.split = match self.split {
            s if !more_data => s,
            SplitRule::Permuted { total, train } => SplitRule::Permuted {
                total: scale(train) + (total - train.min(total)),
                train: scale(train),
            },
            SplitRule::TestSet {
                train,
                val,
                daml_order,
            } => SplitRule::TestSet {
                train: train.map(scale),
                val,
                daml_order,
            },
        };
        p.steps = self.steps.map(scale);
        p.curve_every = scale(self.curve_every);
        for h in &mut p.hurdles {
            h.step = scale(h.step);
        }
        p
    }

    /// The seeds of the runs.
    pub fn seed_list(&self) -> Vec<u64> {
        (0..self.seeds as u64).map(|k| self.seed + k).collect()
    }

    /// Whether the baselines are needed for the score itself (not only reported).
    pub fn score_needs_baseline(&self) -> bool {
        self.scoring == Scoring::OverCrossEntropy
    }
}
