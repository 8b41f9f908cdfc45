//! How many tokens a session asks the router for (`ComputeRequest.tokenMax`), without a
//! tokenizer: the completion asked for plus an upper bound of the prompt. The provider's signed
//! receipt counts what was really used, and the router gives the rest of the reservation back.

use morpheus_sdk::openai::{ChatMessage, Function, tool_prompt};

/// Template tokens a chat template may add around the whole conversation: the generation
/// prompt, a default system prompt some templates insert when there is none (SmolLM2's, Llama
/// 3.1's dated one), begin/end-of-text markers.
pub const TEMPLATE_TOKENS: u64 = 64;

/// Template tokens a chat template may add around one message (role markers, separators).
pub const MESSAGE_TOKENS: u64 = 8;

/// An upper bound of the prompt's tokens: its UTF-8 bytes (no tokenizer in use makes a token
/// of less than one byte of text: byte-level BPE never does, and SentencePiece's byte fallback
/// neither) plus the role's bytes and [`MESSAGE_TOKENS`] per message, plus
/// [`TEMPLATE_TOKENS`].
pub fn prompt_bound(messages: &[ChatMessage]) -> u64 {
    messages.iter().fold(TEMPLATE_TOKENS, |sum, m| {
        sum.saturating_add(m.role.len() as u64)
            .saturating_add(m.template_text().len() as u64)
            .saturating_add(MESSAGE_TOKENS)
    })
}

/// The prompt's bound with `tools` shown to the model: their description
/// (`openai::tool_prompt`, what the provider adds to the system message) counted as one more
/// message.
pub fn prompt_bound_with_tools(messages: &[ChatMessage], tools: &[Function]) -> u64 {
    let bound = prompt_bound(messages);
    if tools.is_empty() {
        return bound;
    }
    bound
        // The longer form (several calls allowed): a bound whatever the request's choice.
        .saturating_add(tool_prompt(tools, true).len() as u64)
        .saturating_add(MESSAGE_TOKENS + "system".len() as u64)
}

/// `tokenMax` for a request: the completion tokens it asks for (`requested`, else `default`)
/// plus [`prompt_bound`], at most `cap` (the largest session, the context a model is expected
/// to have) and at least 1.
pub fn token_max(messages: &[ChatMessage], requested: Option<u32>, default: u32, cap: u64) -> u64 {
    token_max_with(prompt_bound(messages), requested, default, 1, cap)
}

/// [`token_max`] for a prompt bound already counted and `choices` answers: the provider reads
/// the prompt once and reserves the completion for each choice (the choices are sequences of
/// one session).
pub fn token_max_with(
    bound: u64,
    requested: Option<u32>,
    default: u32,
    choices: u32,
    cap: u64,
) -> u64 {
    let completion =
        u64::from(requested.unwrap_or(default)).saturating_mul(u64::from(choices.max(1)));
    completion.saturating_add(bound).min(cap).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_bound_counts_bytes_roles_and_the_template() {
        let messages = [
            ChatMessage::system("be brief"),
            ChatMessage::user("caf\u{e9}"),
        ];
        // "system" 6 + "be brief" 8 + 8, "user" 4 + "café" 5 + 8, template 64.
        assert_eq!(prompt_bound(&messages), 6 + 8 + 8 + 4 + 5 + 8 + 64);
        assert_eq!(prompt_bound(&[]), TEMPLATE_TOKENS);
    }

    #[test]
    fn token_max_is_the_completion_plus_the_prompt_bound_within_the_cap() {
        let messages = [ChatMessage::user("hi")];
        let bound = prompt_bound(&messages);
        assert_eq!(token_max(&messages, Some(16), 512, 1 << 20), 16 + bound);
        assert_eq!(token_max(&messages, None, 512, 1 << 20), 512 + bound);
        assert_eq!(token_max(&messages, Some(u32::MAX), 512, 4096), 4096);
        assert_eq!(token_max(&messages, Some(16), 512, 0), 1);
        assert_eq!(
            token_max_with(bound, Some(16), 512, 3, 1 << 20),
            3 * 16 + bound,
            "each of 3 choices' completion, the prompt once"
        );
    }

    #[test]
    fn the_bound_is_above_what_a_byte_level_tokenizer_can_make() {
        // A byte-level BPE never makes more tokens than bytes: the worst case is one token per
        // byte, which the bound covers with the whole template allowance to spare.
        let text = "\u{1F600}\u{1F600} a b c \n\t";
        let messages = [ChatMessage::user(text)];
        assert!(prompt_bound(&messages) >= text.len() as u64 + TEMPLATE_TOKENS);
    }
}
