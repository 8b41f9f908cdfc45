//! `morpheus.json`: what the worker needs to know about a model beyond the ONNX graph.

use std::path::Path;

use morpheus_sdk::merkle::TREE_VERSION;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How the decoder treats its KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum KvCacheLayout {
    /// Hugging Face optimum's contract: `present` = `past` + new positions, every row the same length.
    /// The engine runs each sequence on its own (any exported decoder works).
    #[default]
    Concat,
    /// Rows are right-padded, lengths come from the attention mask and `present.*` may alias a
    /// larger `past_key_values.*` buffer, updated in place: the engine batches all sequences in
    /// one run and never copies the cache (the decoders `model prepare` writes).
    SharedBuffer,
}

/// Contents of `morpheus.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelMeta {
    /// Name the API serves the model under.
    pub name: String,
    /// ONNX file, relative to the directory.
    #[serde(default = "default_model_file")]
    pub model_file: String,
    /// The published weights file (the GGUF as downloaded, which `model prepare` keeps beside the
    /// build), relative to the directory: the file the model is registered by, whose Merkle root
    /// liveness answers prove. Absent in a directory not made by `model prepare`: its weights
    /// are then the ONNX file itself ([`Self::weights_file`]).
    #[serde(default)]
    pub weights_file: Option<String>,
    /// The weights file's format label as the registry records it (`gguf`).
    #[serde(default)]
    pub weights_format: Option<String>,
    /// Tokenizer file, relative to the directory.
    #[serde(default = "default_tokenizer_file")]
    pub tokenizer_file: String,
    /// Decoder layers (one past key and value input each).
    pub num_layers: usize,
    /// Query heads.
    #[serde(default)]
    pub num_heads: usize,
    /// Model width.
    #[serde(default)]
    pub hidden_size: usize,
    /// Feed-forward width.
    #[serde(default)]
    pub intermediate_size: usize,
    /// Key-value heads.
    pub num_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Vocabulary size (the logits' last dimension).
    pub vocab_size: usize,
    /// Longest sequence (prompt + completion) the model takes.
    pub context_length: usize,
    /// Beginning-of-sequence token.
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    /// Tokens that end generation.
    #[serde(default)]
    pub eos_token_ids: Vec<u32>,
    /// BOS token text, for the chat template.
    #[serde(default)]
    pub bos_token: Option<String>,
    /// EOS token text, for the chat template.
    #[serde(default)]
    pub eos_token: Option<String>,
    /// Whether prompts start with BOS.
    #[serde(default)]
    pub add_bos_token: bool,
    /// Jinja chat template (Hugging Face style); ChatML when absent.
    #[serde(default)]
    pub chat_template: Option<String>,
    /// Cache contract of the decoder.
    #[serde(default)]
    pub kv_cache: KvCacheLayout,
    /// Source the model was converted from (file name and sha256), if any.
    #[serde(default)]
    pub source: Option<serde_json::Value>,
    /// The converter's options (`kernels`, `accuracy_level`, ...), if converted here.
    #[serde(default)]
    pub options: Option<serde_json::Value>,
    /// Merkle root of the weights file (`morpheus_sdk::merkle`), `0x`-hex, written by `model prepare`.
    #[serde(default)]
    pub merkle_root: Option<String>,
    /// The file `merkle_root` was computed over; absent when roots covered `model.onnx` (before
    /// a model was its published weights).
    #[serde(default)]
    pub merkle_file: Option<String>,
    /// The tree rule `merkle_root` was computed under (`morpheus_sdk::merkle::TREE_VERSION`);
    /// absent before the rule was versioned (version 1).
    #[serde(default)]
    pub merkle_version: Option<u32>,
}

impl ModelMeta {
    /// Whether the decoder uses this worker's own CPU operators (`ai.morpheus`).
    pub fn uses_morpheus_kernels(&self) -> bool {
        self.options
            .as_ref()
            .and_then(|o| o.get("kernels"))
            .and_then(|k| k.as_str())
            == Some("morpheus")
    }
}

fn default_model_file() -> String {
    "model.onnx".into()
}

fn default_tokenizer_file() -> String {
    "tokenizer.json".into()
}

impl ModelMeta {
    /// Reads `dir/morpheus.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join("morpheus.json");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let meta: Self =
            serde_json::from_str(&text).map_err(|e| Error::model(&path, e.to_string()))?;
        if meta.num_layers == 0
            || meta.num_kv_heads == 0
            || meta.head_dim == 0
            || meta.vocab_size == 0
        {
            return Err(Error::model(
                &path,
                "num_layers, num_kv_heads, head_dim and vocab_size must be set",
            ));
        }
        Ok(meta)
    }

    /// The weights file, relative to the directory: `weights_file`, else the ONNX file.
    pub fn weights_file(&self) -> &str {
        self.weights_file.as_deref().unwrap_or(&self.model_file)
    }

    /// The weights file's format label: `weights_format`, else the file's extension (`onnx`).
    pub fn weights_format(&self) -> String {
        self.weights_format.clone().unwrap_or_else(|| {
            Path::new(self.weights_file())
                .extension()
                .map(|e| e.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_default()
        })
    }

    /// Whether `merkle_root` was computed over the weights file under the SDK's current tree
    /// rule (else it is stale, whatever the file's age: a root of `model.onnx` from before the
    /// weights file was kept, or of an older rule).
    pub fn merkle_root_is_current(&self) -> bool {
        self.merkle_root.is_some()
            && self.merkle_version == Some(TREE_VERSION)
            && self.merkle_file.as_deref() == Some(self.weights_file())
    }

    /// Writes `merkle_root`, computed over the weights file under the current tree rule, into
    /// `dir/morpheus.json` with that file's name and the rule's version, keeping every other
    /// field as it is.
    pub fn write_merkle_root(dir: &Path, root: &str) -> Result<()> {
        let path = dir.join("morpheus.json");
        let file = Self::read(dir)?.weights_file().to_string();
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let mut doc: serde_json::Value = serde_json::from_str(&text)?;
        doc["merkle_root"] = serde_json::Value::String(root.to_string());
        doc["merkle_file"] = serde_json::Value::String(file);
        doc["merkle_version"] = serde_json::Value::from(TREE_VERSION);
        let out = serde_json::to_string_pretty(&doc)?;
        std::fs::write(&path, out).map_err(|e| Error::io(&path, e))
    }
}
