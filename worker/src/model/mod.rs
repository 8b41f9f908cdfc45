//! A prepared model directory and how to make one.
//!
//! A directory holds `model.onnx` (a decoder with Hugging Face optimum's KV-cache interface),
//! `tokenizer.json`, `morpheus.json` ([`ModelMeta`]) and the published weights the decoder was
//! built from (`weights.gguf`, the file the model is registered by). `morpheus-worker model
//! prepare` makes one from a GGUF file ([`prepare`]); any optimum-exported decoder works too,
//! given a `morpheus.json` (its weights are then the ONNX file).

mod chat;
pub mod converter;
mod meta;
pub mod prepare;
mod sentencepiece;
mod tokenizer;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

pub use chat::ChatTemplate;
pub use meta::{KvCacheLayout, ModelMeta};
pub use sentencepiece::SentencePiece;
pub use tokenizer::TextTokenizer;

use crate::{Error, Result};

/// A model directory, loaded: metadata, tokenizer and chat template.
#[derive(Debug)]
pub struct ModelDir {
    /// The directory.
    pub dir: PathBuf,
    /// Its `morpheus.json`.
    pub meta: ModelMeta,
    /// Its tokenizer (shared with the engine's detokenizer: Gemma 3's holds about 100 MB).
    pub tokenizer: Arc<TextTokenizer>,
    /// Its chat template.
    pub chat: ChatTemplate,
}

impl ModelDir {
    /// Opens `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let meta = ModelMeta::read(&dir)?;
        let tok_path = dir.join(&meta.tokenizer_file);
        let tokenizer = TextTokenizer::from_file(&tok_path)?;
        let chat = ChatTemplate::new(&meta)?;
        for file in [&meta.model_file, meta.weights_file()] {
            if !dir.join(file).is_file() {
                return Err(Error::model(&dir, format!("{file} is missing")));
            }
        }
        Ok(Self {
            dir,
            meta,
            tokenizer: Arc::new(tokenizer),
            chat,
        })
    }

    /// Path of the ONNX file the engine runs.
    pub fn model_path(&self) -> PathBuf {
        self.dir.join(&self.meta.model_file)
    }

    /// Path of the published weights file: the file the model is registered by, which the
    /// liveness proofs cover (the same for every build of it, whatever its kernels).
    pub fn weights_path(&self) -> PathBuf {
        self.dir.join(self.meta.weights_file())
    }

    /// Token ids of `text` (special tokens in the text are honoured; no BOS is added here).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = self.tokenizer.encode(text)?;
        if self.meta.add_bos_token
            && let Some(bos) = self.meta.bos_token_id
            && ids.first() != Some(&bos)
        {
            ids.insert(0, bos);
        }
        Ok(ids)
    }
}
