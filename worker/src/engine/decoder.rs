//! One ONNX Runtime session of a decoder with optimum's KV-cache interface, and its runs.

use std::{
    path::Path,
    sync::{Arc, Mutex},
};

use ort::{
    AsPointer,
    environment::Environment,
    session::{IoBinding, Session, builder::GraphOptimizationLevel},
    value::{DynValue, Tensor, TensorRef},
};
use tracing::{info, warn};

use super::{EngineConfig, kv::SharedKv};
use crate::{
    Error, Result, kernels,
    model::{KvCacheLayout, ModelMeta},
    runtime,
};

/// A loaded decoder.
#[derive(Debug)]
pub(crate) struct Decoder {
    session: Session,
    pub(crate) kv_heads: usize,
    pub(crate) head_dim: usize,
    pub(crate) vocab: usize,
    has_position_ids: bool,
    /// Whether the graph takes `last_index` (which position's logits each row returns).
    has_last_index: bool,
    /// (`past_key_values.{i}.{key,value}`, `present.{i}.{key,value}`) in layer order, key first.
    names: Vec<(String, String)>,
    /// The binding of the slots last run (declared before `kv`: its views alias the cache).
    bound: Option<Bound>,
    /// The in-place cache, for [`KvCacheLayout::SharedBuffer`] decoders.
    pub(crate) kv: Option<SharedKv>,
    pub(crate) device: &'static str,
}

impl Decoder {
    pub(crate) fn load(
        env: &Arc<Environment>,
        path: &Path,
        meta: &ModelMeta,
        cfg: &EngineConfig,
    ) -> Result<Self> {
        // ONNX Runtime keeps custom operator domains in a process-wide table that is not safe
        // to update from two threads at once ("domain is already exist"): sessions that
        // register `ai.morpheus` are built one at a time.
        static REGISTER: Mutex<()> = Mutex::new(());
        let _registering = REGISTER.lock().unwrap_or_else(|e| e.into_inner());
        let mut builder = Session::builder(env)?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(ort::Error::from)?
            .with_intra_threads(cfg.threads)
            .map_err(ort::Error::from)?
            .with_operators(kernels::operators(cfg.threads, cfg.activations)?)
            .map_err(ort::Error::from)?;
        let device = runtime::select_device(&mut builder, cfg.device);
        if meta.uses_morpheus_kernels() && kernels::Isa::select() == kernels::Isa::Portable {
            warn!(
                target: "worker::engine",
                "this CPU has neither AVX-512 VNNI nor AVX2: the model's matmuls (`--kernels \
                 morpheus`) run portable code; a `--kernels onnxruntime` build of the same GGUF \
                 may be faster here"
            );
        }
        if device != "cpu" && meta.uses_morpheus_kernels() {
            warn!(
                target: "worker::engine",
                device,
                "this model's quantised matmuls are CPU operators (prepared with `--kernels morpheus`): \
                 every layer will copy between the GPU and the CPU; prepare it with `--kernels \
                 onnxruntime` to run it all on the GPU"
            );
        }
        let session = builder.commit_from_file(path)?;
        drop(_registering);
        let has = |n: &str| session.inputs().iter().any(|i| i.name() == n);
        for required in ["input_ids", "attention_mask"] {
            if !has(required) {
                return Err(Error::model(
                    path,
                    format!("the decoder has no `{required}` input"),
                ));
            }
        }
        let mut names = Vec::with_capacity(meta.num_layers * 2);
        for i in 0..meta.num_layers {
            for kind in ["key", "value"] {
                let past = format!("past_key_values.{i}.{kind}");
                if !has(&past) {
                    return Err(Error::model(
                        path,
                        format!("the decoder has no `{past}` input"),
                    ));
                }
                names.push((past, format!("present.{i}.{kind}")));
            }
        }
        let kv = match meta.kv_cache {
            KvCacheLayout::SharedBuffer => Some(SharedKv::new(
                meta.num_layers,
                cfg.max_batch,
                meta.num_kv_heads,
                cfg.max_context.min(meta.context_length),
                meta.head_dim,
            )?),
            KvCacheLayout::Concat => None,
        };
        info!(
            target: "worker::engine",
            model = %path.display(),
            device,
            layers = meta.num_layers,
            kv_cache = ?meta.kv_cache,
            threads = cfg.threads,
            activations = cfg.activations.as_str(),
            kernels = ?kernels::Isa::select(),
            "decoder loaded"
        );
        Ok(Self {
            has_position_ids: has("position_ids"),
            has_last_index: has("last_index"),
            session,
            kv_heads: meta.num_kv_heads,
            head_dim: meta.head_dim,
            vocab: meta.vocab_size,
            names,
            bound: None,
            kv,
            device,
        })
    }

    /// Longest sequence a slot holds (shared layout).
    pub(crate) fn slot_len(&self) -> Option<usize> {
        self.kv.as_ref().map(|kv| kv.max_len)
    }

    /// Whether rows adding different numbers of tokens can run together (the decoder takes
    /// `last_index`, see [`Decoder::run_slots`]).
    pub(crate) fn mixed_lengths(&self) -> bool {
        self.has_last_index
    }

    /// Shared layout: runs `rows` (each: positions already cached in its slot, new tokens) on the
    /// consecutive slots starting at `first`; returns the logits after each row's last token.
    ///
    /// Rows adding fewer tokens than the longest are padded after their own (with their last
    /// token): attention is causal, so a row's real positions never see its padding, and the
    /// padding's cache entries lie past the row's length, where its next token overwrites them
    /// and no mask reaches. Each row then needs `cached + longest` positions of room. Decoders
    /// without `last_index` (older builds) take rows of one length only.
    pub(crate) fn run_slots(&mut self, first: usize, rows: &[(usize, &[u32])]) -> Result<Vec<f32>> {
        Ok(self.run_slots_in_place(first, rows)?.to_vec())
    }

    /// [`Decoder::run_slots`], its logits read where the run wrote them (until the next run):
    /// a decode step of 16 streams of a 262,144-token vocabulary copies no 16 MB.
    pub(crate) fn run_slots_in_place(
        &mut self,
        first: usize,
        rows: &[(usize, &[u32])],
    ) -> Result<&mut [f32]> {
        let n = rows.len();
        let s = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
        if s == 0 || rows.iter().any(|r| r.1.is_empty()) {
            return Err(Error::Engine("a row with no tokens to run".into()));
        }
        if !self.has_last_index && rows.iter().any(|r| r.1.len() != s) {
            return Err(Error::Engine(
                "this decoder runs rows of one length only (no `last_index` input)".into(),
            ));
        }
        let total = rows.iter().map(|r| r.0 + s).max().unwrap_or(0);
        if let Some(room) = self.slot_len()
            && total > room
        {
            return Err(Error::Engine(format!(
                "rows need {total} positions, a slot holds {room}"
            )));
        }
        let mut ids = Vec::with_capacity(n * s);
        let mut pos = Vec::with_capacity(n * s);
        let mut last = Vec::with_capacity(n);
        let mut mask = vec![0i64; n * total];
        for (r, (cached, new)) in rows.iter().enumerate() {
            let pad = new[new.len() - 1];
            ids.extend(
                new.iter()
                    .chain(std::iter::repeat_n(&pad, s - new.len()))
                    .map(|&t| i64::from(t)),
            );
            pos.extend((*cached..cached + s).map(|p| p as i64));
            last.push(new.len() as i64 - 1);
            mask[r * total..r * total + cached + s].fill(1);
        }
        if self.bound.as_ref().map(|b| (b.first, b.n)) != Some((first, n)) {
            // New slot range: drop the old binding (and its cache views) before making the next.
            self.bound = None;
            self.bound = Some(self.bind_slots(first, n)?);
        }
        let bound = self.bound.as_mut().ok_or(Error::EngineStopped)?;
        let binding = &mut bound.binding;
        binding.bind_input("input_ids", &Tensor::from_array(([n, s], ids))?)?;
        binding.bind_input("attention_mask", &Tensor::from_array(([n, total], mask))?)?;
        if self.has_position_ids {
            binding.bind_input("position_ids", &Tensor::from_array(([n, s], pos))?)?;
        }
        if self.has_last_index {
            binding.bind_input("last_index", &Tensor::from_array(([n], last))?)?;
        }
        run_bound(&self.session, binding)?;
        let (_, data) = bound.logits.extract_tensor_mut();
        Ok(data)
    }

    /// A binding of slots `first..first + n`: every cache buffer as both `past_key_values.*` and
    /// `present.*`, and `logits` into a tensor of its own. Kept across decode steps while the
    /// running sequences stay the same, so a step only rebinds the three small inputs.
    fn bind_slots(&mut self, first: usize, n: usize) -> Result<Bound> {
        let kv = self.kv.as_mut().ok_or(Error::EngineStopped)?;
        let mut binding = self.session.create_binding()?;
        let mut views = Vec::with_capacity(self.names.len());
        for (i, (past, present)) in self.names.iter().enumerate() {
            let mut view = kv.view(&self.session, i, first, n)?;
            binding.bind_input(past.as_str(), &view)?;
            binding.bind_output(present.as_str(), &mut view)?;
            views.push(view);
        }
        let mut logits = Tensor::<f32>::new(self.session.allocator(), [n, 1, self.vocab])?;
        binding.bind_output("logits", &mut logits)?;
        Ok(Bound {
            first,
            n,
            binding,
            _views: views,
            logits,
        })
    }

    /// Concat layout: runs `new` after `cached` positions held in `past` (replaced by the
    /// present values); returns the last logits row.
    pub(crate) fn run_concat(
        &mut self,
        past: &mut Vec<DynValue>,
        cached: usize,
        new: &[u32],
    ) -> Result<Vec<f32>> {
        let s = new.len();
        if past.is_empty() {
            for _ in 0..self.names.len() {
                let empty = Tensor::<f32>::from_array((
                    [1, self.kv_heads, 0, self.head_dim],
                    Vec::<f32>::new(),
                ))?;
                past.push(empty.into_dyn());
            }
        }
        let ids: Vec<i64> = new.iter().map(|&t| i64::from(t)).collect();
        let pos: Vec<i64> = (cached..cached + s).map(|p| p as i64).collect();
        let mask = vec![1i64; cached + s];
        let ids_t = TensorRef::from_array_view(([1, s], &*ids))?;
        let mask_t = TensorRef::from_array_view(([1, cached + s], &*mask))?;
        let pos_t = TensorRef::from_array_view(([1, s], &*pos))?;
        let last = [s as i64 - 1];
        let last_t = TensorRef::from_array_view(([1], &last[..]))?;
        let mut inputs: Vec<(String, ort::session::SessionInputValue<'_>)> = vec![
            ("input_ids".into(), ids_t.into()),
            ("attention_mask".into(), mask_t.into()),
        ];
        if self.has_position_ids {
            inputs.push(("position_ids".into(), pos_t.into()));
        }
        if self.has_last_index {
            inputs.push(("last_index".into(), last_t.into()));
        }
        for ((name, _), value) in self.names.iter().zip(past.iter()) {
            inputs.push((name.clone(), value.into()));
        }
        let mut outputs = self.session.run(inputs)?;
        let logits = last_rows(&outputs["logits"], 1, self.vocab)?;
        let mut next = Vec::with_capacity(self.names.len());
        for (_, present) in &self.names {
            next.push(
                outputs
                    .remove(present.as_str())
                    .ok_or_else(|| Error::Engine(format!("the decoder returned no `{present}`")))?,
            );
        }
        drop(outputs);
        *past = next;
        Ok(logits)
    }
}

/// A binding kept across runs on the same slots (see [`Decoder::bind_slots`]).
#[derive(Debug)]
struct Bound {
    first: usize,
    n: usize,
    binding: IoBinding,
    /// The cache views bound as past and present; they must outlive the binding's use.
    _views: Vec<DynValue>,
    /// `[n, 1, vocab]`, written by every run.
    logits: Tensor<f32>,
}

/// Runs `binding` without fetching its outputs back as values (`Session::run_binding` would wrap
/// all 61 of them every step; the caller reads the one it bound itself).
fn run_bound(session: &Session, binding: &IoBinding) -> Result<()> {
    let api = ort::api();
    // SAFETY: both pointers are live for the call; the session runs one binding at a time (the
    // engine thread owns it), and every bound output is a tensor that outlives the run.
    let status =
        unsafe { (api.RunWithBinding)(session.ptr().cast_mut(), std::ptr::null(), binding.ptr()) };
    super::kv::check_status(status, "decoder run failed")
}

/// The last position's logits of each of `n` rows, from `[n, seq, vocab]` (or `[n, vocab]`).
fn last_rows(value: &DynValue, n: usize, vocab: usize) -> Result<Vec<f32>> {
    let (shape, data) = value.try_extract_tensor::<f32>()?;
    let seq = if shape.len() == 3 {
        shape[1] as usize
    } else {
        1
    };
    if data.len() != n * seq * vocab {
        return Err(Error::Engine(format!("unexpected logits shape {shape:?}")));
    }
    let mut out = Vec::with_capacity(n * vocab);
    for r in 0..n {
        let start = (r * seq + seq - 1) * vocab;
        out.extend_from_slice(&data[start..start + vocab]);
    }
    Ok(out)
}

#[cfg(test)]
#[path = "decoder_tests.rs"]
mod tests;
