//! A JSON Schema compiled into a [`Grammar`]: the subset that constrained decoding can enforce
//! byte by byte, and a refusal naming anything else. A keyword that cannot be enforced is never
//! ignored: an answer that parses but breaks the schema is what a client asking for a schema
//! must not get.
//!
//! Enforced: `type` (one or a list), `properties`, `required`, `additionalProperties`, `items`,
//! `minItems`, `maxItems`, `minLength`, `maxLength`, `enum`, `const`, `anyOf`, `allOf` of one
//! schema, local `$ref`s into `$defs` / `definitions` (recursion included). Annotations
//! (`title`, `description`, `default`, `examples`, ...) are read and have no effect. Declared
//! keys are written in the schema's order; keys the schema allows but does not declare are not
//! written (the answer is still valid: it only leaves out what it may leave out).

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::grammar::{Grammar, Node, NodeId, Object, Prop};

/// Keywords that describe and constrain nothing.
const ANNOTATIONS: [&str; 11] = [
    "title",
    "description",
    "default",
    "examples",
    "$schema",
    "$id",
    "$comment",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$anchor",
];

/// Keywords the decoder enforces.
const ENFORCED: [&str; 16] = [
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "enum",
    "const",
    "anyOf",
    "allOf",
    "$ref",
    "$defs",
    "definitions",
];

/// Why a schema is refused: where in it (`properties.age.minimum`, empty at the top) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", if path.is_empty() { String::new() } else { format!("at `{path}`: ") })]
pub struct SchemaError {
    /// Where, as a dotted path of keywords and keys.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// Compiles `schema`.
pub fn compile(schema: &Value) -> Result<Grammar, SchemaError> {
    let mut grammar = Grammar {
        nodes: Vec::new(),
        root: 0,
    };
    grammar.root = add(&mut grammar, schema)?;
    Ok(grammar)
}

/// A tool call: `{"name": <one of the names>, "arguments": <that function's parameters>}`, each
/// function's schema compiled on its own (its `$ref`s point into it). An error's path starts
/// with the function's index (`2.properties.city.pattern`).
pub fn compile_calls(functions: &[(String, Value)]) -> Result<Grammar, SchemaError> {
    let mut grammar = Grammar {
        nodes: Vec::new(),
        root: 0,
    };
    let key = |k: &str| serde_json::to_vec(k).unwrap_or_default().into_boxed_slice();
    let mut calls = Vec::with_capacity(functions.len());
    for (i, (name, parameters)) in functions.iter().enumerate() {
        let arguments = add(&mut grammar, parameters).map_err(|e| SchemaError {
            path: join(&i.to_string(), &e.path),
            message: e.message,
        })?;
        let name = grammar.push(Node::Literal(key(name)));
        calls.push(grammar.push(Node::Object(Object {
            props: vec![
                Prop {
                    key: key("name"),
                    value: name,
                    required: true,
                },
                Prop {
                    key: key("arguments"),
                    value: arguments,
                    required: true,
                },
            ],
            additional: None,
        })));
    }
    grammar.root = grammar.push(Node::OneOf(calls.into()));
    Ok(grammar)
}

/// Compiles `schema` into `grammar`'s arena; returns its root.
fn add(grammar: &mut Grammar, schema: &Value) -> Result<NodeId, SchemaError> {
    let empty = Grammar {
        nodes: Vec::new(),
        root: 0,
    };
    let mut c = Compiler {
        root: schema,
        grammar: std::mem::replace(grammar, empty),
        refs: HashMap::new(),
        any: None,
    };
    let root = c.node(schema, "");
    *grammar = c.grammar;
    root
}

struct Compiler<'a> {
    root: &'a Value,
    grammar: Grammar,
    /// `$ref` pointers compiled so far (a recursive one finds its own placeholder).
    refs: HashMap<String, NodeId>,
    any: Option<NodeId>,
}

fn err(path: &str, message: impl Into<String>) -> SchemaError {
    SchemaError {
        path: path.to_string(),
        message: message.into(),
    }
}

fn join(path: &str, key: &str) -> String {
    match (path.is_empty(), key.is_empty()) {
        (true, _) => key.to_string(),
        (_, true) => path.to_string(),
        _ => format!("{path}.{key}"),
    }
}

impl Compiler<'_> {
    fn node(&mut self, schema: &Value, path: &str) -> Result<NodeId, SchemaError> {
        let s = match schema {
            Value::Bool(true) => return Ok(self.any()),
            Value::Bool(false) => return Err(err(path, "the schema `false` accepts nothing")),
            Value::Object(s) => s,
            _ => return Err(err(path, "a schema must be an object or a boolean")),
        };
        for key in s.keys() {
            if !ANNOTATIONS.contains(&key.as_str()) && !ENFORCED.contains(&key.as_str()) {
                return Err(err(
                    &join(path, key),
                    format!(
                        "`{key}` cannot be enforced by constrained decoding; supported: {}",
                        ENFORCED.join(", ")
                    ),
                ));
            }
        }
        if let Some(r) = s.get("$ref") {
            return self.reference(r, &join(path, "$ref"));
        }
        if let Some(all) = s.get("allOf") {
            return match all.as_array().map(Vec::as_slice) {
                Some([one]) => self.node(one, &join(path, "allOf.0")),
                _ => Err(err(
                    &join(path, "allOf"),
                    "`allOf` is enforced with exactly one schema",
                )),
            };
        }
        if let Some(c) = s.get("const") {
            return Ok(self.literal(c));
        }
        if let Some(values) = s.get("enum") {
            let values = values
                .as_array()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| err(&join(path, "enum"), "`enum` must be a non-empty list"))?;
            let alts: Vec<NodeId> = values.iter().map(|v| self.literal(v)).collect();
            return Ok(self.grammar.push(Node::OneOf(alts.into())));
        }
        if let Some(any_of) = s.get("anyOf") {
            let list = any_of
                .as_array()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| err(&join(path, "anyOf"), "`anyOf` must be a non-empty list"))?;
            let mut alts = Vec::with_capacity(list.len());
            for (i, sub) in list.iter().enumerate() {
                alts.push(self.node(sub, &join(path, &format!("anyOf.{i}")))?);
            }
            return Ok(self.grammar.push(Node::OneOf(alts.into())));
        }
        let types: Vec<&str> = match s.get("type") {
            None if s.contains_key("properties") || s.contains_key("additionalProperties") => {
                vec!["object"]
            }
            None if s.contains_key("items") => vec!["array"],
            None => return Ok(self.any()),
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) if !ts.is_empty() => ts
                .iter()
                .map(|t| {
                    t.as_str().ok_or_else(|| {
                        err(
                            &join(path, "type"),
                            "`type` must be a string or a list of them",
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(err(
                    &join(path, "type"),
                    "`type` must be a string or a non-empty list of them",
                ));
            }
        };
        let mut alts = Vec::with_capacity(types.len());
        for t in types {
            alts.push(self.typed(t, s, path)?);
        }
        Ok(match alts.as_slice() {
            [one] => *one,
            _ => self.grammar.push(Node::OneOf(alts.into())),
        })
    }

    fn typed(
        &mut self,
        t: &str,
        s: &Map<String, Value>,
        path: &str,
    ) -> Result<NodeId, SchemaError> {
        Ok(match t {
            "object" => self.object(s, path)?,
            "array" => {
                let items = match s.get("items") {
                    None => self.any(),
                    Some(Value::Array(_)) => {
                        return Err(err(
                            &join(path, "items"),
                            "tuple `items` (a list of schemas) cannot be enforced; give one schema",
                        ));
                    }
                    Some(items) => self.node(items, &join(path, "items"))?,
                };
                let (min, max) = bounds(s, "minItems", "maxItems", path)?;
                self.grammar.push(Node::Array { items, min, max })
            }
            "string" => {
                let (min, max) = bounds(s, "minLength", "maxLength", path)?;
                self.grammar.push(Node::String { min, max })
            }
            "integer" => self.grammar.push(Node::Number { integer: true }),
            "number" => self.grammar.push(Node::Number { integer: false }),
            "boolean" => {
                let t = self.literal(&Value::Bool(true));
                let f = self.literal(&Value::Bool(false));
                self.grammar.push(Node::OneOf(Box::new([t, f])))
            }
            "null" => self.literal(&Value::Null),
            other => {
                return Err(err(
                    &join(path, "type"),
                    format!(
                        "unknown type `{other}`: object, array, string, integer, number, boolean or null"
                    ),
                ));
            }
        })
    }

    fn object(&mut self, s: &Map<String, Value>, path: &str) -> Result<NodeId, SchemaError> {
        let props = match s.get("properties") {
            None => Map::new(),
            Some(Value::Object(p)) => p.clone(),
            Some(_) => {
                return Err(err(
                    &join(path, "properties"),
                    "`properties` must be an object of schemas",
                ));
            }
        };
        let required: Vec<&str> = match s.get("required") {
            None => Vec::new(),
            Some(Value::Array(r)) => r
                .iter()
                .map(|k| {
                    k.as_str().ok_or_else(|| {
                        err(&join(path, "required"), "`required` must list key names")
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(err(&join(path, "required"), "`required` must be a list")),
        };
        if let Some(missing) = required.iter().find(|k| !props.contains_key(**k)) {
            return Err(err(
                &join(path, "required"),
                format!(
                    "the required key `{missing}` is not in `properties`, so its value's shape is unknown"
                ),
            ));
        }
        let mut object = Object::default();
        for (key, sub) in &props {
            let value = self.node(sub, &join(&join(path, "properties"), key))?;
            object.props.push(Prop {
                key: serde_json::to_vec(key).unwrap_or_default().into(),
                value,
                required: required.contains(&key.as_str()),
            });
        }
        if object.props.is_empty() {
            object.additional = match s.get("additionalProperties") {
                Some(Value::Bool(false)) => None,
                None | Some(Value::Bool(true)) => Some(self.any()),
                Some(sub) => Some(self.node(sub, &join(path, "additionalProperties"))?),
            };
        }
        Ok(self.grammar.push(Node::Object(object)))
    }

    fn reference(&mut self, r: &Value, path: &str) -> Result<NodeId, SchemaError> {
        let pointer = r
            .as_str()
            .and_then(|p| p.strip_prefix('#'))
            .ok_or_else(|| err(path, "only local references (`#/$defs/...`) are served"))?;
        if let Some(&id) = self.refs.get(pointer) {
            return Ok(id);
        }
        let target = self
            .root
            .pointer(pointer)
            .ok_or_else(|| err(path, format!("`#{pointer}` is not in the schema")))?;
        // A placeholder first, so that a schema referring to itself finds it.
        let id = self.grammar.push(Node::OneOf(Box::new([])));
        self.refs.insert(pointer.to_string(), id);
        let compiled = self.node(target, &format!("#{pointer}"))?;
        self.grammar.nodes[id as usize] = Node::OneOf(Box::new([compiled]));
        Ok(id)
    }

    fn literal(&mut self, value: &Value) -> NodeId {
        let bytes = serde_json::to_vec(value).unwrap_or_default();
        self.grammar.push(Node::Literal(bytes.into()))
    }

    fn any(&mut self) -> NodeId {
        if let Some(any) = self.any {
            return any;
        }
        let any = self.grammar.any_value();
        self.any = Some(any);
        any
    }
}

/// A pair of count keywords (`minItems`/`maxItems`, `minLength`/`maxLength`).
fn bounds(
    s: &Map<String, Value>,
    lo: &str,
    hi: &str,
    path: &str,
) -> Result<(u32, u32), SchemaError> {
    let read = |key: &str, default: u32| -> Result<u32, SchemaError> {
        match s.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    err(
                        &join(path, key),
                        format!("`{key}` must be a count (0 or more)"),
                    )
                }),
        }
    };
    let (min, max) = (read(lo, 0)?, read(hi, u32::MAX)?);
    if min > max {
        return Err(err(&join(path, lo), format!("`{lo}` is above `{hi}`")));
    }
    Ok((min, max))
}
