//! Batched prefill: prompts that wait together run in one prefill, and each answers as it does
//! alone (the decoder-level exactness is `engine::decoder::tests`); a long prompt run in pieces
//! answers as in one run.

use std::{sync::Arc, time::Duration};

use crate::common::{answer_text, engine_metric, greedy_tokens_request as greedy};
use morpheus_testkit::{ort_environment, tiny_model};
use morpheus_worker::{
    engine::{Engine, EngineConfig, Event, GenerateRequest},
    metrics::Metrics,
    model::ModelDir,
    runtime::Device,
};

fn prompt_runs(metrics: &Metrics) -> u64 {
    engine_metric(metrics, "morpheus_worker_prompt_runs_total") as u64
}

#[tokio::test]
async fn prompts_waiting_together_share_a_prefill_and_answer_as_alone() {
    let env = ort_environment().expect("ONNX Runtime");
    let model = ModelDir::open(tiny_model()).expect("the tiny model");
    let cfg = EngineConfig {
        max_batch: 8,
        max_context: 512,
        threads: 2,
        device: Device::Cpu,
        max_queue: 16,
        ..Default::default()
    };
    let metrics = Arc::new(Metrics::new());
    let engine = Engine::start(&env, &model, &cfg, metrics.clone()).expect("engine");
    // Short prompts of different lengths (under the prefix cache's reuse length, so none
    // reuses another's).
    let prompts: Vec<Vec<u32>> = vec![
        vec![40, 41, 42],
        vec![100, 7, 250, 33, 90],
        vec![12],
        vec![61, 5, 5, 61, 200, 3, 9],
    ];
    let mut alone = Vec::new();
    for p in &prompts {
        alone.push(answer_text(engine.submit(greedy(p.clone(), 12)).expect("submit")).await);
    }
    assert_eq!(prompt_runs(&metrics), prompts.len() as u64);

    // A long answer keeps the engine stepping, so the next four wait in the queue together and
    // join between two steps.
    let long = engine.submit(greedy(vec![9, 8, 7], 400)).expect("submit");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let rxs: Vec<_> = prompts
        .iter()
        .map(|p| engine.submit(greedy(p.clone(), 12)).expect("submit"))
        .collect();
    let mut together = Vec::new();
    for rx in rxs {
        together.push(answer_text(rx).await);
    }
    answer_text(long).await;
    assert_eq!(together, alone);
    // The long one ran alone; the four shared fewer runs than one each.
    let runs = prompt_runs(&metrics) - prompts.len() as u64 - 1;
    assert!(
        runs < prompts.len() as u64,
        "{runs} prefill runs for 4 waiting prompts"
    );
    engine.shutdown();
}

/// A prompt's tokens and log-probabilities answered greedily by an engine that runs prompts in
/// pieces of at most `prompt_chunk` tokens (no prefix cache, so every prompt runs whole).
async fn long_prompt_answer(prompt_chunk: usize, prompt: &[u32]) -> Vec<(u32, f32)> {
    let env = ort_environment().expect("ONNX Runtime");
    let model = ModelDir::open(tiny_model()).expect("the tiny model");
    let cfg = EngineConfig {
        max_batch: 2,
        max_context: 512,
        threads: 2,
        device: Device::Cpu,
        prefix_cache: false,
        prompt_chunk,
        ..Default::default()
    };
    let engine = Engine::start(&env, &model, &cfg, Arc::new(Metrics::new())).expect("engine");
    let mut rx = engine
        .submit(GenerateRequest {
            logprobs: Some(0),
            ..greedy(prompt.to_vec(), 24)
        })
        .expect("submit");
    let mut out = Vec::new();
    while let Some(event) = rx.recv().await {
        match event {
            Event::Text { logprobs, .. } => {
                out.extend(logprobs.iter().map(|l| (l.token, l.logprob)))
            }
            Event::Done(_) => break,
            Event::Failed(m) => panic!("generation failed: {m}"),
        }
    }
    engine.shutdown();
    out
}

#[tokio::test]
async fn a_prompt_run_in_pieces_answers_as_in_one_run() {
    // 450 tokens (within the tiny model's context of 512 with the answer): one run of them all
    // against pieces of 128 (the default) and of 100 (the last one 50 tokens).
    let prompt: Vec<u32> = (0..450).map(|i| 3 + (i * 53) % 260).collect();
    let whole = long_prompt_answer(512, &prompt).await;
    assert_eq!(whole.len(), 24);
    for chunk in [128, 100] {
        let pieces = long_prompt_answer(chunk, &prompt).await;
        let tokens = |a: &[(u32, f32)]| a.iter().map(|t| t.0).collect::<Vec<_>>();
        assert_eq!(tokens(&pieces), tokens(&whole), "pieces of {chunk}");
        for (i, (p, w)) in pieces.iter().zip(&whole).enumerate() {
            assert!(
                (p.1 - w.1).abs() < 1e-3,
                "pieces of {chunk}, token {i}: log-probability {} against {} in one run",
                p.1,
                w.1
            );
        }
    }
}
