//! HTTP client of a provider's OpenAI-compatible endpoint.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use reqwest::Response;

use super::{ASSIGNMENT_HEADER, LivenessProof, encode_assignment, sse};
use crate::{
    Error, Result, TransportKind,
    http::Peer,
    messages::{Assignment, LivenessChallenge, Signed},
    openai::{ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse, ModelList},
};

const PEER: &str = "provider";

/// The most of a liveness answer that is read: a proof for a model of 2^100 chunks is under 8 KiB.
const LIVENESS_ANSWER_LIMIT: usize = 16 * 1024;

/// A streamed answer: chunks in order, ending after the provider's `[DONE]`.
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<ChatCompletionChunk>> + Send>>;

/// Client of one provider endpoint (`morpheus-worker` or any server speaking the same API).
#[derive(Debug, Clone)]
pub struct ProviderClient {
    peer: Peer,
}

impl ProviderClient {
    /// A client of the provider at `endpoint` (its base URL, e.g. `http://127.0.0.1:8080`).
    pub fn new(endpoint: &str) -> Result<Self> {
        // No overall timeout: a streamed answer may rightly take minutes.
        Ok(Self {
            peer: Peer::new(PEER, endpoint, None)?,
        })
    }

    /// A client of the provider at `endpoint` that sends over `http`, so that a caller talking
    /// to many providers shares one connection pool and chooses the timeouts. `http` is used as
    /// given: without a timeout set on it, a request may wait forever.
    pub fn with_client(endpoint: &str, http: reqwest::Client) -> Result<Self> {
        Ok(Self {
            peer: Peer::with_client(PEER, endpoint, http)?,
        })
    }

    /// The models the provider serves.
    pub async fn models(&self) -> Result<ModelList> {
        self.peer.json(self.peer.get("v1/models")?).await
    }

    /// Asks for a whole answer (the request's `stream` flag is ignored).
    pub async fn chat(
        &self,
        assignment: &Signed<Assignment>,
        request: &ChatCompletionRequest,
    ) -> Result<ChatCompletionResponse> {
        let request = ChatCompletionRequest {
            stream: false,
            ..request.clone()
        };
        let response = self.post_chat(assignment, &request).await?;
        response.json().await.map_err(|e| self.peer.transport(e))
    }

    /// Asks for a streamed answer (server-sent events).
    pub async fn chat_stream(
        &self,
        assignment: &Signed<Assignment>,
        request: &ChatCompletionRequest,
    ) -> Result<ChatStream> {
        let request = ChatCompletionRequest {
            stream: true,
            ..request.clone()
        };
        let response = self.post_chat(assignment, &request).await?;
        let peer = self.peer.clone();
        let bytes = response.bytes_stream();
        let stream =
            futures::stream::unfold(
                (bytes, sse::Reader::default(), Vec::<String>::new(), false),
                move |(mut bytes, mut reader, mut pending, done)| {
                    let peer = peer.clone();
                    async move {
                        loop {
                            if done {
                                return None;
                            }
                            if !pending.is_empty() {
                                let data = pending.remove(0);
                                if data == "[DONE]" {
                                    return None;
                                }
                                let item = serde_json::from_str::<ChatCompletionChunk>(&data)
                                    .map_err(|e| Error::Transport {
                                        peer: peer.name(),
                                        kind: TransportKind::BadAnswer,
                                        message: format!("bad stream chunk {data:?}: {e}"),
                                    });
                                return Some((item, (bytes, reader, pending, false)));
                            }
                            match bytes.next().await {
                                Some(Ok(chunk)) => pending.extend(reader.push(&chunk)),
                                Some(Err(e)) => {
                                    let err = peer.transport(e);
                                    return Some((Err(err), (bytes, reader, pending, true)));
                                }
                                None => {
                                    let err = Error::Transport {
                                        peer: peer.name(),
                                        kind: TransportKind::BadAnswer,
                                        message: "stream ended before [DONE]".into(),
                                    };
                                    return Some((Err(err), (bytes, reader, pending, true)));
                                }
                            }
                        }
                    }
                },
            );
        Ok(Box::pin(stream))
    }

    /// Sends the router's liveness challenge; returns the provider's proof (unverified). An
    /// answer over 16 KiB is [`TransportKind::TooLarge`], and the rest of it is never read.
    pub async fn liveness(&self, challenge: &Signed<LivenessChallenge>) -> Result<LivenessProof> {
        self.peer
            .json_within(
                self.peer.post("v1/liveness")?.json(challenge),
                LIVENESS_ANSWER_LIMIT,
            )
            .await
    }

    async fn post_chat(
        &self,
        assignment: &Signed<Assignment>,
        request: &ChatCompletionRequest,
    ) -> Result<Response> {
        let request = self
            .peer
            .post("v1/chat/completions")?
            .header(ASSIGNMENT_HEADER, encode_assignment(assignment))
            .json(request);
        self.peer.send(request).await
    }
}
