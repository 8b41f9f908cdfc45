//! Log-probabilities of an answer's tokens, in OpenAI's shape (`choices[].logprobs.content`).

use serde::{Deserialize, Serialize};

/// The log-probabilities of a choice's tokens (or of a chunk's).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChoiceLogprobs {
    /// One entry per token, in order.
    pub content: Vec<TokenLogprob>,
}

/// One token of the answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenLogprob {
    /// The token's text (a token that ends inside a character shows U+FFFD; `bytes` is exact).
    pub token: String,
    /// Its log-probability.
    pub logprob: f32,
    /// Its bytes (UTF-8 of the text it writes).
    #[serde(default)]
    pub bytes: Option<Vec<u8>>,
    /// The most likely tokens at this position, most likely first (`top_logprobs` of them).
    #[serde(default)]
    pub top_logprobs: Vec<TopLogprob>,
}

/// An alternative at one position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopLogprob {
    /// The token's text.
    pub token: String,
    /// Its log-probability.
    pub logprob: f32,
    /// Its bytes.
    #[serde(default)]
    pub bytes: Option<Vec<u8>>,
}
