//! Continuous batching.
//!
//! Between two decode steps, waiting requests join (their prompt is run into a free slot and their
//! first token sampled); then one step decodes the next token of every running sequence in a
//! single run. Sequences that finish, or whose client went away, leave the batch after the step
//! and free their slot for the next request.

use std::{collections::HashSet, sync::Arc, time::Instant};

use ort::value::DynValue;
use tokenizers::Tokenizer;
use tokio::sync::mpsc::{self, error::TryRecvError};
use tracing::{debug, error, info};

use super::{
    Completion, Event, FinishReason, Job, decoder::Decoder, detok::Detokenizer, sampler::Sampler,
    stop::StopMatcher,
};
use crate::{Result, metrics::Metrics};

/// A running sequence.
struct Seq {
    job: Job,
    /// Per-sequence cache (concat layout); empty with the shared layout (the slot is the index).
    past: Vec<DynValue>,
    /// Positions in the cache.
    cached: usize,
    /// Last sampled token, fed at the next step.
    last: u32,
    generated: u32,
    /// Tokens generated since the last text sent (held back by the detokenizer or a stop check).
    unsent: u32,
    sampler: Sampler,
    detok: Detokenizer,
    stop: StopMatcher,
    ttft: std::time::Duration,
}

enum Outcome {
    Running,
    Finished(FinishReason),
    Cancelled,
}

pub(crate) struct Scheduler {
    decoder: Decoder,
    tokenizer: Tokenizer,
    eos: HashSet<u32>,
    rx: mpsc::Receiver<Job>,
    metrics: Arc<Metrics>,
    max_batch: usize,
    max_context: usize,
    active: Vec<Seq>,
}

impl Scheduler {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        decoder: Decoder,
        tokenizer: Tokenizer,
        eos: HashSet<u32>,
        rx: mpsc::Receiver<Job>,
        metrics: Arc<Metrics>,
        max_batch: usize,
        max_context: usize,
    ) -> Self {
        Self {
            decoder,
            tokenizer,
            eos,
            rx,
            metrics,
            max_batch,
            max_context,
            active: Vec::new(),
        }
    }

    pub(crate) fn run(mut self) {
        let mut open = true;
        loop {
            while open && self.active.len() < self.max_batch {
                let job = if self.active.is_empty() {
                    match self.rx.blocking_recv() {
                        Some(job) => job,
                        None => {
                            open = false;
                            break;
                        }
                    }
                } else {
                    match self.rx.try_recv() {
                        Ok(job) => job,
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            open = false;
                            break;
                        }
                    }
                };
                self.metrics.queue_left();
                self.admit(job);
            }
            if self.active.is_empty() {
                if open {
                    continue;
                }
                break;
            }
            if let Err(e) = self.step() {
                error!(target: "worker::engine", error = %e, "decode step failed; failing the batch");
                for seq in self.active.drain(..) {
                    let _ = seq
                        .job
                        .events
                        .send(Event::Failed("inference failed".into()));
                }
            }
            self.metrics.set_batch_size(self.active.len());
        }
        info!(target: "worker::engine", "engine stopped");
    }

    /// Runs the prompt of `job` into the next free slot and samples its first token.
    fn admit(&mut self, job: Job) {
        if job.events.is_closed() {
            self.metrics.request_finished("cancelled");
            return;
        }
        let started = Instant::now();
        let slot = self.active.len();
        let mut past = Vec::new();
        let prompt = job.request.prompt.clone();
        let result = if self.decoder.kv.is_some() {
            self.decoder.run_slots(slot, &[(0, &prompt)])
        } else {
            self.decoder.run_concat(&mut past, 0, &prompt)
        };
        let logits = match result {
            Ok(l) => l,
            Err(e) => {
                error!(target: "worker::engine", error = %e, "prompt run failed");
                let _ = job.events.send(Event::Failed("inference failed".into()));
                self.metrics.request_finished("error");
                return;
            }
        };
        let secs = started.elapsed().as_secs_f64();
        self.metrics.prompt_done(prompt.len(), secs);
        let mut seq = Seq {
            sampler: Sampler::new(job.request.sampling),
            stop: StopMatcher::new(job.request.stop.clone()),
            ttft: job.submitted.elapsed(),
            job,
            past,
            cached: prompt.len(),
            last: 0,
            generated: 0,
            unsent: 0,
            detok: Detokenizer::default(),
        };
        self.metrics.first_token(seq.ttft.as_secs_f64());
        debug!(target: "worker::engine", slot, prompt = prompt.len(), ms = (secs * 1000.0) as u64, "sequence joined");
        let tok = seq.sampler.sample(&logits);
        match accept(&self.tokenizer, &self.eos, self.max_context, &mut seq, tok) {
            Outcome::Running => self.active.push(seq),
            Outcome::Finished(reason) => self.finish(seq, reason),
            Outcome::Cancelled => self.metrics.request_finished("cancelled"),
        }
    }

    /// One decode step for every running sequence, then the finished ones leave.
    fn step(&mut self) -> Result<()> {
        let started = Instant::now();
        let n = self.active.len();
        let vocab = self.decoder.vocab;
        let logits = if self.decoder.kv.is_some() {
            let lasts: Vec<[u32; 1]> = self.active.iter().map(|s| [s.last]).collect();
            let rows: Vec<(usize, &[u32])> = self
                .active
                .iter()
                .zip(&lasts)
                .map(|(s, l)| (s.cached, l.as_slice()))
                .collect();
            self.decoder.run_slots(0, &rows)?
        } else {
            let mut all = Vec::with_capacity(n * vocab);
            for seq in &mut self.active {
                all.extend(
                    self.decoder
                        .run_concat(&mut seq.past, seq.cached, &[seq.last])?,
                );
            }
            all
        };
        self.metrics.decode_step(n, started.elapsed().as_secs_f64());
        let mut outcomes = Vec::with_capacity(n);
        for (i, seq) in self.active.iter_mut().enumerate() {
            seq.cached += 1;
            let tok = seq.sampler.sample(&logits[i * vocab..(i + 1) * vocab]);
            outcomes.push(accept(
                &self.tokenizer,
                &self.eos,
                self.max_context,
                seq,
                tok,
            ));
        }
        // Leave from the back so a swap only ever moves a sequence that stays.
        for i in (0..n).rev() {
            match outcomes[i] {
                Outcome::Running => continue,
                Outcome::Finished(reason) => {
                    let seq = self.remove(i);
                    self.finish(seq, reason);
                }
                Outcome::Cancelled => {
                    let seq = self.remove(i);
                    debug!(target: "worker::engine", generated = seq.generated, "client gone; slot freed");
                    self.metrics.request_finished("cancelled");
                }
            }
        }
        Ok(())
    }

    /// Takes sequence `i` out of the batch, keeping slots `0..n` dense.
    fn remove(&mut self, i: usize) -> Seq {
        let last = self.active.len() - 1;
        if i != last
            && let Some(kv) = self.decoder.kv.as_mut()
        {
            kv.move_slot(last, i, self.active[last].cached);
        }
        self.active.swap_remove(i)
    }

    fn finish(&mut self, mut seq: Seq, finish: FinishReason) {
        let rest = seq.stop.flush();
        if !rest.is_empty() {
            let tokens = std::mem::take(&mut seq.unsent);
            let _ = seq.job.events.send(Event::Text { text: rest, tokens });
        }
        let done = Completion {
            finish,
            prompt_tokens: seq.job.request.prompt.len() as u32,
            completion_tokens: seq.generated,
            ttft: seq.ttft,
        };
        self.metrics.completion_tokens(seq.generated as usize);
        self.metrics.request_finished(finish.as_str());
        let _ = seq.job.events.send(Event::Done(done));
    }
}

/// Handles a sampled token: text out, stop checks.
fn accept(
    tokenizer: &Tokenizer,
    eos: &HashSet<u32>,
    max_context: usize,
    seq: &mut Seq,
    tok: u32,
) -> Outcome {
    if seq.job.events.is_closed() {
        return Outcome::Cancelled;
    }
    if !seq.job.request.ignore_eos && eos.contains(&tok) {
        return Outcome::Finished(FinishReason::Stop);
    }
    seq.generated += 1;
    seq.unsent += 1;
    seq.last = tok;
    let delta = seq.detok.push(tokenizer, tok);
    let (text, stopped) = seq.stop.push(&delta);
    if !text.is_empty() {
        let tokens = std::mem::take(&mut seq.unsent);
        if seq.job.events.send(Event::Text { text, tokens }).is_err() {
            return Outcome::Cancelled;
        }
    }
    if stopped {
        seq.stop = StopMatcher::default();
        return Outcome::Finished(FinishReason::Stop);
    }
    if seq.generated >= seq.job.request.max_new_tokens || seq.cached + 1 >= max_context {
        return Outcome::Finished(FinishReason::Length);
    }
    Outcome::Running
}
