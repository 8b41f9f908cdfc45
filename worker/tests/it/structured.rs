//! Answers held to `response_format` (constrained decoding) on the tiny model and SmolLM2:
//! every answer parses and holds its schema, greedy or sampled, whole or streamed.

use futures::StreamExt;
use morpheus_sdk::openai::{ChatCompletionRequest, ChatMessage};
use serde_json::{Value, json};

use morpheus_testkit::TestWorker;

use crate::common::request;

/// Nested objects, arrays, enums, numbers, optional keys; the tiny model's strings are bounded
/// (a model that knows no JSON would otherwise write one string until the token limit).
fn order_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "status": {"enum": ["open", "paid", "shipped"]},
            "total": {"type": "number"},
            "customer": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "maxLength": 12},
                    "vip": {"type": "boolean"}
                },
                "required": ["name", "vip"],
                "additionalProperties": false
            },
            "items": {
                "type": "array",
                "items": {"$ref": "#/$defs/item"},
                "minItems": 1,
                "maxItems": 3
            },
            "note": {"type": ["string", "null"], "maxLength": 6}
        },
        "required": ["id", "status", "total", "customer", "items"],
        "additionalProperties": false,
        "$defs": {"item": {
            "type": "object",
            "properties": {"sku": {"type": "string", "maxLength": 8}, "qty": {"type": "integer"}},
            "required": ["sku", "qty"]
        }}
    })
}

/// Checks `v` against [`order_schema`], key by key.
fn holds_order_schema(v: &Value) {
    let o = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"));
    for key in o.keys() {
        assert!(
            ["id", "status", "total", "customer", "items", "note"].contains(&key.as_str()),
            "undeclared key {key}: {v}"
        );
    }
    assert!(o["id"].is_i64() || o["id"].is_u64(), "{v}");
    assert!(
        ["open", "paid", "shipped"].contains(&o["status"].as_str().expect("status")),
        "{v}"
    );
    assert!(o["total"].is_number(), "{v}");
    let c = o["customer"].as_object().expect("customer");
    assert_eq!(c.len(), 2, "{v}");
    assert!(
        c["name"].as_str().expect("name").chars().count() <= 12,
        "{v}"
    );
    assert!(c["vip"].is_boolean(), "{v}");
    let items = o["items"].as_array().expect("items");
    assert!((1..=3).contains(&items.len()), "{v}");
    for item in items {
        assert!(
            item["sku"].as_str().expect("sku").chars().count() <= 8,
            "{v}"
        );
        assert!(item["qty"].is_i64() || item["qty"].is_u64(), "{v}");
    }
    if let Some(n) = o.get("note") {
        assert!(
            n.is_null() || n.as_str().is_some_and(|s| s.chars().count() <= 6),
            "{v}"
        );
    }
}

fn json_schema(schema: Value) -> Value {
    json!({"type": "json_schema", "json_schema": {"name": "order", "strict": true, "schema": schema}})
}

#[tokio::test]
async fn every_answer_parses_and_holds_the_schema() {
    let server = TestWorker::start().await;
    let client = server.client();
    // Greedy and sampled (the one-token check first), and sampled with a nucleus (the mask
    // first), over several seeds.
    for (temperature, top_p) in [(0.0, 1.0), (1.0, 1.0), (0.9, 0.9)] {
        for seed in 0..4 {
            let mut req = request("an order, as JSON", 600, seed);
            (req.temperature, req.top_p) = (Some(temperature), Some(top_p));
            req.response_format = Some(json_schema(order_schema()));
            let answer = client
                .chat(&server.assignment(100_000), &req)
                .await
                .expect("answer");
            let text = &answer.choices[0].message.content;
            let v: Value = serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("t={temperature} p={top_p} seed {seed}: {e}: {text}"));
            holds_order_schema(&v);
            assert_eq!(
                answer.choices[0].finish_reason.as_deref(),
                Some("stop"),
                "the answer ends with the schema: {text}"
            );
            assert!(answer.usage.completion_tokens < 600);
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn a_streamed_constrained_answer_is_the_whole_one() {
    let server = TestWorker::start().await;
    let client = server.client();
    let mut req = request("an order", 600, 5);
    req.response_format = Some(json_schema(order_schema()));
    let whole = client
        .chat(&server.assignment(100_000), &req)
        .await
        .expect("whole");
    req.stream = true;
    let mut stream = client
        .chat_stream(&server.assignment(100_000), &req)
        .await
        .expect("stream");
    let mut text = String::new();
    while let Some(chunk) = stream.next().await {
        for c in chunk.expect("chunk").choices {
            text.push_str(c.delta.content.as_deref().unwrap_or_default());
        }
    }
    assert_eq!(text, whole.choices[0].message.content);
    holds_order_schema(&serde_json::from_str(&text).expect("json"));
    server.stop().await;
}

#[tokio::test]
async fn json_object_answers_are_objects() {
    let server = TestWorker::start().await;
    let client = server.client();
    // An object with one free key whose value is bounded: the tiny model fills what it may.
    let mut req = request("anything, as JSON", 300, 1);
    req.temperature = Some(0.0);
    req.response_format = Some(json!({"type": "json_object"}));
    let answer = client
        .chat(&server.assignment(100_000), &req)
        .await
        .expect("answer");
    let text = &answer.choices[0].message.content;
    let finish = answer.choices[0].finish_reason.as_deref();
    // Free keys and strings are unbounded in `json_object`: a model that knows no JSON may
    // write one string to the limit; what it wrote is still JSON up to there.
    if finish == Some("stop") {
        assert!(serde_json::from_str::<Value>(text).expect(text).is_object());
    } else {
        assert!(
            text.starts_with('{') || text.trim_start().starts_with('{'),
            "{text}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn smollm2_fills_a_schema() {
    let server = crate::common::smollm2_worker().await;
    let schema = json!({
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "country": {"type": "string"},
            "population_millions": {"type": "number"},
            "continent": {"enum": ["Africa", "Asia", "Europe", "North America", "South America", "Oceania"]},
            "landmarks": {"type": "array", "items": {"type": "string"}, "maxItems": 3}
        },
        "required": ["city", "country", "population_millions", "continent", "landmarks"],
        "additionalProperties": false
    });
    let req = ChatCompletionRequest {
        model: "SmolLM2-135M-Instruct".into(),
        messages: vec![
            ChatMessage::system("You are a helpful assistant. Answer in JSON."),
            ChatMessage::user(
                "Describe Paris: city, country, population in millions, continent, landmarks.",
            ),
        ],
        max_tokens: Some(200),
        temperature: Some(0.0),
        response_format: Some(json_schema(schema)),
        ..Default::default()
    };
    let answer = server
        .client()
        .chat(&server.assignment(10_000), &req)
        .await
        .expect("answer");
    let text = &answer.choices[0].message.content;
    let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(
        answer.choices[0].finish_reason.as_deref(),
        Some("stop"),
        "{text}"
    );
    assert!(v["city"].is_string() && v["country"].is_string(), "{v}");
    assert!(v["population_millions"].is_number(), "{v}");
    assert!(
        v["continent"].is_string() && v["landmarks"].as_array().is_some_and(|a| a.len() <= 3),
        "{v}"
    );
    assert_eq!(v["continent"], "Europe", "{v}");
    server.stop().await;
}
