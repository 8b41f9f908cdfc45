//! One chat (or text completion) request through the network: the signed request, the router's assignment, the
//! provider's stream until its first token (failing over to another provider before it), then
//! a task that passes the rest on, judges the session and reports it, whatever the client does.

use std::time::{Duration, Instant};

use alloy::primitives::U256;
use futures::StreamExt;
use morpheus_sdk::{
    messages::{Assignment, ComputeRequest, Signed, UsageReport},
    openai::{ChatCompletionChunk, ChatCompletionRequest, CompletionRequest, StreamOptions},
    provider::{ChatStream, ProviderClient},
    router::MAX_EXCLUDED,
};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::{
    Inner,
    answer::{Answer, Piece},
    catalog::Resolved,
    failover::fails_over,
    judge::{Ending, Observed, judge_session},
    reports,
};
use crate::{Error, Result};

/// Chunks held between the provider and a client that reads slowly.
const CHANNEL: usize = 64;

/// A provider's stream up to (and with) its first text.
struct Started {
    stream: ChatStream,
    /// The chunks read so far, the first text last.
    head: Vec<ChatCompletionChunk>,
    /// When the first text came; `None` when the stream ended without any.
    ttft: Option<Duration>,
    /// The stream ended (`[DONE]`) before any text.
    ended: bool,
}

/// Why a provider was left before its first token.
struct Failure {
    reason: String,
    fails_over: bool,
    error: Error,
}

/// One request: everything fixed before the first provider is asked.
pub(crate) struct Request {
    pub(crate) id: String,
    pub(crate) model: Resolved,
    pub(crate) token_max: u64,
    pub(crate) include_usage: bool,
    /// What goes to the provider: always streamed, always with the usage counts.
    pub(crate) upstream: Upstream,
}

/// The request a provider is sent.
#[derive(Debug, Clone)]
pub(crate) enum Upstream {
    /// `POST /v1/chat/completions`.
    Chat(ChatCompletionRequest),
    /// `POST /v1/completions`; its chunks travel as chat chunks (`completions::as_chat_chunk`).
    Completion(CompletionRequest),
}

impl Request {
    pub(crate) fn new(
        id: String,
        model: Resolved,
        token_max: u64,
        request: ChatCompletionRequest,
    ) -> Self {
        let include_usage = usage_asked(request.stream_options.as_ref());
        let upstream = ChatCompletionRequest {
            stream: true,
            stream_options: always_usage(),
            ..request
        };
        Self {
            id,
            model,
            token_max,
            include_usage,
            upstream: Upstream::Chat(upstream),
        }
    }

    /// A text completion's request: as [`new`](Self::new), for `POST /v1/completions`.
    pub(crate) fn completion(
        id: String,
        model: Resolved,
        token_max: u64,
        request: CompletionRequest,
    ) -> Self {
        Self {
            id,
            model,
            token_max,
            include_usage: usage_asked(request.stream_options.as_ref()),
            upstream: Upstream::Completion(CompletionRequest {
                stream: true,
                stream_options: always_usage(),
                ..request
            }),
        }
    }
}

/// Whether the client asked for the usage chunk.
fn usage_asked(options: Option<&StreamOptions>) -> bool {
    options.is_some_and(|o| o.include_usage)
}

/// What the provider is always asked for: the usage counts (the gateway reports them).
fn always_usage() -> Option<StreamOptions> {
    Some(StreamOptions {
        include_usage: true,
    })
}

impl Inner {
    /// Gets an assignment and a provider's first token, failing over; then hands the stream
    /// to a task that passes it on and reports the session.
    pub(crate) async fn answer(self: &std::sync::Arc<Self>, request: Request) -> Result<Answer> {
        let mut preferences = self.config.preferences.clone();
        let mut failures: Vec<String> = Vec::new();
        for _ in 0..self.config.max_attempts.max(1) {
            let signed = self.sign_request(&request)?;
            let assignment = match self
                .router
                .request_compute_with(&signed, preferences.clone())
                .await
            {
                Ok(a) => a,
                // The router has no other provider left: say what the failed ones did.
                Err(morpheus_sdk::Error::Http {
                    status: 503,
                    message,
                    ..
                }) if !failures.is_empty() => {
                    failures.push(format!("then the router: {message}"));
                    return Err(Error::NoAnswer(failures.join("; ")));
                }
                Err(e) => return Err(e.into()),
            };
            let a = &assignment.message;
            info!(target: "gateway::session", request = %request.id, session = %a.sessionId, provider = %a.provider, token_max = request.token_max, price = %a.pricePerToken, "assigned");
            let started = Instant::now();
            match self.first_token(&assignment, &request.upstream).await {
                Ok(head) => return Ok(self.pass_on(request, assignment, head, started)),
                Err(failure) => {
                    warn!(target: "gateway::session", request = %request.id, session = %a.sessionId, provider = %a.provider, reason = %failure.reason, "the provider failed before its first token");
                    let observed =
                        Observed::failed_before_first_token(&failure.reason, started.elapsed());
                    self.report_later(&request.id, &assignment, &observed);
                    if !failure.fails_over {
                        return Err(failure.error);
                    }
                    failures.push(format!("provider {}: {}", a.provider, failure.reason));
                    if preferences.exclude.len() < MAX_EXCLUDED {
                        preferences.exclude.push(a.provider);
                    }
                }
            }
        }
        Err(Error::NoAnswer(failures.join("; ")))
    }

    fn sign_request(&self, request: &Request) -> Result<Signed<ComputeRequest>> {
        let now = unix_now();
        let message = ComputeRequest {
            user: self.config.signer.address(),
            modelId: request.model.model_id,
            tokenMax: U256::from(request.token_max),
            nonce: U256::from_be_bytes(rand::random::<[u8; 32]>()),
            deadline: U256::from(now.saturating_add(self.config.request_deadline.as_secs())),
        };
        Ok(Signed::sign(message, &self.domain, &self.config.signer)?)
    }

    /// The provider's stream up to its first text, within the first-token timeout.
    async fn first_token(
        &self,
        assignment: &Signed<Assignment>,
        upstream: &Upstream,
    ) -> std::result::Result<Started, Failure> {
        let limit = self.config.first_token_timeout;
        match tokio::time::timeout(limit, self.open_stream(assignment, upstream)).await {
            Ok(Ok(head)) => Ok(head),
            Ok(Err(e)) => Err(Failure::from_sdk(e)),
            Err(_) => {
                let reason = format!("no first token within {}s", limit.as_secs_f64());
                Err(Failure {
                    error: Error::NoAnswer(reason.clone()),
                    reason,
                    fails_over: true,
                })
            }
        }
    }

    /// Sends the request to the assignment's provider and reads until the first text.
    async fn open_stream(
        &self,
        assignment: &Signed<Assignment>,
        upstream: &Upstream,
    ) -> morpheus_sdk::Result<Started> {
        let started = Instant::now();
        let client = ProviderClient::with_client(&assignment.message.endpoint, self.http.clone())?;
        let mut stream: ChatStream = match upstream {
            Upstream::Chat(chat) => client.chat_stream(assignment, chat).await?,
            Upstream::Completion(completion) => Box::pin(
                client
                    .completion_stream(assignment, completion)
                    .await?
                    .map(|chunk| chunk.map(super::completions::as_chat_chunk)),
            ),
        };
        let mut head = Vec::new();
        loop {
            match stream.next().await {
                Some(Ok(chunk)) => {
                    let text = has_text(&chunk);
                    head.push(chunk);
                    if text {
                        let ttft = Some(started.elapsed());
                        return Ok(Started {
                            stream,
                            head,
                            ttft,
                            ended: false,
                        });
                    }
                }
                Some(Err(e)) => return Err(e),
                None => {
                    return Ok(Started {
                        stream,
                        head,
                        ttft: None,
                        ended: true,
                    });
                }
            }
        }
    }

    /// Starts the task that passes the stream on; returns the client's end of it.
    fn pass_on(
        self: &std::sync::Arc<Self>,
        request: Request,
        assignment: Signed<Assignment>,
        head: Started,
        started: Instant,
    ) -> Answer {
        let (tx, rx) = mpsc::channel(CHANNEL);
        let answer = Answer {
            request_id: request.id.clone(),
            session_id: assignment.message.sessionId,
            provider: assignment.message.provider,
            model: request.model.name.clone(),
            include_usage: request.include_usage,
            rx,
            ended: false,
        };
        let inner = self.clone();
        self.tasks.spawn(async move {
            let observed = inner.pump(&request, head, started, tx).await;
            inner.report(&request.id, &assignment, &observed).await;
        });
        answer
    }

    /// Passes the stream on until its end, a failure, or the client going away.
    async fn pump(
        &self,
        request: &Request,
        head: Started,
        started: Instant,
        tx: mpsc::Sender<Piece>,
    ) -> Observed {
        let mut seen = Observed {
            ending: Ending::Done,
            text: false,
            text_chunks: 0,
            usage: None,
            ttft: head.ttft,
            duration: Duration::ZERO,
        };
        let Started {
            mut stream,
            head,
            ended,
            ..
        } = head;
        let deadline = self
            .config
            .answer_timeout
            .map(|d| tokio::time::Instant::from_std(started + d));
        let mut ending = None;
        for chunk in head {
            if !forward(&tx, &mut seen, chunk, &request.model.name).await {
                ending = Some(Ending::ClientGone);
                break;
            }
        }
        if !ended {
            while ending.is_none() {
                let next = tokio::select! {
                    biased;
                    () = tx.closed() => { ending = Some(Ending::ClientGone); break; }
                    () = sleep_until(deadline) => {
                        ending = Some(Ending::Failed(format!(
                            "the answer took longer than {}s",
                            self.config.answer_timeout.unwrap_or_default().as_secs_f64()
                        )));
                        break;
                    }
                    next = tokio::time::timeout(self.config.idle_timeout, stream.next()) => next,
                };
                match next {
                    Ok(Some(Ok(chunk))) => {
                        if !forward(&tx, &mut seen, chunk, &request.model.name).await {
                            ending = Some(Ending::ClientGone);
                        }
                    }
                    Ok(Some(Err(e))) => ending = Some(Ending::Failed(describe(&e))),
                    Ok(None) => ending = Some(Ending::Done),
                    Err(_) => {
                        ending = Some(Ending::Failed(format!(
                            "no chunk for {}s",
                            self.config.idle_timeout.as_secs_f64()
                        )))
                    }
                }
            }
        }
        // Stop the provider as soon as the answer is over for us.
        drop(stream);
        seen.ending = ending.unwrap_or(Ending::Done);
        seen.duration = started.elapsed();
        let last = match &seen.ending {
            Ending::Failed(reason) => Piece::Failed(Error::AnswerCut(reason.clone())),
            Ending::Done | Ending::ClientGone => Piece::Done,
        };
        let _ = tx.send(last).await;
        seen
    }

    /// Reports a session in a task of its own (a fail-over does not wait on it).
    fn report_later(
        self: &std::sync::Arc<Self>,
        request_id: &str,
        assignment: &Signed<Assignment>,
        observed: &Observed,
    ) {
        let (inner, id, assignment, observed) = (
            self.clone(),
            request_id.to_string(),
            assignment.clone(),
            observed.clone(),
        );
        self.tasks
            .spawn(async move { inner.report(&id, &assignment, &observed).await });
    }

    /// Judges, signs and delivers the session's report.
    async fn report(&self, request_id: &str, assignment: &Signed<Assignment>, observed: &Observed) {
        let verdict = judge_session(observed);
        let session = assignment.message.sessionId;
        info!(target: "gateway::session", request = %request_id, %session, provider = %assignment.message.provider, passed = verdict.passed, tokens = verdict.tokens, ttft_ms = verdict.ttft_ms, duration_ms = verdict.duration_ms, ending = ?observed.ending, "session judged");
        let report = UsageReport {
            sessionId: session,
            tokens: U256::from(verdict.tokens),
            ttftMs: U256::from(verdict.ttft_ms),
            durationMs: U256::from(verdict.duration_ms),
            passed: verdict.passed,
        };
        match Signed::sign(report, &self.domain, &self.config.signer) {
            Ok(signed) => {
                reports::deliver(&self.router, &self.outbox, &signed).await;
            }
            Err(e) => {
                warn!(target: "gateway::session", request = %request_id, %session, error = %e, "the report could not be signed")
            }
        }
    }
}

impl Failure {
    fn from_sdk(e: morpheus_sdk::Error) -> Self {
        Self {
            reason: describe(&e),
            fails_over: fails_over(&e),
            error: e.into(),
        }
    }
}

/// A provider's failure in words fit for the log and the report's reason: never the text of
/// the answer (a chunk that does not decode is quoted by the SDK's message).
fn describe(e: &morpheus_sdk::Error) -> String {
    match e {
        morpheus_sdk::Error::Transport { peer, message, .. }
            if message.starts_with("bad stream chunk") =>
        {
            format!("a chunk of the {peer}'s stream is not an OpenAI chunk")
        }
        other => other.to_string(),
    }
}

/// Whether a chunk carries text (a tool call's delta counts: it is the answer then).
fn has_text(chunk: &ChatCompletionChunk) -> bool {
    chunk
        .choices
        .iter()
        .any(|c| c.delta.content.as_deref().is_some_and(|t| !t.is_empty()) || has_call(&c.delta))
}

/// Whether a delta carries a piece of a tool call.
fn has_call(delta: &morpheus_sdk::openai::Delta) -> bool {
    delta.tool_calls.as_ref().is_some_and(|calls| {
        calls.iter().any(|c| {
            c.function.name.as_deref().is_some_and(|n| !n.is_empty())
                || c.function
                    .arguments
                    .as_deref()
                    .is_some_and(|a| !a.is_empty())
        })
    })
}

/// Notes what `chunk` adds and sends it on; false once the client is gone.
async fn forward(
    tx: &mpsc::Sender<Piece>,
    seen: &mut Observed,
    mut chunk: ChatCompletionChunk,
    model: &str,
) -> bool {
    if has_text(&chunk) {
        seen.text_chunks += 1;
        seen.text |= chunk.choices.iter().any(|c| {
            c.delta
                .content
                .as_deref()
                .is_some_and(|t| !t.trim().is_empty())
                || has_call(&c.delta)
        });
    }
    seen.usage = chunk.usage.or(seen.usage);
    // The client asked by the name it knows; the provider's own name for its build stays its own.
    chunk.model = model.to_string();
    tx.send(Piece::Chunk(chunk)).await.is_ok()
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use morpheus_sdk::TransportKind;

    use super::*;

    #[test]
    fn a_failure_is_described_without_the_answers_text() {
        let garbled = morpheus_sdk::Error::Transport {
            peer: "provider",
            kind: TransportKind::BadAnswer,
            message: "bad stream chunk \"the secret answer\": expected value".into(),
        };
        let described = describe(&garbled);
        assert!(!described.contains("secret"), "{described}");
        assert!(described.contains("not an OpenAI chunk"), "{described}");
        let cut = morpheus_sdk::Error::Transport {
            peer: "provider",
            kind: TransportKind::BadAnswer,
            message: "stream ended before [DONE]".into(),
        };
        assert!(describe(&cut).contains("stream ended before [DONE]"));
    }
}
