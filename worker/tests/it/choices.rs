//! `n` choices: separate sequences of the batch, sampled with their own seeds, whole or
//! streamed; the prompt charged once and every choice's tokens.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use morpheus_testkit::TestWorker;

use crate::sampling::{post, post_stream};

#[tokio::test]
async fn n_choices_are_sampled_apart_and_counted_together() {
    let server = TestWorker::start().await;
    let body = json!({"model": "tiny-llama-test", "messages": [{"role": "user", "content": "a story"}],
                      "max_tokens": 10, "n": 3, "temperature": 1.0, "seed": 11});
    let (status, a) = post(&server, "/v1/chat/completions", &body).await;
    assert_eq!(status, 200, "{a}");
    let choices = a["choices"].as_array().expect("choices");
    assert_eq!(choices.len(), 3);
    let texts: Vec<&str> = choices
        .iter()
        .enumerate()
        .map(|(i, c)| {
            assert_eq!(c["index"], i);
            assert_eq!(c["finish_reason"], "length");
            c["message"]["content"].as_str().expect("text")
        })
        .collect();
    assert!(
        texts[0] != texts[1] || texts[1] != texts[2],
        "seeds apart: {texts:?}"
    );
    // One choice with seed 12 is the second choice of seed 11.
    let mut one = body.clone();
    (one["n"], one["seed"]) = (json!(1), json!(12));
    let (_, b) = post(&server, "/v1/chat/completions", &one).await;
    assert_eq!(b["choices"][0]["message"]["content"], texts[1]);
    // The prompt counted once, the completions summed.
    assert_eq!(a["usage"]["completion_tokens"], 30);
    assert_eq!(a["usage"]["prompt_tokens"], b["usage"]["prompt_tokens"]);

    // Streamed: each choice's chunks carry its index, each ends with its finish; the usage once.
    let mut s = body.clone();
    s["stream_options"] = json!({"include_usage": true});
    let mut streamed: BTreeMap<u64, String> = BTreeMap::new();
    let mut finishes = 0;
    let mut usage = None;
    for c in post_stream(&server, "/v1/chat/completions", &s).await {
        if let Some(u) = c.get("usage") {
            usage = Some(u.clone());
        }
        for ch in c["choices"].as_array().expect("choices") {
            let i = ch["index"].as_u64().expect("index");
            streamed
                .entry(i)
                .or_default()
                .push_str(ch["delta"]["content"].as_str().unwrap_or_default());
            finishes += usize::from(ch["finish_reason"].is_string());
        }
    }
    assert_eq!(
        streamed.values().map(String::as_str).collect::<Vec<_>>(),
        texts
    );
    assert_eq!(finishes, 3);
    assert_eq!(usage.expect("usage")["completion_tokens"], 30);

    // Text completions take `n` too.
    let c =
        json!({"model": "tiny-llama-test", "prompt": "Once", "max_tokens": 3, "n": 2, "seed": 1});
    let (status, a) = post(&server, "/v1/completions", &c).await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["choices"].as_array().expect("choices").len(), 2);
    assert_eq!(a["usage"]["completion_tokens"], 6);
    server.stop().await;
}

#[tokio::test]
async fn n_choices_fit_the_session_or_are_refused() {
    let server = TestWorker::start().await;
    // A session of 60 tokens: a prompt of about 20 leaves room for 2 choices of 20, not 4.
    let body = json!({"model": "tiny-llama-test", "messages": [{"role": "user", "content": "hi"}],
                      "max_tokens": 400, "n": 4, "temperature": 0});
    let r = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", server.url))
        .header(
            morpheus_sdk::provider::ASSIGNMENT_HEADER,
            morpheus_sdk::provider::encode_assignment(&server.assignment(60)),
        )
        .json(&body)
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);
    let a: Value = r.json().await.expect("json");
    let total = a["usage"]["total_tokens"].as_u64().expect("total");
    assert!(total <= 60, "within tokenMax: {a}");
    let each: Vec<u64> = a["choices"]
        .as_array()
        .expect("choices")
        .iter()
        .map(|c| c["finish_reason"].as_str().map_or(0, |_| 1))
        .collect();
    assert_eq!(each.len(), 4);
    server.stop().await;
}
