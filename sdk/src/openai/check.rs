//! The rules a request is held to, by the gateway before it signs anything and by the provider
//! before it reserves anything: OpenAI's own (non-empty messages, known roles, sampling ranges,
//! at most four stops, penalties in [-2, 2], biases in [-100, 100], at most 20 alternatives of
//! log-probabilities), and what the network does not serve yet, refused by name rather than
//! ignored (a client asking for several choices must not get one as if it had not asked).
//! Fields the network has no use for and that constrain nothing (`user`, ...) are ignored, as
//! OpenAI ignores what it does not know.

use serde_json::Value;

use super::{ChatCompletionRequest, CompletionRequest, Prompt, Stop};

/// Most stop sequences (OpenAI's limit).
pub const MAX_STOPS: usize = 4;
/// Most choices of one request (OpenAI's limit; a provider serves at most its batch).
pub const MAX_N: u32 = 128;
/// Most alternatives per token of `top_logprobs` (OpenAI's limit; 5 for `/v1/completions`).
pub const MAX_TOP_LOGPROBS: u32 = 20;
/// Largest bias of `logit_bias`, either way.
pub const MAX_LOGIT_BIAS: f32 = 100.0;

/// What the answer must be (`response_format`).
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseFormat {
    /// Free text.
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON held to a schema.
    JsonSchema {
        /// The schema's name, when given.
        name: Option<String>,
        /// The JSON Schema.
        schema: Value,
    },
}

/// Roles a message may have (`developer` is read as `system`).
const ROLES: [&str; 4] = ["system", "user", "assistant", "tool"];

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

pub(super) fn refuse(
    param: impl Into<String>,
    code: &'static str,
    message: impl Into<String>,
) -> Refusal {
    Refusal {
        param: param.into(),
        code,
        message: message.into(),
    }
}

impl ChatCompletionRequest {
    /// The first rule this request breaks (see the module), or `Ok`.
    pub fn check(&self) -> Result<(), Refusal> {
        check_model(&self.model)?;
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
            return Err(refuse(
                format!("messages[{i}].role"),
                "invalid_messages",
                format!(
                    "unsupported role `{}`: system, developer, user, assistant or tool",
                    m.role
                ),
            ));
        }
        if let Some(i) = self
            .messages
            .iter()
            .position(|m| m.role == "tool" && m.tool_call_id.as_deref().is_none_or(str::is_empty))
        {
            return Err(refuse(
                format!("messages[{i}].tool_call_id"),
                "invalid_messages",
                format!("`messages[{i}].tool_call_id` must name the call a tool message answers"),
            ));
        }
        check_n(self.n)?;
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
        check_sampling(&Sampling {
            temperature: self.temperature,
            top_p: self.top_p,
            stop: self.stop.as_ref(),
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            logit_bias: self.logit_bias.as_ref(),
        })?;
        if self.top_logprobs.is_some_and(|n| n > MAX_TOP_LOGPROBS) {
            return Err(refuse(
                "top_logprobs",
                "invalid_top_logprobs",
                format!("`top_logprobs` must be between 0 and {MAX_TOP_LOGPROBS}"),
            ));
        }
        if self.top_logprobs.is_some_and(|n| n > 0) && self.logprobs != Some(true) {
            return Err(refuse(
                "top_logprobs",
                "invalid_top_logprobs",
                "`top_logprobs` needs `logprobs` set to true",
            ));
        }
        self.response_format()?;
        self.check_not_served()
    }

    /// `response_format`, read (`Text` when absent).
    pub fn response_format(&self) -> Result<ResponseFormat, Refusal> {
        let Some(format) = &self.response_format else {
            return Ok(ResponseFormat::Text);
        };
        let bad = |param: &str, message: &str| refuse(param, "invalid_response_format", message);
        match format.get("type").and_then(Value::as_str) {
            Some("text") => Ok(ResponseFormat::Text),
            Some("json_object") => Ok(ResponseFormat::JsonObject),
            Some("json_schema") => {
                let spec = format.get("json_schema").ok_or_else(|| {
                    bad(
                        "response_format.json_schema",
                        "`response_format.json_schema` is needed for the type `json_schema`",
                    )
                })?;
                let name = match spec.get("name") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(n)) => Some(n.clone()),
                    Some(_) => {
                        return Err(bad(
                            "response_format.json_schema.name",
                            "`response_format.json_schema.name` must be a string",
                        ));
                    }
                };
                match spec.get("schema") {
                    Some(schema @ (Value::Object(_) | Value::Bool(_))) => {
                        Ok(ResponseFormat::JsonSchema {
                            name,
                            schema: schema.clone(),
                        })
                    }
                    _ => Err(bad(
                        "response_format.json_schema.schema",
                        "`response_format.json_schema.schema` must be a JSON Schema object",
                    )),
                }
            }
            Some(kind) => Err(bad(
                "response_format.type",
                &format!(
                    "unknown `response_format.type` `{kind}`: text, json_object or json_schema"
                ),
            )),
            None => Err(bad(
                "response_format",
                "`response_format` must be an object with a `type`",
            )),
        }
    }

    /// `logit_bias`, read: token ids with their biases (empty when absent).
    pub fn logit_bias(&self) -> Result<Vec<(u32, f32)>, Refusal> {
        logit_bias(self.logit_bias.as_ref())
    }

    /// The tools' rules: each tool well formed, a choice they can meet, and not with a
    /// `response_format` (a call's shape is the constraint then).
    fn check_not_served(&self) -> Result<(), Refusal> {
        let choice = self.tool_choice()?;
        if choice != super::ToolChoice::None && self.response_format()? != ResponseFormat::Text {
            return Err(refuse(
                "response_format",
                "unsupported_parameter",
                "`response_format` with tools in use is not served: a tool call is JSON already",
            ));
        }
        Ok(())
    }
}

impl CompletionRequest {
    /// The first rule this request breaks, or `Ok`.
    pub fn check(&self) -> Result<(), Refusal> {
        check_model(&self.model)?;
        let one = match &self.prompt {
            Prompt::Text(_) | Prompt::Tokens(_) => true,
            Prompt::Texts(v) => v.len() == 1,
            Prompt::TokenLists(v) => v.len() == 1,
        };
        if !one {
            return Err(refuse(
                "prompt",
                "unsupported_parameter",
                "one prompt per request: several prompts in one request are not served",
            ));
        }
        check_n(self.n)?;
        if self.best_of.is_some_and(|n| n != 1) {
            return Err(refuse(
                "best_of",
                "unsupported_parameter",
                "`best_of` must be 1",
            ));
        }
        if self.max_tokens == Some(0) {
            return Err(refuse(
                "max_tokens",
                "invalid_max_tokens",
                "`max_tokens` must be at least 1",
            ));
        }
        if self.echo == Some(true) {
            return Err(refuse(
                "echo",
                "unsupported_parameter",
                "`echo` is not served: the prompt is not returned with the completion",
            ));
        }
        if self.suffix.as_ref().is_some_and(|s| !s.is_empty()) {
            return Err(refuse(
                "suffix",
                "unsupported_parameter",
                "`suffix` (fill-in-the-middle) is not served",
            ));
        }
        if self.logprobs.is_some_and(|n| n > 5) {
            return Err(refuse(
                "logprobs",
                "invalid_logprobs",
                "`logprobs` must be between 0 and 5",
            ));
        }
        check_sampling(&Sampling {
            temperature: self.temperature,
            top_p: self.top_p,
            stop: self.stop.as_ref(),
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            logit_bias: self.logit_bias.as_ref(),
        })
    }

    /// `logit_bias`, read.
    pub fn logit_bias(&self) -> Result<Vec<(u32, f32)>, Refusal> {
        logit_bias(self.logit_bias.as_ref())
    }
}

/// `n`, when given, is 1 to [`MAX_N`].
fn check_n(n: Option<u32>) -> Result<(), Refusal> {
    if n.is_some_and(|n| !(1..=MAX_N).contains(&n)) {
        return Err(refuse(
            "n",
            "invalid_n",
            format!("`n` must be between 1 and {MAX_N}"),
        ));
    }
    Ok(())
}

/// A request must name a model.
fn check_model(model: &str) -> Result<(), Refusal> {
    if model.trim().is_empty() {
        return Err(refuse(
            "model",
            "invalid_model",
            "`model` must name a model",
        ));
    }
    Ok(())
}

/// The sampling fields chat and text completions share.
struct Sampling<'a> {
    temperature: Option<f32>,
    top_p: Option<f32>,
    stop: Option<&'a Stop>,
    presence_penalty: Option<f32>,
    frequency_penalty: Option<f32>,
    logit_bias: Option<&'a Value>,
}

fn check_sampling(s: &Sampling<'_>) -> Result<(), Refusal> {
    if let Some(t) = s.temperature
        && !(0.0..=2.0).contains(&t)
    {
        return Err(refuse(
            "temperature",
            "invalid_temperature",
            "`temperature` must be between 0 and 2",
        ));
    }
    if let Some(p) = s.top_p
        && !(p > 0.0 && p <= 1.0)
    {
        return Err(refuse(
            "top_p",
            "invalid_top_p",
            "`top_p` must be in (0, 1]",
        ));
    }
    if let Some(stop) = s.stop
        && stop.clone().into_vec().len() > MAX_STOPS
    {
        return Err(refuse(
            "stop",
            "invalid_stop",
            format!("at most {MAX_STOPS} stop sequences"),
        ));
    }
    for (param, value) in [
        ("presence_penalty", s.presence_penalty),
        ("frequency_penalty", s.frequency_penalty),
    ] {
        if value.is_some_and(|v| !(-2.0..=2.0).contains(&v)) {
            return Err(refuse(
                param,
                "invalid_penalty",
                format!("`{param}` must be between -2 and 2"),
            ));
        }
    }
    logit_bias(s.logit_bias).map(|_| ())
}

/// `{"<token id>": bias}`, each bias in [-100, 100]; `null` and `{}` are none.
fn logit_bias(value: Option<&Value>) -> Result<Vec<(u32, f32)>, Refusal> {
    let bad = |message: String| refuse("logit_bias", "invalid_logit_bias", message);
    let map = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(bad("`logit_bias` must map token ids to biases".into()));
        }
    };
    let mut out = Vec::with_capacity(map.len());
    for (key, bias) in map {
        let id: u32 = key
            .parse()
            .map_err(|_| bad(format!("`logit_bias` key `{key}` is not a token id")))?;
        let bias = bias
            .as_f64()
            .filter(|b| b.abs() <= f64::from(MAX_LOGIT_BIAS))
            .ok_or_else(|| {
                bad(format!(
                    "`logit_bias` of token {id} must be a number between -100 and 100"
                ))
            })?;
        out.push((id, bias as f32));
    }
    Ok(out)
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
                ChatMessage::assistant(""),
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
            (r#""n":0"#, "n", "invalid_n"),
            (r#""n":129"#, "n", "invalid_n"),
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
                "response_format.json_schema.schema",
                "invalid_response_format",
            ),
            (
                r#""response_format":{"type":"json_schema"}"#,
                "response_format.json_schema",
                "invalid_response_format",
            ),
            (
                r#""response_format":{"type":"yaml"}"#,
                "response_format.type",
                "invalid_response_format",
            ),
            (
                r#""response_format":{}"#,
                "response_format",
                "invalid_response_format",
            ),
            (r#""tools":{"a":1}"#, "tools", "invalid_tools"),
            (
                r#""tools":[{"type":"function","function":{"description":"no name"}}]"#,
                "tools[0].function.name",
                "invalid_tools",
            ),
            (
                r#""tools":[{"type":"function","function":{"name":" "}}]"#,
                "tools[0].function.name",
                "invalid_tools",
            ),
            (
                r#""tools":[{"type":"function","function":{"name":"f"}},{"type":"function","function":{"name":"f"}}]"#,
                "tools[1].function.name",
                "invalid_tools",
            ),
            (
                r#""tools":[{"type":"retrieval"}]"#,
                "tools[0].type",
                "invalid_tools",
            ),
            (
                r#""tool_choice":"required""#,
                "tool_choice",
                "invalid_tool_choice",
            ),
            (
                r#""tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"g"}}"#,
                "tool_choice",
                "invalid_tool_choice",
            ),
            (
                r#""tools":[{"type":"function","function":{"name":"f"}}],"response_format":{"type":"json_object"}"#,
                "response_format",
                "unsupported_parameter",
            ),
            (
                r#""top_logprobs":2"#,
                "top_logprobs",
                "invalid_top_logprobs",
            ),
            (
                r#""logprobs":true,"top_logprobs":21"#,
                "top_logprobs",
                "invalid_top_logprobs",
            ),
            (
                r#""logit_bias":{"x":5}"#,
                "logit_bias",
                "invalid_logit_bias",
            ),
            (
                r#""logit_bias":{"42":101}"#,
                "logit_bias",
                "invalid_logit_bias",
            ),
            (r#""logit_bias":[1]"#, "logit_bias", "invalid_logit_bias"),
            (
                r#""presence_penalty":2.5"#,
                "presence_penalty",
                "invalid_penalty",
            ),
            (
                r#""frequency_penalty":-3"#,
                "frequency_penalty",
                "invalid_penalty",
            ),
        ] {
            let (p, c, message) = refused(&format!(r#"{{"model":"m",{HI},{extra}}}"#));
            assert_eq!((p.as_str(), c), (param, code), "{extra}: {message}");
            assert!(message.contains(param), "{extra}: {message}");
        }
        let (p, _, message) = refused(
            r#"{"model":"m","messages":[{"role":"user","content":"a"},{"role":"tool","content":"b"}]}"#,
        );
        assert_eq!(p, "messages[1].tool_call_id");
        assert!(message.contains("tool_call_id"), "{message}");
        let (p, _, _) = refused(r#"{"model":"m","messages":[{"role":"robot","content":"a"}]}"#);
        assert_eq!(p, "messages[0].role");
        assert_eq!(refused(r#"{"model":" ","messages":[]}"#).0, "model");
        assert_eq!(refused(r#"{"model":"m","messages":[]}"#).0, "messages");
    }

    #[test]
    fn what_is_served_is_read() {
        let r = parse(&format!(
            r#"{{"model":"m",{HI},"logprobs":true,"top_logprobs":3,"logit_bias":{{"42":-100,"7":2.5}},
            "presence_penalty":0.5,"frequency_penalty":-1,
            "response_format":{{"type":"json_schema","json_schema":{{"name":"p","strict":true,"schema":{{"type":"object"}}}}}}}}"#
        ));
        r.check().expect("served");
        assert_eq!(r.logit_bias().expect("read"), vec![(42, -100.0), (7, 2.5)]);
        assert_eq!(
            r.response_format().expect("read"),
            super::ResponseFormat::JsonSchema {
                name: Some("p".into()),
                schema: serde_json::json!({"type": "object"})
            }
        );
        let r = parse(&format!(
            r#"{{"model":"m",{HI},"response_format":{{"type":"json_object"}}}}"#
        ));
        assert_eq!(
            r.response_format().expect("read"),
            super::ResponseFormat::JsonObject
        );
    }

    #[test]
    fn an_answer_may_call_several_tools_unless_told_not_to_or_a_function_is_named() {
        use crate::openai::{Function, tool_prompt};
        let tools = r#""tools":[{"type":"function","function":{"name":"time"}}]"#;
        for (extra, want) in [
            ("", true),
            (r#","parallel_tool_calls":true"#, true),
            (r#","parallel_tool_calls":false"#, false),
            (
                r#","tool_choice":{"type":"function","function":{"name":"time"}}"#,
                false,
            ),
        ] {
            let r = parse(&format!(r#"{{"model":"m",{HI},{tools}{extra}}}"#));
            r.check().expect("served");
            assert_eq!(r.parallel_calls().expect("read"), want, "{extra}");
        }
        let f = [Function {
            name: "time".into(),
            description: None,
            parameters: None,
        }];
        assert!(tool_prompt(&f, true).contains("each call's object on its own line"));
        assert!(!tool_prompt(&f, false).contains("own line"));
    }

    #[test]
    fn tools_and_the_choice_are_read() {
        use crate::openai::ToolChoice;
        let tools = r#""tools":[{"type":"function","function":{"name":"weather","description":"d",
            "parameters":{"type":"object","properties":{"city":{"type":"string"}}}}},
            {"type":"function","function":{"name":"time"}}]"#;
        for (choice, want) in [
            ("", ToolChoice::Auto),
            (r#","tool_choice":"none""#, ToolChoice::None),
            (r#","tool_choice":"required""#, ToolChoice::Required),
            (
                r#","tool_choice":{"type":"function","function":{"name":"time"}}"#,
                ToolChoice::Named("time".into()),
            ),
        ] {
            let r = parse(&format!(r#"{{"model":"m",{HI},{tools}{choice}}}"#));
            r.check().expect("served");
            assert_eq!(r.tool_choice().expect("read"), want, "{choice}");
        }
        let r = parse(&format!(r#"{{"model":"m",{HI},{tools}}}"#));
        let f = r.tool_functions().expect("read");
        assert_eq!(
            f[1].parameters_schema(),
            serde_json::json!({"type": "object"})
        );
        // A round trip: the assistant's call (content null) and the tool's answer.
        let r = parse(
            r#"{"model":"m","messages":[{"role":"user","content":"weather?"},
            {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",
              "function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}}]},
            {"role":"tool","tool_call_id":"call_1","content":"sunny"}]}"#,
        );
        r.check().expect("served");
        // A template shows the call as the JSON the model wrote.
        let shown: serde_json::Value =
            serde_json::from_str(&r.messages[1].template_text()).expect("json");
        assert_eq!(
            shown,
            serde_json::json!({"name": "weather", "arguments": {"city": "Paris"}})
        );
    }

    #[test]
    fn text_completions_are_held_to_their_rules() {
        use crate::openai::CompletionRequest;
        let ok: CompletionRequest = serde_json::from_str(
            r#"{"model":"m","prompt":"Once","max_tokens":4,"logprobs":2,"echo":false,"suffix":null,"user":"x"}"#,
        )
        .expect("parses");
        ok.check().expect("served");
        for (body, param) in [
            (r#"{"model":"m","prompt":"a","echo":true}"#, "echo"),
            (r#"{"model":"m","prompt":"a","suffix":"b"}"#, "suffix"),
            (r#"{"model":"m","prompt":["a","b"]}"#, "prompt"),
            (r#"{"model":"m","prompt":"a","logprobs":6}"#, "logprobs"),
            (r#"{"model":"m","prompt":"a","best_of":2}"#, "best_of"),
            (r#"{"model":"m","prompt":"a","n":0}"#, "n"),
            (r#"{"model":"m","prompt":"a","max_tokens":0}"#, "max_tokens"),
            (
                r#"{"model":"m","prompt":"a","temperature":3}"#,
                "temperature",
            ),
            (
                r#"{"model":"m","prompt":"a","logit_bias":{"a":1}}"#,
                "logit_bias",
            ),
        ] {
            let r: CompletionRequest = serde_json::from_str(body).expect(body);
            let e = r.check().expect_err(body);
            assert_eq!(e.param, param, "{body}: {e:?}");
            assert!(e.message.contains(param), "{body}: {e:?}");
        }
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
            r#""logit_bias":null"#,
            r#""seed":7,"user":"x","n":1"#,
        ] {
            parse(&format!(r#"{{"model":"m",{HI},{extra}}}"#))
                .check()
                .unwrap_or_else(|r| panic!("{extra}: {r:?}"));
        }
    }
}
