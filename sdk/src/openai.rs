//! The OpenAI chat-completions wire format, as providers serve it and clients send it.
//!
//! Field names are OpenAI's, so the official `openai` clients and `curl` work unchanged. Unknown
//! request fields are ignored (clients send many optional ones); what the network does not
//! serve yet (`n > 1`, tools) is refused with a 400 naming the field (`check`).

use alloy::primitives::B256;
use serde::{Deserialize, Serialize};

mod check;
mod completions;
mod content;
mod logprobs;
mod tools;

pub use check::{MAX_LOGIT_BIAS, MAX_N, MAX_STOPS, MAX_TOP_LOGPROBS, Refusal, ResponseFormat};
pub use completions::{
    CompletionChoice, CompletionChunk, CompletionChunkChoice, CompletionLogprobs,
    CompletionRequest, CompletionResponse, Prompt,
};
pub use logprobs::{ChoiceLogprobs, TokenLogprob, TopLogprob};
pub use tools::{
    Function, FunctionCall, FunctionCallDelta, MAX_PARALLEL_CALLS, ToolCall, ToolCallDelta,
    ToolChoice, call_text, tool_prompt,
};

/// One message of a conversation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` or `tool` (`developer` is read as `system`).
    #[serde(deserialize_with = "content::deserialize_role")]
    pub role: String,
    /// The text: a string, or text parts joined with newlines (`content.rs`).
    #[serde(deserialize_with = "content::deserialize")]
    pub content: String,
    /// The calls an assistant's message made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// The call a `tool` message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    /// A message from the user.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: "user".into(),
            content: content.into(),
            ..Default::default()
        }
    }

    /// An assistant's answer.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: "assistant".into(),
            content: content.into(),
            ..Default::default()
        }
    }

    /// A system prompt.
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: "system".into(),
            content: content.into(),
            ..Default::default()
        }
    }
}

/// Stop sequences: OpenAI accepts one string or a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    /// A single stop sequence.
    One(String),
    /// Several stop sequences.
    Many(Vec<String>),
}

impl Stop {
    /// The stop sequences as a list.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s],
            Self::Many(v) => v,
        }
    }
}

/// Options of a streamed answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamOptions {
    /// Send a last chunk carrying the usage counts.
    #[serde(default)]
    pub include_usage: bool,
}

/// `POST /v1/chat/completions` request body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionRequest {
    /// Model name (as `GET /v1/models` lists it).
    pub model: String,
    /// The conversation so far.
    pub messages: Vec<ChatMessage>,
    /// Most completion tokens (legacy name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Most completion tokens (current name; wins over `max_tokens`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
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
    /// Number of choices; only 1 is supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    /// `{"type": "text"}`, `{"type": "json_object"}` or `{"type": "json_schema", "json_schema":
    /// {"name", "schema", "strict"}}`: the answer is held to it by constrained decoding
    /// ([`ChatCompletionRequest::response_format`] reads it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<serde_json::Value>,
    // What the network does not serve yet: read so that [`check`](Self::check) refuses a
    // request asking for it by name instead of answering as if it had not asked.
    /// Functions the model may call ([`ChatCompletionRequest::tool_functions`] reads them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<serde_json::Value>,
    /// `none`, `auto`, `required` or a named function ([`ChatCompletionRequest::tool_choice`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<serde_json::Value>,
    /// Whether an answer may make several tool calls (absent: yes, as OpenAI's default;
    /// [`ChatCompletionRequest::parallel_calls`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// Return the log-probability of each chosen token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<bool>,
    /// And this many most likely alternatives per token (0 to 20; needs `logprobs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<u32>,
    /// Token id (as a string) to a bias from -100 to 100 added to its logit
    /// ([`ChatCompletionRequest::logit_bias`] reads it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logit_bias: Option<serde_json::Value>,
    /// -2 to 2, subtracted once from the logit of each token already generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f32>,
    /// -2 to 2, subtracted from a token's logit per time it was generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f32>,
}

impl ChatCompletionRequest {
    /// The completion-token limit the client asked for, if any.
    pub fn requested_max_tokens(&self) -> Option<u32> {
        self.max_completion_tokens.or(self.max_tokens)
    }
}

/// Token counts of one completion.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens in the prompt (after the chat template).
    pub prompt_tokens: u32,
    /// Tokens generated.
    pub completion_tokens: u32,
    /// Sum of both.
    pub total_tokens: u32,
}

/// A choice of a non-streamed answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// Index of the choice (always 0).
    pub index: u32,
    /// The assistant's message.
    pub message: ChatMessage,
    /// `stop` (end of text, a stop sequence, or a constrained answer complete) or `length`
    /// (token limit).
    pub finish_reason: Option<String>,
    /// The tokens' log-probabilities, when asked for (`null` otherwise, as OpenAI sends it).
    #[serde(default)]
    pub logprobs: Option<ChoiceLogprobs>,
}

/// `POST /v1/chat/completions` response body (non-streamed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionResponse {
    /// Completion id.
    pub id: String,
    /// Always `chat.completion`.
    pub object: String,
    /// Unix time (seconds) of creation.
    pub created: u64,
    /// Model that answered.
    pub model: String,
    /// The answer.
    pub choices: Vec<Choice>,
    /// Token counts.
    pub usage: Usage,
}

/// The part of a message a streamed chunk adds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    /// `assistant` on the first chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// New text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// The call being made, in pieces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
}

/// A choice of a streamed chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    /// Index of the choice (always 0).
    pub index: u32,
    /// What this chunk adds.
    pub delta: Delta,
    /// Set on the last content chunk.
    pub finish_reason: Option<String>,
    /// The log-probabilities of the tokens this chunk adds, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<ChoiceLogprobs>,
}

/// One server-sent event of a streamed answer (`data: {...}`), before the final `data: [DONE]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionChunk {
    /// Completion id (the same on every chunk).
    pub id: String,
    /// Always `chat.completion.chunk`.
    pub object: String,
    /// Unix time (seconds) of creation.
    pub created: u64,
    /// Model that answers.
    pub model: String,
    /// What this chunk adds (empty on the usage chunk).
    pub choices: Vec<ChunkChoice>,
    /// Token counts, on the last chunk when `stream_options.include_usage` was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// One entry of `GET /v1/models`: OpenAI's fields, then what a Morpheus provider adds (absent
/// from other servers' lists).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Model {
    /// Model name to put in requests: the name users know it by.
    pub id: String,
    /// Always `model`.
    pub object: String,
    /// Unix time (seconds) the model was loaded.
    pub created: u64,
    /// Who serves it.
    pub owned_by: String,
    /// Longest prompt + completion served, in tokens (as vLLM's `max_model_len`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_length: Option<u64>,
    /// The format of the published weights file the model is registered by (`gguf`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// That file's Merkle root, as the registry records it (`ProviderRegistry.getModel`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merkle_root: Option<B256>,
    /// The registry's model id the provider serves, when it was started with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<B256>,
}

/// `GET /v1/models` response body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelList {
    /// Always `list`.
    pub object: String,
    /// The models.
    pub data: Vec<Model>,
}

/// The body of every error answer: `{"error": {"message", "type", "code"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong, in OpenAI's error shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Human-readable reason.
    pub message: String,
    /// Error class, e.g. `invalid_request_error`, `authentication_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Machine-readable code, e.g. `assignment_expired`.
    #[serde(default)]
    pub code: Option<String>,
    /// The request's field to blame, when one is (`messages[1].role`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_openai_client_sends() {
        let body = r#"{"model":"smollm2","messages":[{"role":"user","content":"hi"}],
            "max_tokens":16,"stop":"\n","stream":true,"stream_options":{"include_usage":true},
            "frequency_penalty":0,"logit_bias":null}"#;
        let req: ChatCompletionRequest = serde_json::from_str(body).expect("valid request");
        assert_eq!(req.requested_max_tokens(), Some(16));
        assert_eq!(req.stop.map(Stop::into_vec), Some(vec!["\n".to_string()]));
        assert!(req.stream);
    }

    #[test]
    fn max_completion_tokens_wins() {
        let req = ChatCompletionRequest {
            max_tokens: Some(5),
            max_completion_tokens: Some(9),
            ..Default::default()
        };
        assert_eq!(req.requested_max_tokens(), Some(9));
    }
}
