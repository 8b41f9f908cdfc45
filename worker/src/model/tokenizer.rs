//! The model's tokenizer: its own flat SentencePiece BPE where `tokenizer.json` is one
//! (`sentencepiece.rs`: Gemma's, a tenth of the memory), Hugging Face's `tokenizers` otherwise.

use std::{collections::HashSet, path::Path, str::FromStr};

use super::sentencepiece::SentencePiece;
use crate::{Error, Result};

/// A loaded `tokenizer.json`.
#[derive(Debug)]
pub enum TextTokenizer {
    /// Byte-level BPE and anything else `tokenizers` reads.
    Hf(Box<tokenizers::Tokenizer>),
    /// SentencePiece BPE by the rule `model prepare` writes it with.
    SentencePiece(Box<SentencePiece>),
}

impl TextTokenizer {
    /// Loads `path`; an error names the file and what was wrong.
    pub fn from_file(path: &Path) -> Result<Self> {
        let json = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let tokenizer = match SentencePiece::from_json(&json) {
            Some(sp) => Self::SentencePiece(Box::new(sp)),
            None => {
                let parsed = tokenizers::Tokenizer::from_str(&json)
                    .map_err(|e| Error::model(path, format!("cannot load the tokenizer: {e}")))?;
                // The parse leaves its survivors scattered among its freed temporaries, so that
                // pages holding both cannot be given back; a copy made now lies together.
                Self::Hf(Box::new(parsed.clone()))
            }
        };
        drop(json);
        // The parse's temporaries are freed now, but stay resident until trimmed (`heap.rs`).
        crate::heap::release_freed();
        Ok(tokenizer)
    }

    /// Token ids of `text`, added and special tokens in it honoured, nothing added around it.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        match self {
            Self::Hf(t) => Ok(t
                .encode(text, false)
                .map_err(|e| Error::Tokenizer(e.to_string()))?
                .get_ids()
                .to_vec()),
            Self::SentencePiece(sp) => Ok(sp.encode(text)),
        }
    }

    /// The text of `ids`, special tokens left out (a malformed run decodes to nothing).
    pub fn decode(&self, ids: &[u32]) -> String {
        match self {
            Self::Hf(t) => t.decode(ids, true).unwrap_or_default(),
            Self::SentencePiece(sp) => sp.decode(ids),
        }
    }

    /// Token `id` as the vocabulary writes it.
    pub fn piece(&self, id: u32) -> Option<String> {
        match self {
            Self::Hf(t) => t.id_to_token(id),
            Self::SentencePiece(sp) => sp.piece(id).map(str::to_owned),
        }
    }

    /// The ids of the special tokens.
    pub fn special_ids(&self) -> HashSet<u32> {
        match self {
            Self::Hf(t) => t
                .get_added_tokens_decoder()
                .iter()
                .filter(|(_, t)| t.special)
                .map(|(&id, _)| id)
                .collect(),
            Self::SentencePiece(sp) => (0..sp.len() as u32)
                .filter(|&id| sp.is_special(id))
                .collect(),
        }
    }

    /// Whether pieces are written in GPT-2's byte-level alphabet.
    pub fn byte_level(&self) -> bool {
        match self {
            Self::Hf(t) => t
                .get_decoder()
                .and_then(|d| serde_json::to_string(d).ok())
                .is_some_and(|d| d.contains("\"ByteLevel\"")),
            Self::SentencePiece(_) => false,
        }
    }
}
