//! Batched prefill: prompts that wait together run in one prefill, and each answers as it does
//! alone (the decoder-level exactness is `engine::decoder::tests`).

use std::{sync::Arc, time::Duration};

use crate::common::answer_text;
use morpheus_testkit::{ort_environment, tiny_model};
use morpheus_worker::{
    engine::{Engine, EngineConfig, GenerateRequest, Sampling},
    metrics::Metrics,
    model::ModelDir,
    runtime::Device,
};

fn greedy(prompt: Vec<u32>, max_new: u32) -> GenerateRequest {
    GenerateRequest {
        ignore_eos: true,
        ..GenerateRequest::new(
            prompt,
            max_new,
            Sampling {
                temperature: 0.0,
                top_p: 1.0,
                seed: 0,
            },
        )
    }
}

fn prompt_runs(metrics: &Metrics) -> u64 {
    metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix("morpheus_worker_prompt_runs_total "))
        .and_then(|v| v.parse().ok())
        .expect("the prompt runs counter")
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
