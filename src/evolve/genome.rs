//! One genome of any searchable format, and the operators of its format behind one face, so
//! that the search strategies need not know which format they work in.

use super::{amm_ops, daml_ops, haz_ops};
use crate::formats::FormatError;
use crate::formats::daml::{Expr, expression_of, parse_expr, print_expr};
use crate::formats::haz::{Gene, parse_gene};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// The formats evolution works in.
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, Hash, clap::ValueEnum, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum GenomeFormat {
    /// AMM register programs.
    #[default]
    Amm,
    /// DAML expression trees.
    Daml,
    /// HAZ instruction arrays.
    Haz,
}

impl GenomeFormat {
    /// The format's default size limit: instructions for AMM (AMM's 20) and HAZ (32), tree
    /// height for DAML (DAML's 90).
    pub fn default_size_limit(self) -> usize {
        match self {
            GenomeFormat::Amm => amm_ops::MAX_LEN,
            GenomeFormat::Daml => daml_ops::MAX_HEIGHT,
            GenomeFormat::Haz => haz_ops::MAX_LEN,
        }
    }

    /// The largest size limit the format's reader takes back (DAML trees nest at most 512
    /// deep; HAZ genes hold at most 500 instructions), so every genome a search makes can be
    /// read again from a checkpoint.
    pub fn max_size_limit(self) -> usize {
        match self {
            GenomeFormat::Amm => 1000,
            GenomeFormat::Daml => 500,
            GenomeFormat::Haz => crate::formats::haz::MAX_GENE_LENGTH as usize,
        }
    }

    /// The smallest size limit that leaves room for the format's fixed parts.
    pub fn min_size_limit(self) -> usize {
        match self {
            GenomeFormat::Amm => 4,
            GenomeFormat::Daml => 2,
            GenomeFormat::Haz => 1,
        }
    }

    /// The format of a genome file's text, when evolution can work in it.
    pub fn detect(text: &str) -> Result<GenomeFormat, FormatError> {
        use crate::formats::Format;
        match crate::formats::detect(text)? {
            Format::Amm => Ok(GenomeFormat::Amm),
            Format::Daml => Ok(GenomeFormat::Daml),
            Format::Haz => Ok(GenomeFormat::Haz),
            f @ Format::Ir => Err(FormatError::NotSearchable(f)),
        }
    }
}

/// A genome in the form its operators work on.
#[derive(Clone, Debug, PartialEq)]
pub enum Genome {
    /// An AMM program.
    Amm(amm_ops::Code),
    /// A DAML expression tree.
    Daml(Expr),
    /// A HAZ gene (boxed: it is much larger than the other variants).
    Haz(Box<Gene>),
}

impl Genome {
    /// Its format.
    pub fn format(&self) -> GenomeFormat {
        match self {
            Genome::Amm(_) => GenomeFormat::Amm,
            Genome::Daml(_) => GenomeFormat::Daml,
            Genome::Haz(_) => GenomeFormat::Haz,
        }
    }

    /// Its size, for parsimony pressure: instructions (AMM, HAZ) or tree nodes (DAML).
    pub fn size(&self) -> usize {
        match self {
            Genome::Amm(c) => c.len(),
            Genome::Daml(e) => daml_ops::size(e),
            Genome::Haz(g) => g.ops.len(),
        }
    }

    /// The genome file text: AMM's JSON program, DAML's `{"expression": ...}` object, HAZ's
    /// export object.
    pub fn to_text(&self) -> String {
        match self {
            Genome::Amm(c) => amm_ops::to_text(c),
            Genome::Daml(e) => serde_json::json!({ "expression": print_expr(e) }).to_string(),
            Genome::Haz(g) => crate::formats::haz::random::to_json(g),
        }
    }

    /// Read genome file text of the given format (AMM programs are repaired, HAZ arrays
    /// cut to one length).
    pub fn from_text(format: GenomeFormat, text: &str) -> Result<Genome, FormatError> {
        Ok(match format {
            GenomeFormat::Amm => Genome::Amm(amm_ops::from_text(text)?),
            GenomeFormat::Daml => Genome::Daml(parse_expr(&expression_of(text)?)?),
            GenomeFormat::Haz => Genome::Haz(Box::new(haz_ops::from_gene(parse_gene(text)?))),
        })
    }

    /// Read genome file text in whichever searchable format it is.
    pub fn parse(text: &str) -> Result<Genome, FormatError> {
        Genome::from_text(GenomeFormat::detect(text)?, text)
    }

    /// MSE in the format, as each system seeds its search.
    pub fn seed_mse(format: GenomeFormat) -> Genome {
        match format {
            GenomeFormat::Amm => Genome::Amm(amm_ops::seed_mse()),
            GenomeFormat::Daml => Genome::Daml(daml_ops::seed_mse()),
            GenomeFormat::Haz => Genome::Haz(Box::new(haz_ops::seed_mse())),
        }
    }

    /// The names of the known losses [`Genome::known`] has in `format`.
    pub fn known_names(format: GenomeFormat) -> &'static [&'static str] {
        match format {
            GenomeFormat::Amm => &["mse", "mae", "cross-entropy", "bce", "baikal"],
            GenomeFormat::Daml => &["mse", "bce", "evolved-baseline"],
            GenomeFormat::Haz => &["mse", "softmax-cross-entropy", "sigmoid-bce"],
        }
    }

    /// A known loss to seed a search with, by name (see [`Genome::known_names`]): the
    /// reference corpus's programs (AMM's cross-entropy and Baikal loss, DAML's evolved
    /// baseline, HAZ's softmax cross-entropy), MSE, and sigmoid BCE written in the DAML miner
    /// set.
    pub fn known(format: GenomeFormat, name: &str) -> Option<Genome> {
        let text = match (format, name) {
            (_, "mse") => return Some(Genome::seed_mse(format)),
            (GenomeFormat::Amm, "mae") => include_str!("../../tests/corpus/amm/mae.json"),
            (GenomeFormat::Amm, "cross-entropy") => {
                include_str!("../../tests/corpus/amm/cross_entropy.json")
            }
            (GenomeFormat::Amm, "bce") => include_str!("../../tests/corpus/amm/bce.json"),
            (GenomeFormat::Amm, "baikal") => include_str!("../../tests/corpus/amm/baikal.json"),
            (GenomeFormat::Daml, "bce") => concat!(
                "safe_sub(zero, mean(safe_add(safe_mul(y, safe_log(sigmoid(x))), ",
                "safe_mul(safe_sub(one, y), safe_log(safe_sub(one, sigmoid(x)))))))"
            ),
            (GenomeFormat::Daml, "evolved-baseline") => {
                include_str!("../../tests/corpus/daml/evolved_baseline_loss.json")
            }
            (GenomeFormat::Haz, "softmax-cross-entropy") => {
                include_str!("../../tests/corpus/haz/softmax_xent.json")
            }
            (GenomeFormat::Haz, "sigmoid-bce") => {
                include_str!("../../tests/corpus/haz/sigmoid_bce.json")
            }
            _ => return None,
        };
        // AMM's repair makes every program return R9: put the corpus program's result there
        // (and its LOADs first) so that the seed computes what the corpus program does.
        if format == GenomeFormat::Amm
            && let Ok(p) = crate::formats::amm::parse_program(text)
            && let Some(code) = amm_ops::from_emitted(p)
        {
            return Some(Genome::Amm(code));
        }
        Genome::from_text(format, text).ok()
    }

    /// `n` random genomes: AMM programs of 2 to 8 body instructions, DAML half-and-half
    /// trees of height 1 to 3, HAZ genes of 2 to 8 instructions over one shared layout.
    pub fn random_population(format: GenomeFormat, n: usize, rng: &mut impl Rng) -> Vec<Genome> {
        match format {
            GenomeFormat::Amm => (0..n)
                .map(|_| {
                    let len = rng.random_range(2..=8);
                    Genome::Amm(amm_ops::random_code(len, rng))
                })
                .collect(),
            GenomeFormat::Daml => (0..n)
                .map(|_| Genome::Daml(daml_ops::random_tree(rng)))
                .collect(),
            GenomeFormat::Haz => haz_ops::random_population(n, rng)
                .into_iter()
                .map(|g| Genome::Haz(Box::new(g)))
                .collect(),
        }
    }

    /// A mutant. `rate` is AMM's per-instruction mutation probability; DAML and HAZ make one
    /// change per call (a subtree replaced; one HAZ mutation).
    pub fn mutate(&self, rate: f64, size_limit: usize, rng: &mut impl Rng) -> Genome {
        match self {
            Genome::Amm(c) => Genome::Amm(amm_ops::mutate(c, rate, rng)),
            Genome::Daml(e) => Genome::Daml(daml_ops::mutate(e, rng)),
            Genome::Haz(g) => Genome::Haz(Box::new(haz_ops::mutate(g, size_limit, rng))),
        }
    }

    /// Two children of a crossover of `self` and `other`: DAML's one-point crossover makes
    /// both at once; AMM and HAZ cross each way. Parents of different formats (which one run
    /// never holds) give themselves back.
    pub fn mate(&self, other: &Genome, rng: &mut impl Rng) -> (Genome, Genome) {
        match (self, other) {
            (Genome::Daml(a), Genome::Daml(b)) => {
                let (c, d) = daml_ops::crossover(a, b, rng);
                (Genome::Daml(c), Genome::Daml(d))
            }
            _ => (self.crossover(other, rng), other.crossover(self, rng)),
        }
    }

    /// One child of a crossover (DAML: the first of [`Genome::mate`]'s two).
    pub fn crossover(&self, other: &Genome, rng: &mut impl Rng) -> Genome {
        match (self, other) {
            (Genome::Amm(a), Genome::Amm(b)) => Genome::Amm(amm_ops::crossover(a, b, rng)),
            (Genome::Haz(a), Genome::Haz(b)) => {
                Genome::Haz(Box::new(haz_ops::crossover(a, b, rng)))
            }
            (Genome::Daml(a), Genome::Daml(b)) => Genome::Daml(daml_ops::crossover(a, b, rng).0),
            _ => self.clone(),
        }
    }

    /// A mutant of `self` within the size limit (see [`Genome::mutate`] and
    /// [`Genome::within_limit`]).
    pub fn mutant(&self, rate: f64, size_limit: usize, rng: &mut impl Rng) -> Genome {
        self.mutate(rate, size_limit, rng)
            .within_limit(&[self], size_limit, rng)
    }

    /// Bring a child within the size limit: AMM and HAZ drop random instructions (AMM keeps
    /// its prologue and RETURN); a DAML tree too tall is replaced by one of its `parents`
    /// chosen at random (DEAP's static limit; no draw for a single parent).
    pub fn within_limit(
        self,
        parents: &[&Genome],
        size_limit: usize,
        rng: &mut impl Rng,
    ) -> Genome {
        match self {
            Genome::Amm(mut c) => {
                while c.len() > size_limit.max(4) {
                    let i = rng.random_range(2..c.len() - 1);
                    c.remove(i);
                }
                Genome::Amm(c)
            }
            Genome::Haz(g) => Genome::Haz(Box::new(haz_ops::trim(*g, size_limit, rng))),
            Genome::Daml(e) if daml_ops::height(&e) > size_limit.max(1) => match parents {
                [] => Genome::Daml(e),
                [one] => (*one).clone(),
                many => many[rng.random_range(0..many.len())].clone(),
            },
            child => child,
        }
    }
}

/// A genome as stored in checkpoints: its format and its file text.
#[derive(Clone, Serialize, Deserialize)]
struct Stored {
    format: GenomeFormat,
    text: String,
}

impl Serialize for Genome {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Stored {
            format: self.format(),
            text: self.to_text(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Genome {
    /// `{format, text}`, or a bare list of instructions: an AMM program as checkpoints
    /// written before other formats were searched hold it.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Genome, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        let s = match v {
            serde_json::Value::Array(_) => Stored {
                format: GenomeFormat::Amm,
                text: v.to_string(),
            },
            other => Stored::deserialize(other).map_err(serde::de::Error::custom)?,
        };
        Genome::from_text(s.format, &s.text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn genomes_of_every_format_survive_a_checkpoint() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for format in [GenomeFormat::Amm, GenomeFormat::Daml, GenomeFormat::Haz] {
            for g in Genome::random_population(format, 20, &mut rng) {
                let text = serde_json::to_string(&g).unwrap();
                let back: Genome = serde_json::from_str(&text).unwrap();
                assert_eq!(back, g, "{text}");
                assert_eq!(GenomeFormat::detect(&g.to_text()).unwrap(), format);
            }
        }
    }

    #[test]
    fn every_known_loss_reads_and_compiles() {
        for format in [GenomeFormat::Amm, GenomeFormat::Daml, GenomeFormat::Haz] {
            for name in Genome::known_names(format) {
                let g = Genome::known(format, name)
                    .unwrap_or_else(|| panic!("{format:?} {name} does not read"));
                assert_eq!(g.format(), format);
                crate::formats::compile(&g.to_text(), &Default::default())
                    .unwrap_or_else(|e| panic!("{format:?} {name}: {e}"));
            }
            assert!(Genome::known(format, "no-such-loss").is_none());
        }
    }

    #[test]
    fn an_older_checkpoints_bare_amm_program_reads_as_amm() {
        let g: Genome =
            serde_json::from_str("[[100,1,0],[100,2,1],[2,1,2,3],[10,3,4],[201,4,-1,9],[453,9]]")
                .unwrap();
        assert_eq!(g, Genome::seed_mse(GenomeFormat::Amm));
    }

    #[test]
    fn a_tree_too_tall_is_one_of_its_parents() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let tall = Genome::parse("sin(sin(sin(sin(x))))").unwrap();
        let (a, b) = (
            Genome::parse("sin(x)").unwrap(),
            Genome::parse("cos(y)").unwrap(),
        );
        let mut seen = std::collections::HashSet::new();
        for _ in 0..40 {
            let kept = tall.clone().within_limit(&[&a, &b], 2, &mut rng);
            assert!(kept == a || kept == b);
            seen.insert(kept.to_text());
        }
        assert_eq!(seen.len(), 2, "both parents are chosen");
        assert_eq!(tall.clone().within_limit(&[&a, &b], 4, &mut rng), tall);
    }

    #[test]
    fn a_stored_genome_that_does_not_parse_is_an_error() {
        let bad = r#"{"format":"daml","text":"{\"expression\": \"safe_add(x\"}"}"#;
        let err = serde_json::from_str::<Genome>(bad).unwrap_err().to_string();
        assert!(
            err.contains("DAML") || err.contains("daml") || err.contains("col"),
            "{err}"
        );
    }
}
