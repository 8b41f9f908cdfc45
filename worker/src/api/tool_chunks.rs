//! A tool-using answer streamed while it is written: the role, then (`call_stream.rs`) text
//! deltas for an answer that is not a call, or each call's deltas under its index: its id, type
//! and function name once the name is whole, then its arguments as the model writes them; the
//! finish (`tool_calls` once every call is whole), the usage if asked, `[DONE]`.

use std::sync::{Arc, Mutex, PoisonError};

use morpheus_sdk::openai::{Delta, FunctionCallDelta, ToolCallDelta};

use super::{
    AppState,
    call_stream::Piece,
    chat::{chunk, render_chunk},
    generate::{self, Item, Meta},
    tools::{Tools, call_id},
};

/// The stream's renderer for one answer to a request using `tools`.
pub(super) fn render(
    state: AppState,
    meta: Meta,
    tools: &Tools,
    include_usage: bool,
) -> impl Fn(Item<'_>) -> Vec<String> + Send + Sync + 'static {
    let (scanner, first) = tools.stream();
    let pending = Arc::new(Mutex::new((scanner, first)));
    move |item: Item<'_>| {
        let mut guard = pending.lock().unwrap_or_else(PoisonError::into_inner);
        let (scanner, first) = &mut *guard;
        match item {
            Item::Start(i) => {
                let mut out = render_chunk(&state, &meta, Item::Start(i), false);
                let pieces = std::mem::take(first);
                out.extend(pieces_as_chunks(&state, &meta, i, pieces, &[]));
                out
            }
            Item::Text(i, text, logprobs) => {
                let pieces = scanner.push(&text);
                pieces_as_chunks(&state, &meta, i, pieces, logprobs)
            }
            Item::Done(i, done) => {
                let finish = if scanner.calls().is_some() {
                    "tool_calls"
                } else {
                    done.finish.as_str()
                };
                generate::to_data(&[chunk(&meta, i, Delta::default(), Some(finish))])
            }
            end @ Item::End(_) => render_chunk(&state, &meta, end, include_usage),
        }
    }
}

/// The chunks of `pieces` of choice `i`; the tokens' log-probabilities ride on the first.
fn pieces_as_chunks(
    state: &AppState,
    meta: &Meta,
    i: u32,
    pieces: Vec<Piece>,
    logprobs: &[crate::engine::TokenLogprob],
) -> Vec<String> {
    let mut chunks = Vec::with_capacity(pieces.len());
    for piece in pieces {
        let delta = match piece {
            Piece::Text(text) => Delta {
                content: Some(text),
                ..Default::default()
            },
            Piece::Name(index, name) => {
                call_delta(index, Some(call_id()), Some(name), String::new())
            }
            Piece::Arguments(index, arguments) => call_delta(index, None, None, arguments),
        };
        chunks.push(chunk(meta, i, delta, None));
    }
    if let Some(first) = chunks.first_mut()
        && !logprobs.is_empty()
    {
        first.choices[0].logprobs = Some(generate::chat_logprobs(state, logprobs));
    }
    generate::to_data(&chunks)
}

/// A delta of call `index`; its first carries its new `id`, type and name.
fn call_delta(index: u32, id: Option<String>, name: Option<String>, arguments: String) -> Delta {
    Delta {
        tool_calls: Some(vec![ToolCallDelta {
            index,
            kind: id.as_ref().map(|_| "function".to_string()),
            id,
            function: FunctionCallDelta {
                name,
                arguments: Some(arguments),
            },
        }]),
        ..Default::default()
    }
}
