//! The logits after every token of a sequence, one token per run (the decode path), then greedy
//! tokens after it: for checking a prepared model against a reference forward pass
//! (`morpheus-worker model logits`, which `python -m morpheus_model verify` calls for models on
//! the worker's own kernels, since ONNX Runtime alone cannot run them).

use std::{path::Path, sync::Arc};

use ort::environment::Environment;

use super::{EngineConfig, decoder::Decoder};
use crate::{Error, Result, model::ModelMeta};

/// What [`sequence_logits`] found.
#[derive(Debug, Clone)]
pub struct SequenceLogits {
    /// Tokens chosen greedily after the given ones (ending at an end-of-sequence token, if any).
    pub generated: Vec<u32>,
    /// `[rows, vocab]`: the logits after each token run, the given ones then the generated ones
    /// (all but a final end-of-sequence token, which is not run).
    pub logits: Vec<f32>,
    /// Vocabulary size (row width).
    pub vocab: usize,
}

/// Runs `tokens` through the model in `dir` one at a time, then up to `generate` greedy tokens.
pub fn sequence_logits(
    env: &Arc<Environment>,
    dir: &Path,
    cfg: &EngineConfig,
    tokens: &[u32],
    generate: usize,
) -> Result<SequenceLogits> {
    let meta = ModelMeta::read(dir)?;
    if tokens.is_empty() {
        return Err(Error::model(dir, "no tokens to run"));
    }
    if let Some(bad) = tokens.iter().find(|&&t| t as usize >= meta.vocab_size) {
        return Err(Error::model(
            dir,
            format!(
                "token {bad} is outside the vocabulary of {}",
                meta.vocab_size
            ),
        ));
    }
    let total = tokens.len() + generate;
    if total > meta.context_length {
        return Err(Error::model(
            dir,
            format!(
                "{total} tokens exceed the context of {}",
                meta.context_length
            ),
        ));
    }
    let cfg = EngineConfig {
        max_batch: 1,
        max_context: total,
        ..cfg.clone()
    };
    let mut decoder = Decoder::load(env, &dir.join(&meta.model_file), &meta, &cfg)?;
    let vocab = decoder.vocab;
    let mut past = Vec::new();
    let mut logits = Vec::with_capacity(total * vocab);
    let mut generated = Vec::new();
    let mut next = tokens[0];
    for i in 0..total {
        let token = if i < tokens.len() { tokens[i] } else { next };
        if i >= tokens.len() {
            generated.push(token);
            if meta.eos_token_ids.contains(&token) {
                break;
            }
        }
        let row = if decoder.kv.is_some() {
            decoder.run_slots(0, &[(i, std::slice::from_ref(&token))])?
        } else {
            decoder.run_concat(&mut past, i, std::slice::from_ref(&token))?
        };
        next = row
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(t, _)| t as u32);
        logits.extend_from_slice(&row);
    }
    Ok(SequenceLogits {
        generated,
        logits,
        vocab,
    })
}
