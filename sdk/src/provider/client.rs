//! HTTP client of a provider's OpenAI-compatible endpoint.

use std::{pin::Pin, time::Duration};

use futures::{Stream, StreamExt};
use reqwest::{Response, Url};

use super::{ASSIGNMENT_HEADER, LivenessProof, encode_assignment, sse};
use crate::{
    Error, Result,
    messages::{Assignment, LivenessChallenge, Signed},
    openai::{
        ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse, ErrorBody, ModelList,
    },
};

const PEER: &str = "provider";

/// A streamed answer: chunks in order, ending after the provider's `[DONE]`.
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<ChatCompletionChunk>> + Send>>;

/// Client of one provider endpoint (`morpheus-worker` or any server speaking the same API).
#[derive(Debug, Clone)]
pub struct ProviderClient {
    http: reqwest::Client,
    base: Url,
}

impl ProviderClient {
    /// A client of the provider at `endpoint` (its base URL, e.g. `http://127.0.0.1:8080`).
    pub fn new(endpoint: &str) -> Result<Self> {
        let mut base = Url::parse(endpoint).map_err(|e| Error::Transport {
            peer: PEER,
            message: format!("endpoint {endpoint:?} is not a URL: {e}"),
        })?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Error::Transport {
                peer: PEER,
                message: e.to_string(),
            })?;
        Ok(Self { http, base })
    }

    /// The models the provider serves.
    pub async fn models(&self) -> Result<ModelList> {
        let response = self
            .http
            .get(self.url("v1/models")?)
            .send()
            .await
            .map_err(transport)?;
        json(response).await
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
        json(response).await
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
        let response = check(self.post_chat(assignment, &request).await?).await?;
        let bytes = response.bytes_stream();
        let stream = futures::stream::unfold(
            (bytes, String::new(), Vec::<String>::new(), false),
            |(mut bytes, mut buf, mut pending, done)| async move {
                loop {
                    if done {
                        return None;
                    }
                    if !pending.is_empty() {
                        let data = pending.remove(0);
                        if data == "[DONE]" {
                            return None;
                        }
                        let item =
                            serde_json::from_str::<ChatCompletionChunk>(&data).map_err(|e| {
                                Error::Transport {
                                    peer: PEER,
                                    message: format!("bad stream chunk {data:?}: {e}"),
                                }
                            });
                        return Some((item, (bytes, buf, pending, false)));
                    }
                    match bytes.next().await {
                        Some(Ok(chunk)) => {
                            buf.push_str(&String::from_utf8_lossy(&chunk));
                            pending.extend(sse::drain_events(&mut buf));
                        }
                        Some(Err(e)) => {
                            return Some((Err(transport(e)), (bytes, buf, pending, true)));
                        }
                        None => {
                            let err = Error::Transport {
                                peer: PEER,
                                message: "stream ended before [DONE]".into(),
                            };
                            return Some((Err(err), (bytes, buf, pending, true)));
                        }
                    }
                }
            },
        );
        Ok(Box::pin(stream))
    }

    /// Sends the router's liveness challenge; returns the provider's proof (unverified).
    pub async fn liveness(&self, challenge: &Signed<LivenessChallenge>) -> Result<LivenessProof> {
        let response = self
            .http
            .post(self.url("v1/liveness")?)
            .json(challenge)
            .send()
            .await
            .map_err(transport)?;
        json(response).await
    }

    async fn post_chat(
        &self,
        assignment: &Signed<Assignment>,
        request: &ChatCompletionRequest,
    ) -> Result<Response> {
        self.http
            .post(self.url("v1/chat/completions")?)
            .header(ASSIGNMENT_HEADER, encode_assignment(assignment))
            .json(request)
            .send()
            .await
            .map_err(transport)
    }

    fn url(&self, path: &str) -> Result<Url> {
        self.base.join(path).map_err(|e| Error::Transport {
            peer: PEER,
            message: format!("bad path {path}: {e}"),
        })
    }
}

fn transport(e: reqwest::Error) -> Error {
    Error::Transport {
        peer: PEER,
        message: e.to_string(),
    }
}

/// Turns a non-success answer into [`Error::Http`] with the provider's stated reason.
async fn check(response: Response) -> Result<Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let text = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<ErrorBody>(&text)
        .map(|b| b.error.message)
        .unwrap_or(text);
    Err(Error::Http {
        peer: PEER,
        status: status.as_u16(),
        message,
    })
}

async fn json<T: serde::de::DeserializeOwned>(response: Response) -> Result<T> {
    let response = check(response).await?;
    response.json().await.map_err(transport)
}
