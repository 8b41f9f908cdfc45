//! One answer on its way to the client: the chunks of the provider's stream, in OpenAI's shape,
//! ending as OpenAI's streams end or with the reason it broke off.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use alloy::primitives::{Address, B256};
use futures::Stream;
use morpheus_sdk::openai::{
    ChatCompletionChunk, ChatCompletionResponse, ChatMessage, Choice, ChoiceLogprobs, ChunkChoice,
    FunctionCall, ToolCall,
};
use tokio::sync::mpsc;

use crate::{Error, Result};

/// What the session's task sends on.
#[derive(Debug)]
pub(crate) enum Piece {
    /// A chunk of the provider's stream (the usage chunk included).
    Chunk(ChatCompletionChunk),
    /// The provider's stream ended as it should.
    Done,
    /// It broke off.
    Failed(Error),
}

/// A streamed answer: the chunks as the provider sends them (OpenAI's
/// `chat.completion.chunk`s), ending after the last one, or with an error when the answer breaks
/// off. The usage chunk is in it when the request asked for it (`stream_options.include_usage`).
///
/// Dropping it is the client going away: the session ends, and is reported as far as it got.
#[derive(Debug)]
pub struct Answer {
    /// The gateway's id of the request (`x-request-id`, in every log line about it).
    pub request_id: String,
    /// The session the router assigned.
    pub session_id: B256,
    /// The provider answering.
    pub provider: Address,
    /// The model as the request named it.
    pub model: String,
    pub(crate) include_usage: bool,
    pub(crate) rx: mpsc::Receiver<Piece>,
    pub(crate) ended: bool,
}

impl Answer {
    /// The next piece, usage chunk included whatever the request asked.
    async fn next_piece(&mut self) -> Option<Result<ChatCompletionChunk>> {
        if self.ended {
            return None;
        }
        let piece = self.rx.recv().await;
        self.take(piece)
    }

    fn take(&mut self, piece: Option<Piece>) -> Option<Result<ChatCompletionChunk>> {
        match piece {
            Some(Piece::Chunk(chunk)) => Some(Ok(chunk)),
            Some(Piece::Done) => {
                self.ended = true;
                None
            }
            Some(Piece::Failed(e)) => {
                self.ended = true;
                Some(Err(e))
            }
            None => {
                self.ended = true;
                Some(Err(Error::AnswerCut(
                    "the gateway stopped before the answer's end".into(),
                )))
            }
        }
    }

    /// The whole answer at once, as a non-streamed request gets it: each choice (`n` of them,
    /// told apart by their index) gathered from its deltas, in index order.
    pub async fn collect_response(mut self) -> Result<ChatCompletionResponse> {
        let (mut id, mut created, mut usage) = (None, 0, None);
        let mut choices: Vec<Gathered> = Vec::new();
        while let Some(chunk) = self.next_piece().await {
            let chunk = chunk?;
            if id.is_none() {
                id = Some(chunk.id.clone());
                created = chunk.created;
            }
            for choice in chunk.choices {
                let i = choice.index as usize;
                if choices.len() <= i {
                    choices.resize_with(i + 1, Gathered::default);
                }
                choices[i].add(choice);
            }
            usage = chunk.usage.or(usage);
        }
        if choices.is_empty() {
            choices.push(Gathered::default());
        }
        Ok(ChatCompletionResponse {
            id: id.unwrap_or_else(|| self.request_id.clone()),
            object: "chat.completion".into(),
            created,
            model: self.model.clone(),
            choices: choices
                .into_iter()
                .enumerate()
                .map(|(i, g)| g.choice(i as u32))
                .collect(),
            usage: usage.unwrap_or_default(),
        })
    }
}

/// One choice of a streamed answer, gathered from its deltas.
#[derive(Debug, Default)]
struct Gathered {
    text: String,
    finish: Option<String>,
    /// The provider streams each chunk's tokens' log-probabilities, when they were asked for.
    logprobs: Option<ChoiceLogprobs>,
    /// A call comes in deltas: the first with its id and name, then pieces of arguments.
    calls: Vec<ToolCall>,
}

impl Gathered {
    fn add(&mut self, choice: ChunkChoice) {
        if let Some(t) = choice.delta.content {
            self.text.push_str(&t);
        }
        if let Some(l) = choice.logprobs {
            self.logprobs
                .get_or_insert_default()
                .content
                .extend(l.content);
        }
        for d in choice.delta.tool_calls.unwrap_or_default() {
            let i = d.index as usize;
            if self.calls.len() <= i {
                self.calls.resize_with(i + 1, || ToolCall {
                    id: String::new(),
                    kind: "function".into(),
                    function: FunctionCall {
                        name: String::new(),
                        arguments: String::new(),
                    },
                });
            }
            let call = &mut self.calls[i];
            call.id.push_str(&d.id.unwrap_or_default());
            call.function
                .name
                .push_str(&d.function.name.unwrap_or_default());
            call.function
                .arguments
                .push_str(&d.function.arguments.unwrap_or_default());
        }
        self.finish = choice.finish_reason.or(self.finish.take());
    }

    fn choice(self, index: u32) -> Choice {
        Choice {
            index,
            message: ChatMessage {
                role: "assistant".into(),
                content: self.text,
                tool_calls: (!self.calls.is_empty()).then_some(self.calls),
                tool_call_id: None,
            },
            finish_reason: self.finish,
            logprobs: self.logprobs,
        }
    }
}

impl Stream for Answer {
    type Item = Result<ChatCompletionChunk>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if self.ended {
                return Poll::Ready(None);
            }
            let piece = match self.rx.poll_recv(cx) {
                Poll::Ready(piece) => piece,
                Poll::Pending => return Poll::Pending,
            };
            match self.take(piece) {
                Some(Ok(mut chunk)) if !self.include_usage => {
                    // The gateway always asks the provider for the counts (it reports them);
                    // a client that did not ask does not get them.
                    if chunk.choices.is_empty() && chunk.usage.is_some() {
                        continue;
                    }
                    chunk.usage = None;
                    return Poll::Ready(Some(Ok(chunk)));
                }
                other => return Poll::Ready(other),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use morpheus_sdk::openai::{ChunkChoice, Delta, Usage};

    use super::*;

    fn chunk(
        content: Option<&str>,
        finish: Option<&str>,
        usage: Option<Usage>,
    ) -> ChatCompletionChunk {
        ChatCompletionChunk {
            id: "chatcmpl-1".into(),
            object: "chat.completion.chunk".into(),
            created: 7,
            model: "tiny".into(),
            choices: if usage.is_some() {
                Vec::new()
            } else {
                vec![ChunkChoice {
                    index: 0,
                    delta: Delta {
                        content: content.map(str::to_string),
                        ..Default::default()
                    },
                    finish_reason: finish.map(str::to_string),
                    logprobs: None,
                }]
            },
            usage,
        }
    }

    const USAGE: Usage = Usage {
        prompt_tokens: 3,
        completion_tokens: 2,
        total_tokens: 5,
    };

    async fn answer(include_usage: bool, pieces: Vec<Piece>) -> Answer {
        let (tx, rx) = mpsc::channel(16);
        for p in pieces {
            tx.send(p).await.expect("room");
        }
        Answer {
            request_id: "req-1".into(),
            session_id: B256::ZERO,
            provider: Address::ZERO,
            model: "tiny".into(),
            include_usage,
            rx,
            ended: false,
        }
    }

    fn whole() -> Vec<Piece> {
        vec![
            Piece::Chunk(chunk(Some("Hel"), None, None)),
            Piece::Chunk(chunk(Some("lo"), None, None)),
            Piece::Chunk(chunk(None, Some("stop"), None)),
            Piece::Chunk(chunk(None, None, Some(USAGE))),
            Piece::Done,
        ]
    }

    #[tokio::test]
    async fn the_usage_chunk_reaches_only_a_client_that_asked() {
        let asked: Vec<_> = answer(true, whole()).await.collect::<Vec<_>>().await;
        assert_eq!(asked.len(), 4);
        assert_eq!(asked[3].as_ref().expect("chunk").usage, Some(USAGE));
        let not: Vec<_> = answer(false, whole()).await.collect::<Vec<_>>().await;
        assert_eq!(not.len(), 3);
        assert!(
            not.iter()
                .all(|c| c.as_ref().expect("chunk").usage.is_none())
        );
    }

    #[tokio::test]
    async fn a_whole_answer_joins_the_text_and_keeps_the_counts() {
        let whole = answer(false, whole())
            .await
            .collect_response()
            .await
            .expect("whole");
        assert_eq!(whole.choices[0].message.content, "Hello");
        assert_eq!(whole.choices[0].finish_reason.as_deref(), Some("stop"));
        assert_eq!(whole.usage, USAGE);
        assert_eq!((whole.id.as_str(), whole.created), ("chatcmpl-1", 7));
    }

    #[tokio::test]
    async fn an_answer_that_breaks_off_or_is_abandoned_is_an_error() {
        let cut = answer(
            false,
            vec![
                Piece::Chunk(chunk(Some("Hel"), None, None)),
                Piece::Failed(Error::AnswerCut("stream ended before [DONE]".into())),
            ],
        )
        .await;
        assert!(matches!(
            cut.collect_response().await,
            Err(Error::AnswerCut(_))
        ));
        // The session's task gone without a last word: never a silent, short answer.
        let abandoned = answer(false, vec![Piece::Chunk(chunk(Some("Hel"), None, None))]).await;
        assert!(matches!(
            abandoned.collect_response().await,
            Err(Error::AnswerCut(_))
        ));
    }
}
