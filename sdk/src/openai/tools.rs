//! Tool calls: the `tools` a request offers, its `tool_choice`, and the `tool_calls` of an answer.
//!
//! Providers serve them with the model writing a call as JSON under constrained decoding: the
//! functions are described to the model in a system message ([`tool_prompt`]), and the answer is
//! held to `{"name": <one of them>, "arguments": <its parameters' schema>}` (`required`), to the
//! named function's arguments, or to either a call or text that does not start with `{`
//! (`auto`). Under `required` and `auto` an answer may make several calls, each object on its own
//! line, up to [`MAX_PARALLEL_CALLS`], unless `parallel_tool_calls` is `false`; a named function
//! is called once.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ChatCompletionRequest, ChatMessage, check::Refusal, check::refuse};

/// A call the model made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call's id (a `tool` message answering it names it).
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What was called, with what.
    pub function: FunctionCall,
}

/// The function called and its arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// The function's name.
    pub name: String,
    /// Its arguments, as a JSON text (as OpenAI sends them).
    pub arguments: String,
}

/// A call as a stream sends it: the first delta of a call has its id, type and name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCallDelta {
    /// Which call of the answer: 0, 1, ... in the order they are written.
    pub index: u32,
    /// The call's id, on its first delta.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `function`, on its first delta.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The name (first delta) and a piece of the arguments.
    pub function: FunctionCallDelta,
}

/// A piece of a call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionCallDelta {
    /// The function's name, on the call's first delta.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// More of the arguments' text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

/// A function a request offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Function {
    /// Its name.
    pub name: String,
    /// What it does, for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The JSON Schema of its arguments (any object when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
}

impl Function {
    /// The schema its arguments are held to.
    pub fn parameters_schema(&self) -> Value {
        self.parameters
            .clone()
            .unwrap_or_else(|| serde_json::json!({"type": "object"}))
    }
}

/// What the model may do with the tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    /// Answer in text; the tools are not shown.
    None,
    /// Call one, or answer in text.
    Auto,
    /// Call one.
    Required,
    /// Call this one.
    Named(String),
}

/// Most calls in one answer: a model cannot go on calling forever.
pub const MAX_PARALLEL_CALLS: u32 = 8;

/// The system message that describes `functions` to the model; `parallel`: it may call several
/// at once.
pub fn tool_prompt(functions: &[Function], parallel: bool) -> String {
    let list: Vec<String> = functions
        .iter()
        .map(|f| serde_json::to_string(f).unwrap_or_default())
        .collect();
    let several = if parallel {
        " To call several at once, write each call's object on its own line."
    } else {
        ""
    };
    format!(
        "You can call these functions. To call one, answer with only a JSON object \
         {{\"name\": <the function's name>, \"arguments\": <its arguments>}}.{several}\n{}",
        list.join("\n")
    )
}

/// An assistant's earlier call as the model wrote it (what a template without tool support
/// shows it as).
pub fn call_text(call: &ToolCall) -> String {
    let arguments: Value = serde_json::from_str(&call.function.arguments)
        .unwrap_or(Value::String(call.function.arguments.clone()));
    serde_json::json!({"name": call.function.name, "arguments": arguments}).to_string()
}

impl ChatMessage {
    /// The text a template shows for this message: its content, or the calls it made.
    pub fn template_text(&self) -> String {
        match &self.tool_calls {
            Some(calls) if self.content.is_empty() => {
                calls.iter().map(call_text).collect::<Vec<_>>().join("\n")
            }
            _ => self.content.clone(),
        }
    }
}

impl ChatCompletionRequest {
    /// The functions of `tools` (empty when none), each checked: `type` `function`, a name.
    pub fn tool_functions(&self) -> Result<Vec<Function>, Refusal> {
        let list = match &self.tools {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(list)) => list,
            Some(_) => {
                return Err(refuse("tools", "invalid_tools", "`tools` must be a list"));
            }
        };
        let mut out = Vec::with_capacity(list.len());
        for (i, tool) in list.iter().enumerate() {
            let at = |field: &str| format!("tools[{i}]{field}");
            if tool.get("type").and_then(Value::as_str) != Some("function") {
                return Err(refuse(
                    at(".type"),
                    "invalid_tools",
                    format!("`{}` must be `function`", at(".type")),
                ));
            }
            let f: Function = tool
                .get("function")
                .cloned()
                .map(serde_json::from_value)
                .transpose()
                .ok()
                .flatten()
                .ok_or_else(|| {
                    refuse(
                        at(".function.name"),
                        "invalid_tools",
                        format!(
                            "`{}` is needed: each tool is a function with a name",
                            at(".function.name")
                        ),
                    )
                })?;
            if f.name.trim().is_empty() {
                return Err(refuse(
                    at(".function.name"),
                    "invalid_tools",
                    format!("`{}` must not be empty", at(".function.name")),
                ));
            }
            if out.iter().any(|o: &Function| o.name == f.name) {
                return Err(refuse(
                    at(".function.name"),
                    "invalid_tools",
                    format!(
                        "`{}`: two tools are named `{}`",
                        at(".function.name"),
                        f.name
                    ),
                ));
            }
            out.push(f);
        }
        Ok(out)
    }

    /// Whether an answer may make several calls: `parallel_tool_calls` (absent: yes), and never
    /// for a named function.
    pub fn parallel_calls(&self) -> Result<bool, Refusal> {
        Ok(self.parallel_tool_calls != Some(false)
            && !matches!(self.tool_choice()?, ToolChoice::Named(_)))
    }

    /// `tool_choice`: `auto` when tools are offered and it is absent, `none` without tools.
    pub fn tool_choice(&self) -> Result<ToolChoice, Refusal> {
        let functions = self.tool_functions()?;
        let bad = |message: String| refuse("tool_choice", "invalid_tool_choice", message);
        let choice = match &self.tool_choice {
            None | Some(Value::Null) if functions.is_empty() => ToolChoice::None,
            None | Some(Value::Null) => ToolChoice::Auto,
            Some(Value::String(s)) => match s.as_str() {
                "none" => ToolChoice::None,
                "auto" => ToolChoice::Auto,
                "required" => ToolChoice::Required,
                other => {
                    return Err(bad(format!(
                        "unknown `tool_choice` `{other}`: none, auto, required, or a function"
                    )));
                }
            },
            Some(v) => match v.pointer("/function/name").and_then(Value::as_str) {
                Some(name) if functions.iter().any(|f| f.name == name) => {
                    ToolChoice::Named(name.to_string())
                }
                Some(name) => {
                    return Err(bad(format!(
                        "`tool_choice` names `{name}`, which is not in `tools`"
                    )));
                }
                None => {
                    return Err(bad(
                        "`tool_choice` must be a string or {\"type\": \"function\", \"function\": {\"name\"}}".into(),
                    ));
                }
            },
        };
        if functions.is_empty() && matches!(choice, ToolChoice::Required | ToolChoice::Auto) {
            return Err(bad(
                "`tool_choice` asks for a call, but `tools` is empty".into()
            ));
        }
        Ok(choice)
    }
}
