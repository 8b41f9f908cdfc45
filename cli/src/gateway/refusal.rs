//! What a client is told when a request is not answered: an HTTP status and OpenAI's error
//! body (`{"error": {"message", "type", "param", "code"}}`), keeping the meaning of the
//! network's answers: the router's 429 and 503 as they are (with `Retry-After`), a provider's
//! 4xx as it is, and an unreachable or failing router or chain as 502 with the reason.

use serde::Serialize;

use crate::Error;

/// A refusal, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status.
    pub status: u16,
    /// OpenAI's error `type`.
    pub kind: &'static str,
    /// A stable code.
    pub code: &'static str,
    /// The reason, in words.
    pub message: String,
    /// The field to blame, for a bad request.
    pub param: Option<String>,
    /// Seconds to wait before asking again (`Retry-After`), when the router said so.
    pub retry_after: Option<u64>,
}

/// OpenAI's error body.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    /// The error.
    pub error: ErrorFields<'a>,
}

/// The fields of [`ErrorBody`].
#[derive(Debug, Serialize)]
pub struct ErrorFields<'a> {
    /// The reason.
    pub message: &'a str,
    /// The error's type.
    #[serde(rename = "type")]
    pub kind: &'a str,
    /// The field to blame.
    pub param: Option<&'a str>,
    /// The code.
    pub code: &'a str,
}

impl Refusal {
    fn new(status: u16, kind: &'static str, code: &'static str, message: String) -> Self {
        Self {
            status,
            kind,
            code,
            message,
            param: None,
            retry_after: None,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        serde_json::to_string(&ErrorBody {
            error: ErrorFields {
                message: &self.message,
                kind: self.kind,
                param: self.param.as_deref(),
                code: self.code,
            },
        })
        .unwrap_or_default()
    }
}

/// The refusal for `error` (the rule is in the module's documentation).
pub fn refusal(error: &Error) -> Refusal {
    use morpheus_sdk::Error as Sdk;
    match error {
        Error::BadRequest { message, param } => Refusal {
            param: param.clone(),
            ..Refusal::new(
                400,
                "invalid_request_error",
                "invalid_request",
                message.clone(),
            )
        },
        Error::UnknownModel(_) => Refusal {
            param: Some("model".into()),
            ..Refusal::new(
                404,
                "invalid_request_error",
                "model_not_found",
                error.to_string(),
            )
        },
        Error::NoAnswer(reason) => Refusal::new(
            503,
            "service_unavailable",
            "no_provider",
            format!("no provider answered: {reason}"),
        ),
        Error::AnswerCut(reason) => Refusal::new(
            502,
            "server_error",
            "answer_cut",
            format!("the provider's answer broke off: {reason}"),
        ),
        Error::Sdk(Sdk::Http {
            peer: "router",
            status,
            message,
            retry_after,
        }) => {
            let base = match status {
                429 => Refusal::new(
                    429,
                    "rate_limit_error",
                    "allowance_exceeded",
                    message.clone(),
                ),
                503 if retry_after.is_some() => {
                    Refusal::new(503, "service_unavailable", "busy", message.clone())
                }
                503 => Refusal::new(503, "service_unavailable", "no_provider", message.clone()),
                404 => Refusal {
                    param: Some("model".into()),
                    ..Refusal::new(
                        404,
                        "invalid_request_error",
                        "model_not_found",
                        message.clone(),
                    )
                },
                // Any other refusal is of what the gateway signed (a clock far off, a key the
                // router does not take): nothing the client can change.
                _ => Refusal::new(
                    502,
                    "server_error",
                    "router_refused",
                    format!("the router answered {status}: {message}"),
                ),
            };
            Refusal {
                retry_after: *retry_after,
                ..base
            }
        }
        Error::Sdk(Sdk::Http {
            peer,
            status,
            message,
            ..
        }) if (400..500).contains(status) => Refusal::new(
            *status,
            "invalid_request_error",
            "provider_refused",
            format!("the {peer} refused the request: {message}"),
        ),
        Error::Sdk(Sdk::Http {
            peer,
            status,
            message,
            ..
        }) => Refusal::new(
            502,
            "server_error",
            "upstream_failed",
            format!("the {peer} answered {status}: {message}"),
        ),
        Error::Sdk(Sdk::Transport { peer, message, .. }) => Refusal::new(
            502,
            "server_error",
            "upstream_unreachable",
            format!("the {peer} could not be reached: {message}"),
        ),
        Error::Sdk(e @ (Sdk::Rpc(_) | Sdk::WrongChain { .. } | Sdk::Reverted(_))) => Refusal::new(
            502,
            "server_error",
            "chain_unavailable",
            format!("the chain could not be read: {e}"),
        ),
        other => Refusal::new(
            500,
            "server_error",
            "internal_error",
            format!("the gateway failed: {other}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use morpheus_sdk::{Error as Sdk, TransportKind};

    use super::*;

    fn http(peer: &'static str, status: u16, retry_after: Option<u64>) -> Error {
        Error::Sdk(Sdk::Http {
            peer,
            status,
            message: "the reason".into(),
            retry_after,
        })
    }

    #[test]
    fn the_networks_answers_keep_their_meaning() {
        let r = refusal(&http("router", 429, None));
        assert_eq!((r.status, r.code), (429, "allowance_exceeded"));
        assert_eq!(r.message, "the reason");
        let r = refusal(&http("router", 503, None));
        assert_eq!((r.status, r.code), (503, "no_provider"));
        let r = refusal(&http("router", 503, Some(10)));
        assert_eq!((r.status, r.code, r.retry_after), (503, "busy", Some(10)));
        let r = refusal(&http("provider", 400, None));
        assert_eq!((r.status, r.code), (400, "provider_refused"));
        assert!(r.message.contains("the reason"));
        let r = refusal(&http("router", 401, None));
        assert_eq!(
            r.status, 502,
            "the gateway's own signature is no client error"
        );
    }

    #[test]
    fn an_unreachable_router_or_chain_is_502_with_the_reason() {
        let r = refusal(&Error::Sdk(Sdk::Transport {
            peer: "router",
            kind: TransportKind::Connect,
            message: "connection refused".into(),
        }));
        assert_eq!(r.status, 502);
        assert!(r.message.contains("router") && r.message.contains("connection refused"));
        let r = refusal(&Error::Sdk(Sdk::Rpc("connection refused".into())));
        assert_eq!((r.status, r.code), (502, "chain_unavailable"));
        assert!(r.message.contains("connection refused"));
    }

    #[test]
    fn a_bad_request_names_its_field_in_openais_body() {
        let r = refusal(&Error::BadRequest {
            message: "`messages` must not be empty".into(),
            param: Some("messages".into()),
        });
        assert_eq!(r.status, 400);
        let body: serde_json::Value = serde_json::from_str(&r.body()).expect("json");
        assert_eq!(body["error"]["param"], "messages");
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["message"], "`messages` must not be empty");
    }
}
