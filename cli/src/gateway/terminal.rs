//! `morpheus chat`: one question through the gateway's path, the answer streamed to the
//! terminal, the session's figures after it, and its report sent before returning.

use std::{
    io::Write,
    time::{Duration, Instant},
};

use futures::StreamExt;
use morpheus_sdk::openai::{ChatCompletionRequest, ChatMessage, StreamOptions};

use super::Gateway;
use crate::{Error, Result};

/// Asks `prompt` (after `system`, when given) of `model` (the only model served when `None`),
/// prints the answer to stdout as it comes and the provider, tokens and timings to stderr,
/// and waits for the report to be sent (or kept in the outbox).
pub async fn chat_to_terminal(
    gateway: &Gateway,
    model: Option<&str>,
    system: Option<&str>,
    prompt: &str,
    max_tokens: Option<u32>,
) -> Result<()> {
    let model = match model {
        Some(m) => m.to_string(),
        None => only_model(gateway).await?,
    };
    let mut messages: Vec<ChatMessage> = system.map(ChatMessage::system).into_iter().collect();
    messages.push(ChatMessage::user(prompt));
    let request = ChatCompletionRequest {
        model,
        messages,
        max_tokens,
        stream: true,
        stream_options: Some(StreamOptions {
            include_usage: true,
        }),
        ..Default::default()
    };
    let started = Instant::now();
    let result = print_answer(gateway, request, started).await;
    // The report goes out (or into the outbox) before the process ends.
    gateway.drain().await;
    result
}

async fn print_answer(
    gateway: &Gateway,
    request: ChatCompletionRequest,
    started: Instant,
) -> Result<()> {
    let mut answer = gateway.chat(request).await?;
    let provider = answer.provider;
    let (mut ttft, mut usage): (Option<Duration>, _) = (None, None);
    let mut out = std::io::stdout().lock();
    while let Some(chunk) = answer.next().await {
        let chunk = chunk?;
        for choice in &chunk.choices {
            if let Some(text) = choice.delta.content.as_deref().filter(|t| !t.is_empty()) {
                ttft.get_or_insert_with(|| started.elapsed());
                write!(out, "{text}").map_err(|e| Error::io("stdout", e))?;
                out.flush().map_err(|e| Error::io("stdout", e))?;
            }
        }
        usage = chunk.usage.or(usage);
    }
    writeln!(out).map_err(|e| Error::io("stdout", e))?;
    let duration = started.elapsed();
    let tokens = usage.map_or_else(|| "?".to_string(), |u| u.total_tokens.to_string());
    eprintln!(
        "provider {provider}: {tokens} tokens, first token after {:.2}s, {:.2}s in all",
        ttft.unwrap_or(duration).as_secs_f64(),
        duration.as_secs_f64()
    );
    Ok(())
}

async fn only_model(gateway: &Gateway) -> Result<String> {
    let list = gateway.models().await?;
    match list.data.as_slice() {
        [one] => Ok(one.id.clone()),
        [] => Err(Error::Config(
            "the network serves no model yet (no model has a bid)".into(),
        )),
        many => Err(Error::Config(format!(
            "the network serves several models; choose one with --model: {}",
            many.iter()
                .map(|m| m.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}
