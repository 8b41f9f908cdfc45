//! `POST /v1/completions`: a prompt continued without the chat template, whole or streamed,
//! with OpenAI's legacy log-probabilities; `echo` and `suffix` refused by name.

use serde_json::{Value, json};

use morpheus_testkit::TestWorker;

use crate::sampling::{post, post_stream};

#[tokio::test]
async fn a_prompt_is_continued() {
    let server = TestWorker::start().await;
    let body = json!({"model": "tiny-llama-test", "prompt": "Once upon a time", "max_tokens": 6,
                      "temperature": 0, "logprobs": 2});
    let (status, a) = post(&server, "/v1/completions", &body).await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["object"], "text_completion");
    let choice = &a["choices"][0];
    assert_eq!(choice["finish_reason"], "length");
    assert_eq!(a["usage"]["completion_tokens"], 6);
    let lp = &choice["logprobs"];
    assert_eq!(lp["tokens"].as_array().expect("tokens").len(), 6);
    assert_eq!(lp["token_logprobs"].as_array().expect("logprobs").len(), 6);
    assert_eq!(lp["top_logprobs"][0].as_object().expect("top").len(), 2);
    assert_eq!(lp["text_offset"][0], 0);
    // The prompt as token ids answers the same (no BOS for this model), and OpenAI's default
    // of 16 tokens holds when none is asked.
    let (_, again) = post(&server, "/v1/completions", &body).await;
    assert_eq!(
        again["choices"][0]["text"], choice["text"],
        "greedy is repeatable"
    );
    let (status, d) = post(
        &server,
        "/v1/completions",
        &json!({"model": "tiny-llama-test", "prompt": [40, 41, 42], "temperature": 0}),
    )
    .await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["usage"]["completion_tokens"], 16);
    assert_eq!(d["usage"]["prompt_tokens"], 3);

    // Streamed: the same text in pieces, then the usage.
    let mut stream_body = body.clone();
    stream_body["stream_options"] = json!({"include_usage": true});
    let chunks = post_stream(&server, "/v1/completions", &stream_body).await;
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["text"].as_str())
        .collect();
    assert_eq!(text, choice["text"].as_str().expect("text"));
    let tokens: usize = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["logprobs"]["tokens"].as_array())
        .map(Vec::len)
        .sum();
    assert_eq!(tokens, 6);
    assert_eq!(
        chunks.last().expect("usage")["usage"]["completion_tokens"],
        6
    );
    server.stop().await;
}

#[tokio::test]
async fn what_is_not_served_is_refused_by_name() {
    let server = TestWorker::start().await;
    for (extra, param) in [
        (json!({"echo": true}), "echo"),
        (json!({"suffix": "end"}), "suffix"),
        (json!({"prompt": ["a", "b"]}), "prompt"),
        (json!({"prompt": [1, 999999]}), "prompt"),
        (json!({"prompt": ""}), "prompt"),
        (json!({"logprobs": 9}), "logprobs"),
        (json!({"logit_bias": {"999999": 5}}), "logit_bias"),
    ] {
        let mut body = json!({"model": "tiny-llama-test", "prompt": "hi", "max_tokens": 3});
        for (k, v) in extra.as_object().expect("fields") {
            body[k] = v.clone();
        }
        let (status, answer) = post(&server, "/v1/completions", &body).await;
        assert_eq!(status, 400, "{extra}: {answer}");
        assert_eq!(answer["error"]["param"], param, "{extra}: {answer}");
    }
    let models: Value = reqwest::get(format!("{}/v1/models", server.url))
        .await
        .expect("models")
        .json()
        .await
        .expect("json");
    assert_eq!(
        models["data"][0]["context_length"].as_u64(),
        Some(server.engine.info().max_context as u64)
    );
    server.stop().await;
}
