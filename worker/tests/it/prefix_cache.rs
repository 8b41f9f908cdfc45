//! The prefix cache: a conversation's next turn and a shared system prompt are not recomputed,
//! and every answer is the one a worker without the cache gives (one at a time, or many at once
//! while slots move).

use morpheus_sdk::openai::{ChatCompletionRequest, ChatMessage};

use morpheus_testkit::{TestWorker, WorkerOptions};

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
