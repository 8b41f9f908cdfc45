//! A message's `content` as clients send it: a string, a list of parts, or `null`.
//!
//! OpenAI's clients send `[{"type": "text", "text": ...}, ...]` as often as a plain string
//! (LangChain, and the official clients whenever a message was built from parts). The network
//! serves text models, so text parts are joined, in order, with a newline between them (as vLLM
//! and llama.cpp's server do), and any other kind of part (`image_url`, `input_audio`, `file`) is
//! refused naming its index and type: a model that never saw the image must not answer as if it
//! had. `null` (OpenAI's assistant message that only called tools) reads as no text. A message
//! is always sent on as a string.

use serde::{
    Deserialize, Deserializer,
    de::{self, Error as _},
};

/// One part of a list `content`.
#[derive(Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<serde_json::Value>),
}

/// `content` as one string; see the module's rules.
pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let parts = match Option::<Content>::deserialize(d).map_err(|_| {
        D::Error::custom("`content` must be a string, a list of text parts, or null")
    })? {
        None => return Ok(String::new()),
        Some(Content::Text(text)) => return Ok(text),
        Some(Content::Parts(parts)) => parts,
    };
    let mut texts = Vec::with_capacity(parts.len());
    for (i, part) in parts.into_iter().enumerate() {
        let part: Part = serde_json::from_value(part).map_err(|e| {
            D::Error::custom(format!(
                "content part {i} is not a {{\"type\", ...}} object: {e}"
            ))
        })?;
        match (part.kind.as_str(), part.text) {
            ("text", Some(text)) => texts.push(text),
            ("text", None) => {
                return Err(de::Error::custom(format!(
                    "content part {i} is of type `text` but has no `text`"
                )));
            }
            (kind, _) => {
                return Err(de::Error::custom(format!(
                    "content part {i} is of type `{kind}`: only `text` parts are served (the \
                     network's models read text)"
                )));
            }
        }
    }
    Ok(texts.join("\n"))
}

/// `role` as the chat templates know it: OpenAI's `developer` (its newer name for the
/// instructions a `system` message gives) is read as `system`.
pub(super) fn deserialize_role<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let role = String::deserialize(d)?;
    Ok(if role == "developer" {
        "system".into()
    } else {
        role
    })
}
