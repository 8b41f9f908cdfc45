//! The inference engine: one decoder on its own thread, fed by a bounded queue, serving many
//! sequences at once with continuous batching (see `scheduler`).

pub mod constrain;
mod decoder;
mod detok;
mod kv;
mod logits;
mod prefix;
mod sampler;
mod scheduler;
mod stop;
mod zeroed;

use std::{
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::{Duration, Instant},
};

pub use logits::{SequenceLogits, sequence_logits};
use ort::environment::Environment;
pub(crate) use sampler::SplitMix64;
pub use sampler::{Sampling, Shaping, TokenLogprob};
use tokio::sync::mpsc;
pub use zeroed::resident_bytes as kv_resident_bytes;

use crate::{Error, Result, metrics::Metrics, model::ModelDir, runtime::Device};

/// Engine limits and placement.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Most sequences decoded together (KV slots).
    pub max_batch: usize,
    /// Longest sequence (prompt + completion) a slot holds; capped by the model's context.
    pub max_context: usize,
    /// Intra-op threads of ONNX Runtime.
    pub threads: usize,
    /// Where to run.
    pub device: Device,
    /// Most requests waiting for a slot; beyond it requests are refused as busy.
    pub max_queue: usize,
    /// Activation quantisation of the worker's own matmul kernels (`kernels`).
    pub activations: crate::kernels::Activations,
    /// Keep the cache of finished sequences in free slots and reuse it for prompts that start
    /// the same way (`prefix`). Off, no request's timing can tell what another's prompt was.
    pub prefix_cache: bool,
    /// Prefill prompts that wait together in one run (`scheduler`); off, one at a time (the
    /// benchmark compares the two).
    pub batch_prefill: bool,
    /// Most tokens of one prompt run at once: a longer one runs in pieces, each continuing the
    /// cache of the one before. ONNX Runtime keeps its buffers at the size of the largest run it
    /// has made, so this bounds the worker's memory above its weights and cache (`scheduler`).
    pub prompt_chunk: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_batch: 16,
            max_context: 2048,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            device: Device::Auto,
            max_queue: 256,
            activations: Default::default(),
            prefix_cache: true,
            batch_prefill: true,
            prompt_chunk: 128,
        }
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    /// Prompt token ids (chat template applied).
    pub prompt: Vec<u32>,
    /// Most tokens to generate.
    pub max_new_tokens: u32,
    /// How to pick tokens.
    pub sampling: Sampling,
    /// Generation stops before any of these strings.
    pub stop: Vec<String>,
    /// Generate exactly `max_new_tokens`, through end-of-sequence tokens (benchmarks).
    pub ignore_eos: bool,
    /// Bias and penalties applied to the logits.
    pub shaping: Shaping,
    /// The answer must follow this grammar (`response_format`); it ends when the grammar does.
    pub grammar: Option<Arc<constrain::Grammar>>,
    /// Report each token's log-probability and this many alternatives (`logprobs`).
    pub logprobs: Option<usize>,
}

impl GenerateRequest {
    /// `max_new_tokens` of `prompt`, sampled as `sampling` says, with nothing else asked.
    pub fn new(prompt: Vec<u32>, max_new_tokens: u32, sampling: Sampling) -> Self {
        Self {
            prompt,
            max_new_tokens,
            sampling,
            stop: Vec::new(),
            ignore_eos: false,
            shaping: Shaping::default(),
            grammar: None,
            logprobs: None,
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// End-of-sequence token or a stop sequence.
    Stop,
    /// The token limit.
    Length,
}

impl FinishReason {
    /// OpenAI's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
        }
    }
}

/// The end of a generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    /// Why it ended.
    pub finish: FinishReason,
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Generated tokens.
    pub completion_tokens: u32,
    /// Time from submission to the first token.
    pub ttft: Duration,
}

/// What the engine sends back for one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// New text, and how many generated tokens it completes (tokens held back by the
    /// detokenizer or a stop-sequence check are counted with the text they end up in).
    Text {
        /// The text.
        text: String,
        /// Tokens it accounts for.
        tokens: u32,
        /// Those tokens' log-probabilities, when asked for.
        logprobs: Vec<TokenLogprob>,
    },
    /// Generation ended.
    Done(Completion),
    /// Generation failed.
    Failed(String),
}

/// Facts about the running engine.
#[derive(Debug, Clone)]
pub struct EngineInfo {
    /// `cpu` or `cuda`.
    pub device: &'static str,
    /// Longest sequence (prompt + completion) served.
    pub max_context: usize,
    /// Most sequences decoded together.
    pub max_batch: usize,
}

pub(crate) struct Job {
    request: GenerateRequest,
    events: mpsc::UnboundedSender<Event>,
    submitted: Instant,
}

/// Handle to the engine thread; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    metrics: Arc<Metrics>,
    info: EngineInfo,
    vocab: Arc<constrain::Vocab>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("info", &self.inner.info)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Loads the decoder of `model` and starts the engine thread.
    pub fn start(
        env: &Arc<Environment>,
        model: &ModelDir,
        cfg: &EngineConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Self> {
        let decoder = decoder::Decoder::load(env, &model.model_path(), &model.meta, cfg)?;
        let max_context = decoder
            .slot_len()
            .unwrap_or(cfg.max_context)
            .min(model.meta.context_length);
        let info = EngineInfo {
            device: decoder.device,
            max_context,
            max_batch: cfg.max_batch,
        };
        let (tx, rx) = mpsc::channel(cfg.max_queue.max(1));
        let vocab = Arc::new(constrain::Vocab::new(&model.tokenizer, decoder.vocab));
        let sched = scheduler::Scheduler::new(
            decoder,
            model.tokenizer.clone(),
            Arc::new(model.meta.eos_token_ids.iter().copied().collect()),
            vocab.clone(),
            rx,
            metrics.clone(),
            (
                cfg.max_batch,
                max_context,
                cfg.prefix_cache,
                cfg.batch_prefill,
                cfg.prompt_chunk.max(1),
            ),
        );
        let thread = std::thread::Builder::new()
            .name("morpheus-engine".into())
            .spawn(move || sched.run())
            .map_err(|e| Error::Engine(format!("cannot start the engine thread: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                tx: Mutex::new(Some(tx)),
                thread: Mutex::new(Some(thread)),
                metrics,
                info,
                vocab,
            }),
        })
    }

    /// Facts about the engine.
    pub fn info(&self) -> &EngineInfo {
        &self.inner.info
    }

    /// The engine's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// The model's vocabulary as bytes (the width of its logits).
    pub fn vocab(&self) -> &Arc<constrain::Vocab> {
        &self.inner.vocab
    }

    /// Queues a request; its events arrive on the returned receiver. Dropping the receiver
    /// cancels the request and frees its batch slot at the next step.
    pub fn submit(&self, request: GenerateRequest) -> Result<mpsc::UnboundedReceiver<Event>> {
        if request.prompt.is_empty() {
            return Err(Error::InvalidRequest("the prompt is empty".into()));
        }
        if let Some((t, _)) = request
            .shaping
            .logit_bias
            .iter()
            .find(|(t, _)| *t as usize >= self.inner.vocab.len())
        {
            return Err(Error::InvalidRequest(format!(
                "token {t} is outside the vocabulary of {}",
                self.inner.vocab.len()
            )));
        }
        if request.prompt.len() >= self.inner.info.max_context {
            return Err(Error::InvalidRequest(format!(
                "the prompt has {} tokens; this server takes at most {} (prompt + completion)",
                request.prompt.len(),
                self.inner.info.max_context
            )));
        }
        let (events, rx) = mpsc::unbounded_channel();
        let guard = self.inner.tx.lock().map_err(|_| Error::EngineStopped)?;
        let tx = guard.as_ref().ok_or(Error::EngineStopped)?;
        self.inner.metrics.queue_entered();
        match tx.try_send(Job {
            request,
            events,
            submitted: Instant::now(),
        }) {
            Ok(()) => Ok(rx),
            Err(e) => {
                let depth = self.inner.metrics.queue_left() as usize;
                Err(match e {
                    mpsc::error::TrySendError::Full(_) => Error::Busy { queued: depth },
                    mpsc::error::TrySendError::Closed(_) => Error::EngineStopped,
                })
            }
        }
    }

    /// Stops taking requests, finishes those already taken, and waits for the thread to end.
    pub fn shutdown(&self) {
        if let Ok(mut tx) = self.inner.tx.lock() {
            tx.take();
        }
        let thread = self.inner.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}
