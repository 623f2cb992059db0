//! The search report `ncpc evolve --out DIR` writes as `report.html`: one self-contained
//! page (inline CSS and SVG, no script, nothing fetched) with the best and median fitness per
//! generation, the cache and hurdle counts, and the hall of fame with each genome's formula.
//! Light and dark themes follow the system. Everything from a genome is HTML-escaped.

use super::engine::{Famous, GenerationStats, HurdleStats};
use super::fec::FecStats;

/// What the report shows.
pub struct ReportInput<'a> {
    /// The protocol's name, for the title.
    pub protocol: &'a str,
    /// Per-generation statistics.
    pub stats: &'a [GenerationStats],
    /// The hall of fame, best first.
    pub hall_of_fame: &'a [Famous],
    /// Candidates looked at and trained.
    pub evaluations: u64,
    /// Candidates trained.
    pub trained: u64,
    /// The cache's counts.
    pub fec: FecStats,
    /// The hurdle's counts, when it ran.
    pub hurdle: Option<HurdleStats>,
    /// Wall time of the search.
    pub seconds: f64,
    /// The formula of a genome (plain text), or why it has none.
    pub formula: &'a dyn Fn(&str) -> String,
    /// The held-out check (`ncpc evolve --transfer`), when it ran.
    pub transfer: Option<&'a super::discover::TransferCheck>,
    /// Validation accuracy during training, mean over the protocol's seeds, of the best
    /// genome and the baselines: (name, [(step, accuracy)]).
    pub curves: &'a [(String, Vec<(f64, f64)>)],
}

/// The accuracy curves of the best genome and the baselines, as an inline SVG.
fn curves_chart(series: &[(String, Vec<(f64, f64)>)]) -> String {
    let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|(_, v)| v.iter().filter(finite).copied())
        .collect();
    if all.is_empty() {
        return "<p>No accuracy curve was recorded.</p>".into();
    }
    let (w, h, pad) = (640.0, 260.0, 40.0);
    let x0 = all.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let x1 = all
        .iter()
        .map(|p| p.0)
        .fold(f64::NEG_INFINITY, f64::max)
        .max(x0 + 1.0);
    let lo = all.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = all.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if hi - lo < 1e-9 {
        (lo - 0.05, hi + 0.05)
    } else {
        (lo, hi)
    };
    let sx = |x: f64| pad + (x - x0) / (x1 - x0) * (w - 2.0 * pad);
    let sy = |y: f64| h - pad - (y - lo) / (hi - lo) * (h - 2.0 * pad);
    let classes = ["best", "median", "third"];
    let mut lines = String::new();
    let mut legend = String::new();
    for (k, (name, pts)) in series.iter().enumerate() {
        let class = classes[k.min(2)];
        let points: Vec<String> = pts
            .iter()
            .filter(finite)
            .map(|p| format!("{:.1},{:.1}", sx(p.0), sy(p.1)))
            .collect();
        lines += &format!(
            "<polyline points=\"{}\" class=\"{class}\"/>\n",
            points.join(" ")
        );
        legend += &format!(
            "<span class=\"{class}\">&#9632;</span> {} &nbsp; ",
            escape(name)
        );
    }
    format!(
        r#"<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="validation accuracy during training">
<line x1="{pad}" y1="{b}" x2="{r}" y2="{b}" class="axis"/><line x1="{pad}" y1="{pad}" x2="{pad}" y2="{b}" class="axis"/>
<text x="{pad}" y="{t}" class="label">{hi:.4}</text><text x="{pad}" y="{bl}" class="label">{lo:.4}</text>
<text x="{r}" y="{bl}" class="label" text-anchor="end">step {x1}</text>
{lines}</svg>
<p class="legend">{legend}</p>"#,
        b = h - pad,
        r = w - pad,
        t = pad - 8.0,
        bl = h - pad + 16.0,
    )
}

/// The held-out check's section: baselines and candidates, accuracy mean ± std over seeds.
fn transfer_section(
    t: &super::discover::TransferCheck,
    formula: &dyn Fn(&str) -> String,
) -> String {
    let mut rows = String::new();
    for b in &t.baselines {
        rows += &format!(
            "<tr><td>{}</td><td>{:.4} ± {:.4}</td><td></td><td></td></tr>\n",
            escape(&b.name),
            b.mean,
            b.std
        );
    }
    for c in &t.candidates {
        rows += &format!(
            "<tr><td><code>{}</code></td><td>{:.4} ± {:.4}</td><td>{:.4}</td><td>{}</td></tr>\n",
            escape(&formula(&c.genome)),
            c.transfer_mean,
            c.transfer_std,
            c.proxy_fitness,
            c.transfer_failure
                .as_deref()
                .map(escape)
                .unwrap_or_default()
        );
    }
    format!(
        "<h2>Held-out check <span class=\"muted\">({} protocol, fresh seeds)</span></h2>\n\
         <p>{}</p>\n<table><thead><tr><th>loss</th><th>accuracy (mean ± std)</th><th>search fitness</th><th>failure</th></tr></thead><tbody>\n{rows}</tbody></table>\n",
        escape(&t.protocol),
        if t.beats_cross_entropy {
            "The best candidate beats cross-entropy by more than the larger standard deviation."
        } else {
            "No candidate beats cross-entropy by more than the larger standard deviation."
        }
    )
}

/// `text` safe inside HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A line chart of the best and median fitness per generation, as inline SVG (finite values
/// only; nothing when there are none).
fn chart(stats: &[GenerationStats]) -> String {
    let points: Vec<(f64, f64, f64)> = stats
        .iter()
        .filter(|s| s.best.is_finite() && s.median.is_finite())
        .map(|s| (s.generation as f64, s.best, s.median))
        .collect();
    if points.is_empty() {
        return "<p>No generation has a finite fitness yet.</p>".into();
    }
    let (w, h, pad) = (640.0, 260.0, 40.0);
    let x0 = points.first().map_or(0.0, |p| p.0);
    let x1 = points.last().map_or(1.0, |p| p.0).max(x0 + 1.0);
    let lo = points
        .iter()
        .map(|p| p.2.min(p.1))
        .fold(f64::INFINITY, f64::min);
    let hi = points
        .iter()
        .map(|p| p.1.max(p.2))
        .fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if hi - lo < 1e-9 {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    };
    let sx = |x: f64| pad + (x - x0) / (x1 - x0) * (w - 2.0 * pad);
    let sy = |y: f64| h - pad - (y - lo) / (hi - lo) * (h - 2.0 * pad);
    let line = |pick: &dyn Fn(&(f64, f64, f64)) -> f64| -> String {
        points
            .iter()
            .map(|p| format!("{:.1},{:.1}", sx(p.0), sy(pick(p))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        r#"<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="best and median fitness per generation">
<line x1="{pad}" y1="{b}" x2="{r}" y2="{b}" class="axis"/><line x1="{pad}" y1="{pad}" x2="{pad}" y2="{b}" class="axis"/>
<text x="{pad}" y="{t}" class="label">{hi:.4}</text><text x="{pad}" y="{bl}" class="label">{lo:.4}</text>
<text x="{r}" y="{bl}" class="label" text-anchor="end">generation {x1}</text>
<polyline points="{best}" class="best"/><polyline points="{median}" class="median"/>
</svg>
<p class="legend"><span class="best">&#9632;</span> best &nbsp; <span class="median">&#9632;</span> median</p>"#,
        b = h - pad,
        r = w - pad,
        t = pad - 8.0,
        bl = h - pad + 16.0,
        best = line(&|p| p.1),
        median = line(&|p| p.2),
    )
}

/// The whole page.
pub fn html(r: &ReportInput<'_>) -> String {
    let mut fame = String::new();
    for (i, f) in r.hall_of_fame.iter().enumerate() {
        fame += &format!(
            "<tr><td>{}</td><td>{:.4}</td><td>{}</td><td><code>{}</code></td><td><details><summary>genome</summary><pre>{}</pre></details></td></tr>\n",
            i + 1,
            f.fitness,
            f.found_at,
            escape(&(r.formula)(&f.genome)),
            escape(&f.genome)
        );
    }
    let mut gens = String::new();
    for s in r.stats {
        gens += &format!(
            "<tr><td>{}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td></tr>\n",
            s.generation, s.best, s.median, s.avg
        );
    }
    let hurdle = r.hurdle.map_or(String::new(), |h| {
        format!(
            "<li>hurdle: {} passed, {} stopped, {} failed after the first seed</li>",
            h.passed, h.stopped, h.failed
        )
    });
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>ncpc search report ({protocol})</title>
<style>
:root {{ color-scheme: light dark; --fg: #1b1f24; --bg: #ffffff; --muted: #5f6b76; --best: #0b6bcb; --median: #c2410c; --rule: #d0d7de; }}
@media (prefers-color-scheme: dark) {{ :root {{ --fg: #e6edf3; --bg: #0d1117; --muted: #8b949e; --best: #58a6ff; --median: #f0883e; --rule: #30363d; }} }}
body {{ font: 15px/1.5 system-ui, sans-serif; color: var(--fg); background: var(--bg); max-width: 960px; margin: 2rem auto; padding: 0 1rem; }}
h1 {{ font-size: 1.4rem; }} h2 {{ font-size: 1.1rem; margin-top: 2rem; }}
table {{ border-collapse: collapse; width: 100%; }} td, th {{ border-bottom: 1px solid var(--rule); padding: .3rem .5rem; text-align: left; vertical-align: top; }}
code, pre {{ font: 13px/1.4 ui-monospace, monospace; white-space: pre-wrap; word-break: break-all; }}
.chart {{ width: 100%; max-width: 640px; }} .axis {{ stroke: var(--muted); }} .label {{ fill: var(--muted); font-size: 11px; }}
polyline {{ fill: none; stroke-width: 2; }} polyline.best {{ stroke: var(--best); }} polyline.median {{ stroke: var(--median); }} polyline.third {{ stroke: var(--muted); stroke-dasharray: 4 3; }}
span.best {{ color: var(--best); }} span.median {{ color: var(--median); }} span.third {{ color: var(--muted); }} .muted {{ color: var(--muted); }}
</style></head><body>
<h1>Search report <span class="muted">({protocol} protocol)</span></h1>
<ul>
<li>{evaluations} candidates in {seconds:.1} s, {trained} trained</li>
<li>functional-equivalence cache: {hash} by IR hash, {fp} by fingerprint, {deg} degenerate rejected</li>
{hurdle}
</ul>
<h2>Fitness per generation</h2>
{chart}
{transfer}{curves}<h2>Hall of fame</h2>
<table><thead><tr><th>#</th><th>fitness</th><th>found at</th><th>formula</th><th></th></tr></thead><tbody>
{fame}</tbody></table>
<h2>Generations</h2>
<table><thead><tr><th>generation</th><th>best</th><th>median</th><th>mean</th></tr></thead><tbody>
{gens}</tbody></table>
</body></html>
"#,
        protocol = escape(r.protocol),
        evaluations = r.evaluations,
        seconds = r.seconds,
        trained = r.trained,
        hash = r.fec.hash_hits,
        fp = r.fec.fingerprint_hits,
        deg = r.fec.degenerate,
        chart = chart(r.stats),
        transfer = r
            .transfer
            .map_or(String::new(), |t| transfer_section(t, r.formula)),
        curves = if r.curves.is_empty() {
            String::new()
        } else {
            format!(
                "<h2>Accuracy during training <span class=\"muted\">(best genome and baselines, mean over seeds)</span></h2>\n{}",
                curves_chart(r.curves)
            )
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genome_text_is_escaped() {
        assert_eq!(escape("<b>&'\""), "&lt;b&gt;&amp;&#39;&quot;");
    }
}
