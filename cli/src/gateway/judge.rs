//! The gateway's judgement of a session, as the user's `UsageReport` states it: passed or
//! failed, the tokens served, the time to first token and the duration.
//!
//! The rule (`judge_session`): a session passes when the provider's answer ended as OpenAI's
//! stream ends (`[DONE]`) with some text, or when the client went away while the provider was
//! still answering (the provider did nothing wrong). It fails on an error or a refusal, a
//! timeout, a stream that broke off, and an empty answer. The tokens are the provider's own
//! usage count (prompt and completion) when it sent one, else the chunks of text seen (a lower
//! bound: the provider's signed receipt settles what the user's day counts).

use std::time::Duration;

use morpheus_sdk::openai::Usage;

/// How an answer ended, as the gateway saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The provider finished its stream (`[DONE]`).
    Done,
    /// The client went away before the end; the provider was still answering.
    ClientGone,
    /// The provider failed: an error answer, a refusal, a timeout, a stream that broke off.
    Failed(String),
}

/// What the gateway saw of one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// How it ended.
    pub ending: Ending,
    /// Whether any non-blank text arrived.
    pub text: bool,
    /// Chunks that carried text.
    pub text_chunks: u64,
    /// The provider's usage count, when it sent one.
    pub usage: Option<Usage>,
    /// From sending the request to the first text, when some arrived.
    pub ttft: Option<Duration>,
    /// From sending the request to the end.
    pub duration: Duration,
}

impl Observed {
    /// A provider that failed before its first token (the gateway asks for another).
    pub fn failed_before_first_token(reason: impl Into<String>, duration: Duration) -> Self {
        Self {
            ending: Ending::Failed(reason.into()),
            text: false,
            text_chunks: 0,
            usage: None,
            ttft: None,
            duration,
        }
    }
}

/// The report's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// `UsageReport.passed`.
    pub passed: bool,
    /// `UsageReport.tokens`.
    pub tokens: u64,
    /// `UsageReport.ttftMs`: the duration when no text arrived.
    pub ttft_ms: u64,
    /// `UsageReport.durationMs`.
    pub duration_ms: u64,
}

/// Judges a session (the rule is in the module's documentation).
pub fn judge_session(observed: &Observed) -> Verdict {
    let passed = match observed.ending {
        Ending::Done => observed.text,
        Ending::ClientGone => true,
        Ending::Failed(_) => false,
    };
    let tokens = match (&observed.ending, observed.usage) {
        // Nothing came before the failure: the provider served nothing.
        (Ending::Failed(_), _) if observed.text_chunks == 0 && observed.usage.is_none() => 0,
        (_, Some(usage)) => u64::from(usage.total_tokens),
        (_, None) => observed.text_chunks,
    };
    let duration_ms = millis(observed.duration);
    Verdict {
        passed,
        tokens,
        ttft_ms: observed.ttft.map_or(duration_ms, millis).min(duration_ms),
        duration_ms,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(ending: Ending) -> Observed {
        Observed {
            ending,
            text: true,
            text_chunks: 5,
            usage: Some(Usage {
                prompt_tokens: 10,
                completion_tokens: 5,
                total_tokens: 15,
            }),
            ttft: Some(Duration::from_millis(40)),
            duration: Duration::from_millis(200),
        }
    }

    #[test]
    fn a_whole_answer_passes_with_the_providers_count() {
        assert_eq!(
            judge_session(&answered(Ending::Done)),
            Verdict {
                passed: true,
                tokens: 15,
                ttft_ms: 40,
                duration_ms: 200
            }
        );
    }

    #[test]
    fn an_empty_answer_fails() {
        let empty = Observed {
            text: false,
            text_chunks: 0,
            ttft: None,
            ..answered(Ending::Done)
        };
        let verdict = judge_session(&empty);
        assert!(!verdict.passed);
        assert_eq!(verdict.ttft_ms, 200, "no first token: the whole duration");
    }

    #[test]
    fn a_cut_stream_fails_with_the_text_seen() {
        let cut = Observed {
            usage: None,
            ..answered(Ending::Failed("stream ended before [DONE]".into()))
        };
        let verdict = judge_session(&cut);
        assert!(!verdict.passed);
        assert_eq!(verdict.tokens, 5);
    }

    #[test]
    fn an_error_or_timeout_before_the_first_token_fails_with_nothing_served() {
        let verdict = judge_session(&Observed::failed_before_first_token(
            "no first token within 60s",
            Duration::from_secs(60),
        ));
        assert_eq!(
            verdict,
            Verdict {
                passed: false,
                tokens: 0,
                ttft_ms: 60_000,
                duration_ms: 60_000
            }
        );
    }

    #[test]
    fn a_client_that_leaves_does_not_fail_the_provider() {
        let gone = Observed {
            usage: None,
            ..answered(Ending::ClientGone)
        };
        let verdict = judge_session(&gone);
        assert!(verdict.passed);
        assert_eq!(verdict.tokens, 5, "the text seen until the client left");
    }
}
