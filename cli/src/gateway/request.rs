//! A chat request's body, read and checked before anything is signed: what does not parse or
//! breaks OpenAI's rules is refused naming the field, and no session is spent on it.

use morpheus_sdk::openai::ChatCompletionRequest;

use crate::{Error, Result};

/// Parses a `POST /v1/chat/completions` body, naming the field that does not parse;
/// `max_choices` is the most `n` may be.
pub fn parse_request(body: &[u8], max_choices: u32) -> Result<ChatCompletionRequest> {
    let request = parse_body(body, "a chat completion request")?;
    validate(&request, max_choices)?;
    Ok(request)
}

/// Parses a JSON body as `T` (`what` it is, for the message), naming the field that does not
/// parse in `param`.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let request: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
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
            None => format!("the body is not {what}: {inner}"),
        };
        Error::BadRequest { message, param }
    })?;
    de.end().map_err(|e| Error::BadRequest {
        message: format!("the body is not {what}: {e}"),
        param: None,
    })?;
    Ok(request)
}

/// The field serde names in "missing field `x`".
fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest[..rest.find('`')?].to_string())
}

/// The rules the network's providers hold requests to (`ChatCompletionRequest::check`, the
/// same the provider applies), and the gateway's own: at most `max_choices` choices, and one
/// with tools in use (a provider makes one call per answer). Refused naming the field.
pub fn validate(request: &ChatCompletionRequest, max_choices: u32) -> Result<()> {
    request.check().map_err(|r| Error::BadRequest {
        message: r.message,
        param: Some(r.param),
    })?;
    let n = request.n.unwrap_or(1);
    let refuse = |message: String| {
        Err(Error::BadRequest {
            message,
            param: Some("n".into()),
        })
    };
    if n > max_choices {
        return refuse(format!(
            "`n` is {n}; this gateway serves at most {max_choices} choices a request"
        ));
    }
    let tools = !matches!(
        request.tool_choice(),
        Ok(morpheus_sdk::openai::ToolChoice::None) | Err(_)
    ) && request.tool_functions().is_ok_and(|f| !f.is_empty());
    if n > 1 && tools {
        return refuse("`n` above 1 with tools in use is not served (one call per answer)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(body: &str) -> (String, Option<String>) {
        match parse_request(body.as_bytes(), 8) {
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
        assert!(parse_request(ok.as_bytes(), 8).is_ok());
        let two = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"n":2}"#;
        assert_eq!(parse_request(two.as_bytes(), 8).expect("n 2").n, Some(2));
        let tools = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"n":2,
            "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]}"#;
        assert_eq!(refused(tools).1.as_deref(), Some("n"));
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
                r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"n":9}"#,
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
