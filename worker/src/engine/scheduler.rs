//! Continuous batching.
//!
//! Between two decode steps, waiting requests join (their prompts are run into free slots, those
//! of similar lengths together in one run, and their first tokens sampled); then one step decodes
//! the next token of every running sequence in a single run. Sequences that finish, or whose client went away, leave the batch after the step
//! and free their slot for the next request.

use std::{
    collections::{HashSet, VecDeque},
    sync::Arc,
    time::Instant,
};

use ort::value::DynValue;

use tokio::sync::mpsc::{self, error::TryRecvError};
use tracing::{debug, error, info};

use super::{
    Completion, Event, FinishReason, Job, TokenLogprob,
    constrain::{Guide, Vocab},
    decoder::Decoder,
    detok::Detokenizer,
    prefix::PrefixCache,
    sampler::Sampler,
    stop::StopMatcher,
};
use crate::{Result, metrics::Metrics, model::TextTokenizer};

/// Prompts prefilled together may run at most this many times their real tokens (the rest is
/// padding to the longest).
const PAD_FACTOR: usize = 2;

/// Tokens (padding included) of prompts prefilled together. Past about this many rows a run
/// is bound by arithmetic, not by reading the weights, so a larger group only makes its first
/// sequence wait for the others: measured with `morpheus-worker bench` on SmolLM2 (2 cores,
/// 16 requests at once), 8-token prompts in groups of 4 gave a mean TTFT of 78% of one at a
/// time, all 16 together 110%; 32-token prompts gained nothing from any grouping.
const PREFILL_TOKENS: usize = 32;

/// A running sequence.
struct Seq {
    job: Job,
    /// Per-sequence cache (concat layout); empty with the shared layout (the slot is the index).
    past: Vec<DynValue>,
    /// Positions in the cache.
    cached: usize,
    /// Last sampled token, fed at the next step.
    last: u32,
    /// The prompt and the tokens generated (what the slot's cache holds, up to `cached`).
    tokens: Vec<u32>,
    generated: u32,
    /// Tokens generated since the last text sent (held back by the detokenizer or a stop check).
    unsent: u32,
    /// Their log-probabilities, when asked for.
    unsent_logprobs: Vec<TokenLogprob>,
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
    tokenizer: Arc<TextTokenizer>,
    eos: Arc<HashSet<u32>>,
    vocab: Arc<Vocab>,
    rx: mpsc::Receiver<Job>,
    metrics: Arc<Metrics>,
    max_batch: usize,
    max_context: usize,
    active: Vec<Seq>,
    /// What the free slots hold (`None`: the prefix cache is off, or the layout has no slots).
    prefix: Option<PrefixCache>,
    /// Prefill waiting prompts together (`EngineConfig::batch_prefill`).
    batch_prefill: bool,
    /// Most tokens of one prompt run at once (`EngineConfig::prompt_chunk`): without a bound,
    /// one 1,000-token prompt held ONNX Runtime's buffers at that size for good (SmolLM2 served
    /// at 1,511 MB resident, 849 MB with pieces of 256, 773 MB with 128); past a hundred rows a
    /// run is bound by arithmetic, so the pieces cost no speed to speak of.
    prompt_chunk: usize,
}

impl Scheduler {
    pub(crate) fn new(
        decoder: Decoder,
        tokenizer: Arc<TextTokenizer>,
        eos: Arc<HashSet<u32>>,
        vocab: Arc<Vocab>,
        rx: mpsc::Receiver<Job>,
        metrics: Arc<Metrics>,
        (max_batch, max_context, prefix_cache, batch_prefill, prompt_chunk): (
            usize,
            usize,
            bool,
            bool,
            usize,
        ),
    ) -> Self {
        let prefix = decoder
            .kv
            .as_ref()
            .filter(|_| prefix_cache)
            .map(|kv| PrefixCache::new(kv.slots));
        Self {
            decoder,
            tokenizer,
            eos,
            vocab,
            rx,
            metrics,
            max_batch,
            max_context,
            active: Vec::new(),
            prefix,
            batch_prefill,
            prompt_chunk,
        }
    }

    pub(crate) fn run(mut self) {
        let mut open = true;
        loop {
            let mut joining = Vec::new();
            while open && self.active.len() + joining.len() < self.max_batch {
                let job = if self.active.is_empty() && joining.is_empty() {
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
                joining.push(job);
            }
            self.admit(joining);
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

    /// Runs the prompts of `jobs` into the next free slots and samples their first tokens:
    /// prompts of similar lengths together, in one run (see [`Scheduler::take_group`]).
    fn admit(&mut self, jobs: Vec<Job>) {
        let mut queue: VecDeque<Job> = jobs
            .into_iter()
            .filter(|job| {
                let gone = job.events.is_closed();
                if gone {
                    self.metrics.request_finished("cancelled");
                }
                !gone
            })
            .collect();
        while !queue.is_empty() {
            let group = self.take_group(&mut queue);
            self.admit_group(group);
        }
    }

    /// The next jobs of `queue` to prefill together: one, then more while the padding to the
    /// longest prompt keeps the tokens run within [`PAD_FACTOR`] times the real ones and
    /// [`PREFILL_TOKENS`] in all (with the shared cache layout, and prompts of one length only
    /// on decoders without `last_index`).
    fn take_group(&self, queue: &mut VecDeque<Job>) -> Vec<Job> {
        let Some(first) = queue.pop_front() else {
            return Vec::new();
        };
        let len0 = first.request.prompt.len();
        let mut group = vec![first];
        if self.decoder.kv.is_none() || !self.batch_prefill {
            return group;
        }
        let (mut longest, mut sum) = (len0, len0);
        while let Some(next) = queue.front() {
            let len = next.request.prompt.len();
            let padded = longest.max(len) * (group.len() + 1);
            let fits = if self.decoder.mixed_lengths() {
                padded <= PAD_FACTOR * (sum + len)
            } else {
                len == len0
            };
            if !fits || padded > PREFILL_TOKENS {
                break;
            }
            longest = longest.max(len);
            sum += len;
            group.extend(queue.pop_front());
        }
        group
    }

    /// Prefills `group` into the free slots from `active.len()` on (fresh prompts in one run)
    /// and samples each one's first token; sequences done at once leave as after a step.
    fn admit_group(&mut self, group: Vec<Job>) {
        let started = Instant::now();
        let first = self.active.len();
        let n = group.len();
        let prompts: Vec<Vec<u32>> = group.iter().map(|j| j.request.prompt.clone()).collect();
        let reused: Vec<usize> = prompts
            .iter()
            .enumerate()
            .map(|(i, p)| self.place(first + i, p))
            .collect();
        let mut past = Vec::new();
        let result = if self.decoder.kv.is_some() {
            let rows: Vec<(usize, &[u32])> = reused
                .iter()
                .zip(&prompts)
                .map(|(&r, p)| (r, &p[r..]))
                .collect();
            // ONNX Runtime's attention runs several rows of several tokens only as first
            // prompts: rows continuing a reused prefix run alone, the others in runs of
            // consecutive slots.
            let mut all = Ok(Vec::with_capacity(n * self.decoder.vocab));
            let mut at = 0;
            while at < n
                && let Ok(out) = all.as_mut()
            {
                let len = if rows[at].0 > 0 {
                    1
                } else {
                    rows[at..].iter().take_while(|r| r.0 == 0).count()
                };
                let run = if len == 1 {
                    self.run_row(first + at, rows[at].0, rows[at].1)
                } else {
                    self.decoder.run_slots(first + at, &rows[at..at + len])
                };
                match run {
                    Ok(logits) => out.extend(logits),
                    Err(e) => all = Err(e),
                }
                at += len;
            }
            all
        } else {
            self.decoder.run_concat(&mut past, 0, &prompts[0])
        };
        let mut logits = match result {
            Ok(l) => l,
            Err(e) => {
                error!(target: "worker::engine", error = %e, prompts = n, "prompt run failed");
                for (i, job) in group.into_iter().enumerate() {
                    if let Some(p) = self.prefix.as_mut() {
                        p.forget(first + i);
                    }
                    let _ = job.events.send(Event::Failed("inference failed".into()));
                    self.metrics.request_finished("error");
                }
                return;
            }
        };
        let secs = started.elapsed().as_secs_f64();
        let run: usize = prompts.iter().zip(&reused).map(|(p, r)| p.len() - r).sum();
        self.metrics.prompt_done(run, secs);
        let vocab = self.decoder.vocab;
        let mut outcomes = Vec::with_capacity(n);
        for ((job, prompt), (&reused, row)) in group
            .into_iter()
            .zip(prompts)
            .zip(reused.iter().zip(logits.chunks_exact_mut(vocab)))
        {
            if self.prefix.is_some() {
                self.metrics.prefix_reused(reused, prompt.len());
            }
            let guide = job
                .request
                .grammar
                .clone()
                .map(|g| Guide::new(g, self.vocab.clone(), self.eos.clone()));
            let mut seq = Seq {
                sampler: Sampler::with(
                    job.request.sampling,
                    job.request.shaping.clone(),
                    guide,
                    job.request.logprobs,
                ),
                stop: StopMatcher::new(job.request.stop.clone()),
                ttft: job.submitted.elapsed(),
                job,
                past: std::mem::take(&mut past),
                cached: prompt.len(),
                last: 0,
                tokens: if self.prefix.is_some() {
                    prompt.clone()
                } else {
                    Vec::new()
                },
                generated: 0,
                unsent: 0,
                unsent_logprobs: Vec::new(),
                detok: Detokenizer::default(),
            };
            self.metrics.first_token(seq.ttft.as_secs_f64());
            debug!(target: "worker::engine", slot = first + outcomes.len(), prompt = prompt.len(), reused, prompts = n, ms = (secs * 1000.0) as u64, "sequence joined");
            outcomes.push(accept(
                &self.tokenizer,
                &self.eos,
                self.max_context,
                &mut seq,
                row,
            ));
            self.active.push(seq);
        }
        // As after a step: from the back, so a swap only ever moves a sequence that stays.
        for (i, outcome) in outcomes.into_iter().enumerate().rev() {
            match outcome {
                Outcome::Running => {}
                Outcome::Finished(reason) => {
                    let seq = self.remove(first + i);
                    self.finish(seq, reason);
                }
                Outcome::Cancelled => {
                    self.remove(first + i);
                    self.metrics.request_finished("cancelled");
                }
            }
        }
    }

    /// One decode step for every running sequence, then the finished ones leave.
    fn step(&mut self) -> Result<()> {
        let started = Instant::now();
        let n = self.active.len();
        let vocab = self.decoder.vocab;
        let mut concat = Vec::new();
        let logits = if self.decoder.kv.is_some() {
            let lasts: Vec<[u32; 1]> = self.active.iter().map(|s| [s.last]).collect();
            let rows: Vec<(usize, &[u32])> = self
                .active
                .iter()
                .zip(&lasts)
                .map(|(s, l)| (s.cached, l.as_slice()))
                .collect();
            self.decoder.run_slots_in_place(0, &rows)?
        } else {
            concat.reserve(n * vocab);
            for seq in &mut self.active {
                concat.extend(
                    self.decoder
                        .run_concat(&mut seq.past, seq.cached, &[seq.last])?,
                );
            }
            &mut concat[..]
        };
        self.metrics.decode_step(n, started.elapsed().as_secs_f64());
        let mut outcomes = Vec::with_capacity(n);
        for (seq, row) in self.active.iter_mut().zip(logits.chunks_exact_mut(vocab)) {
            seq.cached += 1;
            outcomes.push(accept(
                &self.tokenizer,
                &self.eos,
                self.max_context,
                seq,
                row,
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

    /// Runs the tokens `new` of the sequence in `slot`, which holds `cached` positions already,
    /// in pieces of at most `prompt_chunk`: the last piece's logits.
    fn run_row(&mut self, slot: usize, cached: usize, new: &[u32]) -> Result<Vec<f32>> {
        let mut at = 0;
        loop {
            let end = (at + self.prompt_chunk).min(new.len());
            let logits = self
                .decoder
                .run_slots(slot, &[(cached + at, &new[at..end])])?;
            if end == new.len() {
                return Ok(logits);
            }
            at = end;
        }
    }

    /// Readies free slot `slot` for `prompt`: the longest prefix of it held by a free slot or
    /// a running sequence copied in (when it is in another slot), the slot's own entry kept
    /// elsewhere when worth it. Returns the positions reused.
    fn place(&mut self, slot: usize, prompt: &[u32]) -> usize {
        let (Some(prefix), Some(kv)) = (self.prefix.as_mut(), self.decoder.kv.as_mut()) else {
            return 0;
        };
        let running: Vec<&[u32]> = self
            .active
            .iter()
            .map(|s| &s.tokens[..s.cached.min(s.tokens.len())])
            .collect();
        let reuse = prefix.find(slot, prompt, &running);
        if let Some(keep) = prefix.make_room(slot, reuse) {
            kv.move_slot(slot, keep.to, keep.len);
        }
        match reuse {
            Some(r) => {
                kv.move_slot(r.from, slot, r.len);
                r.len
            }
            None => 0,
        }
    }

    /// Takes sequence `i` out of the batch, keeping slots `0..n` dense; with the prefix cache
    /// its cache stays in the slot freed at the end.
    fn remove(&mut self, i: usize) -> Seq {
        let last = self.active.len() - 1;
        if let Some(kv) = self.decoder.kv.as_mut() {
            match self.prefix.as_mut() {
                Some(prefix) => {
                    let leaving = &self.active[i];
                    kv.swap_slots(i, last, leaving.cached, self.active[last].cached);
                    prefix.store(last, leaving.tokens[..leaving.cached].to_vec());
                }
                None if i != last => kv.move_slot(last, i, self.active[last].cached),
                None => {}
            }
        }
        self.active.swap_remove(i)
    }

    fn finish(&mut self, mut seq: Seq, finish: FinishReason) {
        let rest = seq.stop.flush();
        if !rest.is_empty() || !seq.unsent_logprobs.is_empty() {
            let _ = seq.job.events.send(Event::Text {
                text: rest,
                tokens: std::mem::take(&mut seq.unsent),
                logprobs: std::mem::take(&mut seq.unsent_logprobs),
            });
        }
        let done = Completion {
            finish,
            prompt_tokens: seq.job.request.prompt.len() as u32,
            completion_tokens: seq.generated,
            ttft: seq.ttft,
        };
        self.metrics.completion_tokens(seq.generated as usize);
        let (guided, masks) = seq.sampler.guided();
        if guided > 0 {
            self.metrics.constrained(guided, masks);
        }
        self.metrics.request_finished(finish.as_str());
        let _ = seq.job.events.send(Event::Done(done));
    }
}

/// Picks the next token from `logits` and handles it: text out, stop checks.
fn accept(
    tokenizer: &TextTokenizer,
    eos: &HashSet<u32>,
    max_context: usize,
    seq: &mut Seq,
    logits: &mut [f32],
) -> Outcome {
    if seq.job.events.is_closed() {
        return Outcome::Cancelled;
    }
    let Some(pick) = seq.sampler.pick(logits) else {
        // Only a vocabulary without some byte of JSON could leave a grammar no token.
        debug!(target: "worker::engine", generated = seq.generated, "no token fits the grammar");
        return Outcome::Finished(FinishReason::Stop);
    };
    let tok = pick.token;
    if !seq.job.request.ignore_eos && eos.contains(&tok) {
        return Outcome::Finished(FinishReason::Stop);
    }
    seq.generated += 1;
    seq.unsent += 1;
    seq.last = tok;
    if !seq.tokens.is_empty() {
        seq.tokens.push(tok);
    }
    seq.unsent_logprobs.extend(pick.logprob);
    let delta = seq.detok.push(tokenizer, tok);
    let (text, stopped) = seq.stop.push(&delta);
    if !text.is_empty() {
        let event = Event::Text {
            text,
            tokens: std::mem::take(&mut seq.unsent),
            logprobs: std::mem::take(&mut seq.unsent_logprobs),
        };
        if seq.job.events.send(event).is_err() {
            return Outcome::Cancelled;
        }
    }
    if stopped || seq.sampler.finished() {
        seq.stop = StopMatcher::default();
        return Outcome::Finished(FinishReason::Stop);
    }
    if seq.generated >= seq.job.request.max_new_tokens || seq.cached + 1 >= max_context {
        return Outcome::Finished(FinishReason::Length);
    }
    Outcome::Running
}
