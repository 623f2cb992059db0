//! `ncpc evolve --config FILE.toml`: every search setting from a TOML file, flags overriding
//! it, and the effective configuration written beside the results (`config.toml`), which
//! `--config` reads back to repeat a run.

use crate::evolve::engine::{EvolveConfig, HurdleConfig, Strategy};
use crate::evolve::genome::GenomeFormat;
use crate::train::protocol::Protocol;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

/// The hurdle settings of a config file (each optional; `percentile = 0` turns it off).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HurdleFile {
    /// Percentile a first-seed score must reach.
    pub percentile: Option<f64>,
    /// Recent first-seed scores that set the threshold.
    pub window: Option<usize>,
    /// Scores needed before the hurdle applies.
    pub min_samples: Option<usize>,
}

/// A config file: any subset of the settings.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConfigFile {
    /// Genome format searched.
    pub format: Option<GenomeFormat>,
    /// Search strategy.
    pub strategy: Option<Strategy>,
    /// Population size.
    pub population: Option<usize>,
    /// Generations (or rounds).
    pub generations: Option<usize>,
    /// Evaluation budget.
    pub evaluations: Option<u64>,
    /// Time budget, e.g. "90s", "30m", "2h".
    pub time: Option<String>,
    /// Tournament size.
    pub tournament: Option<usize>,
    /// Mutation probability (per AMM instruction; per child in generational GP).
    pub mutation_rate: Option<f64>,
    /// Crossover probability.
    pub crossover_rate: Option<f64>,
    /// Children per regularized round.
    pub round: Option<usize>,
    /// Seed of the search.
    pub seed: Option<u64>,
    /// Size limit (instructions; DAML: tree height).
    pub max_len: Option<usize>,
    /// Hall-of-fame size.
    pub hall_of_fame: Option<usize>,
    /// Lexicographic parsimony pressure.
    pub parsimony: Option<bool>,
    /// Which genetic operators make children (native, ir, both).
    pub operators: Option<crate::evolve::engine::Operators>,
    /// The two-stage hurdle.
    pub hurdle: Option<HurdleFile>,
    /// The protocol in full, as the effective config records it (flags such as --protocol
    /// and --seeds are applied on top).
    pub protocol: Option<Protocol>,
}

impl ConfigFile {
    /// Read and check a config file; errors name the file and the offending key.
    pub fn read(path: &Path) -> anyhow::Result<ConfigFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let file: ConfigFile = toml::from_str(&text)
            .with_context(|| format!("{} is not a valid config", path.display()))?;
        if let Some(t) = &file.time {
            parse_duration(t).with_context(|| format!("{}: `time`", path.display()))?;
        }
        Ok(file)
    }

    /// The effective configuration of a run, to write as `config.toml`.
    pub fn effective(c: &EvolveConfig, time: Option<&str>, protocol: &Protocol) -> ConfigFile {
        ConfigFile {
            format: Some(c.format),
            strategy: Some(c.strategy),
            population: Some(c.population),
            generations: (c.generations != usize::MAX).then_some(c.generations),
            evaluations: c.max_evaluations,
            time: time.map(str::to_string),
            tournament: Some(c.tournament),
            mutation_rate: Some(c.mutation_rate),
            crossover_rate: Some(c.crossover_rate),
            round: Some(c.round),
            seed: Some(c.seed),
            max_len: Some(c.max_len),
            hall_of_fame: Some(c.hall_of_fame),
            parsimony: Some(c.parsimony),
            operators: Some(c.operators),
            hurdle: Some(match c.hurdle {
                Some(h) => HurdleFile {
                    percentile: Some(h.percentile),
                    window: Some(h.window),
                    min_samples: Some(h.min_samples),
                },
                None => HurdleFile {
                    percentile: Some(0.0),
                    ..HurdleFile::default()
                },
            }),
            protocol: Some(protocol.clone()),
        }
    }

    /// The TOML text.
    pub fn to_toml(&self) -> anyhow::Result<String> {
        Ok(toml::to_string_pretty(self)?)
    }

    /// The hurdle: `file_percentile` (or the flag's) with the file's other settings.
    pub fn hurdle_config(&self, percentile: f64) -> HurdleConfig {
        let d = HurdleConfig::default();
        let h = self.hurdle.clone().unwrap_or_default();
        HurdleConfig {
            percentile: percentile.min(100.0),
            window: h.window.unwrap_or(d.window),
            min_samples: h.min_samples.unwrap_or(d.min_samples),
        }
    }
}

/// A duration such as `90`, `90s`, `30m`, `2h` or `1h30m`.
pub fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return seconds(secs, s);
    }
    let mut total = 0f64;
    let mut num = String::new();
    let mut any = false;
    for ch in s.chars() {
        if ch.is_ascii_digit() || ch == '.' {
            num.push(ch);
            continue;
        }
        let unit = match ch {
            's' => 1.0,
            'm' => 60.0,
            'h' => 3600.0,
            'd' => 86400.0,
            _ => anyhow::bail!("`{s}`: unknown unit `{ch}` (use s, m, h or d, e.g. 30m)"),
        };
        let v: f64 = num
            .parse()
            .map_err(|_| anyhow::anyhow!("`{s}`: a number must come before `{ch}`"))?;
        total += v * unit;
        num.clear();
        any = true;
    }
    if !num.is_empty() || !any {
        anyhow::bail!("`{s}` is not a duration (e.g. 90s, 30m, 2h, 1h30m)");
    }
    seconds(total, s)
}

fn seconds(v: f64, s: &str) -> anyhow::Result<Duration> {
    if !(v.is_finite() && v > 0.0 && v < 1e9) {
        anyhow::bail!("`{s}`: the duration must be positive");
    }
    Ok(Duration::from_secs_f64(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_refuse_junk() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        for bad in ["", "m", "10x", "-5", "0", "5m3"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_effective_config_reads_back_as_it_was_written() {
        let c = EvolveConfig {
            max_evaluations: Some(500),
            hurdle: Some(HurdleConfig::default()),
            ..EvolveConfig::default()
        };
        let p = Protocol::preset(crate::train::protocol::ProtocolName::Amm);
        let text = ConfigFile::effective(&c, Some("10m"), &p)
            .to_toml()
            .unwrap();
        let back: ConfigFile = toml::from_str(&text).unwrap();
        assert_eq!(back.population, Some(c.population));
        assert_eq!(back.evaluations, Some(500));
        assert_eq!(back.time.as_deref(), Some("10m"));
        assert_eq!(back.protocol, Some(p));
        assert_eq!(back.hurdle.unwrap().percentile, Some(50.0));
    }

    #[test]
    fn protocol_keys_may_be_kebab_case_like_the_others() {
        let p = Protocol::preset(crate::train::protocol::ProtocolName::Standard);
        let written = ConfigFile::effective(&EvolveConfig::default(), None, &p)
            .to_toml()
            .unwrap();
        let kebab = written
            .replace("curve_every", "curve-every")
            .replace("early_stop", "early-stop")
            .replace("min_accuracy", "min-accuracy")
            .replace("auc_weight", "auc-weight");
        assert_ne!(kebab, written, "{written}");
        let back: ConfigFile = toml::from_str(&kebab).unwrap();
        assert_eq!(back.protocol, Some(p));
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let err = toml::from_str::<ConfigFile>("populaton = 5").unwrap_err();
        assert!(err.to_string().contains("populaton"), "{err}");
    }
}
