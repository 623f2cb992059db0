//! The pool's metrics in Prometheus' text format (`GET /metrics`), kept with the `prometheus`
//! crate: requests by endpoint and status with their latency, tasks issued, submissions and
//! their outcomes, consensus formed, the ledger's total, connections refused and internal
//! errors.
//! Each server keeps its own registry (replicas are scraped one by one).

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
    TextEncoder,
};

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    /// Requests answered, by endpoint (the route's pattern) and status code.
    pub requests: IntCounterVec,
    /// Time to answer, by endpoint.
    pub latency: HistogramVec,
    /// Tasks issued, by task type.
    pub tasks_issued: IntCounterVec,
    /// Evolution submissions accepted, by outcome (`new`, `duplicate`).
    pub evolutions: IntCounterVec,
    /// Evaluations stored.
    pub evaluations: IntCounter,
    /// Consensus scores formed.
    pub consensus_formed: IntCounter,
    /// The ledger's total (set from the database at each scrape).
    pub ledger_alpha: Gauge,
    /// Connections answered 503 for being over a connection cap.
    pub connections_refused: IntCounter,
    /// Requests that failed inside the server (500) or gave up on a conflicting
    /// transaction (503).
    pub db_errors: IntCounter,
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric");
    r.register(Box::new(c.clone())).expect("registered once");
    c
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("a valid metric");
    r.register(Box::new(c.clone())).expect("registered once");
    c
}

impl Metrics {
    /// A fresh registry with every metric at zero.
    pub fn new() -> Metrics {
        let r = Registry::new();
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "ncpc_pool_request_seconds",
                "Time to answer a request, by endpoint",
            )
            .buckets(vec![
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0, 5.0,
            ]),
            &["endpoint"],
        )
        .expect("a valid metric");
        r.register(Box::new(latency.clone()))
            .expect("registered once");
        Metrics {
            requests: counter_vec(
                &r,
                "ncpc_pool_requests_total",
                "Requests answered, by endpoint and status",
                &["endpoint", "status"],
            ),
            latency,
            tasks_issued: counter_vec(
                &r,
                "ncpc_pool_tasks_issued_total",
                "Tasks issued, by task type",
                &["task_type"],
            ),
            evolutions: counter_vec(
                &r,
                "ncpc_pool_evolutions_total",
                "Evolution submissions accepted, by outcome",
                &["outcome"],
            ),
            evaluations: counter(&r, "ncpc_pool_evaluations_total", "Evaluations stored"),
            consensus_formed: counter(
                &r,
                "ncpc_pool_consensus_formed_total",
                "Consensus scores formed",
            ),
            ledger_alpha: {
                let g = Gauge::new("ncpc_pool_ledger_alpha", "Alpha in the ledger, in all")
                    .expect("a valid metric");
                r.register(Box::new(g.clone())).expect("registered once");
                g
            },
            connections_refused: counter(
                &r,
                "ncpc_pool_connections_refused_total",
                "Connections answered 503 for being over a connection cap",
            ),
            db_errors: counter(
                &r,
                "ncpc_pool_internal_errors_total",
                "Requests answered 500 or 503 (a failure inside the server or its database)",
            ),
            registry: r,
        }
    }

    /// Every metric in Prometheus' text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_show_in_the_text_format() {
        let m = Metrics::new();
        m.requests
            .with_label_values(&["/api/v1/leaderboard", "200"])
            .inc();
        m.ledger_alpha.set(16.0);
        m.latency
            .with_label_values(&["/api/v1/leaderboard"])
            .observe(0.001);
        let text = m.render();
        assert!(
            text.contains(
                r#"ncpc_pool_requests_total{endpoint="/api/v1/leaderboard",status="200"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains("ncpc_pool_ledger_alpha 16"), "{text}");
        assert!(
            text.contains("# TYPE ncpc_pool_request_seconds histogram"),
            "{text}"
        );
    }
}
