//! Tool calls: `required`, a named function and `auto`, whole and streamed, the call's
//! arguments held to its schema; several calls in one answer; the round trip with the tool's
//! answer; bad tools refused.

use serde_json::{Value, json};

use morpheus_testkit::TestWorker;

use crate::sampling::{post, post_stream};

fn tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_weather", "description": "The weather in a city",
            "parameters": {"type": "object", "properties": {
                "city": {"type": "string", "maxLength": 10},
                "unit": {"enum": ["celsius", "fahrenheit"]}
            }, "required": ["city", "unit"], "additionalProperties": false}}},
        {"type": "function", "function": {"name": "get_time",
            "parameters": {"type": "object", "properties": {"zone": {"type": "string", "maxLength": 6}},
                           "required": ["zone"]}}}
    ])
}

/// One call per answer: the tiny model has no end-of-sequence token, so where several may come
/// it writes as many as allowed (`several_calls_come_one_per_line_whole_and_streamed`).
fn body(choice: Value, seed: u64) -> Value {
    json!({"model": "tiny-llama-test", "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
           "tools": tools(), "tool_choice": choice, "max_tokens": 200, "temperature": 0.8, "seed": seed,
           "parallel_tool_calls": false})
}

/// The call of an answer, checked against its function's schema.
fn call_of(answer: &Value) -> (String, Value) {
    let choice = &answer["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{answer}");
    assert_eq!(
        choice["message"]["tool_calls"].as_array().map(Vec::len),
        Some(1),
        "{answer}"
    );
    checked(&choice["message"]["tool_calls"][0])
}

/// A call, checked against its function's schema.
fn checked(call: &Value) -> (String, Value) {
    assert_eq!(call["type"], "function");
    assert!(
        call["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("call_")),
        "{call}"
    );
    let name = call["function"]["name"].as_str().expect("name").to_string();
    let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().expect("text"))
        .unwrap_or_else(|e| panic!("{e}: {call}"));
    match name.as_str() {
        "get_weather" => {
            assert!(
                args["city"]
                    .as_str()
                    .is_some_and(|c| c.chars().count() <= 10),
                "{args}"
            );
            assert!(
                ["celsius", "fahrenheit"].contains(&args["unit"].as_str().expect("unit")),
                "{args}"
            );
            assert_eq!(args.as_object().expect("object").len(), 2, "{args}");
        }
        "get_time" => assert!(
            args["zone"]
                .as_str()
                .is_some_and(|z| z.chars().count() <= 6),
            "{args}"
        ),
        other => panic!("not a tool: {other}"),
    }
    (name, args)
}

#[tokio::test]
async fn required_and_named_calls_hold_their_schemas() {
    let server = TestWorker::start().await;
    for seed in 0..4 {
        let (status, a) = post(
            &server,
            "/v1/chat/completions",
            &body(json!("required"), seed),
        )
        .await;
        assert_eq!(status, 200, "{a}");
        call_of(&a);
        let named = json!({"type": "function", "function": {"name": "get_time"}});
        let (status, a) = post(&server, "/v1/chat/completions", &body(named, seed)).await;
        assert_eq!(status, 200, "{a}");
        assert_eq!(call_of(&a).0, "get_time");
    }
    server.stop().await;
}

#[tokio::test]
async fn auto_answers_a_call_or_text() {
    let server = TestWorker::start().await;
    let mut kinds = (0, 0);
    for seed in 0..8 {
        let mut b = body(json!("auto"), seed);
        b["max_tokens"] = json!(40);
        let (status, a) = post(&server, "/v1/chat/completions", &b).await;
        assert_eq!(status, 200, "{a}");
        if a["choices"][0]["finish_reason"] == "tool_calls" {
            call_of(&a);
            kinds.0 += 1;
        } else {
            let text = a["choices"][0]["message"]["content"]
                .as_str()
                .expect("text");
            assert!(
                !text.trim_start().starts_with('{'),
                "text never starts as a call: {text}"
            );
            kinds.1 += 1;
        }
    }
    assert_eq!(kinds.0 + kinds.1, 8);
    server.stop().await;
}

#[tokio::test]
async fn a_streamed_call_comes_as_deltas_and_the_round_trip_answers() {
    let server = TestWorker::start().await;
    let b = body(json!("required"), 3);
    let (_, whole) = post(&server, "/v1/chat/completions", &b).await;
    let (name, args) = call_of(&whole);
    let chunks = post_stream(&server, "/v1/chat/completions", &b).await;
    let deltas: Vec<Value> = chunks
        .iter()
        .filter_map(|c| {
            c["choices"][0]["delta"]["tool_calls"][0]
                .as_object()
                .cloned()
        })
        .map(Value::Object)
        .collect();
    // The first names the call (id, type, function name); the rest carry its arguments as they
    // are written, which join into the whole answer's arguments, as written.
    assert_eq!(deltas[0]["function"]["name"], name.as_str(), "{deltas:?}");
    assert!(
        deltas[0]["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("call_"))
    );
    assert_eq!(deltas[0]["type"], "function");
    assert!(
        deltas[1..]
            .iter()
            .all(|d| d.get("id").is_none_or(Value::is_null))
    );
    assert!(
        deltas.len() > 2,
        "the arguments come in several deltas: {deltas:?}"
    );
    let joined: String = deltas
        .iter()
        .map(|d| d["function"]["arguments"].as_str().expect("arguments"))
        .collect();
    assert_eq!(
        joined,
        whole["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .expect("the whole answer's arguments"),
        "the same call as the whole answer"
    );
    let streamed: Value = serde_json::from_str(&joined).expect("json");
    assert_eq!(streamed, args);
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "tool_calls")
    );

    // The call and the tool's answer go back; the model answers in text.
    let call = whole["choices"][0]["message"].clone();
    let id = call["tool_calls"][0]["id"].clone();
    let back = json!({"model": "tiny-llama-test", "tools": tools(), "tool_choice": "none", "max_tokens": 6,
        "messages": [{"role": "user", "content": "What is the weather in Paris?"}, call,
                     {"role": "tool", "tool_call_id": id, "content": "sunny, 21 degrees"}]});
    let (status, a) = post(&server, "/v1/chat/completions", &back).await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["choices"][0]["finish_reason"], "length");
    assert!(
        a["choices"][0]["message"]["content"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    assert!(a["choices"][0]["message"].get("tool_calls").is_none());
    server.stop().await;
}

#[tokio::test]
async fn several_calls_come_one_per_line_whole_and_streamed() {
    let server = TestWorker::start().await;
    for seed in 0..2 {
        let mut b = body(json!("required"), seed);
        b["parallel_tool_calls"] = json!(true);
        b["max_tokens"] = json!(3000);
        let (status, whole) = post(&server, "/v1/chat/completions", &b).await;
        assert_eq!(status, 200, "{whole}");
        let choice = &whole["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls", "{whole}");
        // Without an end-of-sequence token the tiny model writes the most an answer may hold.
        let calls = choice["message"]["tool_calls"].as_array().expect("calls");
        assert_eq!(calls.len(), 8, "{whole}");
        let want: Vec<(String, Value)> = calls.iter().map(checked).collect();
        let ids: std::collections::HashSet<&str> =
            calls.iter().filter_map(|c| c["id"].as_str()).collect();
        assert_eq!(ids.len(), calls.len(), "each call its own id");

        // Streamed: each call's deltas under its index, the first with its id, type and name;
        // they join into the same calls.
        let chunks = post_stream(&server, "/v1/chat/completions", &b).await;
        let mut got: Vec<(String, String)> = Vec::new();
        for d in chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array())
            .flatten()
        {
            let index = d["index"].as_u64().expect("index") as usize;
            if let Some(name) = d["function"]["name"].as_str() {
                assert_eq!(index, got.len(), "a call opens after the one before: {d}");
                assert!(d["id"].as_str().is_some_and(|id| id.starts_with("call_")));
                assert_eq!(d["type"], "function");
                got.push((name.to_string(), String::new()));
            } else {
                assert_eq!(index + 1, got.len(), "arguments of the open call: {d}");
                assert!(d.get("id").is_none_or(Value::is_null));
            }
            got[index]
                .1
                .push_str(d["function"]["arguments"].as_str().unwrap_or_default());
        }
        let got: Vec<(String, Value)> = got
            .into_iter()
            .map(|(n, a)| (n, serde_json::from_str(&a).expect("json arguments")))
            .collect();
        assert_eq!(got, want, "seed {seed}");
        assert!(
            chunks
                .iter()
                .any(|c| c["choices"][0]["finish_reason"] == "tool_calls")
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn bad_tools_are_refused_naming_them() {
    let server = TestWorker::start().await;
    for (tools, choice, param) in [
        (
            json!([{"type": "function", "function": {"description": "no name"}}]),
            json!("auto"),
            "tools[0].function.name",
        ),
        (
            json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object",
                "properties": {"x": {"type": "string", "pattern": "^a"}}}}}]),
            json!("required"),
            "tools[0].function.parameters.properties.x.pattern",
        ),
        (
            json!([{"type": "function", "function": {"name": "f"}}, {"type": "function", "function": {"name": "g",
                "parameters": {"type": "integer", "maximum": 3}}}]),
            json!({"type": "function", "function": {"name": "g"}}),
            "tools[1].function.parameters.maximum",
        ),
        (
            json!([{"type": "function", "function": {"name": "f"}}]),
            json!("sometimes"),
            "tool_choice",
        ),
    ] {
        let b = json!({"model": "tiny-llama-test", "messages": [{"role": "user", "content": "hi"}],
                       "tools": tools, "tool_choice": choice, "max_tokens": 4});
        let (status, a) = post(&server, "/v1/chat/completions", &b).await;
        assert_eq!(status, 400, "{b}: {a}");
        assert_eq!(a["error"]["param"], param, "{a}");
    }
    server.stop().await;
}
