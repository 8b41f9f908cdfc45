//! Gemma 3 270M end to end on the worker's engine: its GGUF's K-quant and Q5_0 blocks, its
//! architecture and its SentencePiece tokenizer. A base model: greedy, it completes factual
//! prompts as llama.cpp does on the same file (" The capital of France is Paris", " Berlin.").

use std::sync::Arc;

use morpheus_testkit::{gemma3_model, ort_environment};
use morpheus_worker::{
    engine::{Engine, EngineConfig, GenerateRequest, Sampling},
    metrics::Metrics,
    model::{ModelDir, TextTokenizer},
    runtime::Device,
};
use tokenizers::Tokenizer;

use crate::common::answer_text;

async fn complete(engine: &Engine, model: &ModelDir, prompt: &str, max_new: u32) -> String {
    // With `<bos>` first, as llama.cpp adds it (the GGUF's `add_bos_token`).
    let ids = model.encode(prompt).expect("the prompt encodes");
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
    let france = complete(&engine, &model, "Q: What is the capital of France?\nA:", 8).await;
    assert!(
        france.starts_with(" The capital of France is Paris"),
        "{france:?}"
    );
    let germany = complete(
        &engine,
        &model,
        "The capital of France is Paris. The capital of Germany is",
        8,
    )
    .await;
    assert!(germany.starts_with(" Berlin."), "{germany:?}");
    engine.shutdown();
}

#[test]
fn gemma3_s_tokenizer_is_the_flat_sentencepiece_and_gives_what_tokenizers_gives() {
    let dir = gemma3_model();
    let model = ModelDir::open(&dir).expect("the prepared model");
    let TextTokenizer::SentencePiece(ours) = model.tokenizer.as_ref() else {
        panic!("Gemma's tokenizer.json is loaded by tokenizers, not the flat SentencePiece BPE");
    };
    let theirs = Tokenizer::from_file(dir.join("tokenizer.json")).expect("tokenizer.json");
    let texts = [
        "<start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n<start_of_turn>model\n",
        "fn main() {\n\tprintln!(\"{}\", 1 + 2);\n}\n\n\n\n// done",
        "  leading spaces,   runs   of spaces, trailing  ",
        "\u{4eac}\u{90fd}\u{306f}\u{65e5}\u{672c}\u{306e}\u{90fd}\u{5e02}\u{3067}\u{3059}\u{3002} \u{645}\u{631}\u{62d}\u{628}\u{627} \u{1f600}\u{1f680}",
        "3.14159 1,000,000 0x1F 2026-12-06",
        "<unused12> <bos>a<eos> [multimodal] <start_of_image>",
        "",
        "\u{2581}already marked\u{2581}spaces",
        "Caf\u{e9} na\u{ef}ve r\u{e9}sum\u{e9} \u{fb01}\u{ff21}\u{200b}zero-width",
    ];
    let mut all = String::new();
    for text in texts {
        all.push_str(text);
        for text in [text, all.as_str()] {
            let expected = theirs
                .encode(text, false)
                .expect("encodes")
                .get_ids()
                .to_vec();
            assert_eq!(ours.encode(text), expected, "{text:?}");
            assert_eq!(
                ours.decode(&expected),
                theirs.decode(&expected, true).expect("decodes"),
                "{text:?}"
            );
        }
    }
}
