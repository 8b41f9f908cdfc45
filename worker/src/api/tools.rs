//! Tool calls in a chat: the functions shown to the model (a system message), the grammar its
//! answer is held to (calls one per line, the named function's arguments, or calls or text under
//! `auto`), and the answer read back as `tool_calls`.

use std::sync::Arc;

use morpheus_sdk::openai::{
    ChatCompletionRequest, ChatMessage, FunctionCall, MAX_PARALLEL_CALLS, ToolCall, ToolChoice,
    tool_prompt,
};
use serde_json::Value;

use super::{
    ApiError,
    call_stream::{CallStream, Piece},
    generate::refused,
};
use crate::engine::constrain::{self, Grammar};

/// The tools of a request that uses them (`tool_choice` other than `none`).
pub(super) struct Tools {
    functions: Vec<morpheus_sdk::openai::Function>,
    choice: ToolChoice,
    /// Several calls in one answer (`parallel_tool_calls`).
    parallel: bool,
}

impl Tools {
    /// The request's tools, `None` when it uses none.
    pub(super) fn of(req: &ChatCompletionRequest) -> Result<Option<Self>, ApiError> {
        let choice = req.tool_choice().map_err(refused)?;
        if choice == ToolChoice::None {
            return Ok(None);
        }
        Ok(Some(Self {
            functions: req.tool_functions().map_err(refused)?,
            choice,
            parallel: req.parallel_calls().map_err(refused)?,
        }))
    }

    /// The grammar of the answer.
    pub(super) fn grammar(&self) -> Result<Arc<Grammar>, ApiError> {
        let at = |i: usize, e: constrain::SchemaError| {
            let path = e.path.split_once('.').map_or("", |(_, rest)| rest);
            let mut param = format!("tools[{i}].function.parameters");
            if !path.is_empty() {
                param = format!("{param}.{path}");
            }
            ApiError::bad_request(
                "unsupported_schema",
                format!(
                    "the parameters of `{}`: {}",
                    self.functions[i].name, e.message
                ),
            )
            .with_param(param)
        };
        let grammar = match &self.choice {
            ToolChoice::Named(name) => {
                let i = self.index(name);
                constrain::compile(&self.functions[i].parameters_schema()).map_err(|e| {
                    at(
                        i,
                        constrain::SchemaError {
                            path: format!("{i}.{}", e.path),
                            ..e
                        },
                    )
                })?
            }
            choice => {
                let calls: Vec<(String, Value)> = self
                    .functions
                    .iter()
                    .map(|f| (f.name.clone(), f.parameters_schema()))
                    .collect();
                let g = constrain::compile_calls(&calls).map_err(|e| {
                    let i = e
                        .path
                        .split('.')
                        .next()
                        .and_then(|i| i.parse().ok())
                        .unwrap_or(0);
                    at(i, e)
                })?;
                let g = if self.parallel {
                    g.lines(MAX_PARALLEL_CALLS)
                } else {
                    g
                };
                if *choice == ToolChoice::Auto {
                    g.or_text()
                } else {
                    g
                }
            }
        };
        Ok(Arc::new(grammar))
    }

    fn index(&self, name: &str) -> usize {
        self.functions
            .iter()
            .position(|f| f.name == name)
            .unwrap_or(0)
    }

    /// The conversation as the model sees it: the functions described in the system message.
    pub(super) fn show(&self, messages: &mut Vec<ChatMessage>) {
        let prompt = tool_prompt(&self.functions, self.parallel);
        match messages.first_mut() {
            Some(m) if m.role == "system" => m.content = format!("{}\n\n{prompt}", m.content),
            _ => messages.insert(0, ChatMessage::system(prompt)),
        }
    }

    /// A scanner of the answer as it is written (`call_stream.rs`), and what it sends first
    /// (a named function's name).
    pub(super) fn stream(&self) -> (CallStream, Vec<Piece>) {
        match &self.choice {
            ToolChoice::Named(name) => CallStream::new(Some(name), false, false),
            choice => CallStream::new(None, *choice == ToolChoice::Auto, self.parallel),
        }
    }

    /// The calls `answer` makes, if it is calls: read by the stream's scanner, so a stream's
    /// deltas join into exactly these calls (the arguments as the model wrote them).
    pub(super) fn read(&self, answer: &str) -> Option<Vec<ToolCall>> {
        let (mut scanner, _) = self.stream();
        scanner.push(answer);
        let calls = scanner.calls()?;
        Some(
            calls
                .into_iter()
                .map(|(name, arguments)| {
                    let name = match &self.choice {
                        ToolChoice::Named(named) => named.clone(),
                        _ => name,
                    };
                    ToolCall {
                        id: call_id(),
                        kind: "function".into(),
                        function: FunctionCall { name, arguments },
                    }
                })
                .collect(),
        )
    }
}

/// A new call's id.
pub(super) fn call_id() -> String {
    format!("call_{:016x}", super::generate::random_seed())
}

/// Messages as a template shows them: an assistant's earlier calls as the JSON it wrote.
pub(super) fn for_template(messages: &[ChatMessage]) -> Vec<ChatMessage> {
    messages
        .iter()
        .map(|m| ChatMessage {
            content: m.template_text(),
            ..m.clone()
        })
        .collect()
}
