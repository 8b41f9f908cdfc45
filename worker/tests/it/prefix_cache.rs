//! The prefix cache: a conversation's next turn and a shared system prompt are not recomputed,
//! and every answer is the one a worker without the cache gives (one at a time, or many at once
//! while slots move).

use std::{sync::Arc, time::Duration};

use morpheus_sdk::openai::{ChatCompletionRequest, ChatMessage};

use crate::common::{answer_text, engine_metric, greedy_tokens_request as generate};
use morpheus_testkit::{TestWorker, WorkerOptions, ort_environment, tiny_model};
use morpheus_worker::{
    engine::{Engine, EngineConfig, Event},
    metrics::Metrics,
    model::ModelDir,
    runtime::Device,
};

fn greedy(messages: Vec<ChatMessage>, max_tokens: u32) -> ChatCompletionRequest {
    ChatCompletionRequest {
        model: "tiny-llama-test".into(),
        messages,
        max_tokens: Some(max_tokens),
        temperature: Some(0.0),
        ..Default::default()
    }
}

async fn worker(prefix_cache: bool) -> TestWorker {
    TestWorker::with(WorkerOptions {
        prefix_cache,
        max_batch: 4,
        ..Default::default()
    })
    .await
}

fn system() -> ChatMessage {
    ChatMessage::system("You are a careful assistant. ".repeat(20))
}

async fn answer(server: &TestWorker, req: &ChatCompletionRequest) -> String {
    server
        .client()
        .chat(&server.assignment(100_000), req)
        .await
        .expect("answer")
        .choices[0]
        .message
        .content
        .clone()
}

#[tokio::test]
async fn a_next_turn_reuses_the_conversation_and_answers_the_same() {
    let (cached, plain) = (worker(true).await, worker(false).await);
    let mut turns = vec![system(), ChatMessage::user("Tell me about rivers.")];
    for turn in 0..3 {
        let req = greedy(turns.clone(), 12);
        let (a, b) = (answer(&cached, &req).await, answer(&plain, &req).await);
        assert_eq!(a, b, "turn {turn}");
        turns.push(ChatMessage::assistant(a));
        turns.push(ChatMessage::user(format!("And then, part {turn}?")));
    }
    let reused = cached
        .metric("morpheus_worker_prefix_cache_reused_tokens_total")
        .await
        .expect("metric");
    // Turns 2 and 3 each reuse at least the system prompt and the first question.
    assert!(reused > 2.0 * 100.0, "reused {reused}");
    let ratio = cached
        .metric("morpheus_worker_prefix_cache_hit_ratio")
        .await
        .expect("metric");
    assert!(ratio > 0.5 && ratio < 1.0, "{ratio}");
    assert_eq!(
        plain
            .metric("morpheus_worker_prefix_cache_reused_tokens_total")
            .await,
        Some(0.0)
    );
    cached.stop().await;
    plain.stop().await;
}

#[tokio::test]
async fn concurrent_conversations_sharing_a_system_prompt_answer_as_without_the_cache() {
    let (cached, plain) = (worker(true).await, worker(false).await);
    // Three rounds of six requests on four slots: sequences leave in any order, slots move,
    // and entries are reused, copied and evicted while others decode.
    for round in 0..3 {
        let reqs: Vec<ChatCompletionRequest> = (0..6)
            .map(|i| {
                greedy(
                    vec![
                        system(),
                        ChatMessage::user(format!("Question {i} of round {round}")),
                    ],
                    4 + (i as u32 * 3) % 11,
                )
            })
            .collect();
        let run = |server: &TestWorker| {
            let client = server.client();
            let reqs = reqs.clone();
            let assignments: Vec<_> = (0..reqs.len())
                .map(|_| server.assignment(100_000))
                .collect();
            async move {
                let calls = reqs
                    .iter()
                    .zip(&assignments)
                    .map(|(r, a)| client.chat(a, r));
                futures::future::join_all(calls)
                    .await
                    .into_iter()
                    .map(|a| a.expect("answer").choices[0].message.content.clone())
                    .collect::<Vec<_>>()
            }
        };
        let (a, b) = (run(&cached).await, run(&plain).await);
        assert_eq!(a, b, "round {round}");
    }
    let reused = cached
        .metric("morpheus_worker_prefix_cache_reused_tokens_total")
        .await
        .expect("metric");
    assert!(reused > 0.0);
    cached.stop().await;
    plain.stop().await;
}

/// Tokens of the request that runs while the others arrive (its prompt and these within the
/// tiny model's context of 512).
const LONG: u32 = 450;

fn reused_tokens(metrics: &Metrics) -> f64 {
    engine_metric(metrics, "morpheus_worker_prefix_cache_reused_tokens_total")
}

#[tokio::test]
async fn requests_arriving_while_one_runs_copy_its_system_prompt_and_answer_as_without_the_cache() {
    let env = ort_environment().expect("ONNX Runtime");
    let model = ModelDir::open(tiny_model()).expect("the tiny model");
    let start = |prefix_cache: bool| {
        let cfg = EngineConfig {
            max_batch: 4,
            max_context: 512,
            threads: 2,
            device: Device::Cpu,
            max_queue: 16,
            prefix_cache,
            ..Default::default()
        };
        let metrics = Arc::new(Metrics::new());
        let engine = Engine::start(&env, &model, &cfg, metrics.clone()).expect("engine");
        (engine, metrics)
    };
    // A 40-token system prompt (ids within the tiny vocabulary of 267), then each request's own
    // question.
    let system: Vec<u32> = (0..40).map(|i| 3 + (i * 37) % 250).collect();
    let ask = |q: u32| [system.as_slice(), &[q, q + 3, q + 9]].concat();
    let questions = [5, 77, 140];

    let (plain, _) = start(false);
    let mut alone = Vec::new();
    for &q in &questions {
        alone.push(answer_text(plain.submit(generate(ask(q), 12)).expect("submit")).await);
    }
    let long_alone = answer_text(plain.submit(generate(ask(1), LONG)).expect("submit")).await;
    plain.shutdown();

    // The first request runs long (no slot is free with its prompt in it: a fresh engine); the
    // three after it arrive while it decodes and find the system prompt in its slot.
    let (cached, metrics) = start(true);
    let mut long = cached.submit(generate(ask(1), LONG)).expect("submit");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let rxs: Vec<_> = questions
        .iter()
        .map(|&q| cached.submit(generate(ask(q), 12)).expect("submit"))
        .collect();
    let mut together = Vec::new();
    for rx in rxs {
        together.push(answer_text(rx).await);
    }
    // The long one was still running when the three were answered (else they could have
    // found its prompt in its freed slot instead).
    let mut long_text = String::new();
    while let Ok(event) = long.try_recv() {
        match event {
            Event::Text { text, .. } => long_text.push_str(&text),
            Event::Done(_) => panic!("the long request ended before the three were answered"),
            Event::Failed(m) => panic!("generation failed: {m}"),
        }
    }
    long_text.push_str(&answer_text(long).await);
    assert_eq!(long_text, long_alone);
    assert_eq!(together, alone);
    let reused = reused_tokens(&metrics);
    assert!(
        reused >= (questions.len() * system.len()) as f64,
        "{reused} tokens reused: each of the {} later requests should copy the {}-token system prompt",
        questions.len(),
        system.len()
    );
    cached.shutdown();
}
