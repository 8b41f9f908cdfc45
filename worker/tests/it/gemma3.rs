//! Gemma 3 270M end to end on the worker's engine: its GGUF's K-quant and Q5_0 blocks, its
//! architecture and its SentencePiece tokenizer. A base model: greedy, it completes factual
//! prompts as llama.cpp does on the same file (" The capital of France is Paris", " Berlin.").

use std::sync::Arc;

use morpheus_testkit::{gemma3_model, ort_environment};
use morpheus_worker::{
    engine::{Engine, EngineConfig, GenerateRequest, Sampling},
    metrics::Metrics,
    model::ModelDir,
    runtime::Device,
};
use tokenizers::Tokenizer;

use crate::common::answer_text;

async fn complete(engine: &Engine, tokenizer: &Tokenizer, prompt: &str, max_new: u32) -> String {
    // With `<bos>` first, as llama.cpp adds it (the GGUF's `add_bos_token`).
    let ids = tokenizer
        .encode(prompt, true)
        .expect("the prompt encodes")
        .get_ids()
        .to_vec();
    assert_eq!(ids[0], 2, "{prompt:?} starts with <bos>: {ids:?}");
    let greedy = Sampling {
        temperature: 0.0,
        top_p: 1.0,
        seed: 0,
    };
    let rx = engine
        .submit(GenerateRequest::new(ids, max_new, greedy))
        .expect("submit");
    answer_text(rx).await
}

#[tokio::test]
async fn gemma3_completes_factual_prompts_as_llama_cpp_does() {
    let dir = gemma3_model();
    let model = ModelDir::open(&dir).expect("the prepared model");
    let tokenizer = Tokenizer::from_file(dir.join("tokenizer.json")).expect("tokenizer.json");
    let cfg = EngineConfig {
        max_batch: 2,
        max_context: 256,
        threads: 2,
        device: Device::Cpu,
        max_queue: 4,
        ..Default::default()
    };
    let env = ort_environment().expect("ONNX Runtime");
    let engine = Engine::start(&env, &model, &cfg, Arc::new(Metrics::new())).expect("engine");
    // llama.cpp (llama-cpp-python), greedy, on the same GGUF.
    let france = complete(
        &engine,
        &tokenizer,
        "Q: What is the capital of France?\nA:",
        8,
    )
    .await;
    assert!(
        france.starts_with(" The capital of France is Paris"),
        "{france:?}"
    );
    let germany = complete(
        &engine,
        &tokenizer,
        "The capital of France is Paris. The capital of Germany is",
        8,
    )
    .await;
    assert!(germany.starts_with(" Berlin."), "{germany:?}");
    engine.shutdown();
}
