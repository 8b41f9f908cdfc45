//! Requests the worker refuses: without a valid assignment, malformed, oversized, over budget.

use alloy::{primitives::U256, signers::local::PrivateKeySigner};
use morpheus_sdk::{
    messages::Signed,
    provider::{ASSIGNMENT_HEADER, encode_assignment},
};
use serde_json::Value;

use morpheus_testkit::{TestWorker, unix_now};

use crate::common::request;

async fn post(server: &TestWorker, assignment: Option<String>, body: Vec<u8>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", server.url))
        .header("content-type", "application/json")
        .body(body);
    if let Some(a) = assignment {
        req = req.header(ASSIGNMENT_HEADER, a);
    }
    let resp = req.send().await.expect("send");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn body(text: &str) -> Vec<u8> {
    serde_json::to_vec(&request(text, 4, 1)).expect("json")
}

#[tokio::test]
async fn missing_assignment_is_401() {
    let server = TestWorker::start().await;
    let (status, err) = post(&server, None, body("hi")).await;
    assert_eq!(status, 401);
    assert_eq!(err["error"]["type"], "authentication_error");
    assert!(
        err["error"]["message"]
            .as_str()
            .expect("message")
            .contains(ASSIGNMENT_HEADER)
    );
    server.stop().await;
}

#[tokio::test]
async fn invalid_assignments_are_403_with_the_reason() {
    let server = TestWorker::start().await;
    let stranger = PrivateKeySigner::random();
    let cases = [
        ("garbage", "not-base64!".to_string(), "encoding"),
        (
            "unknown router",
            encode_assignment(
                &Signed::sign(server.assignment(1000).message, &server.domain, &stranger)
                    .expect("sign"),
            ),
            "not an authorised router",
        ),
        (
            "other provider",
            encode_assignment(&server.assignment_with(|a| a.provider = stranger.address(), 1000)),
            "provider mismatch",
        ),
        (
            "expired",
            encode_assignment(
                &server.assignment_with(|a| a.expiresAt = U256::from(unix_now() - 10), 1000),
            ),
            "expired",
        ),
        (
            "other model",
            encode_assignment(&server.assignment_with(
                |a| a.modelId = alloy::primitives::B256::repeat_byte(1),
                1000,
            )),
            "model",
        ),
    ];
    for (name, header, reason) in cases {
        let (status, err) = post(&server, Some(header), body("hi")).await;
        assert_eq!(status, 403, "{name}: {err}");
        let message = err["error"]["message"].as_str().expect("message");
        assert!(message.contains(reason), "{name}: {message}");
    }
    server.stop().await;
}

#[tokio::test]
async fn malformed_and_oversized_requests_are_refused() {
    let server = TestWorker::start().await;
    let a = || Some(encode_assignment(&server.assignment(100_000)));
    let (status, err) = post(&server, a(), b"{not json".to_vec()).await;
    assert_eq!(
        (status, err["error"]["type"].as_str()),
        (400, Some("invalid_request_error"))
    );
    for (body, param) in [
        (r#"{"model":"m","messages":[]}"#, "messages"),
        (
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"n":9}"#,
            "n",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":9}"#,
            "temperature",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema"}}"#,
            "response_format.json_schema",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user","content":"x"},{"role":"tool","content":"y"}]}"#,
            "messages[1].tool_call_id",
        ),
    ] {
        let (status, err) = post(&server, a(), body.as_bytes().to_vec()).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(err["error"]["param"], param, "{body}: {err}");
    }
    // An image among the parts: refused, naming it (the model never saw it).
    let image = r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"x"},{"type":"image_url","image_url":{"url":"u"}}]}]}"#;
    let (status, err) = post(&server, a(), image.as_bytes().to_vec()).await;
    assert_eq!(status, 400, "{err}");
    let message = err["error"]["message"].as_str().expect("message");
    assert!(message.contains("`image_url`"), "{message}");
    // Text parts, the developer role and fields of no consequence are served.
    let parts = r#"{"model":"m","max_tokens":2,"user":"u","messages":[{"role":"developer","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"hi"}],"name":"ann"}]}"#;
    let (status, answer) = post(&server, a(), parts.as_bytes().to_vec()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["usage"]["completion_tokens"], 2, "{answer}");
    let huge = serde_json::to_vec(&request(&"x".repeat(2 << 20), 4, 1)).expect("json");
    let (status, err) = post(&server, a(), huge).await;
    assert_eq!(status, 413, "{err}");
    let long = serde_json::to_vec(&request(&"hello world ".repeat(3000), 4, 1)).expect("json");
    let (status, err) = post(&server, a(), long).await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["code"], "context_length_exceeded");
    server.stop().await;
}

#[tokio::test]
async fn token_max_caps_the_session() {
    let server = TestWorker::start().await;
    let client = server.client();
    let probe = client
        .chat(&server.assignment(10_000), &request("hi", 1, 1))
        .await
        .expect("probe");
    let prompt = u64::from(probe.usage.prompt_tokens);
    // Room for 3 completion tokens although 50 are asked for.
    let capped = server.assignment(prompt + 3);
    let mut req = request("hi", 50, 1);
    req.temperature = Some(0.0);
    // The tiny model has no end-of-sequence token: it answers with exactly the 3 left.
    let answer = client
        .chat(&capped, &req)
        .await
        .expect("a request within tokenMax is answered");
    assert_eq!(answer.usage.completion_tokens, 3, "{:?}", answer.usage);
    assert_eq!(u64::from(answer.usage.total_tokens), prompt + 3);
    // The budget is spent: a second request on the same assignment is refused.
    let (status, err) = post(&server, Some(encode_assignment(&capped)), body("hi")).await;
    assert_eq!(status, 403, "{err}");
    assert_eq!(err["error"]["code"], "token_max_exceeded");
    // A prompt larger than tokenMax is refused outright.
    let (status, _) = post(
        &server,
        Some(encode_assignment(&server.assignment(2))),
        body("hi"),
    )
    .await;
    assert_eq!(status, 403);
    server.stop().await;
}
