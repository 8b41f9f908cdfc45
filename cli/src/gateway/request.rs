//! A chat request's body, read and checked before anything is signed: what does not parse or
//! breaks OpenAI's rules is refused naming the field, and no session is spent on it.

use morpheus_sdk::openai::ChatCompletionRequest;

use crate::{Error, Result};

/// Parses a `POST /v1/chat/completions` body, naming the field that does not parse.
pub fn parse_request(body: &[u8]) -> Result<ChatCompletionRequest> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let request: ChatCompletionRequest =
        serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                return Error::BadRequest {
                    message: format!("the body is not JSON: {inner}"),
                    param: None,
                };
            }
            let param = match (path.as_str(), missing_field(&inner.to_string())) {
                (".", field) => field,
                (_, Some(field)) => Some(format!("{path}.{field}")),
                (_, None) => Some(path),
            };
            let message = match &param {
                Some(p) => format!("invalid request body at `{p}`: {inner}"),
                None => format!("the body is not a chat completion request: {inner}"),
            };
            Error::BadRequest { message, param }
        })?;
    de.end().map_err(|e| Error::BadRequest {
        message: format!("the body is not a chat completion request: {e}"),
        param: None,
    })?;
    validate(&request)?;
    Ok(request)
}

/// The field serde names in "missing field `x`".
fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest[..rest.find('`')?].to_string())
}

/// The rules the network's providers hold requests to (`ChatCompletionRequest::check`, the
/// same the provider applies), refused naming the field.
pub fn validate(request: &ChatCompletionRequest) -> Result<()> {
    request.check().map_err(|r| Error::BadRequest {
        message: r.message,
        param: Some(r.param),
    })?;
    // Providers sample `n` choices as one session's sequences; the gateway's sessions, token
    // bounds and reports count one answer each, so it asks for one.
    if request.n.is_some_and(|n| n > 1) {
        return Err(Error::BadRequest {
            message: "`n` above 1 is not served through the gateway yet: send n requests".into(),
            param: Some("n".into()),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(body: &str) -> (String, Option<String>) {
        match parse_request(body.as_bytes()) {
            Err(Error::BadRequest { message, param }) => (message, param),
            other => panic!("{body}: expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn what_does_not_parse_is_refused_naming_the_field() {
        assert_eq!(refused(r#"{"model":"m"}"#).1.as_deref(), Some("messages"));
        let (message, param) = refused(r#"{"model":"m","messages":[{"role":"user"}]}"#);
        assert_eq!(param.as_deref(), Some("messages[0].content"), "{message}");
        assert!(message.contains("content"), "{message}");
        assert_eq!(
            refused(r#"{"model":"m","messages":[],"max_tokens":"ten"}"#)
                .1
                .as_deref(),
            Some("max_tokens")
        );
        assert_eq!(refused("not json").1, None);
        assert_eq!(refused("{not json").1, None);
        assert_eq!(refused(r#"{"model":"m","messages":[]} trailing"#).1, None);
    }

    #[test]
    fn openais_rules_are_held() {
        let ok = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
        assert!(parse_request(ok.as_bytes()).is_ok());
        for (body, field) in [
            (r#"{"model":"m","messages":[]}"#, "messages"),
            (
                r#"{"model":" ","messages":[{"role":"user","content":"hi"}]}"#,
                "model",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"a"},{"role":"tool","content":"b"}]}"#,
                "messages[1].tool_call_id",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"n":2}"#,
                "n",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":0}"#,
                "max_tokens",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":3}"#,
                "temperature",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"top_p":0}"#,
                "top_p",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stop":["a","b","c","d","e"]}"#,
                "stop",
            ),
        ] {
            assert_eq!(refused(body).1.as_deref(), Some(field), "{body}");
        }
    }
}
