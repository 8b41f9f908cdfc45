//! Serving metrics, rendered in the Prometheus text format at `GET /metrics`.

use std::{
    fmt::Write,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

/// Upper bounds (seconds) of the time-to-first-token histogram.
const TTFT_BUCKETS: [f64; 10] = [0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Weight of the newest step in the throughput averages.
const EMA: f64 = 0.2;

/// Counters and gauges of one worker.
#[derive(Debug, Default)]
pub struct Metrics {
    prompt_tokens: AtomicU64,
    /// Prompt prefill runs (several prompts may share one).
    prompt_runs: AtomicU64,
    completion_tokens: AtomicU64,
    decode_steps: AtomicU64,
    constrained_tokens: AtomicU64,
    prefix_reused_tokens: AtomicU64,
    prefix_prompt_tokens: AtomicU64,
    constrained_masks: AtomicU64,
    queue_depth: AtomicU64,
    batch_size: AtomicU64,
    inner: Mutex<Inner>,
    provider: Mutex<Option<ProviderFigures>>,
}

/// The provider's figures, set by the automatic claims (`node::auto_claim`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProviderFigures {
    /// MOR the routers owe by their newest vouchers, not yet paid.
    pub owed_mor: f64,
    /// MOR the journal's claims paid.
    pub claimed_mor: f64,
    /// Claims mined.
    pub claims: u64,
    /// Gas they used.
    pub claim_gas: u64,
    /// Unix time of the last claim mined (0: none).
    pub last_claim_at: u64,
}

#[derive(Debug, Default)]
struct Inner {
    requests: Vec<(String, u64)>,
    decode_tps: f64,
    prompt_tps: f64,
    ttft_counts: [u64; TTFT_BUCKETS.len()],
    ttft_sum: f64,
    ttft_count: u64,
}

impl Metrics {
    /// A new, zeroed set.
    pub fn new() -> Self {
        Self::default()
    }

    /// A job entered the queue; returns the new depth. The gauge is the counter itself, so
    /// submitters and the scheduler never overwrite each other's view of it.
    pub(crate) fn queue_entered(&self) -> u64 {
        self.queue_depth.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// A job left the queue (admitted, or refused before it got in); returns the new depth.
    pub(crate) fn queue_left(&self) -> u64 {
        self.queue_depth
            .fetch_sub(1, Ordering::SeqCst)
            .saturating_sub(1)
    }

    pub(crate) fn set_batch_size(&self, n: usize) {
        self.batch_size.store(n as u64, Ordering::Relaxed);
    }

    /// One prefill run of `tokens` prompt tokens (one or several prompts) that took `secs`.
    pub(crate) fn prompt_done(&self, tokens: usize, secs: f64) {
        self.prompt_tokens
            .fetch_add(tokens as u64, Ordering::Relaxed);
        self.prompt_runs.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut m) = self.inner.lock() {
            m.prompt_tps = ema(m.prompt_tps, tokens as f64 / secs.max(1e-9));
        }
    }

    pub(crate) fn decode_step(&self, batch: usize, secs: f64) {
        self.decode_steps.fetch_add(1, Ordering::Relaxed);
        self.set_batch_size(batch);
        if let Ok(mut m) = self.inner.lock() {
            m.decode_tps = ema(m.decode_tps, batch as f64 / secs.max(1e-9));
        }
    }

    /// A prompt of `prompt` tokens joined the batch, `reused` of them from the prefix cache.
    pub(crate) fn prefix_reused(&self, reused: usize, prompt: usize) {
        self.prefix_reused_tokens
            .fetch_add(reused as u64, Ordering::Relaxed);
        self.prefix_prompt_tokens
            .fetch_add(prompt as u64, Ordering::Relaxed);
    }

    /// Tokens picked under a grammar so far, and how many needed the full mask.
    pub fn constrained_counts(&self) -> (u64, u64) {
        (
            self.constrained_tokens.load(Ordering::Relaxed),
            self.constrained_masks.load(Ordering::Relaxed),
        )
    }

    /// A constrained answer ended: its tokens, and how many of them needed the full mask.
    pub(crate) fn constrained(&self, tokens: u64, masks: u64) {
        self.constrained_tokens.fetch_add(tokens, Ordering::Relaxed);
        self.constrained_masks.fetch_add(masks, Ordering::Relaxed);
    }

    pub(crate) fn completion_tokens(&self, n: usize) {
        self.completion_tokens
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn first_token(&self, secs: f64) {
        if let Ok(mut m) = self.inner.lock() {
            for (i, b) in TTFT_BUCKETS.iter().enumerate() {
                if secs <= *b {
                    m.ttft_counts[i] += 1;
                }
            }
            m.ttft_sum += secs;
            m.ttft_count += 1;
        }
    }

    /// Counts a finished request by outcome (`stop`, `length`, `cancelled`, `error`, `refused`).
    pub fn request_finished(&self, outcome: &str) {
        if let Ok(mut m) = self.inner.lock() {
            match m.requests.iter_mut().find(|(k, _)| k == outcome) {
                Some((_, n)) => *n += 1,
                None => m.requests.push((outcome.to_string(), 1)),
            }
        }
    }

    /// Current batch size.
    pub fn batch_size(&self) -> u64 {
        self.batch_size.load(Ordering::Relaxed)
    }

    /// Requests waiting for a slot.
    pub fn queue_depth(&self) -> u64 {
        self.queue_depth.load(Ordering::Relaxed)
    }

    /// Sets the provider's figures (from then on rendered with the rest).
    pub fn set_provider(&self, figures: ProviderFigures) {
        if let Ok(mut p) = self.provider.lock() {
            *p = Some(figures);
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        metric(
            "morpheus_worker_prompt_tokens_total",
            "counter",
            "Prompt tokens processed.",
            self.prompt_tokens.load(Ordering::Relaxed).to_string(),
        );
        metric(
            "morpheus_worker_prompt_runs_total",
            "counter",
            "Prefill runs; prompts that wait together share one.",
            self.prompt_runs.load(Ordering::Relaxed).to_string(),
        );
        metric(
            "morpheus_worker_completion_tokens_total",
            "counter",
            "Tokens generated.",
            self.completion_tokens.load(Ordering::Relaxed).to_string(),
        );
        metric(
            "morpheus_worker_decode_steps_total",
            "counter",
            "Batched decode steps run.",
            self.decode_steps.load(Ordering::Relaxed).to_string(),
        );
        let (reused, prompts) = (
            self.prefix_reused_tokens.load(Ordering::Relaxed),
            self.prefix_prompt_tokens.load(Ordering::Relaxed),
        );
        metric(
            "morpheus_worker_prefix_cache_reused_tokens_total",
            "counter",
            "Prompt tokens whose cache was reused instead of computed.",
            reused.to_string(),
        );
        metric(
            "morpheus_worker_prefix_cache_hit_ratio",
            "gauge",
            "Share of all prompt tokens that the prefix cache held.",
            format!("{:.4}", reused as f64 / (prompts as f64).max(1.0)),
        );
        metric(
            "morpheus_worker_constrained_tokens_total",
            "counter",
            "Tokens picked under a response_format grammar.",
            self.constrained_tokens.load(Ordering::Relaxed).to_string(),
        );
        metric(
            "morpheus_worker_constrained_masks_total",
            "counter",
            "Of those, tokens that needed the grammar's full vocabulary mask (the rest passed the one-token check).",
            self.constrained_masks.load(Ordering::Relaxed).to_string(),
        );
        metric(
            "morpheus_worker_queue_depth",
            "gauge",
            "Requests waiting for a batch slot.",
            self.queue_depth().to_string(),
        );
        metric(
            "morpheus_worker_batch_size",
            "gauge",
            "Sequences in the running batch.",
            self.batch_size().to_string(),
        );
        if let Some(p) = self.provider.lock().ok().and_then(|p| *p) {
            metric(
                "morpheus_worker_owed_mor",
                "gauge",
                "MOR the routers owe by their newest vouchers, not yet claimed.",
                p.owed_mor.to_string(),
            );
            metric(
                "morpheus_worker_claimed_mor_total",
                "counter",
                "MOR paid by this worker's claims.",
                p.claimed_mor.to_string(),
            );
            metric(
                "morpheus_worker_claims_total",
                "counter",
                "Claims mined.",
                p.claims.to_string(),
            );
            metric(
                "morpheus_worker_claim_gas_total",
                "counter",
                "Gas used by the claims mined.",
                p.claim_gas.to_string(),
            );
            metric(
                "morpheus_worker_last_claim_timestamp_seconds",
                "gauge",
                "Unix time of the last claim mined (0: none yet).",
                p.last_claim_at.to_string(),
            );
        }
        let Ok(m) = self.inner.lock() else { return out };
        metric(
            "morpheus_worker_decode_tokens_per_second",
            "gauge",
            "Generated tokens per second over recent decode steps (all sequences).",
            format!("{:.3}", m.decode_tps),
        );
        metric(
            "morpheus_worker_prompt_tokens_per_second",
            "gauge",
            "Prompt tokens per second over recent prompts.",
            format!("{:.3}", m.prompt_tps),
        );
        let _ = writeln!(
            out,
            "# HELP morpheus_worker_requests_total Finished requests by outcome.\n# TYPE morpheus_worker_requests_total counter"
        );
        for (outcome, n) in &m.requests {
            let _ = writeln!(
                out,
                "morpheus_worker_requests_total{{outcome=\"{outcome}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP morpheus_worker_ttft_seconds Time from request to first token.\n# TYPE morpheus_worker_ttft_seconds histogram"
        );
        for (b, n) in TTFT_BUCKETS.iter().zip(m.ttft_counts) {
            let _ = writeln!(out, "morpheus_worker_ttft_seconds_bucket{{le=\"{b}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "morpheus_worker_ttft_seconds_bucket{{le=\"+Inf\"}} {}",
            m.ttft_count
        );
        let _ = writeln!(out, "morpheus_worker_ttft_seconds_sum {:.6}", m.ttft_sum);
        let _ = writeln!(out, "morpheus_worker_ttft_seconds_count {}", m.ttft_count);
        out
    }
}

fn ema(old: f64, new: f64) -> f64 {
    if old == 0.0 {
        new
    } else {
        old * (1.0 - EMA) + new * EMA
    }
}
