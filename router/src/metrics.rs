//! `GET /metrics`: the router's figures in the Prometheus text format: requests by route and
//! status, refusals by code, assignments, reports by outcome, MOR credited, database and chain
//! calls with the time they took, and the wait queues.

use std::{
    collections::BTreeMap,
    fmt::Write,
    sync::{
        Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use alloy::primitives::U256;

use crate::queue::QueueFigures;

/// Calls of one kind and the time they took.
#[derive(Debug, Default)]
pub(crate) struct Timing {
    calls: AtomicU64,
    nanos: AtomicU64,
}

impl Timing {
    pub(crate) fn add(&self, took: Duration) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.nanos.fetch_add(
            u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    fn read(&self) -> (u64, f64) {
        (
            self.calls.load(Ordering::Relaxed),
            self.nanos.load(Ordering::Relaxed) as f64 / 1e9,
        )
    }
}

/// The router's counters, shared by every request.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    refusals: Mutex<BTreeMap<&'static str, u64>>,
    reports: Mutex<BTreeMap<String, u64>>,
    credited_wei: Mutex<U256>,
    assignments: AtomicU64,
    /// Every store call (`AppState::store`), queueing for the connection included.
    pub(crate) db: Timing,
    /// Every call the chain view makes to the node.
    pub(crate) chain: Timing,
    /// Every step of the chain index to a newer block (`chain_index/`), its calls included.
    pub(crate) index: Timing,
    /// Liveness challenges sent to providers (one may serve several requests: `select/liveness.rs`).
    pub(crate) liveness: Timing,
    /// Requests for receipts sent to providers (each for a batch of sessions: `receipts.rs`).
    pub(crate) receipts: Timing,
    /// The block the chain index was last taken at.
    pub(crate) index_block: AtomicU64,
    /// Reorganisations the chain index found.
    pub(crate) index_reorgs: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Metrics {
    /// One answered request: its route, status and, when refused, the refusal's code.
    pub(crate) fn request(&self, route: &str, status: u16, refusal: Option<&'static str>) {
        *lock(&self.requests)
            .entry((route.to_string(), status))
            .or_default() += 1;
        if let Some(code) = refusal {
            *lock(&self.refusals).entry(code).or_default() += 1;
        }
    }

    /// One signed assignment.
    pub(crate) fn assigned(&self) {
        self.assignments.fetch_add(1, Ordering::Relaxed);
    }

    /// One recorded report, its outcome and what it credited (wei).
    pub(crate) fn reported(&self, outcome: &str, amount: U256) {
        *lock(&self.reports).entry(outcome.to_string()).or_default() += 1;
        let mut credited = lock(&self.credited_wei);
        *credited = credited.saturating_add(amount);
    }
}

/// Writes one metric's HELP and TYPE lines.
fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A figure without labels: its header and its one line.
fn single(out: &mut String, name: &str, kind: &str, help: &str, value: &AtomicU64) {
    header(out, name, kind, help);
    let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
}

/// Renders every figure: the router's counters, then the queue's depth per model (and in all)
/// and what became of the requests that waited.
pub(crate) fn render(queue: &QueueFigures, metrics: &Metrics) -> String {
    let mut out = String::new();
    header(
        &mut out,
        "morpheus_router_requests_total",
        "counter",
        "Requests answered, by route and status.",
    );
    for ((route, status), n) in lock(&metrics.requests).iter() {
        let _ = writeln!(
            out,
            "morpheus_router_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
        );
    }
    header(
        &mut out,
        "morpheus_router_refusals_total",
        "counter",
        "Requests refused, by the error code of the answer.",
    );
    for (code, n) in lock(&metrics.refusals).iter() {
        let _ = writeln!(out, "morpheus_router_refusals_total{{code=\"{code}\"}} {n}");
    }
    single(
        &mut out,
        "morpheus_router_assignments_total",
        "counter",
        "Assignments signed.",
        &metrics.assignments,
    );
    header(
        &mut out,
        "morpheus_router_reports_total",
        "counter",
        "Usage reports recorded, by outcome.",
    );
    for (outcome, n) in lock(&metrics.reports).iter() {
        let _ = writeln!(
            out,
            "morpheus_router_reports_total{{outcome=\"{outcome}\"}} {n}"
        );
    }
    header(
        &mut out,
        "morpheus_router_credited_mor_total",
        "counter",
        "MOR credited to providers by this process's reports.",
    );
    let credited = *lock(&metrics.credited_wei);
    let _ = writeln!(
        out,
        "morpheus_router_credited_mor_total {}",
        f64::from(credited) / 1e18
    );
    for (name, what, timing) in [
        ("db", "Database calls", &metrics.db),
        ("chain", "Calls to the chain's node", &metrics.chain),
        (
            "index",
            "Steps of the chain index to a newer block",
            &metrics.index,
        ),
        (
            "liveness",
            "Liveness challenges sent to providers",
            &metrics.liveness,
        ),
        (
            "receipts",
            "Requests for receipts sent to providers, each for a batch of sessions",
            &metrics.receipts,
        ),
    ] {
        let (calls, seconds) = timing.read();
        header(
            &mut out,
            &format!("morpheus_router_{name}_calls_total"),
            "counter",
            &format!("{what}."),
        );
        let _ = writeln!(out, "morpheus_router_{name}_calls_total {calls}");
        header(
            &mut out,
            &format!("morpheus_router_{name}_seconds_total"),
            "counter",
            &format!("{what}: seconds they took in all."),
        );
        let _ = writeln!(out, "morpheus_router_{name}_seconds_total {seconds}");
    }
    single(
        &mut out,
        "morpheus_router_index_block",
        "gauge",
        "The block the chain index holds the registry's facts of.",
        &metrics.index_block,
    );
    single(
        &mut out,
        "morpheus_router_index_reorgs_total",
        "counter",
        "Reorganisations of the chain the index found and indexed again from their fork.",
        &metrics.index_reorgs,
    );
    let total: usize = queue.depth.iter().map(|(_, n)| n).sum();
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "# HELP morpheus_router_queue_depth Requests waiting for a provider's place, by model.\n\
         # TYPE morpheus_router_queue_depth gauge"
    );
    for (model, n) in &queue.depth {
        let _ = writeln!(out, "morpheus_router_queue_depth{{model=\"{model}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP morpheus_router_queue_depth_total Requests waiting for a provider's place.\n\
         # TYPE morpheus_router_queue_depth_total gauge\n\
         morpheus_router_queue_depth_total {total}"
    );
    for (name, help, value) in [
        (
            "morpheus_router_queue_served_total",
            "Requests assigned after waiting in the queue.",
            queue.served_after_wait,
        ),
        (
            "morpheus_router_queue_timeouts_total",
            "Requests refused after waiting the whole queue time.",
            queue.timed_out,
        ),
        (
            "morpheus_router_queue_refused_full_total",
            "Requests refused at once because the queue was full.",
            queue.refused_full,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use alloy::primitives::B256;

    use super::*;

    #[test]
    fn every_figure_is_rendered_and_depth_is_per_model_and_in_all() {
        let model = B256::repeat_byte(0xab);
        let metrics = Metrics::default();
        metrics.request("/v1/compute", 429, Some("rate_limited"));
        metrics.reported(
            "credited",
            U256::from(5u64) * U256::from(10u64).pow(U256::from(17)),
        );
        metrics.db.add(Duration::from_millis(3));
        let text = render(
            &QueueFigures {
                depth: vec![(model, 2)],
                served_after_wait: 3,
                timed_out: 1,
                refused_full: 0,
            },
            &metrics,
        );
        assert!(
            text.contains(
                "morpheus_router_requests_total{route=\"/v1/compute\",status=\"429\"} 1\n"
            )
        );
        assert!(text.contains("morpheus_router_refusals_total{code=\"rate_limited\"} 1\n"));
        assert!(text.contains("morpheus_router_reports_total{outcome=\"credited\"} 1\n"));
        assert!(text.contains("morpheus_router_credited_mor_total 0.5\n"));
        assert!(text.contains("morpheus_router_db_calls_total 1\n"));
        assert!(text.contains("morpheus_router_db_seconds_total 0.003\n"));
        assert!(text.contains(&format!(
            "morpheus_router_queue_depth{{model=\"{model}\"}} 2\n"
        )));
        assert!(text.contains("morpheus_router_queue_depth_total 2\n"));
        assert!(text.contains("morpheus_router_queue_served_total 3\n"));
        assert!(text.contains("morpheus_router_queue_timeouts_total 1\n"));
        assert!(text.contains("# TYPE morpheus_router_queue_refused_full_total counter\n"));
    }
}
