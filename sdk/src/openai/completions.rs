//! `POST /v1/completions`, OpenAI's text-completion wire format: a prompt in, its continuation
//! out (no chat template), whole or streamed.

use serde::{Deserialize, Serialize};

use super::{Stop, StreamOptions, Usage};

/// The prompt: one string, or one list of token ids. (OpenAI also takes several prompts in one
/// request, answered as separate choices; that is refused by name, as `n > 1` is.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    /// Text.
    Text(String),
    /// Token ids.
    Tokens(Vec<u32>),
    /// A list of texts (one served).
    Texts(Vec<String>),
    /// A list of token-id lists (one served).
    TokenLists(Vec<Vec<u32>>),
}

/// `POST /v1/completions` request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionRequest {
    /// Model name.
    pub model: String,
    /// What to continue.
    pub prompt: Prompt,
    /// Most tokens to generate (OpenAI's default is 16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sampling temperature; 0 means greedy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Nucleus sampling mass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// Seed for reproducible sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    /// Stream the answer as server-sent events.
    #[serde(default)]
    pub stream: bool,
    /// Streaming options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// Number of choices; only 1 is served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    /// Candidates to pick the best of; only 1 is served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_of: Option<u32>,
    /// The log-probabilities of this many most likely tokens per position (0 to 5), with the
    /// chosen one's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<u32>,
    /// Return the prompt before the completion: not served (refused when true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echo: Option<bool>,
    /// Text after the completion (fill-in-the-middle): not served (refused when given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    /// As in chat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logit_bias: Option<serde_json::Value>,
    /// As in chat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f32>,
    /// As in chat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f32>,
}

/// OpenAI's legacy log-probabilities of a completion.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompletionLogprobs {
    /// Each token's text.
    pub tokens: Vec<String>,
    /// Each token's log-probability.
    pub token_logprobs: Vec<f32>,
    /// Per token, its most likely alternatives (text to log-probability).
    pub top_logprobs: Vec<serde_json::Map<String, serde_json::Value>>,
    /// Where each token starts in the completion's text (bytes).
    pub text_offset: Vec<u32>,
}

/// A choice of a completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionChoice {
    /// The text generated.
    pub text: String,
    /// Always 0.
    pub index: u32,
    /// When asked for.
    #[serde(default)]
    pub logprobs: Option<CompletionLogprobs>,
    /// `stop` or `length`.
    pub finish_reason: Option<String>,
}

/// `POST /v1/completions` response body (non-streamed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionResponse {
    /// Completion id.
    pub id: String,
    /// Always `text_completion`.
    pub object: String,
    /// Unix time (seconds).
    pub created: u64,
    /// Model that answered.
    pub model: String,
    /// The answer.
    pub choices: Vec<CompletionChoice>,
    /// Token counts.
    pub usage: Usage,
}

/// A choice of a streamed completion chunk.
pub type CompletionChunkChoice = CompletionChoice;

/// One server-sent event of a streamed completion (the same shape, a piece of text each;
/// the last carries `usage` when asked for, with no choices).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionChunk {
    /// Completion id (the same on every chunk).
    pub id: String,
    /// Always `text_completion`.
    pub object: String,
    /// Unix time (seconds).
    pub created: u64,
    /// Model that answers.
    pub model: String,
    /// What this chunk adds.
    pub choices: Vec<CompletionChunkChoice>,
    /// Token counts, on the last chunk when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}
