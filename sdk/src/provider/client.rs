//! HTTP client of a provider's OpenAI-compatible endpoint.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use reqwest::Response;

use super::{
    ASSIGNMENT_HEADER, LivenessProof, RECEIPT_PATH, RECEIPTS_PATH, encode_assignment, sse,
};
use crate::{
    Error, Result, TransportKind,
    http::Peer,
    messages::{
        Assignment, LivenessChallenge, ReceiptRequest, ServiceReceipt, ServiceReceipts, Signed,
    },
    openai::{
        ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse, CompletionChunk,
        CompletionRequest, ModelList,
    },
};

const PEER: &str = "provider";

/// The most of a liveness answer that is read: the 4 KiB piece (base64), its path and a chunk
/// proof as deep as a `u64` chunk count allows are under 12 KiB (`liveness_answer_fits_the_limit`).
const LIVENESS_ANSWER_LIMIT: usize = 16 * 1024;

/// The most of a receipt that is read: a signed receipt is under 400 bytes.
const RECEIPT_LIMIT: usize = 4 * 1024;

/// The most of several receipts that is read: 256 signed entries are under 40 KiB.
const RECEIPTS_LIMIT: usize = 64 * 1024;

/// A streamed answer: chunks in order, ending after the provider's `[DONE]`.
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<ChatCompletionChunk>> + Send>>;

/// A streamed text completion: chunks in order, ending after the provider's `[DONE]`.
pub type CompletionStream = Pin<Box<dyn Stream<Item = Result<CompletionChunk>> + Send>>;

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
        let response = self
            .post(assignment, "v1/chat/completions", &request)
            .await?;
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
        let response = self
            .post(assignment, "v1/chat/completions", &request)
            .await?;
        Ok(self.events(response))
    }

    /// Asks for a streamed text completion (`POST /v1/completions`, server-sent events).
    pub async fn completion_stream(
        &self,
        assignment: &Signed<Assignment>,
        request: &CompletionRequest,
    ) -> Result<CompletionStream> {
        let request = CompletionRequest {
            stream: true,
            ..request.clone()
        };
        let response = self.post(assignment, "v1/completions", &request).await?;
        Ok(self.events(response))
    }

    /// The chunks of a server-sent event stream, each parsed as a `T`, up to `[DONE]`; a
    /// stream that ends before it, or a chunk that does not parse, is an error.
    fn events<T>(&self, response: Response) -> Pin<Box<dyn Stream<Item = Result<T>> + Send>>
    where
        T: serde::de::DeserializeOwned + Send + 'static,
    {
        let peer = self.peer.clone();
        let bytes = response.bytes_stream();
        let stream = futures::stream::unfold(
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
                            let item =
                                serde_json::from_str::<T>(&data).map_err(|e| Error::Transport {
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
        Box::pin(stream)
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

    /// Closes the assignment's session at the provider and returns the provider's signed count
    /// of the tokens it charged (unverified: check it with `Signed::verify` against the
    /// assignment's provider). The provider refuses the session's requests from then on.
    pub async fn receipt(&self, assignment: &Signed<Assignment>) -> Result<Signed<ServiceReceipt>> {
        let request = self
            .peer
            .post(RECEIPT_PATH)?
            .header(ASSIGNMENT_HEADER, encode_assignment(assignment));
        self.peer.json_within(request, RECEIPT_LIMIT).await
    }

    /// Closes the sessions of a router's signed [`ReceiptRequest`] at the provider and returns
    /// the provider's signed counts, in the request's order (unverified: check them with
    /// [`receipt_counts`](super::receipt_counts)).
    pub async fn receipts(
        &self,
        request: &Signed<ReceiptRequest>,
    ) -> Result<Signed<ServiceReceipts>> {
        let request = self.peer.post(RECEIPTS_PATH)?.json(request);
        self.peer.json_within(request, RECEIPTS_LIMIT).await
    }

    async fn post(
        &self,
        assignment: &Signed<Assignment>,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<Response> {
        let request = self
            .peer
            .post(path)?
            .header(ASSIGNMENT_HEADER, encode_assignment(assignment))
            .json(body);
        self.peer.send(request).await
    }
}

#[cfg(test)]
mod tests {
    use alloy::{
        primitives::{Address, B256},
        signers::local::PrivateKeySigner,
    };

    use super::*;
    use crate::{
        merkle::{ChunkProof, PIECE_SIZE, PIECES_PER_CHUNK, PieceProof},
        messages::{LivenessResponse, protocol_domain},
    };

    #[test]
    fn liveness_answer_fits_the_limit() {
        let domain = protocol_domain(u64::MAX, Address::repeat_byte(0xff));
        let response = LivenessResponse {
            challengeId: B256::repeat_byte(0xff),
            chunkHash: B256::repeat_byte(0xff),
        };
        // The largest answer: the deepest chunk path a u64 count allows, a full piece path.
        let answer = LivenessProof {
            response: Signed::sign(response, &domain, &PrivateKeySigner::random()).expect("sign"),
            proof: ChunkProof {
                index: u64::MAX - 1,
                leaf_count: u64::MAX,
                leaf: B256::repeat_byte(0xff),
                siblings: vec![B256::repeat_byte(0xff); 64],
            },
            piece: PieceProof {
                index: PIECES_PER_CHUNK - 1,
                piece_count: PIECES_PER_CHUNK,
                bytes: vec![0xff; PIECE_SIZE],
                siblings: vec![B256::repeat_byte(0xff); 8],
            },
        };
        let len = serde_json::to_vec(&answer).expect("serialises").len();
        // What the limit's comment promises, well under the limit itself.
        const _: () = assert!(12 * 1024 < LIVENESS_ANSWER_LIMIT);
        assert!(len < 12 * 1024, "{len} bytes");
    }
}
