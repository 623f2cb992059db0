//! The read-only queries behind the pool's web pages (`/`, `/function/{id}`, `/miners`):
//! one function with its evaluations and lineage, the pool's history as time series, and the
//! miners' standing.

use super::db::Exec;
use super::values::{DbError, vals};
use super::{ApiError, Store};
use crate::pool::server::consensus::agrees_under;

/// One function as its page shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct FunctionDetail {
    /// Its id.
    pub id: i64,
    /// Its component type.
    pub component_type: String,
    /// The AMM program (compact JSON).
    pub program: String,
    /// Its name (seeds).
    pub name: Option<String>,
    /// Who evolved it.
    pub evolver: Option<String>,
    /// The function it was evolved from.
    pub parent_id: Option<i64>,
    /// When it was stored (ms since the epoch).
    pub created_at_ms: i64,
    /// Its consensus score.
    pub consensus: Option<f64>,
    /// Functions evolved from it.
    pub children: Vec<i64>,
    /// Its evaluations: (evaluator, score, ms since the epoch), oldest first.
    pub evaluations: Vec<(String, f64, i64)>,
}

/// The pool's history, for charts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PoolStats {
    /// Functions stored.
    pub functions: i64,
    /// Registered miners.
    pub miners: i64,
    /// Evaluations stored.
    pub evaluations: i64,
    /// Functions with a consensus score.
    pub consensus: i64,
    /// (ms, best consensus so far) each time the best rose.
    pub best_over_time: Vec<(i64, f64)>,
    /// (hour start in ms, evolved functions stored that hour).
    pub submissions_per_hour: Vec<(i64, i64)>,
    /// (hour start in ms, evaluations stored that hour).
    pub evaluations_per_hour: Vec<(i64, i64)>,
}

/// One miner's standing.
#[derive(Clone, Debug, PartialEq)]
pub struct MinerSummary {
    /// Its SS58 address.
    pub address: String,
    /// Its balance.
    pub balance: f64,
    /// Functions it evolved that were stored.
    pub functions_evolved: i64,
    /// Evaluations it submitted.
    pub evaluations: i64,
    /// The share of its evaluations of functions with consensus that agree with it.
    pub agreement: Option<f64>,
}

const HOUR_MS: i64 = 3_600_000;

/// (hour start, count) for the timestamps in `times` (sorted or not), oldest hour first.
fn per_hour(times: impl Iterator<Item = i64>) -> Vec<(i64, i64)> {
    let mut hours = std::collections::BTreeMap::new();
    for t in times {
        *hours.entry(t.div_euclid(HOUR_MS) * HOUR_MS).or_insert(0) += 1;
    }
    hours.into_iter().collect()
}

impl Store {
    /// Function `id`, with its children and evaluations; `None` when there is none.
    pub fn function_detail(&mut self, id: i64) -> Result<Option<FunctionDetail>, ApiError> {
        let Some(r) = self.conn.query_opt(
            "SELECT id, component_type, program, name, evolver, parent_id, created_at_ms,
             consensus_score FROM functions WHERE id = ?1",
            vals![id],
        )?
        else {
            return Ok(None);
        };
        let children = self
            .conn
            .query(
                "SELECT id FROM functions WHERE parent_id = ?1 ORDER BY id LIMIT 100",
                vals![id],
            )?
            .iter()
            .map(|c| c.int(0))
            .collect::<Result<Vec<_>, DbError>>()?;
        let evaluations = self
            .conn
            .query(
                "SELECT evaluator, score, created_at_ms FROM evaluations WHERE function_id = ?1
                 ORDER BY created_at_ms, id",
                vals![id],
            )?
            .iter()
            .map(|e| Ok((e.text(0)?, e.real(1)?, e.int(2)?)))
            .collect::<Result<Vec<_>, DbError>>()?;
        Ok(Some(FunctionDetail {
            id: r.int(0)?,
            component_type: r.text(1)?,
            program: r.text(2)?,
            name: r.opt_text(3)?,
            evolver: r.opt_text(4)?,
            parent_id: r.opt_int(5)?,
            created_at_ms: r.int(6)?,
            consensus: r.opt_real(7)?,
            children,
            evaluations,
        }))
    }

    /// Totals and time series of the whole pool.
    pub fn pool_stats(&mut self) -> Result<PoolStats, ApiError> {
        let mut count =
            |sql: &str| -> Result<i64, ApiError> { Ok(self.conn.query_one(sql, vals![])?.int(0)?) };
        let mut stats = PoolStats {
            functions: count("SELECT COUNT(*) FROM functions")?,
            miners: count("SELECT COUNT(*) FROM miners")?,
            evaluations: count("SELECT COUNT(*) FROM evaluations")?,
            consensus: count("SELECT COUNT(*) FROM functions WHERE consensus_score IS NOT NULL")?,
            ..PoolStats::default()
        };
        // Scores of -99999 are failures, not a best.
        let formed = self.conn.query(
            "SELECT consensus_at_ms, consensus_score FROM functions
             WHERE consensus_at_ms IS NOT NULL AND consensus_score >= 0
             ORDER BY consensus_at_ms, id",
            vals![],
        )?;
        let mut best = f64::NEG_INFINITY;
        for r in &formed {
            let (t, s) = (r.int(0)?, r.real(1)?);
            if s > best {
                best = s;
                stats.best_over_time.push((t, s));
            }
        }
        let evolved = self.conn.query(
            "SELECT created_at_ms FROM functions WHERE evolver IS NOT NULL",
            vals![],
        )?;
        stats.submissions_per_hour = per_hour(
            evolved
                .iter()
                .map(|r| r.int(0))
                .collect::<Result<Vec<_>, DbError>>()?
                .into_iter(),
        );
        let evaluated = self
            .conn
            .query("SELECT created_at_ms FROM evaluations", vals![])?;
        stats.evaluations_per_hour = per_hour(
            evaluated
                .iter()
                .map(|r| r.int(0))
                .collect::<Result<Vec<_>, DbError>>()?
                .into_iter(),
        );
        Ok(stats)
    }

    /// Every registered miner's standing, richest first.
    pub fn miner_summaries(&mut self) -> Result<Vec<MinerSummary>, ApiError> {
        let rule = self.rules.consensus;
        let rows = self.conn.query(
            "SELECT m.address,
               (SELECT COALESCE(SUM(amount), 0.0) FROM ledger l WHERE l.miner = m.address),
               (SELECT COUNT(*) FROM functions f WHERE f.evolver = m.address),
               (SELECT COUNT(*) FROM evaluations e WHERE e.evaluator = m.address)
             FROM miners m",
            vals![],
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let address = r.text(0)?;
            let judged = self.conn.query(
                "SELECT e.score, f.consensus_score FROM evaluations e
                 JOIN functions f ON f.id = e.function_id
                 WHERE e.evaluator = ?1 AND f.consensus_score IS NOT NULL",
                vals![&address],
            )?;
            let mut agree = 0usize;
            for j in &judged {
                agree += agrees_under(rule, j.real(0)?, j.real(1)?) as usize;
            }
            out.push(MinerSummary {
                balance: r.real(1)?,
                functions_evolved: r.int(2)?,
                evaluations: r.int(3)?,
                agreement: (!judged.is_empty()).then(|| agree as f64 / judged.len() as f64),
                address,
            });
        }
        out.sort_by(|a, b| {
            b.balance
                .total_cmp(&a.balance)
                .then(a.address.cmp(&b.address))
        });
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_bucket_and_sort() {
        let h = HOUR_MS;
        assert_eq!(
            per_hour([3 * h + 5, h, h + 10, 3 * h].into_iter()),
            [(h, 2), (3 * h, 2)]
        );
    }
}
