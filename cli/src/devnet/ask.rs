//! The question, asked the way any OpenAI client asks it: a streamed
//! `POST {base}/chat/completions` to the gateway, printed as the answer arrives.

use std::{
    io::Write,
    time::{Duration, Instant},
};

use futures::StreamExt;
use serde_json::{Value, json};

use crate::{Error, Result};

/// The answer and its counts.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub(crate) text: String,
    pub(crate) prompt_tokens: u64,
    pub(crate) completion_tokens: u64,
    pub(crate) first_token: Duration,
    pub(crate) duration: Duration,
}

/// Asks `question` of `model` through the gateway at `base` (`http://HOST:PORT/v1`), echoing
/// the answer to stdout as it streams.
pub(crate) async fn ask(
    base: &str,
    model: &str,
    question: &str,
    max_tokens: u32,
) -> Result<Answer> {
    let body = json!({
        "model": model,
        // SmolLM2's chat template adds a default system prompt when there is none, with which this
        // small quantised model tends to answer in French; an explicit one keeps it in English.
        "messages": [
            { "role": "system", "content": "You are a helpful assistant." },
            { "role": "user", "content": question },
        ],
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "stream": true,
        "stream_options": { "include_usage": true },
    });
    let url = format!("{base}/chat/completions");
    let failed = |e: &dyn std::fmt::Display| Error::Devnet(format!("POST {url}: {e}"));
    let started = Instant::now();
    let response = reqwest::Client::new()
        .post(&url)
        // Any key: the gateway signs with the devnet user's key, as it would with the user's own.
        .bearer_auth("devnet")
        .json(&body)
        .send()
        .await
        .map_err(|e| failed(&e))?;
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        return Err(failed(&format!("{status}: {text}")));
    }

    print!("assistant: ");
    let mut stdout = std::io::stdout();
    let (mut text, mut first_token, mut usage) = (String::new(), None, None);
    let mut events = Events::default();
    let mut bytes = response.bytes_stream();
    let mut done = false;
    while !done {
        let Some(chunk) = bytes.next().await else {
            return Err(failed(&"the stream ended before [DONE]"));
        };
        for data in events.push(&chunk.map_err(|e| failed(&e))?) {
            if data == "[DONE]" {
                done = true;
                break;
            }
            let chunk: Value =
                serde_json::from_str(&data).map_err(|e| failed(&format!("{e} in {data:?}")))?;
            if let Some(error) = chunk.get("error") {
                return Err(failed(&format!("the gateway sent an error: {error}")));
            }
            let pieces = chunk["choices"].as_array().into_iter().flatten();
            for piece in pieces.filter_map(|c| c["delta"]["content"].as_str()) {
                if !piece.is_empty() {
                    first_token.get_or_insert_with(|| started.elapsed());
                    print!("{piece}");
                    let _ = stdout.flush();
                    text.push_str(piece);
                }
            }
            if chunk["usage"].is_object() {
                usage = Some(chunk["usage"].clone());
            }
        }
    }
    println!();
    let duration = started.elapsed();
    let usage = usage.ok_or_else(|| failed(&"the answer carried no usage counts"))?;
    let count = |field: &str| usage[field].as_u64().unwrap_or_default();
    Ok(Answer {
        text,
        prompt_tokens: count("prompt_tokens"),
        completion_tokens: count("completion_tokens"),
        first_token: first_token.unwrap_or(duration),
        duration,
    })
}

/// Server-sent events from a byte stream: the `data` of each event, split at blank lines. An
/// event is only decoded once whole, so a character split between two network chunks is
/// never cut.
#[derive(Debug, Default)]
struct Events {
    buf: Vec<u8>,
}

impl Events {
    fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        // CRs end lines too; inside a JSON payload they are always escaped.
        self.buf.extend(chunk.iter().filter(|&&b| b != b'\r'));
        let mut out = Vec::new();
        while let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
            let event: Vec<u8> = self.buf.drain(..end + 2).collect();
            let event = String::from_utf8_lossy(&event);
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            if !data.is_empty() {
                out.push(data.join("\n"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_at_blank_lines_across_chunks() {
        let mut e = Events::default();
        let text = "data: {\"a\":\"é\"}\r\n\r\n: comment\n\ndata: [DONE]\n\n".as_bytes();
        // Split inside the two-byte é and inside the CRLF pair.
        let (one, rest) = text.split_at(13);
        let (two, three) = rest.split_at(6);
        let mut got = e.push(one);
        got.extend(e.push(two));
        got.extend(e.push(three));
        assert_eq!(got, vec!["{\"a\":\"é\"}".to_string(), "[DONE]".to_string()]);
    }
}
