//! The rules a chat request is held to, by the gateway before it signs anything and by the
//! provider before it reserves anything: OpenAI's own (non-empty messages, known roles, sampling
//! ranges, at most four stops), and what the network does not serve yet, refused by name rather
//! than ignored (a client asking for JSON, tools or log-probabilities must not get an answer made
//! as if it had not asked). Fields the network has no use for and that constrain nothing (`user`,
//! `parallel_tool_calls`, ...) are ignored, as OpenAI ignores what it does not know.

use serde_json::Value;

use super::ChatCompletionRequest;

/// Most stop sequences (OpenAI's limit).
pub const MAX_STOPS: usize = 4;

/// Roles a message may have (`developer` is read as `system`).
const ROLES: [&str; 3] = ["system", "user", "assistant"];

/// Why a request is refused: the field to blame as OpenAI names it (`messages[1].role`), a
/// machine-readable code, and a message naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The field, as a path.
    pub param: String,
    /// Machine-readable code (OpenAI's body's `code`).
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
}

fn refuse(param: impl Into<String>, code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        param: param.into(),
        code,
        message: message.into(),
    }
}

impl ChatCompletionRequest {
    /// The first rule this request breaks (see the module), or `Ok`.
    pub fn check(&self) -> Result<(), Refusal> {
        if self.model.trim().is_empty() {
            return Err(refuse(
                "model",
                "invalid_model",
                "`model` must name a model",
            ));
        }
        if self.messages.is_empty() {
            return Err(refuse(
                "messages",
                "invalid_messages",
                "`messages` must not be empty",
            ));
        }
        if let Some((i, m)) = self
            .messages
            .iter()
            .enumerate()
            .find(|(_, m)| !ROLES.contains(&m.role.as_str()))
        {
            let why = if m.role == "tool" {
                " (tool calls are not served yet)"
            } else {
                ""
            };
            return Err(refuse(
                format!("messages[{i}].role"),
                "invalid_messages",
                format!(
                    "unsupported role `{}`{why}: system, developer, user or assistant",
                    m.role
                ),
            ));
        }
        if self.n.is_some_and(|n| n != 1) {
            return Err(refuse("n", "unsupported_n", "`n` must be 1"));
        }
        if self.requested_max_tokens() == Some(0) {
            let param = if self.max_completion_tokens.is_some() {
                "max_completion_tokens"
            } else {
                "max_tokens"
            };
            return Err(refuse(
                param,
                "invalid_max_tokens",
                format!("`{param}` must be at least 1"),
            ));
        }
        if let Some(t) = self.temperature
            && !(0.0..=2.0).contains(&t)
        {
            return Err(refuse(
                "temperature",
                "invalid_temperature",
                "`temperature` must be between 0 and 2",
            ));
        }
        if let Some(p) = self.top_p
            && !(p > 0.0 && p <= 1.0)
        {
            return Err(refuse(
                "top_p",
                "invalid_top_p",
                "`top_p` must be in (0, 1]",
            ));
        }
        if let Some(stop) = &self.stop
            && stop.clone().into_vec().len() > MAX_STOPS
        {
            return Err(refuse(
                "stop",
                "invalid_stop",
                format!("at most {MAX_STOPS} stop sequences"),
            ));
        }
        self.check_not_served()
    }

    /// What a client may ask that the network does not serve yet: each refused by name.
    fn check_not_served(&self) -> Result<(), Refusal> {
        let not_served = |param: &str, what: String| {
            refuse(
                param,
                "unsupported_parameter",
                format!("{what} is not served by the network's providers yet"),
            )
        };
        if let Some(format) = &self.response_format {
            match format.get("type").and_then(Value::as_str) {
                Some("text") => {}
                Some(kind) => {
                    return Err(not_served(
                        "response_format",
                        format!("`response_format` of type `{kind}`"),
                    ));
                }
                None => {
                    return Err(refuse(
                        "response_format",
                        "invalid_response_format",
                        "`response_format` must be an object with a `type`",
                    ));
                }
            }
        }
        // `null` reads as absent; an empty list asks for nothing.
        if self
            .tools
            .as_ref()
            .is_some_and(|t| t.as_array().is_none_or(|a| !a.is_empty()))
        {
            return Err(not_served("tools", "`tools` (tool calls)".into()));
        }
        if let Some(choice) = &self.tool_choice
            && choice.as_str() != Some("none")
        {
            return Err(not_served(
                "tool_choice",
                "`tool_choice` other than `none`".into(),
            ));
        }
        if self.logprobs == Some(true) {
            return Err(not_served("logprobs", "`logprobs`".into()));
        }
        if self.top_logprobs.is_some_and(|n| n > 0) {
            return Err(not_served("top_logprobs", "`top_logprobs`".into()));
        }
        if self
            .logit_bias
            .as_ref()
            .is_some_and(|b| b.as_object().is_none_or(|o| !o.is_empty()))
        {
            return Err(not_served("logit_bias", "`logit_bias`".into()));
        }
        for (param, value) in [
            ("presence_penalty", self.presence_penalty),
            ("frequency_penalty", self.frequency_penalty),
        ] {
            if value.is_some_and(|v| v != 0.0) {
                return Err(not_served(param, format!("a non-zero `{param}`")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::openai::{ChatCompletionRequest, ChatMessage};

    fn parse(body: &str) -> ChatCompletionRequest {
        serde_json::from_str(body).expect("a chat request")
    }

    fn refused(body: &str) -> (String, &'static str, String) {
        let r = parse(body).check().expect_err("refused");
        (r.param, r.code, r.message)
    }

    const HI: &str = r#""messages":[{"role":"user","content":"hi"}]"#;

    #[test]
    fn content_parts_and_the_developer_role_read_as_text_and_system() {
        let r = parse(
            r#"{"model":"m","messages":[
                {"role":"developer","content":[{"type":"text","text":"Be brief."}]},
                {"role":"user","content":[{"type":"text","text":"one"},{"type":"text","text":"two"}],"name":"ann"},
                {"role":"assistant","content":null}
            ],"user":"u-1","parallel_tool_calls":false,"something_new":{"a":1}}"#,
        );
        assert_eq!(
            r.messages,
            vec![
                ChatMessage::system("Be brief."),
                ChatMessage::user("one\ntwo"),
                ChatMessage {
                    role: "assistant".into(),
                    content: String::new()
                },
            ]
        );
        r.check().expect("served");
        // Sent on as plain strings.
        let sent = serde_json::to_value(&r).expect("serialise");
        assert_eq!(sent["messages"][1]["content"], "one\ntwo");
        assert_eq!(sent["messages"][0]["role"], "system");
    }

    #[test]
    fn a_part_that_is_not_text_is_refused_naming_its_index_and_type() {
        let body = r#"{"model":"m","messages":[{"role":"user","content":[
            {"type":"text","text":"what is this?"},
            {"type":"image_url","image_url":{"url":"data:image/png;base64,AA=="}}]}]}"#;
        let e = serde_json::from_str::<ChatCompletionRequest>(body)
            .expect_err("an image part")
            .to_string();
        assert!(e.contains("content part 1 is of type `image_url`"), "{e}");
        for (body, says) in [
            (
                r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text"}]}]}"#,
                "has no `text`",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":[7]}]}"#,
                "content part 0 is not",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":7}]}"#,
                "must be a string",
            ),
        ] {
            let e = serde_json::from_str::<ChatCompletionRequest>(body)
                .expect_err(body)
                .to_string();
            assert!(e.contains(says), "{body}: {e}");
        }
    }

    #[test]
    fn each_rule_names_its_field() {
        for (extra, param, code) in [
            (r#""n":2"#, "n", "unsupported_n"),
            (r#""max_tokens":0"#, "max_tokens", "invalid_max_tokens"),
            (
                r#""max_completion_tokens":0"#,
                "max_completion_tokens",
                "invalid_max_tokens",
            ),
            (r#""temperature":2.5"#, "temperature", "invalid_temperature"),
            (r#""top_p":0"#, "top_p", "invalid_top_p"),
            (r#""stop":["a","b","c","d","e"]"#, "stop", "invalid_stop"),
            (
                r#""response_format":{"type":"json_schema","json_schema":{}}"#,
                "response_format",
                "unsupported_parameter",
            ),
            (
                r#""response_format":{"type":"json_object"}"#,
                "response_format",
                "unsupported_parameter",
            ),
            (
                r#""response_format":{}"#,
                "response_format",
                "invalid_response_format",
            ),
            (
                r#""tools":[{"type":"function","function":{"name":"f"}}]"#,
                "tools",
                "unsupported_parameter",
            ),
            (
                r#""tool_choice":"required""#,
                "tool_choice",
                "unsupported_parameter",
            ),
            (r#""logprobs":true"#, "logprobs", "unsupported_parameter"),
            (
                r#""top_logprobs":2"#,
                "top_logprobs",
                "unsupported_parameter",
            ),
            (
                r#""logit_bias":{"42":5}"#,
                "logit_bias",
                "unsupported_parameter",
            ),
            (
                r#""presence_penalty":0.5"#,
                "presence_penalty",
                "unsupported_parameter",
            ),
            (
                r#""frequency_penalty":-1"#,
                "frequency_penalty",
                "unsupported_parameter",
            ),
        ] {
            let (p, c, message) = refused(&format!(r#"{{"model":"m",{HI},{extra}}}"#));
            assert_eq!((p.as_str(), c), (param, code), "{extra}: {message}");
            assert!(message.contains(param), "{extra}: {message}");
        }
        let (p, _, message) = refused(
            r#"{"model":"m","messages":[{"role":"user","content":"a"},{"role":"tool","content":"b"}]}"#,
        );
        assert_eq!(p, "messages[1].role");
        assert!(message.contains("tool calls are not served"), "{message}");
        assert_eq!(refused(r#"{"model":" ","messages":[]}"#).0, "model");
        assert_eq!(refused(r#"{"model":"m","messages":[]}"#).0, "messages");
    }

    #[test]
    fn asking_for_the_defaults_of_what_is_not_served_is_served() {
        for extra in [
            r#""response_format":{"type":"text"}"#,
            r#""tools":[]"#,
            r#""tools":null"#,
            r#""tool_choice":"none""#,
            r#""logprobs":false"#,
            r#""top_logprobs":0"#,
            r#""logit_bias":{}"#,
            r#""presence_penalty":0"#,
            r#""frequency_penalty":0.0"#,
            r#""seed":7,"user":"x","n":1"#,
        ] {
            parse(&format!(r#"{{"model":"m",{HI},{extra}}}"#))
                .check()
                .unwrap_or_else(|r| panic!("{extra}: {r:?}"));
        }
    }
}
