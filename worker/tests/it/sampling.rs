//! The sampling fields beside temperature and top-p: log-probabilities, `logit_bias`, the
//! penalties; and the refusals of what is out of range, in OpenAI's body naming the field.

use std::collections::HashSet;

use morpheus_sdk::provider::{ASSIGNMENT_HEADER, encode_assignment};
use serde_json::{Value, json};

use morpheus_testkit::TestWorker;

use crate::common::request;

#[tokio::test]
async fn logprobs_describe_the_tokens_chosen() {
    let server = TestWorker::start().await;
    let mut req = request("hello", 12, 3);
    req.temperature = Some(0.0);
    req.logprobs = Some(true);
    req.top_logprobs = Some(3);
    let answer = crate::common::chat(&server, &req).await;
    let choice = &answer.choices[0];
    let content = &choice.logprobs.as_ref().expect("logprobs").content;
    assert_eq!(content.len() as u32, answer.usage.completion_tokens);
    let mut bytes = Vec::new();
    for t in content {
        assert!(t.logprob <= 0.0, "{t:?}");
        assert_eq!(t.top_logprobs.len(), 3);
        // Greedy: the chosen token is the most likely one.
        assert_eq!(t.top_logprobs[0].token, t.token);
        assert!((t.top_logprobs[0].logprob - t.logprob).abs() < 1e-5);
        assert!(
            t.top_logprobs
                .windows(2)
                .all(|w| w[0].logprob >= w[1].logprob)
        );
        bytes.extend(t.bytes.clone().expect("bytes"));
    }
    // The tokens' bytes are the text (a character the last token leaves unfinished is not).
    let written = String::from_utf8_lossy(&bytes);
    assert!(
        written.starts_with(&choice.message.content)
            && written.len() <= choice.message.content.len() + 3,
        "{written:?} / {:?}",
        choice.message.content
    );
    // Not asked for: none.
    req.logprobs = None;
    req.top_logprobs = None;
    let plain = server
        .client()
        .chat(&server.assignment(10_000), &req)
        .await
        .expect("answer");
    assert!(plain.choices[0].logprobs.is_none());
    assert_eq!(plain.choices[0].message.content, choice.message.content);
    server.stop().await;
}

/// The token ids of a greedy answer (read from its log-probabilities' bytes, as one-token
/// pieces).
async fn greedy_tokens(server: &TestWorker, extra: Value) -> Vec<Vec<u8>> {
    let mut body = json!({
        "model": "tiny-llama-test",
        "messages": [{"role": "user", "content": "repeat"}],
        "max_tokens": 40, "temperature": 0, "logprobs": true
    });
    for (k, v) in extra.as_object().expect("fields") {
        body[k] = v.clone();
    }
    let answer = post(server, "/v1/chat/completions", &body).await;
    assert_eq!(answer.0, 200, "{}", answer.1);
    answer.1["choices"][0]["logprobs"]["content"]
        .as_array()
        .expect("content")
        .iter()
        .map(|t| {
            t["bytes"]
                .as_array()
                .expect("bytes")
                .iter()
                .map(|b| b.as_u64().expect("byte") as u8)
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn bias_and_penalties_change_the_choice() {
    let server = TestWorker::start().await;
    // Token 100 is byte 97 in the tiny model's byte-level vocabulary (`a`, three specials
    // first): +100 makes it every token; -100 on the greedy answer's first token removes it.
    let forced = greedy_tokens(&server, json!({"logit_bias": {"100": 100}})).await;
    assert!(forced.iter().all(|t| t == &forced[0]), "{forced:?}");
    let plain = greedy_tokens(&server, json!({})).await;
    let distinct = |t: &[Vec<u8>]| t.iter().collect::<HashSet<_>>().len();
    assert!(
        distinct(&plain) < plain.len(),
        "the tiny model repeats itself greedily: {plain:?}"
    );
    let penalised = greedy_tokens(&server, json!({"frequency_penalty": 2.0})).await;
    assert!(
        distinct(&penalised) > distinct(&plain),
        "{plain:?} / {penalised:?}"
    );
    let present = greedy_tokens(&server, json!({"presence_penalty": 2.0})).await;
    assert!(
        distinct(&present) > distinct(&plain),
        "{plain:?} / {present:?}"
    );
    server.stop().await;
}

/// POSTs `body` as a stream with a fresh assignment; the chunks, checked to end with `[DONE]`.
pub(crate) async fn post_stream(server: &TestWorker, path: &str, body: &Value) -> Vec<Value> {
    let mut body = body.clone();
    body["stream"] = json!(true);
    let raw = reqwest::Client::new()
        .post(format!("{}{path}", server.url))
        .header(
            ASSIGNMENT_HEADER,
            encode_assignment(&server.assignment(100_000)),
        )
        .json(&body)
        .send()
        .await
        .expect("stream")
        .text()
        .await
        .expect("body");
    let events: Vec<&str> = raw
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"), "{raw}");
    events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).expect("a chunk"))
        .collect()
}

/// POSTs `body` with a fresh assignment; the status and the JSON answer.
pub(crate) async fn post(server: &TestWorker, path: &str, body: &Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}{path}", server.url))
        .header(
            ASSIGNMENT_HEADER,
            encode_assignment(&server.assignment(100_000)),
        )
        .json(body)
        .send()
        .await
        .expect("answered");
    let status = r.status().as_u16();
    (status, r.json().await.expect("json"))
}

#[tokio::test]
async fn what_cannot_be_served_is_refused_naming_it() {
    let server = TestWorker::start().await;
    let hi = json!([{"role": "user", "content": "hi"}]);
    for (extra, param, code) in [
        (
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x",
                "schema": {"type": "object", "properties": {"a": {"type": "string", "pattern": "^a+$"}}}}}}),
            "response_format.json_schema.schema.properties.a.pattern",
            "unsupported_schema",
        ),
        (
            json!({"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "integer", "minimum": 1}}}}),
            "response_format.json_schema.schema.minimum",
            "unsupported_schema",
        ),
        (
            json!({"logit_bias": {"999999": 1}}),
            "logit_bias",
            "invalid_logit_bias",
        ),
        (
            json!({"logprobs": true, "top_logprobs": 25}),
            "top_logprobs",
            "invalid_top_logprobs",
        ),
        (
            json!({"presence_penalty": 3}),
            "presence_penalty",
            "invalid_penalty",
        ),
        (json!({"n": 5}), "n", "unsupported_n"),
        (json!({"n": 0}), "n", "invalid_n"),
        (
            json!({"tools": [{"type": "function", "function": {"name": "f"}}],
                   "response_format": {"type": "json_object"}}),
            "response_format",
            "unsupported_parameter",
        ),
    ] {
        let mut body = json!({"model": "tiny-llama-test", "messages": hi, "max_tokens": 4});
        for (k, v) in extra.as_object().expect("fields") {
            body[k] = v.clone();
        }
        let (status, answer) = post(&server, "/v1/chat/completions", &body).await;
        assert_eq!(status, 400, "{extra}: {answer}");
        assert_eq!(answer["error"]["param"], param, "{extra}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{extra}: {answer}");
        assert_eq!(answer["error"]["type"], "invalid_request_error");
    }
    // Nothing was reserved by a refusal: a full-size request still fits the same session.
    server.stop().await;
}
